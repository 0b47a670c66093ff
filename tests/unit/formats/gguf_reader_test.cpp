// Strict GGUF reader: round trips through our writer, the hand-derived example file read back, and the bad-input corpus
// (every case must fail with BadInput naming the file, never crash or allocate from a lying count).
#include <gtest/gtest.h>
#include <shardforge/formats.hpp>

#include "gguf_test_corpus.hpp"

#include <chrono>
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

GgufReader parse(const gguf_test::Bytes& b, const std::string& name = "mem.gguf") {
    const auto v = b.bytes();
    return GgufReader::parse(v, name);
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() /
               ("sf_gguf_reader_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(GgufReader, ReadsSpecWorkedExample) {
    const auto r = parse(gguf_test::spec_example_file());
    EXPECT_EQ(r.version(), 3u);
    ASSERT_EQ(r.kvs().size(), 3u);
    EXPECT_EQ(r.kvs()[0].key, "general.architecture");
    EXPECT_EQ(r.kvs()[0].value.as_string(), "llama");
    EXPECT_EQ(r.find("llama.block_count")->value.type, GgufValueType::UINT32);
    EXPECT_EQ(r.find("llama.block_count")->value.as_u64(), 2u);
    EXPECT_EQ(r.find("tokenizer.ggml.tokens")->value.array_strings(), (std::vector<std::string>{"a", "bc"}));
    EXPECT_EQ(r.find("nope"), nullptr);
    ASSERT_EQ(r.tensors().size(), 2u);
    EXPECT_EQ(r.data_start(), 0x100u);
    EXPECT_EQ(r.tensors()[0].name, "w");
    EXPECT_EQ(r.tensors()[0].ne, (std::vector<std::int64_t>{3, 2}));
    EXPECT_EQ(r.tensors()[0].offset, 0x100u);
    EXPECT_EQ(r.tensors()[0].nbytes, 24u);
    EXPECT_EQ(r.tensors()[1].offset, 0x120u);
    float b = 0;
    r.read(r.tensors()[1], 0, std::as_writable_bytes(std::span(&b, 1)));
    EXPECT_EQ(b, 7.0f);
    float w[2] = {};
    r.read(r.tensors()[0], 8, std::as_writable_bytes(std::span(w)));
    EXPECT_EQ(w[0], 3.0f);
    EXPECT_EQ(w[1], 4.0f);
    EXPECT_ANY_THROW(r.read(r.tensors()[0], 20, std::as_writable_bytes(std::span(w))));  // past the tensor
}

TEST(GgufReader, RoundTripsEveryValueTypeAndTensorType) {
    TempDir dir;
    const std::vector<GgufKV> kvs = {
        {"general.architecture", GgufValue::string("llama")},
        {"general.name", GgufValue::string("tiny \"model\" 'x'\n")},
        {"llama.block_count", GgufValue::u32(2)},
        {"k.u8", GgufValue::u8(200)},   {"k.i8", GgufValue::i8(-100)},   {"k.u16", GgufValue::u16(60000)},
        {"k.i16", GgufValue::i16(-30000)}, {"k.i32", GgufValue::i32(-7)}, {"k.f32", GgufValue::f32(1e-5f)},
        {"k.bool", GgufValue::boolean(true)}, {"k.u64", GgufValue::u64(~0ull)}, {"k.i64", GgufValue::i64(-(1ll << 40))},
        {"k.f64", GgufValue::f64(0.1)},
        {"k.empty_str", GgufValue::string("")},
        {"a.u8", GgufValue::arr_u8({1, 2})}, {"a.i16", GgufValue::arr_i16({-1, 2})},
        {"a.u64", GgufValue::arr_u64({1, 2, 3})}, {"a.f64", GgufValue::arr_f64({0.25})},
        {"a.bool", GgufValue::arr_bool({true, false})}, {"a.i32", GgufValue::arr_i32({})},
        {"tokenizer.ggml.tokens", GgufValue::arr_str({"<s>", "", "\xe2\x96\x81hello"})},
        {"tokenizer.ggml.scores", GgufValue::arr_f32({0.0f, -1.5f, 3.25f})},
    };
    const std::vector<GgufTensorDecl> ts = {
        {"token_embd.weight", {64, 3}, GgmlType::Q8_0},
        {"blk.0.attn_norm.weight", {64}, GgmlType::F32},
        {"blk.0.ffn_down.weight", {256, 2, 1}, GgmlType::Q4_K},
        {"blk.0.attn_q.weight", {8, 4}, GgmlType::BF16},
        {"odd", {5, 3, 2, 7}, GgmlType::F16},
    };
    const auto lay = sf::formats::layout_gguf(kvs, ts);
    std::vector<std::vector<std::byte>> data;
    std::vector<std::span<const std::byte>> spans;
    for (std::size_t i = 0; i < ts.size(); ++i) {
        data.emplace_back(lay.nbytes[i]);
        for (std::size_t j = 0; j < data.back().size(); ++j) data.back()[j] = std::byte(static_cast<unsigned char>(i * 31 + j));
    }
    for (const auto& d : data) spans.emplace_back(d);
    sf::formats::write_gguf(dir.path / "rt.gguf", kvs, ts, spans);
    EXPECT_EQ(std::filesystem::file_size(dir.path / "rt.gguf"), lay.file_size);

    const auto r = GgufReader::open(dir.path / "rt.gguf");
    EXPECT_EQ(r.kvs(), kvs);
    ASSERT_EQ(r.tensors().size(), ts.size());
    EXPECT_EQ(r.data_start(), lay.data_start);
    for (std::size_t i = 0; i < ts.size(); ++i) {
        const auto& t = r.tensors()[i];
        EXPECT_EQ(t.name, ts[i].name);
        EXPECT_EQ(t.type, ts[i].type);
        EXPECT_EQ(t.offset, lay.offsets[i]);
        EXPECT_EQ(t.nbytes, lay.nbytes[i]);
        std::vector<std::byte> back(t.nbytes);
        r.read(t, 0, back);
        EXPECT_EQ(back, data[i]) << t.name;
    }
    EXPECT_EQ(r.tensors()[2].ne, (std::vector<std::int64_t>{256, 2}));  // trailing 1 dropped (ggml_n_dims)
    EXPECT_EQ(r.tensors()[0].nbytes, 2u * 34u * 3u);
    EXPECT_EQ(r.find("k.f32")->value.as_f64(), static_cast<double>(1e-5f));
}

TEST(GgufReader, RoundTripsSplitShards) {
    TempDir dir;
    const std::vector<GgufTensorDecl> ts = {{"a", {32, 2}, GgmlType::Q8_0}, {"b", {32}, GgmlType::F32},
                                            {"c", {16}, GgmlType::F16}, {"d", {64}, GgmlType::F32}};
    std::vector<std::uint64_t> sizes;
    for (const auto& t : ts) sizes.push_back(sf::formats::gguf_tensor_nbytes(t.ne, t.type));
    const auto shard = sf::formats::plan_gguf_split(sizes, 0, 3);
    const std::uint32_t n = shard.back() + 1;
    ASSERT_EQ(n, 2u);
    for (std::uint32_t s = 0; s < n; ++s) {
        std::vector<GgufKV> kvs;
        if (s == 0) kvs.push_back({"general.architecture", GgufValue::string("llama")});
        for (auto& kv : sf::formats::gguf_split_kvs(s, n, static_cast<std::int32_t>(ts.size()))) kvs.push_back(kv);
        std::vector<GgufTensorDecl> mine;
        std::vector<std::vector<std::byte>> data;
        std::vector<std::span<const std::byte>> spans;
        for (std::size_t i = 0; i < ts.size(); ++i)
            if (shard[i] == s) {
                mine.push_back(ts[i]);
                data.emplace_back(sizes[i], std::byte{0x5a});
            }
        for (const auto& d : data) spans.emplace_back(d);
        sf::formats::write_gguf(sf::formats::gguf_split_name((dir.path / "m").string(), s, n), kvs, mine, spans);
    }
    const auto r0 = GgufReader::open(dir.path / "m-00001-of-00002.gguf");
    const auto r1 = GgufReader::open(dir.path / "m-00002-of-00002.gguf");
    EXPECT_EQ(r0.tensors().size(), 3u);
    EXPECT_EQ(r1.tensors().size(), 1u);
    EXPECT_EQ(r0.kvs().size(), 4u);
    EXPECT_EQ(r1.kvs().size(), 3u);
    EXPECT_EQ(r1.find("split.no")->value, GgufValue::u16(1));
    EXPECT_EQ(r1.find("split.count")->value, GgufValue::u16(2));
    EXPECT_EQ(r1.find("split.tensors.count")->value, GgufValue::i32(4));
    EXPECT_EQ(r1.tensors()[0].name, "d");
}

TEST(GgufReader, HonoursGeneralAlignment) {
    gguf_test::Bytes kv;
    kv.str("general.alignment").u32(4).u32(64);
    gguf_test::Bytes f;
    f.raw("GGUF").u32(3).i64(2).i64(1).raw(kv.b);
    f.str("a").u32(1).i64(4).i32(0).u64(0);
    f.str("b").u32(1).i64(4).i32(0).u64(64);
    f.pad(64).zeros(16).pad(64).zeros(16);
    const auto r = parse(f);
    EXPECT_EQ(r.alignment(), 64u);
    EXPECT_EQ(r.data_start() % 64, 0u);
    EXPECT_EQ(r.tensors()[1].offset, r.data_start() + 64);
}

TEST(GgufReader, AcceptsVersion2AndZeroDims) {
    gguf_test::Bytes f;
    f.raw("GGUF").u32(2).i64(1).i64(0).str("s").u32(0).i32(0).u64(0).pad(32).zeros(4).pad(32);
    const auto r = parse(f);
    EXPECT_EQ(r.version(), 2u);
    EXPECT_EQ(r.tensors()[0].nbytes, 4u);  // n_dims 0: ne filled with 1, one element
}

TEST(GgufReader, RejectsEveryCorpusCaseWithBadInput) {
    for (const auto& c : gguf_test::bad_corpus()) {
        SCOPED_TRACE(c.name);
        const auto t0 = std::chrono::steady_clock::now();
        try {
            (void)parse(c.file, "bad.gguf");
            ADD_FAILURE() << "accepted: " << c.name;
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << e.what();
            EXPECT_EQ(e.file(), "bad.gguf");
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        }
        // Lying counts fail fast: no giant allocation or long loop.
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
    }
}

TEST(GgufReader, ErrorsNameTheTensor) {
    try {
        (void)parse(gguf_test::file_with({{"blk.1.ffn_up.weight", {33, 2}, 8, 0, 128}}), "m.gguf");
        FAIL();
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.tensor(), "blk.1.ffn_up.weight");
        EXPECT_NE(std::string(e.what()).find("m.gguf: tensor 'blk.1.ffn_up.weight': "), std::string::npos) << e.what();
    }
}

