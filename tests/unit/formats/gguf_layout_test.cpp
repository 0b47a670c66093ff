// GGUF writer side: the exact layout against a hand-derived hex file (gguf_test_corpus.hpp, format of llama.cpp's
// ggml/src/gguf.cpp), layout rules, strict key typing (src/llama-model-loader.cpp) and split planning (gguf-split).
#include <gtest/gtest.h>
#include <shardforge/formats.hpp>

#include "gguf_test_corpus.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>

namespace sf = shardforge;
using sf::formats::GgufKV;
using sf::formats::GgufTensorDecl;
using sf::formats::GgufValue;
using sf::formats::GgufValueType;
using sf::quant::GgmlType;

namespace {

std::vector<GgufKV> example_kvs() {
    return {{"general.architecture", GgufValue::string("llama")},
            {"llama.block_count", GgufValue::u32(2)},
            {"tokenizer.ggml.tokens", GgufValue::arr_str({"a", "bc"})}};
}
std::vector<GgufTensorDecl> example_tensors() { return {{"w", {3, 2}, GgmlType::F32}, {"b", {1}, GgmlType::F32}}; }

template <class F>
std::string bad_input_why(F&& f) {
    try {
        f();
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no error thrown";
    return {};
}

}  // namespace

TEST(GgufLayout, MatchesSpecWorkedExampleByteForByte) {
    const auto lay = sf::formats::layout_gguf(example_kvs(), example_tensors());
    std::string want = gguf_test::spec_example_header_unpadded();
    ASSERT_EQ(want.size(), 0xf0u);  // the hand-derived transcription itself: 240 bytes before padding
    want.resize(0x100, '\0');
    EXPECT_EQ(lay.header, want);
    EXPECT_EQ(lay.data_start, 0x100u);
    EXPECT_EQ(lay.offsets, (std::vector<std::uint64_t>{0x100, 0x120}));
    EXPECT_EQ(lay.nbytes, (std::vector<std::uint64_t>{24, 4}));
    EXPECT_EQ(lay.file_size, 0x140u);
}

TEST(GgufLayout, WrittenFileEqualsSpecFile) {
    const auto dir = std::filesystem::temp_directory_path() / "sf_gguf_layout_test";
    std::filesystem::create_directories(dir);
    const float w[6] = {1, 2, 3, 4, 5, 6}, b[1] = {7};
    sf::formats::write_gguf(dir / "ex.gguf", example_kvs(), example_tensors(),
                            {std::as_bytes(std::span(w)), std::as_bytes(std::span(b))});
    std::ifstream f(dir / "ex.gguf", std::ios::binary);
    const std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got, gguf_test::spec_example_file().b);
    std::filesystem::remove_all(dir);
}

TEST(GgufLayout, DropsTrailingOnesFromNDimsLikeGgmlNDims) {
    // ne [64, 1, 1] -> n_dims 1; [1] -> 1; [] -> 1 with ne0 = 1; [4, 1, 2] keeps the inner 1.
    const auto lay = sf::formats::layout_gguf({}, {{"a", {64, 1, 1}, GgmlType::F16},
                                                   {"b", {}, GgmlType::F32},
                                                   {"c", {4, 1, 2}, GgmlType::F32}});
    gguf_test::Bytes want;
    want.raw("GGUF").u32(3).i64(3).i64(0);
    want.str("a").u32(1).i64(64).i32(1).u64(0);
    want.str("b").u32(1).i64(1).i32(0).u64(128);
    want.str("c").u32(3).i64(4).i64(1).i64(2).i32(0).u64(160);
    want.pad(32);
    EXPECT_EQ(lay.header, want.b);
    EXPECT_EQ(lay.nbytes, (std::vector<std::uint64_t>{128, 4, 32}));
    EXPECT_EQ(lay.file_size, want.b.size() + 128 + 32 + 32);
}

