// SafetensorsReader / parse_safetensors_header: round trip with the layout writer, and one hand-built byte-level
// file per rejection rule (error kind, file name and tensor name checked).
#include <shardforge/formats.hpp>

#include "safetensors_test_util.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <vector>

namespace sf = shardforge;
using sf::core::DType;
using sf::core::ErrorKind;
using sf::formats::SafetensorsReader;
using namespace sf_st_test;

namespace {

// Opens a file made of `bytes` and expects core::Error of `kind` whose message names the file, names `tensor`
// (when non-empty) and contains `why_part`.
void expect_reject(const std::string &bytes, ErrorKind kind, const std::string &tensor, const std::string &why_part) {
    TempDir dir;
    const auto p = dir / "bad-00001-of-00002.safetensors";
    write_bytes(p, bytes);
    try {
        auto r = SafetensorsReader::open(p);
        ADD_FAILURE() << "accepted; expected rejection containing '" << why_part << "'";
    } catch (const sf::core::Error &e) {
        const std::string what = e.what();
        EXPECT_EQ(e.kind(), kind) << what;
        EXPECT_NE(what.find("bad-00001-of-00002.safetensors"), std::string::npos) << what;
        if (!tensor.empty()) {
            EXPECT_EQ(e.tensor(), tensor) << what;
            EXPECT_NE(what.find("'" + tensor + "'"), std::string::npos) << what;
        }
        EXPECT_NE(what.find(why_part), std::string::npos) << "message: " << what << "\nexpected part: " << why_part;
    }
}

void expect_bad(const std::string &header, std::size_t data_size, const std::string &tensor,
                const std::string &why_part) {
    expect_reject(st_file(header, data_size), ErrorKind::BadInput, tensor, why_part);
}

} // namespace

TEST(SafetensorsReader, RoundTripsWhatTheLayoutWriterProduces) {
    const std::vector<sf::formats::StEntry> entries = {
        {"model.embed_tokens.weight", DType::BF16, {2, 3}},
        {"scalar", DType::F32, {}},
        {"empty", DType::I64, {0, 4}},
        {"bytes", DType::U8, {5}},
        {"half", DType::F16, {4}},
    };
    const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "a \"quoted\" value\n"}};
    const auto lay = sf::formats::layout_safetensors(entries, meta);
    ASSERT_EQ(lay.offsets.size(), entries.size());
    ASSERT_EQ(lay.header_bytes.size() % 8, 0u);
    // expected sizes by hand: 12 + 4 + 0 + 5 + 8 bytes of data
    ASSERT_EQ(lay.file_size, lay.header_bytes.size() + 29);

    std::string file = lay.header_bytes;
    for (std::size_t i = 0; i < 29; ++i) file += static_cast<char>(0x40 + i);
    TempDir dir;
    write_bytes(dir / "rt.safetensors", file);

    const auto r = SafetensorsReader::open(dir / "rt.safetensors");
    EXPECT_EQ(r.header().metadata, meta);
    EXPECT_EQ(r.header().data_start, lay.header_bytes.size());
    EXPECT_EQ(r.file_size(), lay.file_size);
    ASSERT_EQ(r.header().tensors.size(), entries.size());
    const std::uint64_t want_nbytes[] = {12, 4, 0, 5, 8};
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto &t = r.at(entries[i].name);
        EXPECT_EQ(t.dtype, entries[i].dtype) << t.name;
        EXPECT_EQ(t.shape, entries[i].shape) << t.name;
        EXPECT_EQ(t.offset, lay.offsets[i]) << t.name;
        EXPECT_EQ(t.nbytes, want_nbytes[i]) << t.name;
    }
    // data order: layout order (empty and scalar... are in entry order; zero-size ties sorted by name)
    EXPECT_EQ(r.header().tensors.front().name, "model.embed_tokens.weight");

    const auto &half = r.at("half");
    std::vector<std::byte> buf(3);
    r.read(half, 2, buf);
    const std::size_t rel = half.offset - r.header().data_start;
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(static_cast<int>(buf[i]), static_cast<int>(0x40 + rel + 2 + i));
    EXPECT_EQ(r.find("nope"), nullptr);
}

TEST(SafetensorsReader, AcceptsPaddedHeaderZeroDimAndZeroSizeTensorsInAnyJsonOrder) {
    // JSON lists b before a; data order is by offset. Padding spaces after the JSON are allowed.
    const std::string h =
        R"({"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"z":{"dtype":"BOOL","shape":[3,0],"data_offsets":[8,8]},)"
        R"("a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}     )";
    TempDir dir;
    write_bytes(dir / "ok.safetensors", st_file(h, 8));
    const auto r = SafetensorsReader::open(dir / "ok.safetensors");
    ASSERT_EQ(r.header().tensors.size(), 3u);
    EXPECT_EQ(r.header().tensors[0].name, "a");
    EXPECT_EQ(r.header().tensors[1].name, "b");
    EXPECT_EQ(r.header().tensors[2].name, "z");
    EXPECT_EQ(r.at("a").offset, 8 + h.size());
    EXPECT_EQ(r.at("a").nbytes, 4u);
    EXPECT_TRUE(r.at("a").shape.empty());
    EXPECT_EQ(r.at("z").nbytes, 0u);
    EXPECT_TRUE(r.header().metadata.empty());
}

