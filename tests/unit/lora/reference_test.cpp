// Acceptance test: our resolve() + apply() against the independent numpy reference (tests/reference/merge_ref.py)
// on the seeded fixtures of tests/reference/make_fixtures.py. f32 results must be bit-identical; bf16/f16 results
// (one RNE rounding of the f32 merge) must be identical. Every refusal in errors.json must produce the expected
// error kind with a message naming the file and tensor.
#include <shardforge/lora.hpp>

#include <shardforge/formats.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

namespace sf = shardforge;
namespace fs = std::filesystem;
using sf::lora::AdapterTensor;

namespace {

const char* python = "/usr/bin/python3";

fs::path source_dir() {
    if (const char* s = std::getenv("SHARDFORGE_SOURCE_DIR")) return s;
    return SHARDFORGE_TEST_SOURCE_DIR;
}

int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

struct RawTensor {
    AdapterTensor info;
    std::vector<std::byte> bytes;
};

std::map<std::string, RawTensor> read_all(const fs::path& file) {
    std::map<std::string, RawTensor> out;
    const auto reader = sf::formats::SafetensorsReader::open(file);
    for (const auto& t : reader.header().tensors) {
        RawTensor r{AdapterTensor{t.name, t.dtype, t.shape, t.offset, t.nbytes}, std::vector<std::byte>(t.nbytes)};
        reader.read(t, 0, r.bytes);
        out.emplace(t.name, std::move(r));
    }
    return out;
}

std::vector<float> to_f32(const AdapterTensor& t, const std::byte* p) {
    const std::size_t n = static_cast<std::size_t>(sf::core::numel(t.shape));
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t u32;
        std::uint16_t u16;
        switch (t.dtype) {
            case sf::core::DType::F32: std::memcpy(&u32, p + 4 * i, 4); v[i] = sf::core::bits_f32(u32); break;
            case sf::core::DType::BF16: std::memcpy(&u16, p + 2 * i, 2); v[i] = sf::core::bf16_to_f32(u16); break;
            case sf::core::DType::F16: std::memcpy(&u16, p + 2 * i, 2); v[i] = sf::core::f16_to_f32(u16); break;
            default: ADD_FAILURE() << "unexpected dtype in " << t.key; return v;
        }
    }
    return v;
}

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

class LoraReference : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (run(std::string(python) + " -c 'import numpy'") != 0) {
            skip_ = "numpy for /usr/bin/python3 is missing (apt install python3-numpy)";
            return;
        }
        dir_ = fs::temp_directory_path() / sf::core::cat("sf_lora_ref_", ::getpid());
        fs::remove_all(dir_);
        const fs::path script = source_dir() / "tests/reference/make_fixtures.py";
        ASSERT_EQ(run(sf::core::cat(python, " ", q(script), " ", q(dir_))), 0) << "make_fixtures.py failed";
    }
    static void TearDownTestSuite() {
        if (!dir_.empty() && !std::getenv("SF_KEEP_FIXTURES")) fs::remove_all(dir_);
    }
    void SetUp() override {
        // numpy is installed by jobs/install-deps.sh: without it the reference comparison fails, never skips.
        if (!skip_.empty()) GTEST_FAIL() << skip_;
    }
    static std::vector<sf::lora::Adapter> open_adapters(const nlohmann::json& c) {
        std::vector<sf::lora::Adapter> out;
        for (const auto& a : c["adapters"]) out.push_back(sf::lora::open_adapter(dir_ / a[0].get<std::string>(), a[1].get<double>()));
        return out;
    }
    static inline fs::path dir_;
    static inline std::string skip_;
};

// Our merge of one case: out_name -> f32 values, for every tensor of the output (unchanged ones from the base).
struct Merged {
    std::map<std::string, std::vector<float>> tensors;
    sf::lora::Resolution res;
};

Merged merge_case(const fs::path& base_dir, const std::vector<sf::lora::Adapter>& adapters) {
    const auto base = read_all(base_dir / "model.safetensors");
    std::vector<sf::lora::BaseTensor> bt;
    for (const auto& [name, t] : base) bt.push_back({name, t.info.shape});
    Merged m;
    m.res = sf::lora::resolve(adapters, bt, read_json(base_dir / "config.json"));
    for (const auto& [name, t] : base) m.tensors[name] = to_f32(t.info, t.bytes.data());
    std::vector<std::map<std::string, RawTensor>> files;
    for (const auto& a : adapters) files.push_back(read_all(a.file));
    const sf::lora::LoadF32 load = [&](const sf::lora::TensorRef& r) {
        const RawTensor& t = files.at(r.adapter).at(r.key);
        return to_f32(t.info, t.bytes.data());
    };
    // Round trip through the plan's JSON first: exec sees only what the plan serialised.
    for (const auto& t0 : m.res.targets) {
        const sf::lora::MergeTarget t = sf::lora::merge_target_from_json(nlohmann::json::parse(sf::lora::to_json(t0).dump()));
        const auto& src = base.at(t.base_name);
        std::vector<float> w = to_f32(src.info, src.bytes.data());
        sf::lora::apply(t, w, src.info.shape, load);
        m.tensors[t.out_name] = std::move(w);
    }
    return m;
}

