// Batch jobs: parse_job (job file semantics: defaults, overrides, relative paths, adapter weights) and
// make_batch_plan (items reading the same base bytes are fused into one item with merge variants; emits and files
// are those of the separate plans). The end-to-end byte comparison is tests/batch/batch_job.sh.
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include <unistd.h>

namespace fs = std::filesystem;
namespace sf = shardforge;

namespace {

sf::plan::Job parse(const std::string& text) { return sf::plan::parse_job(text, "/jobs", "job.toml"); }

sf::core::ErrorKind parse_error_kind(const std::string& text, std::string* what = nullptr) {
    try {
        (void)parse(text);
    } catch (const sf::core::Error& e) {
        if (what) *what = e.what();
        return e.kind();
    }
    ADD_FAILURE() << "no error for: " << text;
    return sf::core::ErrorKind::Internal;
}

TEST(JobFile, DefaultsOverridesAndPaths) {
    const auto job = parse(R"(
base = "../models/base"
out = "/exports"
formats = ["safetensors", "gguf:q4_k_m"]
dtype = "f16"
threads = 3
[[variant]]
name = "a"
adapter = "runs/a"
weight = 0.5
[[variant]]
name = "b"
adapters = ["runs/b:2", { path = "/abs/c", weight = 0.25 }]
formats = "gguf-lora:q8_0"
out = "here"
gguf_name = "bee"
)");
    ASSERT_EQ(job.variants.size(), 2u);
    EXPECT_EQ(job.threads, 3);
    EXPECT_EQ(job.names, (std::vector<std::string>{"a", "b"}));
    const auto& a = job.variants[0];
    EXPECT_EQ(a.base, fs::path("/models/base"));
    EXPECT_EQ(a.out, fs::path("/exports/a"));
    EXPECT_EQ(a.name, "a");
    ASSERT_EQ(a.outputs.size(), 2u);
    EXPECT_EQ(a.outputs[1].format, sf::plan::Format::Gguf);
    EXPECT_EQ(a.outputs[1].type, "q4_k_m");
    ASSERT_TRUE(a.dtype.has_value());
    EXPECT_EQ(*a.dtype, sf::core::DType::F16);
    ASSERT_EQ(a.adapters.size(), 1u);
    EXPECT_EQ(a.adapters[0].first, fs::path("/jobs/runs/a"));
    EXPECT_FLOAT_EQ(a.adapters[0].second, 0.5f);
    const auto& b = job.variants[1];
    EXPECT_EQ(b.out, fs::path("/jobs/here"));
    EXPECT_EQ(b.name, "bee");
    ASSERT_EQ(b.outputs.size(), 1u);
    EXPECT_EQ(b.outputs[0].format, sf::plan::Format::GgufLora);
    EXPECT_EQ(b.outputs[0].type, "q8_0");
    ASSERT_EQ(b.adapters.size(), 2u);
    EXPECT_EQ(b.adapters[0].first, fs::path("/jobs/runs/b"));
    EXPECT_FLOAT_EQ(b.adapters[0].second, 2.0f);
    EXPECT_EQ(b.adapters[1].first, fs::path("/abs/c"));
    EXPECT_FLOAT_EQ(b.adapters[1].second, 0.25f);
    EXPECT_EQ(*b.dtype, sf::core::DType::F16);  // inherited default
}

TEST(JobFile, MistakesAreErrorsNamingTheKey) {
    std::string what;
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n[[variant]]\nname = \"a\"\nadaptr = \"x\"\n", &what),
              sf::core::ErrorKind::Usage);
    EXPECT_NE(what.find("variant[0].adaptr"), std::string::npos) << what;
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = [\n"), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(parse_error_kind("out = \"o\"\n[[variant]]\nname = \"a\"\n"), sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n"), sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n"),
              sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n[[variant]]\nname = \"a/b\"\n"), sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n[[variant]]\nname = \"a\"\nweight = 2\n", &what),
              sf::core::ErrorKind::Usage);  // weight without adapter
    EXPECT_NE(what.find("weight"), std::string::npos);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\n[[variant]]\nname = \"a\"\nformats = [\"gguf-zip\"]\n"),
              sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\nout = \"o\"\nsplit_max_tensors = -1\n[[variant]]\nname = \"a\"\n"),
              sf::core::ErrorKind::Usage);
    EXPECT_EQ(parse_error_kind("base = \"b\"\n[[variant]]\nname = \"a\"\n"), sf::core::ErrorKind::Usage);  // no out
}

struct Sweep {
    fs::path dir;
    Sweep() {
        dir = fs::temp_directory_path() / ("sf_batch_unit_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        for (int r : {4, 8}) {
            sf::model::DemoOptions o;
            o.lora_rank = r;
            o.lora_alpha = 2 * r;
            sf::model::write_demo(dir / ("r" + std::to_string(r)), o);
        }
    }
    ~Sweep() { fs::remove_all(dir); }
    sf::plan::Options variant(const std::string& adapter, const std::string& out) const {
        sf::plan::Options o;
        o.base = dir / "r4" / "base";
        if (!adapter.empty()) o.adapters = {{dir / adapter / "adapter", 1.0f}};
        o.out = dir / "out" / out;
        o.outputs = sf::plan::parse_formats("safetensors,gguf:q8_0");
        o.name = out;
        return o;
    }
};

std::size_t n_emits(const sf::plan::Plan& p) {
    std::size_t n = 0;
    for (const auto& it : p.items) {
        n += it.emits.size();
        for (const auto& v : it.variants) n += v.emits.size();
    }
    return n;
}

