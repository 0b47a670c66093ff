// Helpers for the safetensors unit tests: temp directories and hand-built files.
#pragma once
#include <shardforge/formats.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace sf_st_test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
  public:
    TempDir() {
        static std::atomic<int> counter{0};
        const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = "sf_st_";
        name += std::to_string(::getpid()) + "_" + std::to_string(counter++);
        if (info) name += std::string("_") + info->name();
        path_ = fs::temp_directory_path() / name;
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path &path() const { return path_; }
    fs::path operator/(const std::string &f) const { return path_ / f; }

  private:
    fs::path path_;
};

inline void write_bytes(const fs::path &p, const std::string &bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << p;
}

inline std::string read_bytes(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string le64(std::uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return s;
}

// A safetensors file from a literal header (not padded unless the caller pads) and `data_size` data bytes
// (byte i = i & 0xff).
inline std::string st_file(const std::string &header_json, std::size_t data_size) {
    std::string s = le64(header_json.size()) + header_json;
    for (std::size_t i = 0; i < data_size; ++i) s += static_cast<char>(i & 0xff);
    return s;
}

} // namespace sf_st_test
