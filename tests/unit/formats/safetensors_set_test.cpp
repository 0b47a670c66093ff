// SafetensorsSet: single file, explicit files, and model.safetensors.index.json shard sets (valid and broken).
#include <shardforge/formats.hpp>

#include "safetensors_test_util.hpp"

#include <gtest/gtest.h>

namespace sf = shardforge;
using sf::core::ErrorKind;
using sf::formats::SafetensorsSet;
using namespace sf_st_test;

namespace {

// A one-byte-per-element U8 tensor header entry.
std::string u8(const std::string &name, std::size_t begin, std::size_t n) {
    return "\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(n) + "],\"data_offsets\":[" +
           std::to_string(begin) + "," + std::to_string(begin + n) + "]}";
}

void write_two_shards(const TempDir &d) {
    write_bytes(d / "model-00001-of-00002.safetensors", st_file("{" + u8("b", 0, 2) + "," + u8("a", 2, 3) + "}", 5));
    write_bytes(d / "model-00002-of-00002.safetensors", st_file("{" + u8("c", 0, 1) + "}", 1));
}

void expect_dir_reject(const TempDir &d, const std::string &file_part, const std::string &tensor,
                       const std::string &why_part) {
    try {
        (void)SafetensorsSet::open_dir(d.path());
        ADD_FAILURE() << "accepted; expected '" << why_part << "'";
    } catch (const sf::core::Error &e) {
        const std::string w = e.what();
        EXPECT_EQ(e.kind(), ErrorKind::BadInput) << w;
        EXPECT_NE(w.find(file_part), std::string::npos) << w;
        if (!tensor.empty()) {
            EXPECT_EQ(e.tensor(), tensor) << w;
        }
        EXPECT_NE(w.find(why_part), std::string::npos) << "message: " << w << "\nexpected part: " << why_part;
    }
}

const char *const good_index = R"({
  "metadata": {"total_size": 6},
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"
  }
})";

} // namespace

TEST(SafetensorsSet, OpensAShardedDirectoryThroughItsIndex) {
    TempDir d;
    write_two_shards(d);
    write_bytes(d / "model.safetensors.index.json", good_index);
    const auto s = SafetensorsSet::open_dir(d.path());
    ASSERT_EQ(s.n_files(), 2u);
    EXPECT_EQ(s.file(0).path().filename(), "model-00001-of-00002.safetensors");
    EXPECT_EQ(s.names(), (std::vector<std::string>{"b", "a", "c"})); // file order, then data order
    const auto c = s.find("c");
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->file, 1u);
    EXPECT_EQ(c->tensor->name, "c");
    EXPECT_EQ(s.find("a")->tensor->nbytes, 3u);
    EXPECT_FALSE(s.find("d").has_value());
    EXPECT_EQ(s.n_tensors(), 3u);
}

TEST(SafetensorsSet, PrefersModelSafetensorsLikeTransformers) {
    TempDir d;
    write_bytes(d / "model.safetensors", st_file("{" + u8("w", 0, 4) + "}", 4));
    write_bytes(d / "model.safetensors.index.json", "not even json");
    const auto s = SafetensorsSet::open_dir(d.path());
    ASSERT_EQ(s.n_files(), 1u);
    EXPECT_EQ(s.names(), std::vector<std::string>{"w"});
}

TEST(SafetensorsSet, RejectsDirectoryWithoutWeights) {
    TempDir d;
    expect_dir_reject(d, d.path().filename().string(), "", "no model.safetensors");
}

TEST(SafetensorsSet, RejectsIndexNamingAMissingShard) {
    TempDir d;
    write_bytes(d / "model-00001-of-00002.safetensors", st_file("{" + u8("b", 0, 2) + "," + u8("a", 2, 3) + "}", 5));
    write_bytes(d / "model.safetensors.index.json", good_index);
    expect_dir_reject(d, "model.safetensors.index.json", "c",
                      "model-00002-of-00002.safetensors', which does not exist");
}

TEST(SafetensorsSet, RejectsTensorMappedToAShardThatLacksIt) {
    TempDir d;
    write_two_shards(d);
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00001-of-00002.safetensors"}})");
    expect_dir_reject(d, "model-00001-of-00002.safetensors", "c", "lacks it");
}

TEST(SafetensorsSet, RejectsIndexPathsThatLeaveTheDirectory) {
    TempDir d;
    write_two_shards(d);
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
    expect_dir_reject(d, "model.safetensors.index.json", "a", "leaves the model directory");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "sub/../../x.safetensors"}})");
    expect_dir_reject(d, "model.safetensors.index.json", "a", "leaves the model directory");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "/etc/passwd"}})");
    expect_dir_reject(d, "model.safetensors.index.json", "a", "absolute path");
}

TEST(SafetensorsSet, RejectsMalformedIndexFiles) {
    TempDir d;
    write_two_shards(d);
    write_bytes(d / "model.safetensors.index.json", R"({"metadata": {}})");
    expect_dir_reject(d, "model.safetensors.index.json", "", "weight_map");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
    expect_dir_reject(d, "model.safetensors.index.json", "a", "expected a file name");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "x", "a": "y"}})");
    expect_dir_reject(d, "model.safetensors.index.json", "a", "duplicate key 'a'");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": )");
    expect_dir_reject(d, "model.safetensors.index.json", "", "not valid JSON");
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {}})");
    expect_dir_reject(d, "model.safetensors.index.json", "", "empty");
}

TEST(SafetensorsSet, RejectsATensorPresentInTwoShards) {
    TempDir d;
    write_bytes(d / "model-00001-of-00002.safetensors", st_file("{" + u8("a", 0, 2) + "}", 2));
    write_bytes(d / "model-00002-of-00002.safetensors", st_file("{" + u8("a", 0, 1) + "," + u8("c", 1, 1) + "}", 2));
    write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
    expect_dir_reject(d, "model-00002-of-00002.safetensors", "a", "also present in");
}

TEST(SafetensorsSet, OpenFilesKeepsTheGivenOrderAndRejectsDuplicates) {
    TempDir d;
    write_bytes(d / "x.safetensors", st_file("{" + u8("x1", 0, 1) + "}", 1));
    write_bytes(d / "adapter_model.safetensors", st_file("{" + u8("lora_A", 0, 1) + "," + u8("lora_B", 1, 1) + "}", 2));
    const auto s = SafetensorsSet::open_files({d / "x.safetensors", d / "adapter_model.safetensors"});
    EXPECT_EQ(s.names(), (std::vector<std::string>{"x1", "lora_A", "lora_B"}));
    EXPECT_EQ(s.find("lora_B")->file, 1u);
    try {
        (void)SafetensorsSet::open_files({d / "x.safetensors", d / "x.safetensors"});
        ADD_FAILURE() << "duplicate accepted";
    } catch (const sf::core::Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_EQ(e.tensor(), "x1");
    }
}
