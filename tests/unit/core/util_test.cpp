// core hashing, environment lookup and size formatting: expected digests are the published SHA-256 test vectors
// (FIPS 180-2 "abc", the empty message) and sha256sum's output, never values produced by the code under test.
#include <shardforge/core.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace sf = shardforge;
namespace fs = std::filesystem;

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sf::core::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sf::core::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sf::core::sha256_hex("hello\n"), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
}

TEST(Sha256, IncrementalEqualsOneShot) {
    // FIPS 180-2's two-block message, fed in uneven pieces through both update overloads.
    const std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sf::core::Sha256 h;
    h.update(std::string_view(msg).substr(0, 5));
    h.update(std::as_bytes(std::span(msg.data() + 5, 20)));
    h.update(std::string_view(msg).substr(25));
    EXPECT_EQ(sf::core::to_hex(h.final()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FileAndMissingFile) {
    const fs::path dir = fs::temp_directory_path() / ("sf_core_hash_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "abc", std::ios::binary) << "abc";
    EXPECT_EQ(sf::core::sha256_file_hex((dir / "abc").string()),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    try {
        (void)sf::core::sha256_file_hex((dir / "missing").string());
        FAIL() << "no error for a missing file";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Io);
        EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

TEST(Hex, LowerCaseTwoDigitsPerByte) {
    const std::uint8_t b[] = {0x00, 0x0f, 0xa0, 0xff};
    EXPECT_EQ(sf::core::to_hex(b), "000fa0ff");
}

TEST(Env, UnsetEmptyAndSet) {
    ::unsetenv("SF_CORE_ENV_TEST");
    EXPECT_EQ(sf::core::env("SF_CORE_ENV_TEST"), "");
    ::setenv("SF_CORE_ENV_TEST", "", 1);
    EXPECT_EQ(sf::core::env("SF_CORE_ENV_TEST"), "");
    ::setenv("SF_CORE_ENV_TEST", "a b=c", 1);
    EXPECT_EQ(sf::core::env("SF_CORE_ENV_TEST"), "a b=c");
    ::unsetenv("SF_CORE_ENV_TEST");
}

TEST(HumanSize, DecimalUnits) {
    EXPECT_EQ(sf::core::human_size(0), "0 B");
    EXPECT_EQ(sf::core::human_size(999), "999 B");
    EXPECT_EQ(sf::core::human_size(1000), "1.0 kB");
    EXPECT_EQ(sf::core::human_size(2048), "2.0 kB");
    EXPECT_EQ(sf::core::human_size(3'300'000), "3.3 MB");
    EXPECT_EQ(sf::core::human_size(1'250'000'000), "1.25 GB");
    EXPECT_EQ(sf::core::human_size(50'000'000'000ULL), "50.00 GB");
}