TEST(GgufReader, EveryTruncationFailsCleanly) {
    // The hand-derived file: b's data ends at 0x124; any shorter file must be rejected; from 0x124 on (only trailing
    // padding missing) it is valid.
    const auto full = gguf_test::spec_example_file();
    ASSERT_EQ(full.b.size(), 0x140u);
    for (std::size_t len = 0; len < full.b.size(); ++len) {
        gguf_test::Bytes cut;
        cut.b = full.b.substr(0, len);
        if (len < 0x124) {
            try {
                (void)parse(cut, "cut.gguf");
                ADD_FAILURE() << "accepted truncation at " << len;
            } catch (const sf::core::Error& e) {
                EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << len << ": " << e.what();
            }
        } else {
            EXPECT_NO_THROW((void)parse(cut, "cut.gguf")) << len;
        }
    }
}

TEST(GgufReader, OpenReportsMissingFileAsIo) {
    try {
        (void)GgufReader::open("/nonexistent/dir/x.gguf");
        FAIL();
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Io);
    }
}

TEST(GgufDump, PrintsLikeGgufDumpPy) {
    // Expected text written by hand from gguf_dump.py's format strings:
    //   f'  {n:5}: {pretty_type:10} | {len(field.data):8} | {name} = {value}'
    //   f'  {n:5}: {n_elements:10} | {dims padded to 4, each :5} | {type:7} | {name}'
    gguf_test::Bytes f = gguf_test::spec_example_file();
    const auto r = parse(f);
    const std::string want =
        "* File is LITTLE endian, script is running on a LITTLE endian host.\n"
        "* Dumping 6 key/value pair(s)\n"
        "      1: UINT32     |        1 | GGUF.version = 3\n"
        "      2: UINT64     |        1 | GGUF.tensor_count = 2\n"
        "      3: UINT64     |        1 | GGUF.kv_count = 3\n"
        "      4: STRING     |        1 | general.architecture = 'llama'\n"
        "      5: UINT32     |        1 | llama.block_count = 2\n"
        "      6: [STRING]   |        2 | tokenizer.ggml.tokens = ['a', 'bc']\n"
        "* Dumping 2 tensor(s)\n"
        "      1:          6 |     3,     2,     1,     1 | F32     | w\n"
        "      2:          1 |     1,     1,     1,     1 | F32     | b\n";
    EXPECT_EQ(sf::formats::gguf_dump(r), want);
}