TEST(GgufLayout, KeepDimsWritesEveryDimensionLikeGgufPy) {
    // gguf-py's GGUFWriter writes len(shape) dims: Qwen2-MoE's shared_expert_gate [1, 64] is ne [64, 1], n_dims 2.
    const auto lay = sf::formats::layout_gguf({}, {{"a", {64, 1}, GgmlType::F32, true},
                                                   {"b", {64, 1}, GgmlType::F32, false}});
    gguf_test::Bytes want;
    want.raw("GGUF").u32(3).i64(2).i64(0);
    want.str("a").u32(2).i64(64).i64(1).i32(0).u64(0);
    want.str("b").u32(1).i64(64).i32(0).u64(256);
    want.pad(32);
    EXPECT_EQ(lay.header, want.b);
}

TEST(GgufLayout, SizesQuantizedTensorsByBlocks) {
    // Q8_0: 34 bytes per 32 elements; Q4_K: 144 per 256; 4-D F16.
    const auto lay = sf::formats::layout_gguf({}, {{"q8", {64, 3}, GgmlType::Q8_0},
                                                   {"q4k", {512, 2}, GgmlType::Q4_K},
                                                   {"f16", {2, 3, 4, 5}, GgmlType::F16}});
    EXPECT_EQ(lay.nbytes, (std::vector<std::uint64_t>{2 * 34 * 3, 2 * 144 * 2, 2 * 3 * 4 * 5 * 2}));
    const std::uint64_t d = lay.data_start;
    EXPECT_EQ(lay.offsets, (std::vector<std::uint64_t>{d, d + 224, d + 224 + 576}));
    EXPECT_EQ(lay.file_size, d + 224 + 576 + 256);
}

TEST(GgufLayout, NoTensorsStillPadsHeader) {
    const auto lay = sf::formats::layout_gguf({{"general.architecture", GgufValue::string("llama")}}, {});
    EXPECT_EQ(lay.header.size(), 96u);  // 24 + (8 + 20) + 4 + (8 + 5) = 69, padded to 96
    EXPECT_EQ(lay.file_size, 96u);
}

TEST(GgufLayout, RejectsBadTensorDecls) {
    using sf::formats::layout_gguf;
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({}, {{std::string(64, 'x'), {4}, GgmlType::F32}}); })
                  .find("at most 63"), std::string::npos);
    (void)layout_gguf({}, {{std::string(63, 'x'), {4}, GgmlType::F32}});  // 63 is fine
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({}, {{"a", {4}, GgmlType::F32}, {"a", {4}, GgmlType::F32}}); })
                  .find("duplicate tensor name"), std::string::npos);
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({}, {{"a", {33, 2}, GgmlType::Q8_0}}); }).find("block size 32"),
              std::string::npos);
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({}, {{"a", {2, 2, 2, 2, 2}, GgmlType::F32}}); }).find("at most 4"),
              std::string::npos);
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({}, {{"a", {4, -1}, GgmlType::F32}}); }).find("negative"),
              std::string::npos);
    const auto big = std::int64_t{1} << 40;
    EXPECT_NE(bad_input_why([&] { (void)layout_gguf({}, {{"a", {big, big}, GgmlType::F32}}); }).find("overflow"),
              std::string::npos);
    // The error names the tensor.
    try {
        (void)layout_gguf({}, {{"blk.0.attn_q.weight", {33}, GgmlType::Q4_0}});
        FAIL();
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.tensor(), "blk.0.attn_q.weight");
    }
}

TEST(GgufLayout, RejectsBadKeys) {
    using sf::formats::layout_gguf;
    EXPECT_NE(bad_input_why([] {
                  (void)layout_gguf({{"k", GgufValue::u32(1)}, {"k", GgufValue::u32(2)}}, {});
              }).find("duplicate GGUF key 'k'"), std::string::npos);
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({{"", GgufValue::u32(1)}}, {}); }).find("empty"),
              std::string::npos);
    EXPECT_NE(bad_input_why([] { (void)layout_gguf({{"general.alignment", GgufValue::u32(64)}}, {}); })
                  .find("must be 32"), std::string::npos);
    GgufValue broken = GgufValue::u32(1);
    broken.raw.pop_back();
    EXPECT_NE(bad_input_why([&] { (void)layout_gguf({{"x", broken}}, {}); }).find("inconsistent"), std::string::npos);
}

