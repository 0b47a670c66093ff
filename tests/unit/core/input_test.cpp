// core::read_input_file (size caps checked before allocating) and core::check_json_depth.
#include <shardforge/core.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include <unistd.h>

namespace sf = shardforge;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("sf-input-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d / name;
}
sf::core::Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sf::core::Error& e) {
        return e;
    }
    ADD_FAILURE() << "no error";
    return sf::core::Error(sf::core::ErrorKind::Internal, "", "", "none");
}
}  // namespace

TEST(InputFile, CapsByNameAndRefusesLargerFilesWithoutReadingThem) {
    EXPECT_EQ(sf::core::input_file_cap("a/b/tokenizer.json"), sf::core::max_tokenizer_file_bytes);
    EXPECT_EQ(sf::core::input_file_cap("model.safetensors.index.json"), sf::core::max_tokenizer_file_bytes);
    EXPECT_EQ(sf::core::input_file_cap("/x/config.json"), sf::core::max_config_file_bytes);
    EXPECT_EQ(sf::core::input_file_cap("adapter_config.json"), sf::core::max_config_file_bytes);

    const fs::path small = scratch("config.json");
    std::ofstream(small) << "{\"a\": 1}";
    EXPECT_EQ(sf::core::read_input_file(small.string()), "{\"a\": 1}");
    // A sparse 300 MB tokenizer.json: refused by its size (reading it would take seconds and 300 MB).
    const fs::path big = scratch("tokenizer.json");
    { std::ofstream(big) << "{"; }
    fs::resize_file(big, 300ull << 20);
    const auto e = error_of([&] { (void)sf::core::read_input_file(big.string()); });
    EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(e.file(), big.string());
    EXPECT_NE(e.why().find("larger than"), std::string::npos) << e.what();
    // An explicit cap overrides the name's.
    EXPECT_EQ(error_of([&] { (void)sf::core::read_input_file(small.string(), 4); }).kind(), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(sf::core::read_input_file(small.string(), 8), "{\"a\": 1}");
    // Missing: an I/O error naming the file; a directory: bad input.
    EXPECT_EQ(error_of([&] { (void)sf::core::read_input_file(scratch("nope.json").string()); }).kind(),
              sf::core::ErrorKind::Io);
    EXPECT_EQ(error_of([&] { (void)sf::core::read_input_file(small.parent_path().string()); }).kind(),
              sf::core::ErrorKind::BadInput);
    fs::remove_all(small.parent_path());
}

TEST(InputFile, JsonDepthCountsBracketsOutsideStringsOnly) {
    const std::size_t n = sf::core::max_json_depth;
    EXPECT_NO_THROW(sf::core::check_json_depth(std::string(n, '[') + std::string(n, ']'), "f.json"));
    const auto e = error_of([&] { sf::core::check_json_depth(std::string(n + 1, '['), "f.json"); });
    EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput);
    EXPECT_EQ(e.file(), "f.json");
    EXPECT_NE(e.why().find("nested"), std::string::npos);
    // Mixed objects and arrays count alike; closing brackets bring the depth back down.
    std::string deep;
    for (std::size_t i = 0; i <= n; ++i) deep += i % 2 ? "[" : "{\"k\":";
    EXPECT_THROW(sf::core::check_json_depth(deep, "f.json"), sf::core::Error);
    std::string wide;
    for (int i = 0; i < 1000; ++i) wide += "[[]],";
    EXPECT_NO_THROW(sf::core::check_json_depth("[" + wide + "0]", "f.json"));
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    EXPECT_NO_THROW(sf::core::check_json_depth("[\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"]",
                                               "f.json"));
}
