// ggml's own GGUF reader as the oracle: libggml-base.so (shipped by node-llama-cpp in tests/conformance) is
// dlopen'ed; every file we write must load there with the same keys, types, offsets and sizes, and the bad-input
// corpus must be rejected there as well (where ggml checks the property at all).
#include <gtest/gtest.h>
#include <shardforge/formats.hpp>

#include "gguf_test_corpus.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <span>

namespace sf = shardforge;
using sf::formats::GgufKV;
using sf::formats::GgufReader;
using sf::formats::GgufTensorDecl;
using sf::formats::GgufValue;
using sf::formats::GgufValueType;
using sf::quant::GgmlType;

namespace {

// gguf.h (ABI of the shipped library): params passed by value; enums are ints.
struct gguf_init_params {
    bool no_alloc;
    void** ctx;
};

struct Ggml {
    void* lib = nullptr;
    void* (*init_from_file)(const char*, gguf_init_params) = nullptr;
    void (*free_ctx)(void*) = nullptr;
    std::uint32_t (*get_version)(const void*) = nullptr;
    std::size_t (*get_alignment)(const void*) = nullptr;
    std::size_t (*get_data_offset)(const void*) = nullptr;
    std::int64_t (*get_n_kv)(const void*) = nullptr;
    const char* (*get_key)(const void*, std::int64_t) = nullptr;
    int (*get_kv_type)(const void*, std::int64_t) = nullptr;
    int (*get_arr_type)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_arr_n)(const void*, std::int64_t) = nullptr;
    const char* (*get_arr_str)(const void*, std::int64_t, std::size_t) = nullptr;
    const void* (*get_arr_data)(const void*, std::int64_t) = nullptr;
    const void* (*get_val_data)(const void*, std::int64_t) = nullptr;
    const char* (*get_val_str)(const void*, std::int64_t) = nullptr;
    std::int64_t (*find_key)(const void*, const char*) = nullptr;
    std::int64_t (*get_n_tensors)(const void*) = nullptr;
    const char* (*get_tensor_name)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_tensor_offset)(const void*, std::int64_t) = nullptr;
    int (*get_tensor_type)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_tensor_size)(const void*, std::int64_t) = nullptr;
    void (*log_set)(void (*)(int, const char*, void*), void*) = nullptr;

    static std::filesystem::path lib_path() {
#ifdef SF_GGML_BASE_SO
        return SF_GGML_BASE_SO;
#else
        return std::filesystem::path(SHARDFORGE_TEST_SOURCE_DIR) / "tests/conformance/node_modules/@node-llama-cpp/linux-x64/"
                                                               "bins/linux-x64/libggml-base.so";
#endif
    }

    template <class F>
    void sym(F& f, const char* name) {
        f = reinterpret_cast<F>(dlsym(lib, name));
        if (!f) error = std::string("missing symbol ") + name;
    }

    std::string error;
    Ggml() {
        const auto p = lib_path();
        if (!std::filesystem::exists(p)) {
            error = "libggml-base.so not found at " + p.string() + " (run npm ci in tests/conformance)";
            return;
        }
        lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            error = dlerror();
            return;
        }
        sym(init_from_file, "gguf_init_from_file");
        sym(free_ctx, "gguf_free");
        sym(get_version, "gguf_get_version");
        sym(get_alignment, "gguf_get_alignment");
        sym(get_data_offset, "gguf_get_data_offset");
        sym(get_n_kv, "gguf_get_n_kv");
        sym(get_key, "gguf_get_key");
        sym(get_kv_type, "gguf_get_kv_type");
        sym(get_arr_type, "gguf_get_arr_type");
        sym(get_arr_n, "gguf_get_arr_n");
        sym(get_arr_str, "gguf_get_arr_str");
        sym(get_arr_data, "gguf_get_arr_data");
        sym(get_val_data, "gguf_get_val_data");
        sym(get_val_str, "gguf_get_val_str");
        sym(find_key, "gguf_find_key");
        sym(get_n_tensors, "gguf_get_n_tensors");
        sym(get_tensor_name, "gguf_get_tensor_name");
        sym(get_tensor_offset, "gguf_get_tensor_offset");
        sym(get_tensor_type, "gguf_get_tensor_type");
        sym(get_tensor_size, "gguf_get_tensor_size");
        sym(log_set, "ggml_log_set");
        if (log_set) log_set([](int, const char*, void*) {}, nullptr);  // rejected corpus files are expected
    }
    void* load(const std::filesystem::path& p) const { return init_from_file(p.c_str(), {true, nullptr}); }
};

const Ggml& ggml() {
    static const Ggml g;
    return g;
}

