// SentencePiece tokenizer.model reader: hand-encoded protobuf bytes (encoded here, independently of the reader)
// and the tests/data/tokenizers/tiny.model fixture written by gen_sentencepiece.py.
#include <shardforge/model.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sf = shardforge;
using sf::model::SpPiece;

namespace {

// ---- a minimal protobuf encoder for the test inputs
std::string varint(std::uint64_t v) {
    std::string out;
    do {
        std::uint8_t b = v & 0x7f;
        v >>= 7;
        if (v) b |= 0x80;
        out.push_back(static_cast<char>(b));
    } while (v);
    return out;
}
std::string len_field(int num, const std::string& payload) {
    return varint(static_cast<std::uint64_t>(num) << 3 | 2) + varint(payload.size()) + payload;
}
std::string varint_field(int num, std::uint64_t v) { return varint(static_cast<std::uint64_t>(num) << 3) + varint(v); }
std::string f32_field(int num, float f) {
    char b[4];
    std::memcpy(b, &f, 4);  // little-endian host (x86-64 / aarch64)
    return varint(static_cast<std::uint64_t>(num) << 3 | 5) + std::string(b, 4);
}
std::string piece(const std::string& text, float score, int type /* 0 = absent */) {
    std::string p = len_field(1, text) + f32_field(2, score);
    if (type) p += varint_field(3, static_cast<std::uint64_t>(type));
    return len_field(1, p);
}

sf::core::ErrorKind kind_of(const std::string& bytes) {
    try {
        (void)sf::model::parse_sentencepiece(bytes, "dir/tokenizer.model");
    } catch (const sf::core::Error& e) {
        EXPECT_NE(std::string(e.what()).find("dir/tokenizer.model"), std::string::npos) << e.what();
        return e.kind();
    }
    return sf::core::ErrorKind::Internal;  // "no error"
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::filesystem::path data_dir() {
    return std::filesystem::path(SHARDFORGE_TEST_SOURCE_DIR) / "tests" / "data" / "tokenizers";
}

}  // namespace

TEST(SentencePieceModel, ParsesPiecesScoresAndTypes) {
    std::string bytes = piece("<unk>", 0.0f, 2) + piece("<s>", 0.0f, 3) + piece("\xe2\x96\x81hi", -3.5f, 0) +
                        piece("<0x41>", 0.0f, 6) + piece("x", -1e-3f, 4);
    // an unknown ModelProto field (self_test_data, 4) and an unknown varint field (99) are skipped
    bytes += len_field(4, len_field(1, "abc")) + varint_field(99, 7);
    const auto pieces = sf::model::parse_sentencepiece_model(bytes, "t.model");
    const std::vector<SpPiece> want = {
        {"<unk>", 0.0f, 2}, {"<s>", 0.0f, 3}, {"\xe2\x96\x81hi", -3.5f, 1}, {"<0x41>", 0.0f, 6}, {"x", -1e-3f, 4}};
    EXPECT_EQ(pieces, want);
}

TEST(SentencePieceModel, ReadsTrainerAndNormalizerFlags) {
    std::string bytes = piece("a", 0.0f, 0);
    bytes += len_field(2, varint_field(3, 2) + varint_field(4, 1) + varint_field(35, 1));
    bytes += len_field(3, len_field(1, "nmt_nfkc") + varint_field(3, 0) + varint_field(4, 0));
    const auto m = sf::model::parse_sentencepiece(bytes, "t.model");
    EXPECT_EQ(m.model_type, 2);
    EXPECT_TRUE(m.byte_fallback);
    EXPECT_FALSE(m.add_dummy_prefix);
    EXPECT_FALSE(m.remove_extra_whitespaces);

    const auto d = sf::model::parse_sentencepiece(piece("a", 0.0f, 0), "t.model");  // proto defaults
    EXPECT_EQ(d.model_type, 1);
    EXPECT_FALSE(d.byte_fallback);
    EXPECT_TRUE(d.add_dummy_prefix);
    EXPECT_TRUE(d.remove_extra_whitespaces);
}

TEST(SentencePieceModel, ReadsGeneratedFixture) {
    const std::string bytes = read_file(data_dir() / "tiny.model");
    ASSERT_EQ(bytes.size(), 194u) << "regenerate with gen_sentencepiece.py";
    const auto m = sf::model::parse_sentencepiece(bytes, "tiny.model");
    const std::vector<SpPiece> want = {
        {"<unk>", 0.0f, 2},         {"<s>", 0.0f, 3},      {"</s>", 0.0f, 3},        {"<0x0A>", 0.0f, 6},
        {"\xe2\x96\x81the", -1.5f, 1}, {"\xe2\x96\x81" "a", -2.25f, 1}, {"<start_of_turn>", 0.0f, 1},
        {"<mask>", 0.0f, 4},        {"<unused0>", 0.0f, 5}, {"\xc3\xa9t\xc3\xa9", -7.0f, 1}};
    EXPECT_EQ(m.pieces, want);
    EXPECT_EQ(m.model_type, 2);
    EXPECT_TRUE(m.byte_fallback);
    EXPECT_FALSE(m.add_dummy_prefix);
}

TEST(SentencePieceModel, RejectsMalformedInputAsBadInput) {
    using K = sf::core::ErrorKind;
    const std::string good = piece("ab", -1.0f, 1);
    EXPECT_EQ(kind_of(""), K::BadInput);                                   // no pieces
    EXPECT_EQ(kind_of(good.substr(0, good.size() - 1)), K::BadInput);      // truncated float
    EXPECT_EQ(kind_of(std::string("\x0a\xff", 2)), K::BadInput);           // truncated varint length
    EXPECT_EQ(kind_of(std::string("\x0a\x7f", 2) + "abc"), K::BadInput);  // length past the end
    EXPECT_EQ(kind_of(good + std::string("\x0b", 1)), K::BadInput);        // wire type 3 (group)
    EXPECT_EQ(kind_of(piece("ab", 0.0f, 7)), K::BadInput);                 // unknown piece type
    EXPECT_EQ(kind_of(piece("", 0.0f, 1)), K::BadInput);                   // empty piece
    EXPECT_EQ(kind_of(good + varint_field(1, 5)), K::BadInput);            // pieces with a varint wire type
    EXPECT_EQ(kind_of(good + piece("ab", 0.0f, 4)), K::BadInput);          // duplicate normal piece
    EXPECT_EQ(kind_of(good + piece("ab", 0.0f, 3)), K::Internal);          // same text as CONTROL: allowed
    EXPECT_EQ(kind_of(std::string(11, '\xff')), K::BadInput);              // overlong varint tag
    EXPECT_EQ(kind_of(std::string("\x00\x00", 2)), K::BadInput);           // field number 0
}

TEST(SentencePieceModel, EveryTruncationIsBadInputNotACrash) {
    const std::string bytes = read_file(data_dir() / "tiny.model");
    ASSERT_FALSE(bytes.empty());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        const auto k = kind_of(bytes.substr(0, n));
        // A cut exactly between two top-level fields is a valid shorter model; everything else must fail cleanly.
        EXPECT_TRUE(k == sf::core::ErrorKind::BadInput || k == sf::core::ErrorKind::Internal) << "n=" << n;
    }
    // and single-byte corruptions never escape as anything but BadInput
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string b = bytes;
        b[i] = static_cast<char>(b[i] ^ 0x5a);
        const auto k = kind_of(b);
        EXPECT_TRUE(k == sf::core::ErrorKind::BadInput || k == sf::core::ErrorKind::Internal) << "i=" << i;
    }
}
