// Writer layout and Hugging Face conventions. Expected values are written out by hand from the upstream rules:
// transformers convert_file_size_to_int, huggingface_hub split_state_dict_into_shards_factory, transformers'
// index json.dumps(indent=2, sort_keys=True), safetensors' serde_json header.
#include <shardforge/formats.hpp>

#include "safetensors_test_util.hpp"

#include <gtest/gtest.h>

namespace sf = shardforge;
namespace fmt = shardforge::formats;
using sf::core::DType;
using sf::core::ErrorKind;

TEST(SafetensorsLayout, ProducesTheReferenceHeaderBytesAndOffsets) {
    const auto lay = fmt::layout_safetensors({{"w", DType::F32, {2}}, {"b", DType::BF16, {}}}, {{"format", "pt"}});
    std::string json = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}})";
    ASSERT_EQ(json.size(), 139u); // counted: pads to 144
    json += "     ";
    EXPECT_EQ(lay.header_bytes, sf_st_test::le64(144) + json);
    EXPECT_EQ(lay.offsets, (std::vector<std::uint64_t>{152, 160}));
    EXPECT_EQ(lay.file_size, 162u);
}

TEST(SafetensorsLayout, OmitsEmptyMetadataAndEscapesNames) {
    const auto lay = fmt::layout_safetensors({{"a\"b\n\xc3\xa9", DType::U8, {1}}}, {});
    const std::string json = "{\"a\\\"b\\n\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    ASSERT_EQ(json.size(), 60u);
    EXPECT_EQ(lay.header_bytes, sf_st_test::le64(64) + json + "    ");
    EXPECT_EQ(lay.file_size, 8u + 64u + 1u);
}

TEST(SafetensorsLayout, RejectsDuplicateNamesAndReservedNames) {
    try {
        (void)fmt::layout_safetensors({{"x", DType::U8, {1}}, {"x", DType::U8, {2}}}, {});
        ADD_FAILURE() << "duplicate accepted";
    } catch (const sf::core::Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::Usage);
        EXPECT_EQ(e.tensor(), "x");
    }
    EXPECT_THROW((void)fmt::layout_safetensors({{"__metadata__", DType::U8, {1}}}, {}), sf::core::Error);
    EXPECT_THROW((void)fmt::layout_safetensors({{"n", DType::U8, {-1}}}, {}), sf::core::Error);
}

TEST(SafetensorsLayout, ReferenceOrderIsRustDtypeOrderDescendingThenName) {
    const std::vector<fmt::StEntry> e = {
        {"b", DType::BF16, {}},     {"a", DType::F32, {}},      {"i", DType::I64, {}},     {"d", DType::F64, {}},
        {"c", DType::F32, {}},      {"u", DType::U8, {}},       {"bool", DType::BOOL, {}}, {"h", DType::F16, {}},
        {"e4", DType::F8_E4M3, {}}, {"e5", DType::F8_E5M2, {}}, {"i8", DType::I8, {}},     {"i16", DType::I16, {}},
        {"i32", DType::I32, {}},
    };
    // I64 > F64 > F32 > I32 > BF16 > F16 > I16 > F8_E4M3 > F8_E5M2 > I8 > U8 > BOOL
    EXPECT_EQ(fmt::st_reference_order(e), (std::vector<std::size_t>{2, 3, 1, 4, 12, 0, 7, 11, 8, 9, 10, 5, 6}));
}