TEST(GgufLayout, EnforcesLlamaCppKeyTypes) {
    using sf::formats::layout_gguf;
    struct Case { const char* key; GgufValue bad; GgufValue good; };
    const Case cases[] = {
        {"llama.block_count", GgufValue::i32(2), GgufValue::u32(2)},
        {"qwen2.context_length", GgufValue::u64(4096), GgufValue::u32(4096)},
        {"llama.attention.layer_norm_rms_epsilon", GgufValue::f64(1e-5), GgufValue::f32(1e-5f)},
        {"gemma2.attn_logit_softcapping", GgufValue::f64(50), GgufValue::f32(50)},
        {"llama.rope.freq_base", GgufValue::u32(10000), GgufValue::f32(10000)},
        {"general.file_type", GgufValue::i32(7), GgufValue::u32(7)},
        {"general.quantization_version", GgufValue::u64(2), GgufValue::u32(2)},
        {"general.architecture", GgufValue::arr_str({"llama"}), GgufValue::string("llama")},
        {"tokenizer.ggml.bos_token_id", GgufValue::i32(1), GgufValue::u32(1)},
        {"tokenizer.ggml.add_bos_token", GgufValue::u8(1), GgufValue::boolean(true)},
        {"tokenizer.ggml.tokens", GgufValue::string("a"), GgufValue::arr_str({"a"})},
        {"tokenizer.ggml.token_type", GgufValue::arr_u32({1}), GgufValue::arr_i32({1})},
        {"tokenizer.ggml.scores", GgufValue::arr_f64({0}), GgufValue::arr_f32({0})},
        {"split.no", GgufValue::u32(0), GgufValue::u16(0)},
        {"split.count", GgufValue::i32(2), GgufValue::u16(2)},
        {"split.tensors.count", GgufValue::u32(9), GgufValue::i32(9)},
        {"adapter.lora.alpha", GgufValue::f64(16), GgufValue::f32(16)},
        {"phi3.attention.causal", GgufValue::u8(0), GgufValue::boolean(false)},
        {"llama.rope.scaling.type", GgufValue::u32(1), GgufValue::string("linear")},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.key);
        EXPECT_NE(bad_input_why([&] { (void)layout_gguf({{c.key, c.bad}}, {}); }).find(c.key), std::string::npos);
        EXPECT_NO_THROW((void)layout_gguf({{c.key, c.good}}, {}));
    }
    // Per-layer arrays (llama-model-loader get_key_or_arr): i32 or u32 arrays accepted, f32 arrays not.
    EXPECT_NO_THROW((void)layout_gguf({{"llama.feed_forward_length", GgufValue::arr_i32({64, 128})}}, {}));
    EXPECT_NO_THROW((void)layout_gguf({{"llama.attention.head_count_kv", GgufValue::arr_u32({2, 4})}}, {}));
    EXPECT_ANY_THROW((void)layout_gguf({{"llama.feed_forward_length", GgufValue::arr_f32({64})}}, {}));
    EXPECT_ANY_THROW((void)layout_gguf({{"llama.block_count", GgufValue::arr_u32({2})}}, {}));
    // Unknown keys are free.
    EXPECT_NO_THROW((void)layout_gguf({{"general.tags", GgufValue::arr_str({"x"})},
                                       {"llama.my_thing", GgufValue::i64(-1)}}, {}));
}

TEST(GgufSplit, NamesShardsFromOne) {
    EXPECT_EQ(sf::formats::gguf_split_name("out/model", 0, 3), "out/model-00001-of-00003.gguf");
    EXPECT_EQ(sf::formats::gguf_split_name("m", 2, 3), "m-00003-of-00003.gguf");
    EXPECT_EQ(sf::formats::gguf_split_name("m", 11, 120), "m-00012-of-00120.gguf");
}

