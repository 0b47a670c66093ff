// OutputHasher (--push-to-hub): the digest of a file whose pieces arrive in any order, from memory or read back,
// equals the SHA-256 of the file's bytes (computed here with OpenSSL's one-shot SHA256 over the whole buffer).
#include "exec/hasher.hpp"
#include "exec/journal.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

namespace sf = shardforge;
namespace fs = std::filesystem;

namespace {

std::string hex_sha(const std::vector<std::byte>& b) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), d);
    static const char* x = "0123456789abcdef";
    std::string s;
    for (unsigned char c : d) s += x[c >> 4], s += x[c & 15];
    return s;
}

// One tensor file: a header, then n tensors of `len` bytes each separated by `gap` zero bytes (alignment), one
// work unit per tensor. The file's bytes are written to OUT/f.bin.partial as exec would have.
struct Fixture {
    sf::plan::Plan p;
    std::vector<sf::plan::Unit> units;
    std::vector<std::byte> bytes;
    fs::path dir;
    Fixture(int n, std::uint64_t len, std::uint64_t gap) {
        dir = fs::temp_directory_path() / ("sf-hasher-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        p.out_dir = dir.string();
        sf::plan::FileOut f;
        f.name = "f.bin";
        f.header = std::string(37, 'H');
        std::uint64_t at = f.header.size();
        std::mt19937 rng(7);
        for (int i = 0; i < n; ++i) {
            at += gap;
            sf::plan::Item it;
            it.shape = {static_cast<std::int64_t>(len)};
            sf::plan::Emit e;
            e.file = 0;
            e.name = "t" + std::to_string(i);
            e.offset = at;
            e.nbytes = len;
            it.emits.push_back(e);
            p.items.push_back(it);
            at += len;
        }
        f.size = at + gap;  // trailing padding too
        p.files.push_back(f);
        units = sf::plan::units(p);
        bytes.assign(f.size, std::byte{0});
        std::copy(f.header.begin(), f.header.end(), reinterpret_cast<char*>(bytes.data()));
        for (const auto& it : p.items)
            for (std::uint64_t k = 0; k < it.emits[0].nbytes; ++k) bytes[it.emits[0].offset + k] = std::byte(rng() | 1);
        std::ofstream(dir / "f.bin.partial", std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    ~Fixture() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::span<const std::byte> piece(std::size_t unit) const {
        const auto& e = p.items[units[unit].item].emits[0];
        return std::span(bytes).subspan(e.offset, e.nbytes);
    }
    std::uint64_t offset(std::size_t unit) const { return p.items[units[unit].item].emits[0].offset; }
};

}  // namespace

TEST(OutputHasher, OutOfOrderWritesHashedFromMemoryEqualTheFileDigest) {
    Fixture fx(9, 1000, 24);
    std::vector<int> owner(fx.units.size(), 0);
    std::string got;
    int calls = 0;
    {
        sf::exec::OutputHasher h(fx.p, fx.units, owner, 0, false, 1 << 20, [&](std::uint32_t f, const std::string& sha) {
            EXPECT_EQ(f, 0u);
            got = sha;
            ++calls;
        });
        std::vector<std::size_t> order(fx.units.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(3));
        for (std::size_t u : order) h.wrote(0, fx.offset(u), fx.piece(u));
        h.finish();
        EXPECT_EQ(h.read_back(), 0u);
        EXPECT_EQ(h.from_memory(), fx.bytes.size());
        EXPECT_EQ(h.files_hashed(), 1u);
    }
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(got, hex_sha(fx.bytes));
}

TEST(OutputHasher, OverTheBufferCapAndOtherRanksRangesAreReadBackOnce) {
    Fixture fx(8, 4096, 0);
    // Units 0-3 are this rank's (written in reverse: no room to buffer them), 4-7 another rank's (learned from the
    // done bitmap of a progress round).
    std::vector<int> owner = {0, 0, 0, 0, 1, 1, 1, 1};
    std::string got;
    sf::exec::OutputHasher h(fx.p, fx.units, owner, 0, false, 0, [&](std::uint32_t, const std::string& sha) { got = sha; });
    for (int u = 3; u >= 0; --u) h.wrote(0, fx.offset(static_cast<std::size_t>(u)), fx.piece(static_cast<std::size_t>(u)));
    std::vector<std::uint64_t> bits(h.bitmap_words(), 0);
    bits[0] = 0xf0;  // units 4..7 done elsewhere
    h.on_round(bits);
    h.finish();
    EXPECT_EQ(got, hex_sha(fx.bytes));
    EXPECT_EQ(h.from_memory() + h.read_back(), fx.bytes.size());
    EXPECT_GE(h.read_back(), 4u * 4096u + 3u * 4096u);  // the other rank's half, and 3 of ours past the cap
}

TEST(OutputHasher, NotTheOwnerHashesNothingAndMarksItsUnits) {
    Fixture fx(4, 64, 8);
    std::vector<int> owner = {1, 1, 0, 0};  // rank 1 writes the first range: it owns the file
    int calls = 0;
    sf::exec::OutputHasher h(fx.p, fx.units, owner, 0, false, 1 << 20, [&](std::uint32_t, const std::string&) { ++calls; });
    EXPECT_FALSE(h.owns(0));
    h.wrote(0, fx.offset(2), fx.piece(2));
    h.mark_done(2);
    h.mark_done(3);
    EXPECT_EQ(h.done_bits()[0], 0b1100u);
    h.finish();
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(h.from_memory() + h.read_back(), 0u);
}

TEST(OutputHasher, GatherModeRankZeroOwnsEverything) {
    Fixture fx(5, 300, 5);
    std::vector<int> owner = {0, 1, 1, 2, 2};
    std::string got;
    sf::exec::OutputHasher h(fx.p, fx.units, owner, 0, true, 1 << 20, [&](std::uint32_t, const std::string& sha) { got = sha; });
    for (std::size_t u : {4u, 0u, 2u, 1u, 3u}) h.wrote(0, fx.offset(u), fx.piece(u));
    h.finish();
    EXPECT_EQ(got, hex_sha(fx.bytes));
    EXPECT_EQ(h.read_back(), 0u);
}