#define REQUIRE_GGML()                                                   \
    do {                                                                 \
        if (!ggml().error.empty()) GTEST_FAIL() << ggml().error;         \
    } while (0)

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() /
               (std::string("sf_gguf_oracle_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

// Compares everything ggml reports about a file with what our reader reports.
void expect_same_as_ggml(const std::filesystem::path& p) {
    SCOPED_TRACE(p.string());
    const auto& g = ggml();
    const GgufReader r = GgufReader::open(p);
    void* ctx = g.load(p);
    ASSERT_NE(ctx, nullptr) << "ggml rejected a file we wrote";
    EXPECT_EQ(g.get_version(ctx), 3u);
    EXPECT_EQ(g.get_alignment(ctx), 32u);
    EXPECT_EQ(g.get_data_offset(ctx), r.data_start());
    ASSERT_EQ(g.get_n_kv(ctx), static_cast<std::int64_t>(r.kvs().size()));
    for (std::int64_t i = 0; i < g.get_n_kv(ctx); ++i) {
        const auto& kv = r.kvs()[static_cast<std::size_t>(i)];
        SCOPED_TRACE(kv.key);
        EXPECT_EQ(g.get_key(ctx, i), kv.key);
        EXPECT_EQ(g.find_key(ctx, kv.key.c_str()), i);
        ASSERT_EQ(g.get_kv_type(ctx, i), static_cast<int>(kv.value.type));
        if (kv.value.type == GgufValueType::STRING) {
            EXPECT_EQ(g.get_val_str(ctx, i), kv.value.str);
        } else if (kv.value.is_array()) {
            ASSERT_EQ(g.get_arr_type(ctx, i), static_cast<int>(kv.value.elem_type));
            ASSERT_EQ(g.get_arr_n(ctx, i), kv.value.count());
            if (kv.value.elem_type == GgufValueType::STRING) {
                for (std::size_t j = 0; j < kv.value.count(); ++j) EXPECT_EQ(g.get_arr_str(ctx, i, j), kv.value.strs[j]);
            } else if (!kv.value.raw.empty()) {
                EXPECT_EQ(std::memcmp(g.get_arr_data(ctx, i), kv.value.raw.data(), kv.value.raw.size()), 0);
            }
        } else {
            EXPECT_EQ(std::memcmp(g.get_val_data(ctx, i), kv.value.raw.data(), kv.value.raw.size()), 0);
        }
    }
    ASSERT_EQ(g.get_n_tensors(ctx), static_cast<std::int64_t>(r.tensors().size()));
    for (std::int64_t i = 0; i < g.get_n_tensors(ctx); ++i) {
        const auto& t = r.tensors()[static_cast<std::size_t>(i)];
        SCOPED_TRACE(t.name);
        EXPECT_EQ(g.get_tensor_name(ctx, i), t.name);
        EXPECT_EQ(g.get_tensor_type(ctx, i), static_cast<int>(t.type));
        EXPECT_EQ(g.get_data_offset(ctx) + g.get_tensor_offset(ctx, i), t.offset);
        EXPECT_EQ(g.get_tensor_size(ctx, i), t.nbytes);
    }
    g.free_ctx(ctx);
}

void write(const std::filesystem::path& p, const std::vector<GgufKV>& kvs, const std::vector<GgufTensorDecl>& ts) {
    std::vector<std::vector<std::byte>> data;
    std::vector<std::span<const std::byte>> spans;
    for (const auto& t : ts) data.emplace_back(sf::formats::gguf_tensor_nbytes(t.ne, t.type), std::byte{0x11});
    for (const auto& d : data) spans.emplace_back(d);
    sf::formats::write_gguf(p, kvs, ts, spans);
}

}  // namespace

TEST(GgufGgmlOracle, AcceptsSpecExampleWeWrite) {
    REQUIRE_GGML();
    TempDir dir;
    write(dir.path / "ex.gguf",
          {{"general.architecture", GgufValue::string("llama")},
           {"llama.block_count", GgufValue::u32(2)},
           {"tokenizer.ggml.tokens", GgufValue::arr_str({"a", "bc"})}},
          {{"w", {3, 2}, GgmlType::F32}, {"b", {1}, GgmlType::F32}});
    expect_same_as_ggml(dir.path / "ex.gguf");
}

TEST(GgufGgmlOracle, AcceptsEveryValueTypeAndQuantizedTensors) {
    REQUIRE_GGML();
    TempDir dir;
    const std::vector<GgufKV> kvs = {
        {"general.architecture", GgufValue::string("llama")},
        {"general.type", GgufValue::string("model")},
        {"general.file_type", GgufValue::u32(7)},
        {"general.quantization_version", GgufValue::u32(2)},
        {"llama.context_length", GgufValue::u32(4096)},
        {"llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f)},
        {"llama.feed_forward_length", GgufValue::arr_i32({64, 128})},
        {"tokenizer.ggml.add_bos_token", GgufValue::boolean(true)},
        {"tokenizer.ggml.scores", GgufValue::arr_f32({0.0f, -1.0f})},
        {"tokenizer.ggml.token_type", GgufValue::arr_i32({1, 3})},
        {"k.u8", GgufValue::u8(1)},   {"k.i8", GgufValue::i8(-1)},     {"k.u16", GgufValue::u16(2)},
        {"k.i16", GgufValue::i16(-2)}, {"k.u64", GgufValue::u64(1ull << 40)}, {"k.i64", GgufValue::i64(-3)},
        {"k.f64", GgufValue::f64(0.125)}, {"k.arr_u64", GgufValue::arr_u64({5, 6})},
        {"k.arr_bool", GgufValue::arr_bool({true, false})}, {"k.arr_u8", GgufValue::arr_u8({9})},
    };
    const std::vector<GgufTensorDecl> ts = {
        {"token_embd.weight", {64, 5}, GgmlType::Q8_0},   {"blk.0.attn_norm.weight", {64}, GgmlType::F32},
        {"blk.0.attn_q.weight", {256, 3}, GgmlType::Q4_K}, {"blk.0.attn_k.weight", {256, 2}, GgmlType::Q6_K},
        {"blk.0.attn_v.weight", {32, 7}, GgmlType::Q4_0},  {"blk.0.ffn_up.weight", {10, 3, 1}, GgmlType::BF16},
        {"blk.0.ffn_gate_exps.weight", {32, 4, 2}, GgmlType::F16}, {"x4d", {2, 3, 4, 5}, GgmlType::F32},
        {"q5k", {256, 1}, GgmlType::Q5_K}, {"q2k", {256}, GgmlType::Q2_K}, {"q3k", {512}, GgmlType::Q3_K},
    };
    write(dir.path / "all.gguf", kvs, ts);
    expect_same_as_ggml(dir.path / "all.gguf");
}

TEST(GgufGgmlOracle, AcceptsSplitShards) {
    REQUIRE_GGML();
    TempDir dir;
    std::vector<GgufTensorDecl> ts;
    for (int i = 0; i < 7; ++i) ts.push_back({"blk." + std::to_string(i) + ".w", {64, 2 + i}, GgmlType::Q8_0});
    std::vector<std::uint64_t> sizes;
    for (const auto& t : ts) sizes.push_back(sf::formats::gguf_tensor_nbytes(t.ne, t.type));
    const auto shard = sf::formats::plan_gguf_split(sizes, 1000, 0);
    const std::uint32_t n = shard.back() + 1;
    ASSERT_GE(n, 2u);
    for (std::uint32_t s = 0; s < n; ++s) {
        std::vector<GgufKV> kvs;
        if (s == 0) kvs.push_back({"general.architecture", GgufValue::string("llama")});
        for (auto& kv : sf::formats::gguf_split_kvs(s, n, 7)) kvs.push_back(kv);
        std::vector<GgufTensorDecl> mine;
        for (std::size_t i = 0; i < ts.size(); ++i)
            if (shard[i] == s) mine.push_back(ts[i]);
        const auto path = sf::formats::gguf_split_name((dir.path / "m").string(), s, n);
        write(path, kvs, mine);
        expect_same_as_ggml(path);
        void* ctx = ggml().load(path);
        ASSERT_NE(ctx, nullptr);
        EXPECT_EQ(ggml().get_kv_type(ctx, ggml().find_key(ctx, "split.no")), 2);              // UINT16
        EXPECT_EQ(ggml().get_kv_type(ctx, ggml().find_key(ctx, "split.count")), 2);           // UINT16
        EXPECT_EQ(ggml().get_kv_type(ctx, ggml().find_key(ctx, "split.tensors.count")), 5);   // INT32
        ggml().free_ctx(ctx);
    }
}

TEST(GgufGgmlOracle, RejectsOurBadInputCorpus) {
    REQUIRE_GGML();
    TempDir dir;
    int i = 0;
    for (const auto& c : gguf_test::bad_corpus()) {
        SCOPED_TRACE(c.name);
        const auto p = dir.path / ("bad" + std::to_string(i++) + ".gguf");
        {
            std::ofstream f(p, std::ios::binary);
            f.write(c.file.b.data(), static_cast<std::streamsize>(c.file.b.size()));
        }
        EXPECT_THROW((void)GgufReader::open(p), sf::core::Error);
        void* ctx = ggml().load(p);
        if (c.ggml_rejects) {
            EXPECT_EQ(ctx, nullptr) << "ggml accepted it";
        }
        if (ctx) ggml().free_ctx(ctx);
    }
}

TEST(GgufGgmlOracle, AgreesOnEveryTruncation) {
    REQUIRE_GGML();
    TempDir dir;
    const auto full = gguf_test::spec_example_file();
    // Up to the end of the header (0x100) both readers must reject every cut; ggml (no_alloc) never reads data.
    for (std::size_t len = 0; len < 0x100; ++len) {
        const auto p = dir.path / "cut.gguf";
        {
            std::ofstream f(p, std::ios::binary | std::ios::trunc);
            f.write(full.b.data(), static_cast<std::streamsize>(len));
        }
        void* ctx = ggml().load(p);
        EXPECT_EQ(ctx, nullptr) << "ggml accepted a cut at " << len;
        if (ctx) ggml().free_ctx(ctx);
        EXPECT_THROW((void)GgufReader::open(p), sf::core::Error) << len;
    }
}