TEST(HfConventions, ParsesShardSizesLikeTransformers) {
    const std::pair<const char *, std::uint64_t> table[] = {
        {"5GB", 5'000'000'000ull},
        {"500MB", 500'000'000ull},
        {"2GiB", 2'147'483'648ull},
        {"100KB", 100'000ull},
        {"1000", 1000ull},
        {"5Gb", 625'000'000ull}, // bits
        {"5gb", 625'000'000ull},
        {"5gib", 5'368'709'120ull},
        {"10MiB", 10'485'760ull},
        {"1KiB", 1024ull},
        {"1TB", 1'000'000'000'000ull},
        {"1PiB", 1'125'899'906'842'624ull},
        {" 5 GB ", 5'000'000'000ull},
        {"1.5GB", 1'500'000'000ull},
        {"0.5MiB", 524'288ull},
        {"0", 0ull},
        {"2kb", 250ull},
    };
    for (const auto &[s, want] : table) EXPECT_EQ(fmt::parse_hf_size(s), want) << s;
}

TEST(HfConventions, RejectsGarbageShardSizesAsUsage) {
    for (const char *s : {"", "GB", "5XB", "-5GB", "5.5", "abc", "1e9", "5 G B", "99999999999999999999", "20000PB",
                          "+5GB", "5B", "."}) {
        try {
            (void)fmt::parse_hf_size(s);
            ADD_FAILURE() << "accepted '" << s << "'";
        } catch (const sf::core::Error &e) {
            EXPECT_EQ(e.kind(), ErrorKind::Usage) << s;
        }
    }
}

TEST(HfConventions, NamesShardsLikeSavePretrained) {
    EXPECT_EQ(fmt::hf_shard_name(0, 1), "model.safetensors");
    EXPECT_EQ(fmt::hf_shard_name(0, 3), "model-00001-of-00003.safetensors");
    EXPECT_EQ(fmt::hf_shard_name(2, 3), "model-00003-of-00003.safetensors");
    EXPECT_EQ(fmt::hf_shard_name(99999, 100000), "model-100000-of-100000.safetensors");
}

TEST(HfConventions, AssignsShardsLikeHuggingfaceHub) {
    using V = std::vector<std::uint32_t>;
    // the upstream docstring example: [6,6,2,6,2,2] under 10 -> [6], [6+2], [6+2+2]
    EXPECT_EQ(fmt::assign_hf_shards({6, 6, 2, 6, 2, 2}, 10), (V{0, 1, 1, 2, 2, 2}));
    // an oversized tensor is appended at once, before the shard still being filled
    EXPECT_EQ(fmt::assign_hf_shards({2, 20, 3}, 10), (V{1, 0, 1}));
    EXPECT_EQ(fmt::assign_hf_shards({3, 30, 40, 8}, 10), (V{2, 0, 1, 3}));
    // exactly full is allowed ("> max" splits)
    EXPECT_EQ(fmt::assign_hf_shards({5, 5, 5}, 10), (V{0, 0, 1}));
    EXPECT_EQ(fmt::assign_hf_shards({10}, 10), (V{0}));
    EXPECT_EQ(fmt::assign_hf_shards({11}, 10), (V{0}));
    EXPECT_EQ(fmt::assign_hf_shards({0, 0}, 0), (V{0, 0}));
    EXPECT_EQ(fmt::assign_hf_shards({}, 10), V{});
}

TEST(HfConventions, WritesTheIndexLikeTransformers) {
    const std::string want = "{\n"
                             "  \"metadata\": {\n"
                             "    \"total_size\": 6\n"
                             "  },\n"
                             "  \"weight_map\": {\n"
                             "    \"a\": \"model-00001-of-00002.safetensors\",\n"
                             "    \"b\": \"model-00002-of-00002.safetensors\",\n"
                             "    \"\\u00e9\": \"model-00002-of-00002.safetensors\"\n"
                             "  }\n"
                             "}\n";
    EXPECT_EQ(fmt::make_hf_index_json(6, {{"b", "model-00002-of-00002.safetensors"},
                                          {"\xc3\xa9", "model-00002-of-00002.safetensors"},
                                          {"a", "model-00001-of-00002.safetensors"}}),
              want);
    const std::string want_p = "{\n"
                               "  \"metadata\": {\n"
                               "    \"total_parameters\": 3,\n"
                               "    \"total_size\": 6\n"
                               "  },\n"
                               "  \"weight_map\": {}\n"
                               "}\n";
    EXPECT_EQ(fmt::make_hf_index_json(6, {}, 3), want_p);
}