// One fixture case, all three output dtypes. A void helper so that an ASSERT ends this case only.
void check_case(const fs::path& dir, const nlohmann::json& c) {
    {
        const std::string name = c["name"];
        SCOPED_TRACE("case " + name);
        std::string args;
        for (const auto& a : c["adapters"])
            args += sf::core::cat(" --adapter ", q(dir / a[0].get<std::string>()), ":", a[1].get<double>());
        std::vector<sf::lora::Adapter> adapters;
        for (const auto& a : c["adapters"])
            adapters.push_back(sf::lora::open_adapter(dir / a[0].get<std::string>(), a[1].get<double>()));
        const Merged ours = merge_case(dir / c["base"].get<std::string>(), adapters);
        EXPECT_EQ(ours.res.untie_embeddings, c["untie"].get<bool>());
        for (const char* dt : {"f32", "bf16", "f16"}) {
            const fs::path exp = dir / name / sf::core::cat("expected_", dt, ".safetensors");
            const fs::path meta = dir / name / "meta.json";
            ASSERT_EQ(run(sf::core::cat(python, " ", q(source_dir() / "tests/reference/merge_ref.py"), " --base ",
                                        q(dir / c["base"].get<std::string>()), args, " --dtype ", dt, " --out ",
                                        q(exp), " --meta ", q(meta))),
                      0)
                << "merge_ref.py failed";
            EXPECT_EQ(read_json(meta)["untie"].get<bool>(), c["untie"].get<bool>()) << "reference disagrees with fixture";
            const auto expected = read_all(exp);
            EXPECT_EQ(expected.size(), ours.tensors.size());
            std::size_t n_changed = 0;
            for (const auto& [tname, et] : expected) {
                SCOPED_TRACE(sf::core::cat(dt, " tensor ", tname));
                auto it = ours.tensors.find(tname);
                ASSERT_NE(it, ours.tensors.end()) << "we do not produce this tensor";
                const std::vector<float>& v = it->second;
                ASSERT_EQ(static_cast<std::int64_t>(v.size()), sf::core::numel(et.info.shape));
                std::size_t n_diff = 0, first = 0;
                for (std::size_t i = 0; i < v.size(); ++i) {
                    bool same;
                    if (et.info.dtype == sf::core::DType::F32) {
                        std::uint32_t e;
                        std::memcpy(&e, et.bytes.data() + 4 * i, 4);
                        same = sf::core::f32_bits(v[i]) == e;
                    } else {
                        std::uint16_t e;
                        std::memcpy(&e, et.bytes.data() + 2 * i, 2);
                        same = (et.info.dtype == sf::core::DType::BF16 ? sf::core::f32_to_bf16(v[i])
                                                                       : sf::core::f32_to_f16(v[i])) == e;
                    }
                    if (!same && n_diff++ == 0) first = i;
                }
                EXPECT_EQ(n_diff, 0u) << n_diff << " of " << v.size() << " elements differ, first at " << first
                                      << " (ours " << v[first] << ", expected "
                                      << to_f32(et.info, et.bytes.data())[first] << ")";
            }
            for (const auto& t : ours.res.targets) n_changed += t.terms.empty() ? 0 : 1;
            EXPECT_GT(n_changed, 0u);
            const auto meta_json = read_json(meta);  // a range-for over read_json(meta)["changed"] would dangle
            EXPECT_GE(meta_json["changed"].size(), 1u);
            for (const auto& ch : meta_json["changed"]) {
                bool found = false;
                for (const auto& t : ours.res.targets) found |= t.out_name == ch.get<std::string>();
                EXPECT_TRUE(found) << "reference changed " << ch << " but we have no merge target for it";
            }
        }
    }
}

}  // namespace

TEST_F(LoraReference, MergesMatchNumpyBitForBit) {
    const auto cases = read_json(dir_ / "cases.json");
    ASSERT_GE(cases.size(), 10u);
    for (const auto& c : cases) check_case(dir_, c);
}

TEST_F(LoraReference, RefusalsNameFileAndTensor) {
    const auto errors = read_json(dir_ / "errors.json");
    ASSERT_GE(errors.size(), 15u);
    for (const auto& e : errors) {
        SCOPED_TRACE("error case " + e["name"].get<std::string>());
        try {
            const auto adapters = open_adapters(e);
            (void)merge_case(dir_ / e["base"].get<std::string>(), adapters);
            ADD_FAILURE() << "accepted";
        } catch (const sf::core::Error& err) {
            const std::string want = e["kind"] == "BadInput" ? "bad input" : "unsupported";
            EXPECT_EQ(sf::core::to_string(err.kind()), want) << err.what();
            for (const auto& s : e["contains"])
                EXPECT_NE(std::string(err.what()).find(s.get<std::string>()), std::string::npos)
                    << "message lacks '" << s.get<std::string>() << "': " << err.what();
            EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos) << "one line";
        }
    }
}