TEST(SafetensorsReader, AcceptsAnEmptyFileWithNoTensors) {
    TempDir dir;
    write_bytes(dir / "e.safetensors", st_file(R"({"__metadata__":{"format":"pt"}})", 0));
    const auto r = SafetensorsReader::open(dir / "e.safetensors");
    EXPECT_TRUE(r.header().tensors.empty());
    EXPECT_EQ(r.header().metadata.at("format"), "pt");
}

TEST(SafetensorsReader, RejectsFileShorterThan8Bytes) {
    expect_reject(std::string("\x02\0\0\0\0", 5), ErrorKind::BadInput, "", "too short");
}

TEST(SafetensorsReader, RejectsHeaderLengthBeyondTheFile) {
    expect_reject(le64(100) + "{}", ErrorKind::BadInput, "", "runs past the end of the file");
}

TEST(SafetensorsReader, RejectsHeaderLengthOver100MB) {
    expect_reject(le64(100'000'001) + "{}", ErrorKind::BadInput, "", "exceeds the limit of 100000000");
    expect_reject(le64(~0ull) + "{}", ErrorKind::BadInput, "", "exceeds the limit");
}

TEST(SafetensorsReader, RejectsInvalidJson) {
    expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 4, "", "not valid JSON");
    expect_bad(std::string("{}\0\0\0\0\0\0", 8), 0, "", "not valid JSON"); // NUL padding is not whitespace
    expect_bad("", 0, "", "not valid JSON");
    expect_bad("{\"a\xff\":1}", 0, "", "not valid JSON"); // invalid UTF-8
    expect_bad("\xEF\xBB\xBF{}", 0, "", "byte order mark");
    // nlohmann's lexer ends the input at a NUL; what follows must not be silently dropped
    expect_bad(std::string(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})") + '\0' +
                   R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
               1, "", "NUL byte");
}

TEST(SafetensorsReader, RejectsHeaderThatIsNotAnObject) {
    expect_bad("[1, 2]  ", 0, "", "expected an object");
    expect_bad("\"x\"", 0, "", "expected an object");
}

TEST(SafetensorsReader, RejectsMetadataThatIsNotStringToString) {
    expect_bad(R"({"__metadata__":{"format":1}})", 0, "", "__metadata__ value of 'format'");
    expect_bad(R"({"__metadata__":["pt"]})", 0, "", "__metadata__ is array");
    expect_bad(R"({"__metadata__":null})", 0, "", "__metadata__ is null");
}

TEST(SafetensorsReader, RejectsUnknownDtype) {
    expect_bad(R"({"w":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", 1, "w", "unknown dtype 'Q9'");
    expect_bad(R"({"w":{"dtype":3,"shape":[1],"data_offsets":[0,1]}})", 1, "w", "dtype is number");
}

TEST(SafetensorsReader, ReportsFormatDtypesWeDoNotHandleAsUnsupported) {
    expect_reject(st_file(R"({"w":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}})", 4), ErrorKind::Unsupported, "w",
                  "dtype U32 is not supported");
}

TEST(SafetensorsReader, RejectsShapeThatIsNotAnArrayOfNonNegativeInts) {
    expect_bad(R"({"w":{"dtype":"U8","shape":4,"data_offsets":[0,4]}})", 4, "w", "shape is number");
    expect_bad(R"({"w":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}})", 4, "w", "negative number");
    expect_bad(R"({"w":{"dtype":"U8","shape":[4.0],"data_offsets":[0,4]}})", 4, "w", "non-integer number");
    expect_bad(R"({"w":{"dtype":"U8","shape":["4"],"data_offsets":[0,4]}})", 4, "w", "shape has string");
    expect_bad(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4, "w", "too large");
    expect_bad(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4, "w", "overflows");
}

TEST(SafetensorsReader, RejectsMalformedDataOffsets) {
    expect_bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0]}})", 4, "w", "expected [begin, end]");
    expect_bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4,4]}})", 4, "w", "expected [begin, end]");
    expect_bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-1,4]}})", 4, "w", "expected [begin, end]");
    expect_bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":"0,4"}})", 4, "w", "expected [begin, end]");
    expect_bad(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4, "w", "begin > end");
}

