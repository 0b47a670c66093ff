// Path safety (docs/testing.md "Reliability"), property: whatever the inputs and options, every file a plan writes is a
// plain relative basename inside --out (no '/', no "..", not empty, not hidden), so exec can never write outside the
// output directory; file names taken from inputs (index weight_map, adapter files) cannot escape their directory
// either. Expected properties are stated here, independent of the plan code.
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace sf = shardforge;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "sf_pathsafety_XXXXXX").string();
        if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// The property. Returns "" when `name` is a safe output file name, else why not.
std::string unsafe_reason(const std::string& name) {
    if (name.empty()) return "empty";
    if (name.find('/') != std::string::npos) return "contains '/'";
    if (name.find('\\') != std::string::npos) return "contains a backslash";
    if (name.find('\0') != std::string::npos) return "contains NUL";
    if (name == "." || name == "..") return "is . or ..";
    if (name.find("..") != std::string::npos) return "contains '..'";
    if (name[0] == '.') return "starts with '.' (hidden / empty stem)";
    return "";
}

sf::model::DemoOptions small_demo(sf::model::DemoArch arch) {
    sf::model::DemoOptions o;
    o.arch = arch;
    o.n_layer = 1;
    o.hidden = 64;
    o.intermediate = 128;
    o.n_head = 2;
    o.n_kv_head = 1;
    o.vocab = 300;
    o.n_shards = 2;
    return o;
}

sf::plan::Options options(const fs::path& demo, const fs::path& out, const std::string& formats) {
    sf::plan::Options o;
    o.base = demo / "base";
    o.adapters = {{demo / "adapter", 1.0f}};
    o.out = out;
    o.outputs = sf::plan::parse_formats(formats);
    o.max_shard_size = 20'000;   // several safetensors shards
    o.split_max_tensors = 4;     // several GGUF splits
    return o;
}

// make_plan either refuses (core::Error) or every output name satisfies the property.
void expect_safe_plan(const sf::plan::Options& o, const std::string& what) {
    sf::plan::Plan p;
    try {
        p = sf::plan::make_plan(o);
    } catch (const sf::core::Error&) {
        return;  // refusing is safe
    }
    EXPECT_EQ(fs::path(p.out_dir), fs::absolute(o.out)) << what;
    ASSERT_FALSE(p.files.empty()) << what;
    for (const auto& f : p.files) {
        const std::string why = unsafe_reason(f.name);
        EXPECT_EQ(why, "") << what << ": output file name '" << f.name << "' " << why;
        // Lexically inside out_dir after joining.
        const fs::path joined = (fs::path(p.out_dir) / f.name).lexically_normal();
        EXPECT_EQ(joined.parent_path(), fs::path(p.out_dir).lexically_normal()) << what << ": " << f.name;
    }
}

}  // namespace

TEST(PathSafety, UnsafeReasonItself) {  // the property checker must be able to fail
    EXPECT_NE(unsafe_reason("../x.gguf"), "");
    EXPECT_NE(unsafe_reason("/tmp/x.gguf"), "");
    EXPECT_NE(unsafe_reason("a/b.gguf"), "");
    EXPECT_NE(unsafe_reason(".Q8_0.gguf"), "");
    EXPECT_NE(unsafe_reason(""), "");
    EXPECT_EQ(unsafe_reason("base.Q8_0.gguf"), "");
    EXPECT_EQ(unsafe_reason("model-00001-of-00002.safetensors"), "");
}

TEST(PathSafety, DemoPlansOfEveryArchitectureWriteBasenamesOnly) {
    TempDir t;
    for (auto arch : {sf::model::DemoArch::Llama, sf::model::DemoArch::Qwen2, sf::model::DemoArch::Mixtral,
                      sf::model::DemoArch::Gemma, sf::model::DemoArch::Gemma3, sf::model::DemoArch::Phi3}) {
        const fs::path demo = t.path / std::string(sf::model::to_string(arch));
        sf::model::write_demo(demo, small_demo(arch));
        expect_safe_plan(options(demo, t.path / "out", "safetensors,gguf:f32,gguf:q8_0,gguf:q4_k_m"),
                         std::string(sf::model::to_string(arch)));
    }
}

TEST(PathSafety, NameOptionCannotEscapeOut) {
    TempDir t;
    sf::model::write_demo(t.path / "demo", small_demo(sf::model::DemoArch::Llama));
    for (const std::string& name : std::vector<std::string>{"../escape", "../../escape", "/tmp/sf_abs_escape", "sub/dir", "..", ".",
                                   "a\\..\\b", std::string("nul\0x", 5), "ok-name"}) {
        auto o = options(t.path / "demo", t.path / "out", "gguf:q8_0");
        o.name = name;
        expect_safe_plan(o, "--name '" + name + "'");
    }
}

TEST(PathSafety, BaseDirectorySpellingsGiveANonEmptyStem) {
    TempDir t;
    sf::model::write_demo(t.path / "demo", small_demo(sf::model::DemoArch::Llama));
    for (const std::string base : {"base", "base/", "base/.", "./base/", "base/../base"}) {
        auto o = options(t.path / "demo", t.path / "out", "gguf:q8_0");
        o.base = t.path / "demo" / base;
        expect_safe_plan(o, "--base '" + o.base.string() + "'");
    }
}

TEST(PathSafety, IndexWeightMapCannotPointOutsideTheModel) {
    TempDir t;
    sf::model::write_demo(t.path / "demo", small_demo(sf::model::DemoArch::Llama));
    const fs::path base = t.path / "demo" / "base";
    // A copy of a real shard outside the model directory: a weight_map naming it must be refused, not read.
    fs::copy_file(base / "model-00001-of-00002.safetensors", t.path / "outside.safetensors");
    std::ifstream in(base / "model.safetensors.index.json");
    const std::string index((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const std::string& bad : std::vector<std::string>{"../outside.safetensors", (t.path / "outside.safetensors").string(),
                                  "..\\outside.safetensors", "sub/../../outside.safetensors"}) {
        std::string j = index;
        for (std::size_t pos; (pos = j.find("\"model-00001-of-00002.safetensors\"")) != std::string::npos;)
            j.replace(pos, 34, nlohmann::json(bad).dump());
        std::ofstream(base / "model.safetensors.index.json", std::ios::trunc) << j;
        auto o = options(t.path / "demo", t.path / "out", "safetensors");
        try {
            (void)sf::plan::make_plan(o);
            ADD_FAILURE() << "weight_map file '" << bad << "' was accepted";
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << bad << ": " << e.what();
        }
    }
    std::ofstream(base / "model.safetensors.index.json", std::ios::trunc) << index;
}

TEST(PathSafety, LoraResaveWritesBasenamesOnly) {
    TempDir t;
    sf::model::write_demo(t.path / "demo", small_demo(sf::model::DemoArch::Llama));
    // Extra files in the adapter dir, including a symlink and a dotfile: names must stay plain basenames.
    std::ofstream(t.path / "demo" / "adapter" / "README.md") << "x";
    fs::create_symlink(t.path / "demo" / "base" / "config.json", t.path / "demo" / "adapter" / "linked.json");
    auto o = options(t.path / "demo", t.path / "out", "safetensors");
    o.save_method = "lora";
    expect_safe_plan(o, "--save-method lora");
}
