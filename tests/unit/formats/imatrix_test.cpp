// formats::read_imatrix: both llama.cpp imatrix formats, written byte by byte here (legacy) or with our GGUF
// writer (GGUF); the expected values are the file's sums divided by the counts, spelled out in the tests.
#include <gtest/gtest.h>
#include <shardforge/formats.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace sf = shardforge;
namespace fs = std::filesystem;
using sf::formats::GgufKV;
using sf::formats::GgufTensorDecl;
using sf::formats::GgufValue;
using sf::quant::GgmlType;

namespace {

struct Tmp {
    fs::path dir;
    Tmp() {
        dir = fs::temp_directory_path() / ("sf_imatrix_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir);
    }
    ~Tmp() { fs::remove_all(dir); }
};

struct Bytes {
    std::string s;
    Bytes& i32(std::int32_t v) {
        char b[4];
        std::memcpy(b, &v, 4);
        s.append(b, 4);
        return *this;
    }
    Bytes& f32(float v) {
        char b[4];
        std::memcpy(b, &v, 4);
        s.append(b, 4);
        return *this;
    }
    Bytes& str(const std::string& v) {
        s += v;
        return *this;
    }
};

void write_file(const fs::path& p, const std::string& s) {
    std::ofstream o(p, std::ios::binary);
    o.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// Two entries: "blk.0.attn_q.weight" (ncall 4, sums 4 8 2 -1) and "output.weight" (ncall 0, kept as stored).
Bytes legacy_entries() {
    Bytes b;
    b.i32(2);
    b.i32(19).str("blk.0.attn_q.weight").i32(4).i32(4).f32(4).f32(8).f32(2).f32(-1);
    b.i32(13).str("output.weight").i32(0).i32(2).f32(0.25f).f32(3);
    return b;
}

void expect_bad(const fs::path& p, const char* what) {
    try {
        (void)sf::formats::read_imatrix(p);
        ADD_FAILURE() << what << ": accepted";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << what << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << what << ": " << e.what();
    }
}

}  // namespace

TEST(Imatrix, LegacyValuesAndTrailer) {
    Tmp t;
    Bytes b = legacy_entries();
    b.i32(17).i32(10).str("wiki.train");
    const fs::path p = t.dir / "a.dat";
    write_file(p, b.s);
    const auto m = sf::formats::read_imatrix(p);
    EXPECT_TRUE(m.legacy);
    ASSERT_EQ(m.by_tensor.size(), 2u);
    EXPECT_EQ(m.by_tensor.at("blk.0.attn_q.weight"), (std::vector<float>{1.0f, 2.0f, 0.5f, -0.25f}));
    EXPECT_EQ(m.by_tensor.at("output.weight"), (std::vector<float>{0.25f, 3.0f}));
    EXPECT_EQ(m.chunk_count, 17);
    EXPECT_EQ(m.datasets, std::vector<std::string>{"wiki.train"});
}

TEST(Imatrix, LegacyDivisionIsFloat) {
    Tmp t;
    Bytes b;
    b.i32(1).i32(1).str("x").i32(3).i32(1).f32(1.0f);
    const fs::path p = t.dir / "a.dat";
    write_file(p, b.s);
    const auto m = sf::formats::read_imatrix(p);
    const volatile float three = 3.0f;
    EXPECT_EQ(m.by_tensor.at("x")[0], 1.0f / three);
    EXPECT_EQ(m.chunk_count, 0);
    EXPECT_TRUE(m.datasets.empty());
}

TEST(Imatrix, LegacyEveryTruncationRejected) {
    Tmp t;
    Bytes b = legacy_entries();
    const std::size_t entries_end = b.s.size();
    b.i32(17).i32(10).str("wiki.train");
    const fs::path p = t.dir / "a.dat";
    for (std::size_t n = 0; n < b.s.size(); ++n) {
        write_file(p, b.s.substr(0, n));
        if (n == entries_end || n == entries_end + 4) {  // the trailer and its name are optional
            EXPECT_NO_THROW((void)sf::formats::read_imatrix(p)) << n;
            continue;
        }
        expect_bad(p, ("prefix of " + std::to_string(n) + " bytes").c_str());
    }
    write_file(p, b.s + "x");
    expect_bad(p, "trailing byte");
}

TEST(Imatrix, LegacyBadCountsAndValues) {
    Tmp t;
    const fs::path p = t.dir / "a.dat";
    write_file(p, Bytes().i32(0).s);
    expect_bad(p, "zero entries");
    write_file(p, Bytes().i32(1).i32(1).str("x").i32(1).i32(0).s);
    expect_bad(p, "nval 0");
    write_file(p, Bytes().i32(1).i32(1).str("x").i32(-1).i32(1).f32(1).s);
    expect_bad(p, "negative ncall");
    write_file(p, Bytes().i32(1).i32(-5).str("x").i32(1).i32(1).f32(1).s);
    expect_bad(p, "negative name length");
    write_file(p, Bytes().i32(1).i32(1).str("x").i32(1).i32(2).f32(1).f32(std::numeric_limits<float>::quiet_NaN()).s);
    expect_bad(p, "NaN");
    write_file(p, Bytes().i32(1).i32(1).str("x").i32(1).i32(1).f32(std::numeric_limits<float>::infinity()).s);
    expect_bad(p, "inf");
    write_file(p, Bytes().i32(2).i32(1).str("x").i32(1).i32(1).f32(1).i32(1).str("x").i32(1).i32(1).f32(2).s);
    expect_bad(p, "duplicate");
    EXPECT_THROW((void)sf::formats::read_imatrix(t.dir / "missing.dat"), sf::core::Error);
}

namespace {

struct GgufIm {
    std::vector<GgufKV> kvs;
    std::vector<GgufTensorDecl> decls;
    std::vector<std::vector<float>> data;
    std::vector<GgmlType> types;
    void add(const std::string& name, std::vector<std::int64_t> ne, std::vector<float> v,
             GgmlType type = GgmlType::F32) {
        decls.push_back({name, std::move(ne), type});
        data.push_back(std::move(v));
    }
    void write(const fs::path& p) const {
        std::vector<std::vector<std::byte>> bytes;
        for (std::size_t i = 0; i < data.size(); ++i) {
            std::vector<std::byte> b;
            if (decls[i].type == GgmlType::F32) {
                b.resize(data[i].size() * 4);
                std::memcpy(b.data(), data[i].data(), b.size());
            } else {  // F16
                for (float f : data[i]) {
                    const std::uint16_t h = sf::core::f32_to_f16(f);
                    b.push_back(static_cast<std::byte>(h & 0xff));
                    b.push_back(static_cast<std::byte>(h >> 8));
                }
            }
            bytes.push_back(std::move(b));
        }
        std::vector<std::span<const std::byte>> spans(bytes.begin(), bytes.end());
        sf::formats::write_gguf(p, kvs, decls, spans);
    }
};

GgufIm good_gguf() {
    GgufIm g;
    g.kvs = {{"general.type", GgufValue::string("imatrix")},
             {"imatrix.datasets", GgufValue::arr_str({"calib.txt", "more.txt"})},
             {"imatrix.chunk_count", GgufValue::u32(12)},
             {"imatrix.chunk_size", GgufValue::u32(512)}};
    g.add("blk.0.attn_q.weight.in_sum2", {4, 1}, {6, 3, 0, -12});
    g.add("blk.0.attn_q.weight.counts", {1, 1}, {3});
    // MoE: 2 experts of 3; expert 0 seen 2.4 -> lround 2 times, expert 1 never (-> all 1).
    g.add("blk.1.ffn_up_exps.weight.in_sum2", {3, 2}, {1, 5, 9, 7, 7, 7});
    g.add("blk.1.ffn_up_exps.weight.counts", {1, 2}, {2.4f, 0});
    g.add("unrelated.tensor", {2}, {1, 2});
    return g;
}

}  // namespace

TEST(Imatrix, GgufValuesPerExpert) {
    Tmp t;
    const fs::path p = t.dir / "im.gguf";
    good_gguf().write(p);
    const auto m = sf::formats::read_imatrix(p);
    EXPECT_FALSE(m.legacy);
    ASSERT_EQ(m.by_tensor.size(), 2u);
    EXPECT_EQ(m.by_tensor.at("blk.0.attn_q.weight"), (std::vector<float>{2, 1, 0, -4}));
    EXPECT_EQ(m.by_tensor.at("blk.1.ffn_up_exps.weight"), (std::vector<float>{0.5f, 2.5f, 4.5f, 1, 1, 1}));
    EXPECT_EQ(m.datasets, (std::vector<std::string>{"calib.txt", "more.txt"}));
    EXPECT_EQ(m.chunk_count, 12);
    EXPECT_EQ(m.chunk_size, 512);
}

TEST(Imatrix, GgufRejects) {
    Tmp t;
    const fs::path p = t.dir / "im.gguf";
    {
        auto g = good_gguf();
        g.kvs.erase(g.kvs.begin() + 2);  // chunk_count
        g.write(p);
        expect_bad(p, "missing chunk_count");
    }
    {
        auto g = good_gguf();
        g.kvs[3].value = GgufValue::i32(512);
        g.write(p);
        expect_bad(p, "chunk_size i32");
    }
    {
        auto g = good_gguf();
        g.decls.erase(g.decls.begin() + 1);
        g.data.erase(g.data.begin() + 1);
        g.write(p);
        expect_bad(p, "sums without counts");
    }
    {
        auto g = good_gguf();
        g.decls[3].ne = {1, 3};
        g.data[3] = {1, 1, 1};
        g.write(p);
        expect_bad(p, "3 counts for an in_sum2 of 2 rows");
    }
}

TEST(Imatrix, GgufRejectsBadNumbers) {
    Tmp t;
    const fs::path p = t.dir / "im.gguf";
    {
        auto g = good_gguf();
        g.data[0][1] = std::numeric_limits<float>::quiet_NaN();
        g.write(p);
        expect_bad(p, "NaN sum");
    }
    {
        auto g = good_gguf();
        g.data[3][1] = -1;
        g.write(p);
        expect_bad(p, "negative count");
    }
    {
        auto g = good_gguf();
        g.decls[3].ne = {1, 4};
        g.data[3] = {1, 1, 1, 1};
        g.write(p);
        expect_bad(p, "6 sums over 4 experts");
    }
    {
        auto g = good_gguf();
        g.decls[0].type = GgmlType::F16;
        g.write(p);
        expect_bad(p, "F16 sums");
    }
    {
        auto g = good_gguf();
        g.data[1][0] = 0.4f;  // rounds to 0: the expert's values become 1
        g.write(p);
        EXPECT_EQ(sf::formats::read_imatrix(p).by_tensor.at("blk.0.attn_q.weight"), (std::vector<float>{1, 1, 1, 1}));
    }
}