TEST(SafetensorsReader, RejectsMissingOrUnknownTensorFields) {
    expect_bad(R"({"w":{"dtype":"U8","shape":[4]}})", 0, "w", "missing field 'data_offsets'");
    expect_bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"extra":1}})", 4, "w", "unknown field 'extra'");
    expect_bad(R"({"w":[1,2]})", 0, "w", "expected an object");
}

TEST(SafetensorsReader, RejectsOffsetsOutOfBoundsOfTheDataSection) {
    expect_bad(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 4, "w", "beyond the data section (4 bytes");
}

TEST(SafetensorsReader, RejectsSizeThatDisagreesWithShapeAndDtype) {
    expect_bad(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", 8, "w",
               "span 8 bytes, but BF16 [2, 3] needs 12");
}

TEST(SafetensorsReader, RejectsDuplicateTensorNames) {
    expect_bad(
        R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
        4, "w", "duplicate tensor name");
    // a repeated key inside an entry is as ambiguous
    expect_bad(R"({"w":{"dtype":"U8","dtype":"I8","shape":[2],"data_offsets":[0,2]}})", 2, "w",
               "duplicate key 'dtype'");
}

TEST(SafetensorsReader, RejectsOverlappingDataRanges) {
    expect_bad(
        R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
        6, "b", "overlaps tensor 'a'");
    // same range twice
    expect_bad(
        R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
        4, "b", "overlaps tensor 'a'");
}

TEST(SafetensorsReader, RejectsHolesBetweenOrBeforeTensors) {
    expect_bad(
        R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
        6, "b", "hole of 2 unused bytes");
    expect_bad(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", 3, "a", "hole of 1 unused bytes");
}

TEST(SafetensorsReader, RejectsTrailingBytesAfterTheLastTensor) {
    expect_bad(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 3, "", "1 trailing bytes");
    expect_bad(R"({})", 1, "", "1 trailing bytes");
}

TEST(SafetensorsReader, RejectsMissingFileAsBadInput) {
    TempDir dir;
    try {
        (void)SafetensorsReader::open(dir / "missing.safetensors");
        ADD_FAILURE() << "accepted a missing file";
    } catch (const sf::core::Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos);
    }
}

TEST(SafetensorsReader, AtNamesFileAndTensorWhenAbsent) {
    TempDir dir;
    write_bytes(dir / "a.safetensors", st_file(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1));
    const auto r = SafetensorsReader::open(dir / "a.safetensors");
    try {
        (void)r.at("lm_head.weight");
        ADD_FAILURE() << "found a tensor that is not there";
    } catch (const sf::core::Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        const std::string w = e.what();
        EXPECT_NE(w.find("a.safetensors"), std::string::npos) << w;
        EXPECT_NE(w.find("'lm_head.weight'"), std::string::npos) << w;
    }
}

TEST(SafetensorsReader, ShortReadOfATruncatedFileIsAnIoErrorNamingFileAndTensor) {
    TempDir dir;
    const auto p = dir / "t.safetensors";
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16));
    const auto r = SafetensorsReader::open(p);
    ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(r.file_size() - 6)), 0);
    std::vector<std::byte> buf(16);
    try {
        r.read(r.at("x"), 0, buf);
        ADD_FAILURE() << "short read not detected";
    } catch (const sf::core::Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::Io);
        EXPECT_EQ(e.tensor(), "x");
        EXPECT_NE(std::string(e.what()).find("t.safetensors"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("short read"), std::string::npos) << e.what();
    }
}

TEST(SafetensorsReader, ReadOutsideTheTensorIsAnInternalError) {
    TempDir dir;
    write_bytes(dir / "a.safetensors", st_file(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4));
    const auto r = SafetensorsReader::open(dir / "a.safetensors");
    std::vector<std::byte> buf(3);
    EXPECT_THROW(r.read(r.at("x"), 2, buf), sf::core::Error);
}

TEST(SafetensorsReader, IsMovable) {
    TempDir dir;
    write_bytes(dir / "a.safetensors", st_file(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4));
    auto r = SafetensorsReader::open(dir / "a.safetensors");
    SafetensorsReader moved = std::move(r);
    std::vector<std::byte> buf(4);
    moved.read(moved.at("x"), 0, buf);
    EXPECT_EQ(static_cast<int>(buf[3]), 3);
}

TEST(SafetensorsHeader, PureParserRejectsInconsistentSizes) {
    const std::string h = R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
    const auto ok = sf::formats::parse_safetensors_header(h, 8 + h.size(), 8 + h.size() + 4, "mem.safetensors");
    ASSERT_EQ(ok.tensors.size(), 1u);
    EXPECT_EQ(ok.tensors[0].offset, 8 + h.size());
    EXPECT_THROW((void)sf::formats::parse_safetensors_header(h, 8 + h.size(), 4, "mem.safetensors"), sf::core::Error);
    EXPECT_THROW((void)sf::formats::parse_safetensors_header(h, 3, 100, "mem.safetensors"), sf::core::Error);
}