TEST(BatchPlan, FusesItemsReadingTheSameBase) {
    Sweep s;
    sf::plan::Job job;
    job.variants = {s.variant("r4", "a"), s.variant("r8", "b"), s.variant("", "plain")};
    job.names = {"a", "b", "plain"};
    const sf::plan::Plan batch = sf::plan::make_batch_plan(job);
    std::size_t emits = 0, files = 0;
    std::size_t items_one = 0;
    for (const auto& v : job.variants) {
        const sf::plan::Plan one = sf::plan::make_plan(v);
        emits += n_emits(one);
        files += one.files.size();
        items_one = one.items.size();
    }
    EXPECT_EQ(batch.items.size(), items_one);  // one item per base tensor, as in a single export
    EXPECT_EQ(n_emits(batch), emits);         // every output tensor of every variant is written
    EXPECT_EQ(batch.files.size(), files);
    EXPECT_EQ(batch.out_dir, (s.dir / "out").string());
    std::set<std::string> names;
    for (const auto& f : batch.files) names.insert(f.name);
    EXPECT_TRUE(names.count("a/model.safetensors") && names.count("b/b.Q8_0.gguf") && names.count("plain/Modelfile"));
    std::uint64_t read = 0;
    std::size_t with_variants = 0;
    for (const auto& it : batch.items) {
        for (const auto& src : it.sources) read += src.nbytes;
        if (!it.variants.empty()) {
            ++with_variants;
            // Variant "a" (own merges), "b" (another merge) and "plain" (no merge): three distinct merges.
            EXPECT_EQ(it.variants.size(), 2u);
            ASSERT_EQ(it.variants[0].merges.size(), it.sources.size());
        }
    }
    EXPECT_EQ(with_variants, 4u * 7u);  // every LoRA-targeted projection of the 4-layer demo
    std::uint64_t read_one = 0;  // what a single export reads: each base tensor once
    for (const auto& it : sf::plan::make_plan(job.variants[2]).items)
        for (const auto& src : it.sources) read_one += src.nbytes;
    EXPECT_EQ(read, read_one);
    // Round trip of the variants through the serialized plan every rank receives.
    const sf::plan::Plan back = sf::plan::from_json(sf::plan::to_json(batch));
    EXPECT_EQ(n_emits(back), n_emits(batch));
    EXPECT_EQ(sf::plan::to_json(back), sf::plan::to_json(batch));
}

TEST(BatchPlan, TwoVariantsWritingOneFileIsAnError) {
    Sweep s;
    sf::plan::Job job;
    job.variants = {s.variant("r4", "a"), s.variant("r8", "a")};
    job.names = {"x", "y"};
    try {
        (void)sf::plan::make_batch_plan(job);
        FAIL() << "expected an error";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
        EXPECT_NE(std::string(e.what()).find("'x' and 'y' both write"), std::string::npos) << e.what();
    }
}

}  // namespace

namespace {

TEST(BatchPlan, AdapterModelfileFromTheBaseVariant) {
    Sweep s;
    sf::plan::Job job;
    job.variants = {s.variant("", "plain"), s.variant("r4", "lora"), s.variant("r8", "both")};
    job.variants[0].outputs = sf::plan::parse_formats("gguf:q8_0");
    job.variants[1].outputs = sf::plan::parse_formats("gguf-lora");
    job.variants[2].outputs = sf::plan::parse_formats("gguf:q8_0,gguf-lora:q8_0");
    job.names = {"plain", "lora", "both"};
    const sf::plan::Plan p = sf::plan::make_batch_plan(job);
    std::map<std::string, std::string> text;
    for (const auto& f : p.files)
        if (f.kind == sf::plan::FileKind::Text) text[f.name] = f.header;
    ASSERT_TRUE(text.count("lora/Modelfile"));
    EXPECT_NE(text["lora/Modelfile"].find("\nFROM ../plain/plain.Q8_0.gguf\n"), std::string::npos) << text["lora/Modelfile"];
    EXPECT_NE(text["lora/Modelfile"].find("\nADAPTER ./lora-lora-f32.gguf\n"), std::string::npos) << text["lora/Modelfile"];
    // A variant with a merged GGUF keeps its Modelfile (FROM the merged file, no ADAPTER: the adapter is in it)
    // and gets Modelfile.lora for the base + adapter pair.
    ASSERT_TRUE(text.count("both/Modelfile") && text.count("both/Modelfile.lora"));
    EXPECT_NE(text["both/Modelfile"].find("\nFROM ./both.Q8_0.gguf\n"), std::string::npos);
    EXPECT_EQ(text["both/Modelfile"].find("ADAPTER"), std::string::npos);
    EXPECT_NE(text["both/Modelfile.lora"].find("\nFROM ../plain/plain.Q8_0.gguf\n"), std::string::npos);
    EXPECT_NE(text["both/Modelfile.lora"].find("\nADAPTER ./both-lora-q8_0.gguf\n"), std::string::npos);
    EXPECT_FALSE(text.count("plain/Modelfile.lora"));
}

TEST(BatchPlan, SingleExportOfALoraExplainsWhatFromMustBe) {
    Sweep s;
    sf::plan::Options o = s.variant("r4", "x");
    o.outputs = sf::plan::parse_formats("gguf-lora");
    const sf::plan::Plan p = sf::plan::make_plan(o);
    for (const auto& f : p.files) EXPECT_NE(f.name, "Modelfile");  // no base GGUF to name in FROM
    bool noted = false;
    for (const auto& n : p.notes) noted = noted || (n.find("FROM") != std::string::npos &&
                                                    n.find("ADAPTER ./x-lora-f32.gguf") != std::string::npos);
    EXPECT_TRUE(noted);
}

}  // namespace