TEST(GgufDump, AbbreviatesLikePythonRepr) {
    TempDir dir;
    const std::vector<GgufKV> kvs = {
        {"s", GgufValue::string(std::string(70, 'x'))},
        {"q", GgufValue::string("it's")},
        {"f", GgufValue::f32(1e-5f)},
        {"g", GgufValue::f32(10000.0f)},
        {"h", GgufValue::f64(1e16)},
        {"b", GgufValue::boolean(false)},
        {"a", GgufValue::arr_i32({1, -2, 3, 4, 5, 6, 7})},
        {"z", GgufValue::arr_f32({0.5f, 2.0f})},
    };
    sf::formats::write_gguf(dir.path / "d.gguf", kvs, {{"t", {32, 2}, GgmlType::Q8_0}},
                            {std::vector<std::byte>(68)});
    const auto text = sf::formats::gguf_dump(GgufReader::open(dir.path / "d.gguf"));
    // Python: repr('x' * 57 + '...'), repr("it's"), float(np.float32(1e-5)), 10000.0, 1e+16, False, lists.
    EXPECT_NE(text.find("| s = '" + std::string(57, 'x') + "...'\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| q = \"it's\"\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| f = 9.999999747378752e-06\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| g = 10000.0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| h = 1e+16\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| b = False\n"), std::string::npos) << text;
    EXPECT_NE(text.find("[INT32]    |        7 | a = [1, -2, 3, 4, 5, 6, ...]\n"), std::string::npos) << text;
    EXPECT_NE(text.find("| z = [0.5, 2.0]\n"), std::string::npos) << text;
    EXPECT_NE(text.find("      1:         64 |    32,     2,     1,     1 | Q8_0    | t\n"), std::string::npos) << text;
}