TEST(GgufSplit, KeysHaveSpecTypes) {
    const auto kvs = sf::formats::gguf_split_kvs(1, 3, 147);
    ASSERT_EQ(kvs.size(), 3u);
    EXPECT_EQ(kvs[0].key, "split.no");
    EXPECT_EQ(kvs[0].value, GgufValue::u16(1));
    EXPECT_EQ(kvs[1].key, "split.count");
    EXPECT_EQ(kvs[1].value, GgufValue::u16(3));
    EXPECT_EQ(kvs[2].key, "split.tensors.count");
    EXPECT_EQ(kvs[2].value, GgufValue::i32(147));
    EXPECT_ANY_THROW((void)sf::formats::gguf_split_kvs(3, 3, 1));
    EXPECT_ANY_THROW((void)sf::formats::gguf_split_kvs(0, 70000, 1));
}

TEST(GgufSplit, ByTensorCountLikeGgufSplit) {
    // gguf-split --split-max-tensors 60 on 147 tensors: 3 shards of 60, 60, 27 (checked against llama-gguf-split).
    const std::vector<std::uint64_t> sizes(147, 100);
    const auto s = sf::formats::plan_gguf_split(sizes, 0, 60);
    ASSERT_EQ(s.size(), 147u);
    for (std::size_t i = 0; i < 147; ++i) EXPECT_EQ(s[i], i / 60) << i;
}

TEST(GgufSplit, BySizeUsesPaddedSizes) {
    // Sizes 20, 20, 20 pad to 32 each; max 64 -> [0, 0, 1]. With raw sizes (60 <= 64) it would be one shard.
    EXPECT_EQ(sf::formats::plan_gguf_split({20, 20, 20}, 64, 0), (std::vector<std::uint32_t>{0, 0, 1}));
    // Exactly at the limit stays; one more byte starts a new shard.
    EXPECT_EQ(sf::formats::plan_gguf_split({32, 32}, 64, 0), (std::vector<std::uint32_t>{0, 0}));
    EXPECT_EQ(sf::formats::plan_gguf_split({32, 33}, 64, 0), (std::vector<std::uint32_t>{0, 1}));
    // An oversized tensor gets its own shard, never an empty one before it.
    EXPECT_EQ(sf::formats::plan_gguf_split({1000, 10, 1000, 10}, 64, 0), (std::vector<std::uint32_t>{0, 1, 2, 3}));
    // Both limits at once; no limits -> one shard.
    EXPECT_EQ(sf::formats::plan_gguf_split({1, 1, 1, 1, 1}, 96, 2), (std::vector<std::uint32_t>{0, 0, 1, 1, 2}));
    EXPECT_EQ(sf::formats::plan_gguf_split({1, 1, 1}, 0, 0), (std::vector<std::uint32_t>{0, 0, 0}));
    EXPECT_TRUE(sf::formats::plan_gguf_split({}, 10, 1).empty());
}

TEST(GgufValue, AccessorsCheckTypes) {
    EXPECT_EQ(GgufValue::u16(7).as_u64(), 7u);
    EXPECT_EQ(GgufValue::i8(-3).as_i64(), -3);
    EXPECT_EQ(GgufValue::f32(0.5f).as_f64(), 0.5);
    EXPECT_EQ(GgufValue::u32(9).as_f64(), 9.0);
    EXPECT_TRUE(GgufValue::boolean(true).as_bool());
    EXPECT_EQ(GgufValue::string("x").as_string(), "x");
    EXPECT_EQ(GgufValue::arr_i32({5, -6}).array_size(), 2u);
    EXPECT_EQ(GgufValue::arr_i32({5, -6}).array_i64(1), -6);
    EXPECT_EQ(GgufValue::arr_f32({1.5f}).array_f64(0), 1.5);
    EXPECT_EQ(GgufValue::arr_str({"p", "q"}).array_strings()[1], "q");
    EXPECT_EQ(GgufValue::arr_bool({true, false, true}).raw.size(), 3u);
    const auto kind = [](auto f) {
        try {
            f();
        } catch (const sf::core::Error& e) {
            return e.kind();
        }
        return sf::core::ErrorKind::Internal;
    };
    EXPECT_EQ(kind([] { (void)GgufValue::i32(-1).as_u64(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::u64(~0ull).as_i64(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::string("1").as_u64(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::f32(1).as_i64(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::u32(1).as_string(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::u32(1).array_size(); }), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(kind([] { (void)GgufValue::arr_u32({1}).as_u64(); }), sf::core::ErrorKind::BadInput);
}
