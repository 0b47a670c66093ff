// Xet formats (src/hub/xet.hpp) on the test vectors docs/xet.md quotes (computed by @huggingface/xetchunk-wasm
// 0.2.0 and the xet-core Wasm build; the conformance test tests/conformance/xet/ compares with both directly).
#include "hub/xet.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/gearhash.hpp"

namespace sf = shardforge;
namespace xet = shardforge::hub::xet;

namespace {

// splitmix64(seed): the generator of huggingface.js packages/xetchunk-wasm/tests/index.test.ts, each output
// written as a little-endian u64, the stream truncated to n bytes.
std::vector<std::uint8_t> splitmix64_bytes(std::uint64_t seed, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    std::uint64_t state = seed;
    for (std::size_t i = 0; i < n; i += 8) {
        state += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        for (std::size_t k = 0; k < 8 && i + k < n; ++k) out[i + k] = static_cast<std::uint8_t>(z >> (8 * k));
    }
    return out;
}

std::vector<std::uint64_t> ends_of(const std::vector<xet::Chunk>& chunks) {
    std::vector<std::uint64_t> e;
    std::uint64_t at = 0;
    for (const auto& c : chunks) e.push_back(at += c.length);
    return e;
}

TEST(XetGearTable, EqualsTheTableTheFormatFixes) {
    EXPECT_EQ(sf::core::gear_table[0], 0xb088d3a9e840f559ull);
    EXPECT_EQ(sf::core::gear_table[1], 0x5652c7f739ed20d6ull);
    EXPECT_EQ(sf::core::gear_table[254], 0xcc8bab4939f7f3f6ull);
    EXPECT_EQ(sf::core::gear_table[255], 0x63c7a906c1dd187bull);
    sf::core::Sha256 h;
    for (const std::uint64_t v : sf::core::gear_table) {
        std::uint8_t b[8];
        for (int k = 0; k < 8; ++k) b[k] = static_cast<std::uint8_t>(v >> (8 * k));
        h.update(std::as_bytes(std::span(b)));
    }
    EXPECT_EQ(sf::core::to_hex(h.final()), "e1d3936666d7ae7a977c958e9afcc75f90aaca758ce5fbe4ece61dffefe1912c");
}

TEST(XetHex, ReadsEachEightByteGroupAsLittleEndian) {
    xet::Hash h{};
    for (std::size_t i = 0; i < 32; ++i) h[i] = static_cast<std::uint8_t>(i);
    EXPECT_EQ(xet::to_hex(h), "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918");
    EXPECT_EQ(xet::from_hex(xet::to_hex(h)), h);
    EXPECT_FALSE(xet::from_hex("07"));
    EXPECT_FALSE(xet::from_hex(std::string(63, '0') + "g"));
}

TEST(XetChunking, SplitmixSeed0MatchesBothOracles) {
    const auto data = splitmix64_bytes(0, 1000000);
    ASSERT_EQ(data[0], 175);
    ASSERT_EQ(data[127], 132);
    const std::vector<std::uint64_t> want = {84493,  134421, 144853, 243318, 271793, 336457, 467529,
                                             494581, 582000, 596735, 616815, 653164, 678202, 724510,
                                             815591, 827760, 958832, 991092, 1000000};
    for (const std::size_t min_test : {xet::min_test_spec, xet::min_test_js}) {
        const auto chunks = xet::chunk_bytes(data, min_test);
        EXPECT_EQ(ends_of(chunks), want) << "min_test " << min_test;
        ASSERT_FALSE(chunks.empty());
        EXPECT_EQ(xet::to_hex(chunks[0].hash), "6eca1e7dadaf08cca5d82d318c800f07c2ddcec115a7e8627e5edd9605b94b8d");
        EXPECT_EQ(xet::to_hex(xet::file_hash(chunks)), "3d17b2d7d64a0e011b6717a52d9a16bd2c3f05b743fa8adf52a7d75dafab6d89");
        EXPECT_EQ(xet::to_hex(xet::xorb_hash(chunks)), "6f2ce16ca5e317f0100ff0e7e5bf40a0de9032e9ee1ad04b6b8ff4e36cdfbf6c");
        EXPECT_EQ(xet::to_hex(xet::verification_hash(chunks)),
                  "6daf15a7ed258b91f607e8f5e6723a8564292d12c8104c156f7bad9c255a0180");
    }
}

TEST(XetChunking, ConstantBytesCutAtTheMaximumChunkSize) {
    const std::vector<std::uint8_t> data(1000000, 0x3B);
    const auto chunks = xet::chunk_bytes(data);
    std::vector<std::uint64_t> want;
    for (std::uint64_t e = 131072; e < 1000000; e += 131072) want.push_back(e);
    want.push_back(1000000);
    EXPECT_EQ(ends_of(chunks), want);
    EXPECT_EQ(xet::to_hex(chunks[0].hash), "d3b528b30528f3ad802a015cdf93c531d4da754a1f8c0d341a8f111fd8b6f04e");
    EXPECT_EQ(xet::to_hex(xet::file_hash(chunks)), "53f845640fcd1c7440befff65bd93434c83a30c6559a705597d61f2ef64e2f88");
}

// The one-constant difference: at chunk sizes 8128..8191 the JS chunker cuts, the specification's does not.
TEST(XetChunking, MinimumChunkConstantChangesSplitmixSeed2) {
    const auto data = splitmix64_bytes(2, 1000000);
    const auto js = ends_of(xet::chunk_bytes(data, xet::min_test_js));
    const auto spec = ends_of(xet::chunk_bytes(data, xet::min_test_spec));
    const std::vector<std::uint64_t> js_tail = {824627, 839848, 847976, 856104, 875730, 922122, 1000000};
    const std::vector<std::uint64_t> spec_tail = {824627, 839848, 875730, 922122, 1000000};
    ASSERT_GE(js.size(), js_tail.size());
    ASSERT_GE(spec.size(), spec_tail.size());
    EXPECT_EQ(std::vector<std::uint64_t>(js.end() - 7, js.end()), js_tail);
    EXPECT_EQ(std::vector<std::uint64_t>(spec.end() - 5, spec.end()), spec_tail);
    EXPECT_EQ(std::vector<std::uint64_t>(js.begin(), js.begin() + 15), std::vector<std::uint64_t>(spec.begin(), spec.begin() + 15));
    EXPECT_EQ(xet::to_hex(xet::file_hash(xet::chunk_bytes(data, xet::min_test_js))),
              "a04a11c44ee2d7ecd96bb0be318dc57669320bc6968ebb9f925aee2cc0418185");
    EXPECT_EQ(xet::to_hex(xet::file_hash(xet::chunk_bytes(data, xet::min_test_spec))),
              "4022c2ff34fa7a3823cb86e952049ddada6b70a0db8bfeb9cb9941b7c797f994");
}

TEST(XetChunking, OneShortChunkIsItsOwnXorb) {
    const auto data = splitmix64_bytes(7, 5000);
    const auto chunks = xet::chunk_bytes(data);
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks[0].length, 5000u);
    EXPECT_EQ(xet::to_hex(chunks[0].hash), "869e419300bb922163e604e01a8a1c8c2955baf1d704f5971362d83e411329e1");
    EXPECT_EQ(xet::xorb_hash(chunks), chunks[0].hash);
    EXPECT_EQ(xet::chunk_hash(data), chunks[0].hash);
    EXPECT_EQ(xet::to_hex(xet::file_hash(chunks)), "b166954de3368ffcd45a0807f0ae7e5d4ae148421c9d2e42e3556873dfc8341c");
}

TEST(XetChunking, EmptyInputHasNoChunksAndTheZeroFileHash) {
    EXPECT_TRUE(xet::chunk_bytes({}).empty());
    EXPECT_EQ(xet::file_hash({}), xet::Hash{});
}

TEST(XetChunking, BoundariesDoNotDependOnHowTheInputIsSplit) {
    const auto data = splitmix64_bytes(11, 3000000);
    for (const std::size_t min_test : {xet::min_test_spec, xet::min_test_js}) {
        const auto one_shot = xet::chunk_bytes(data, min_test);
        std::mt19937_64 rng(min_test);
        for (int trial = 0; trial < 4; ++trial) {
            xet::ChunkHasher h(min_test);
            for (std::size_t pos = 0; pos < data.size();) {
                const std::size_t step = std::min<std::size_t>(data.size() - pos, 1 + rng() % (trial < 2 ? 9000 : 300000));
                h.update(std::span(data).subspan(pos, step));
                pos += step;
            }
            const auto split = h.finish();
            ASSERT_EQ(split.size(), one_shot.size());
            for (std::size_t i = 0; i < split.size(); ++i) {
                EXPECT_EQ(split[i].length, one_shot[i].length) << i;
                EXPECT_EQ(split[i].hash, one_shot[i].hash) << i;
            }
        }
    }
}

// A file of three copies of one random block: the repeated chunks are stored once and referenced by extra terms;
// the terms still cover the file, in order.
TEST(XetPacker, RepeatedChunksAreStoredOnceAndTermsCoverTheFile) {
    const auto block = splitmix64_bytes(3, 1 << 20);
    std::vector<std::uint8_t> data;
    for (int i = 0; i < 3; ++i) data.insert(data.end(), block.begin(), block.end());
    const auto chunks = xet::chunk_bytes(data);
    xet::Packer p;
    const auto e = p.add_file(0, chunks, sf::core::Sha256Digest{});
    const auto xorbs = p.finish();
    ASSERT_EQ(xorbs.size(), 1u);
    EXPECT_LT(xorbs[0].serialized_bytes, data.size() / 2) << "repeated chunks were stored again";
    EXPECT_GT(e.terms.size(), 1u);
    std::uint64_t covered = 0;
    std::size_t i_chunk = 0;
    for (const auto& t : e.terms) {
        ASSERT_LT(t.chunk_start, t.chunk_end);
        std::vector<xet::Chunk> in_term(xorbs[0].chunks.begin() + t.chunk_start, xorbs[0].chunks.begin() + t.chunk_end);
        for (const auto& c : in_term) {
            ASSERT_LT(i_chunk, chunks.size());
            EXPECT_EQ(c.hash, chunks[i_chunk].hash) << "term chunk " << i_chunk << " is not the file's";
            ++i_chunk;
        }
        EXPECT_EQ(t.verification, xet::verification_hash(in_term));
        covered += t.unpacked_bytes;
    }
    EXPECT_EQ(i_chunk, chunks.size());
    EXPECT_EQ(covered, data.size());
    EXPECT_EQ(e.size, data.size());
}

TEST(XetPacker, XorbsCloseAtTheChunkCountAndByteLimits) {
    // 8192 + 10 distinct chunks of 8000 bytes (64.1 MB of records): the count limit closes the first xorb.
    std::vector<xet::Chunk> small(xet::max_xorb_chunks + 10);
    for (std::size_t i = 0; i < small.size(); ++i) {
        small[i].length = 8000;
        small[i].hash[0] = static_cast<std::uint8_t>(i);
        small[i].hash[1] = static_cast<std::uint8_t>(i >> 8);
    }
    xet::Packer p;
    const auto e = p.add_file(0, small, {});
    auto xorbs = p.finish();
    ASSERT_EQ(xorbs.size(), 2u);
    EXPECT_EQ(xorbs[0].chunks.size(), xet::max_xorb_chunks);
    EXPECT_EQ(xorbs[1].chunks.size(), 10u);
    ASSERT_EQ(e.terms.size(), 2u);
    EXPECT_EQ(e.terms[1].xorb, 1u);
    EXPECT_EQ(e.terms[1].chunk_start, 0u);
    // 600 distinct max-size chunks: 64 MiB of records hold 511 of them (8 + 131072 bytes each).
    std::vector<xet::Chunk> big(600);
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i].length = xet::max_chunk_size;
        big[i].hash[5] = static_cast<std::uint8_t>(i);
        big[i].hash[6] = static_cast<std::uint8_t>(i >> 8);
    }
    xet::Packer q;
    (void)q.add_file(0, big, {});
    xorbs = q.finish();
    ASSERT_EQ(xorbs.size(), 2u);
    EXPECT_EQ(xorbs[0].chunks.size(), xet::max_xorb_bytes / (xet::max_chunk_size + xet::chunk_header_bytes));
    EXPECT_LE(xorbs[0].serialized_bytes, xet::max_xorb_bytes);
}

TEST(XetSerialize, XorbRecordsCarryHeaderAndBytes) {
    const auto data = splitmix64_bytes(5, 200000);
    const auto chunks = xet::chunk_bytes(data);
    xet::Packer p;
    (void)p.add_file(0, chunks, {});
    const auto xorbs = p.finish();
    ASSERT_EQ(xorbs.size(), 1u);
    const auto bytes = xet::serialize_xorb(xorbs[0], [&](const xet::ChunkSource& s, std::span<std::uint8_t> out) {
        std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(s.offset), out.size(), out.begin());
    });
    ASSERT_EQ(bytes.size(), data.size() + 8 * chunks.size());
    EXPECT_EQ(bytes.size(), xorbs[0].serialized_bytes);
    std::size_t at = 0, src = 0;
    for (const auto& c : chunks) {
        EXPECT_EQ(bytes[at], 0);
        EXPECT_EQ(bytes[at + 1] | bytes[at + 2] << 8 | bytes[at + 3] << 16, static_cast<int>(c.length));
        EXPECT_EQ(bytes[at + 4], 0);
        EXPECT_EQ(bytes[at + 5] | bytes[at + 6] << 8 | bytes[at + 7] << 16, static_cast<int>(c.length));
        EXPECT_TRUE(std::equal(data.begin() + static_cast<std::ptrdiff_t>(src),
                               data.begin() + static_cast<std::ptrdiff_t>(src + c.length),
                               bytes.begin() + static_cast<std::ptrdiff_t>(at + 8)));
        at += 8 + c.length;
        src += c.length;
    }
}

std::uint64_t u64_at(const std::vector<std::uint8_t>& b, std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[at + static_cast<std::size_t>(i)];
    return v;
}
std::uint32_t u32_at(const std::vector<std::uint8_t>& b, std::size_t at) {
    return static_cast<std::uint32_t>(u64_at(b, at) & 0xFFFFFFFFu);
}

// The layout of docs/xet.md "Shards", field by field, for one empty and one two-chunk file.
TEST(XetSerialize, ShardLayoutWithAndWithoutFooter) {
    const auto data = splitmix64_bytes(0, 134421);
    const auto chunks = xet::chunk_bytes(data);
    ASSERT_EQ(chunks.size(), 2u);  // 84493 + 49928 (the first two chunks of the 1e6-byte vector)
    xet::Packer p;
    std::vector<xet::FileEntry> files;
    sf::core::Sha256Digest sha{};
    for (std::size_t i = 0; i < 32; ++i) sha[i] = static_cast<std::uint8_t>(i);
    files.push_back(p.add_file(0, {}, sha));
    files.push_back(p.add_file(1, chunks, sha));
    const auto xorbs = p.finish();
    const auto s = xet::serialize_shard(files, xorbs);
    // header 48, empty file (header + ext) 96, file 2 (header, 1 term, 1 verification, ext) 192, bookend 48,
    // xorb (header + 2 entries) 144, bookend 48.
    ASSERT_EQ(s.size(), 48u + 96 + 192 + 48 + 144 + 48);
    EXPECT_EQ(std::string(s.begin(), s.begin() + 14), "HFRepoMetaData");
    EXPECT_EQ(s[31], 0xa9);
    EXPECT_EQ(u64_at(s, 32), 2u);
    EXPECT_EQ(u64_at(s, 40), 0u);
    // empty file: zero hash, flags, no entries, the SHA-256 with each 8-byte group reversed
    EXPECT_TRUE(std::all_of(s.begin() + 48, s.begin() + 80, [](auto b) { return b == 0; }));
    EXPECT_EQ(u32_at(s, 80), 0xC0000000u);
    EXPECT_EQ(u32_at(s, 84), 0u);
    EXPECT_EQ(s[96], 7);
    EXPECT_EQ(s[103], 0);
    EXPECT_EQ(s[104], 15);
    // second file
    const std::size_t f2 = 48 + 96;
    EXPECT_TRUE(std::equal(files[1].file_hash.begin(), files[1].file_hash.end(), s.begin() + f2));
    EXPECT_EQ(u32_at(s, f2 + 36), 1u);
    EXPECT_TRUE(std::equal(xorbs[0].hash.begin(), xorbs[0].hash.end(), s.begin() + f2 + 48));
    EXPECT_EQ(u32_at(s, f2 + 48 + 36), 134421u);
    EXPECT_EQ(u32_at(s, f2 + 48 + 40), 0u);
    EXPECT_EQ(u32_at(s, f2 + 48 + 44), 2u);
    EXPECT_TRUE(std::equal(files[1].terms[0].verification.begin(), files[1].terms[0].verification.end(),
                           s.begin() + f2 + 96));
    const std::size_t bookend = f2 + 192;
    EXPECT_TRUE(std::all_of(s.begin() + bookend, s.begin() + bookend + 32, [](auto b) { return b == 0xFF; }));
    const std::size_t cas = bookend + 48;
    EXPECT_EQ(u32_at(s, cas + 36), 2u);
    EXPECT_EQ(u32_at(s, cas + 40), 134421u);
    EXPECT_EQ(u32_at(s, cas + 44), 134437u);
    EXPECT_EQ(u32_at(s, cas + 48 + 32), 0u);
    EXPECT_EQ(u32_at(s, cas + 48 + 36), 84493u);
    EXPECT_EQ(u32_at(s, cas + 96 + 32), 84493u);
    EXPECT_EQ(u32_at(s, cas + 96 + 36), 49928u);

    const auto sf = xet::serialize_shard(files, xorbs, 1234567);
    ASSERT_EQ(sf.size(), s.size() + 200);
    EXPECT_TRUE(std::equal(s.begin() + 48, s.end(), sf.begin() + 48));
    EXPECT_EQ(u64_at(sf, 40), 200u);
    const std::size_t ft = s.size();
    EXPECT_EQ(u64_at(sf, ft), 1u);
    EXPECT_EQ(u64_at(sf, ft + 8), 48u);
    EXPECT_EQ(u64_at(sf, ft + 16), cas);
    EXPECT_EQ(u64_at(sf, ft + 104), 1234567u);
    EXPECT_EQ(u64_at(sf, ft + 168), 134437u);
    EXPECT_EQ(u64_at(sf, ft + 184), 134421u);
    EXPECT_EQ(u64_at(sf, ft + 192), ft);
}

}  // namespace

namespace {

// Chunks the CAS already has (a global dedup answer) are referenced in their remote xorb: remote terms carry that
// xorb's hash in the shard, and no CAS-info block is written for it.
TEST(XetPacker, RemoteChunksBecomeRemoteTermsWithoutCasBlocks) {
    const auto data = splitmix64_bytes(0, 134421);
    const auto chunks = xet::chunk_bytes(data);   // 84493 + 49928
    ASSERT_EQ(chunks.size(), 2u);
    xet::Hash remote{};
    remote.fill(0xAB);
    xet::Packer p;
    p.add_remote(chunks[0].hash, remote, 7);
    const auto e = p.add_file(0, chunks, {});
    const auto xorbs = p.finish();
    ASSERT_EQ(xorbs.size(), 1u);
    ASSERT_EQ(xorbs[0].chunks.size(), 1u);              // only the second chunk is stored
    EXPECT_EQ(xorbs[0].chunks[0].hash, chunks[1].hash);
    ASSERT_EQ(e.terms.size(), 2u);
    EXPECT_TRUE(e.terms[0].remote);
    EXPECT_EQ(e.terms[0].chunk_start, 7u);
    EXPECT_EQ(e.terms[0].chunk_end, 8u);
    EXPECT_EQ(e.terms[0].unpacked_bytes, 84493u);
    EXPECT_FALSE(e.terms[1].remote);
    const std::vector<xet::FileEntry> files = {e};
    const auto s = xet::serialize_shard(files, xorbs, std::nullopt, p.remote_xorbs());
    // header 48, file: header + 2 terms + 2 verifications + ext = 288, bookend 48, one xorb block 96, bookend 48.
    ASSERT_EQ(s.size(), 48u + 288 + 48 + 96 + 48);
    EXPECT_TRUE(std::all_of(s.begin() + 96, s.begin() + 128, [](auto b) { return b == 0xAB; }));   // term 0's xorb
    EXPECT_EQ(u32_at(s, 96 + 40), 7u);
    EXPECT_TRUE(std::equal(xorbs[0].hash.begin(), xorbs[0].hash.end(), s.begin() + 144));          // term 1's xorb
    EXPECT_TRUE(std::equal(xorbs[0].hash.begin(), xorbs[0].hash.end(), s.begin() + 48 + 288 + 48));  // the one block
}

// A dedup answer built byte by byte here: empty file section, one CAS block of two chunk HMACs, footer with the key.
TEST(XetDedup, ParsesTheAnswerShardKeyAndBlocks) {
    std::vector<std::uint8_t> b(48 + 48 + 48 * 3 + 48 + 200, 0);
    const char tag[] = "HFRepoMetaData";
    std::copy(tag, tag + 14, b.begin());
    const std::uint8_t tail[] = {0x55, 0x69, 0x67, 0x45, 0x6a, 0x7b, 0x81, 0x57, 0x83, 0xa5, 0xbd, 0xd9, 0x5c, 0xcd, 0xd1, 0x4a, 0xa9};
    std::copy(std::begin(tail), std::end(tail), b.begin() + 15);
    b[32] = 2;      // version
    b[40] = 200;    // footer size
    std::fill(b.begin() + 48, b.begin() + 80, 0xFF);                    // empty file section: bookend
    std::fill(b.begin() + 96, b.begin() + 128, 0x11);                   // xorb hash
    b[96 + 36] = 2;                                                      // two chunks
    std::fill(b.begin() + 144, b.begin() + 176, 0x22);                  // hmac 0
    std::fill(b.begin() + 192, b.begin() + 224, 0x33);                  // hmac 1
    std::fill(b.begin() + 240, b.begin() + 272, 0xFF);                  // bookend
    const std::size_t f = 288;
    std::fill(b.begin() + f + 72, b.begin() + f + 104, 0x44);           // key
    b[f + 112] = 0x10;                                                   // expiry 16
    const auto a = xet::parse_dedup_shard(b);
    EXPECT_EQ(a.key_expiry, 16u);
    xet::Hash h{};
    h.fill(0x44);
    EXPECT_EQ(a.key, h);
    ASSERT_EQ(a.blocks.size(), 1u);
    h.fill(0x11);
    EXPECT_EQ(a.blocks[0].xorb, h);
    ASSERT_EQ(a.blocks[0].chunk_hmacs.size(), 2u);
    h.fill(0x33);
    EXPECT_EQ(a.blocks[0].chunk_hmacs[1], h);
    b[40] = 0;   // without its footer there is no key: refused
    EXPECT_THROW((void)xet::parse_dedup_shard(b), sf::core::Error);
    b[40] = 200;
    b[0] = 'X';
    EXPECT_THROW((void)xet::parse_dedup_shard(b), sf::core::Error);
}

}  // namespace

// ------------------------------------------------------------------ download: LZ4 frames and chunk records
namespace {

// The LZ4 frame Debian's lz4 tool (package lz4, installed by jobs/install-deps.sh --test) writes for `data` with
// `flags`; an empty result when the tool fails (the caller asserts it is not).
std::vector<std::uint8_t> lz4_tool(const std::vector<std::uint8_t>& data, const std::string& flags) {
    // Per process: ctest runs the XetLz4 tests (and other builds' copies) at the same time.
    const std::string tag = std::to_string(::getpid());
    const std::string in = ::testing::TempDir() + "sf_lz4_in." + tag + ".bin";
    const std::string out = ::testing::TempDir() + "sf_lz4_out." + tag + ".lz4";
    {
        std::FILE* f = std::fopen(in.c_str(), "wb");
        if (!f) return {};
        if (!data.empty()) std::fwrite(data.data(), 1, data.size(), f);
        std::fclose(f);
    }
    const std::string cmd = "lz4 -q -f " + flags + " '" + in + "' '" + out + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) return {};
    std::vector<std::uint8_t> frame;
    std::FILE* f = std::fopen(out.c_str(), "rb");
    if (!f) return {};
    for (int c; (c = std::fgetc(f)) != EOF;) frame.push_back(static_cast<std::uint8_t>(c));
    std::fclose(f);
    std::remove(in.c_str());
    std::remove(out.c_str());
    return frame;
}

std::vector<std::uint8_t> sample(int kind, std::size_t n) {
    std::vector<std::uint8_t> v(n);
    std::mt19937_64 rng(n * 7 + static_cast<std::size_t>(kind));
    for (std::size_t i = 0; i < n; ++i) {
        if (kind == 0) v[i] = static_cast<std::uint8_t>(rng());                   // incompressible
        else if (kind == 1) v[i] = static_cast<std::uint8_t>("weights and biases "[i % 19]);  // long matches
        else v[i] = static_cast<std::uint8_t>((i / 3) % 7 == 0 ? rng() % 4 : 0);   // short matches, runs
    }
    return v;
}

}  // namespace

TEST(XetLz4, DecodesWhatTheLz4ToolWrites) {
    // Independent and linked blocks, 64 KiB blocks (several per input), content size, block and content checksums.
    for (const std::string flags : {"-1", "-9", "-B4 -BD", "-B4 --content-size -BX", "-B4 --no-frame-crc"}) {
        for (int kind = 0; kind < 3; ++kind) {
            for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{4096},
                                  std::size_t{65536 + 17}, std::size_t{300000}}) {
                const auto data = sample(kind, n);
                const auto frame = lz4_tool(data, flags);
                ASSERT_FALSE(frame.empty()) << "the lz4 tool failed (is Debian's lz4 installed?) flags " << flags;
                EXPECT_EQ(xet::lz4_frame_decode(frame, n), data) << flags << " kind " << kind << " n " << n;
            }
        }
    }
}

TEST(XetLz4, RefusesWrongSizesAndDamagedFrames) {
    const auto data = sample(1, 10000);
    const auto frame = lz4_tool(data, "-1");
    ASSERT_FALSE(frame.empty());
    EXPECT_THROW((void)xet::lz4_frame_decode(frame, 9999), sf::core::Error);
    EXPECT_THROW((void)xet::lz4_frame_decode(frame, 10001), sf::core::Error);
    EXPECT_THROW((void)xet::lz4_frame_decode(std::span(frame).first(frame.size() - 5), 10000), sf::core::Error);
    auto bad = frame;
    bad[0] ^= 1;   // magic
    EXPECT_THROW((void)xet::lz4_frame_decode(bad, 10000), sf::core::Error);
    // Every truncation and every single-byte change either decodes to the size asked for or throws: never a
    // crash or a read outside the input (run under ASan in CI).
    for (std::size_t i = 0; i < frame.size(); ++i) {
        auto f = frame;
        f[i] ^= 0x5A;
        try {
            EXPECT_EQ(xet::lz4_frame_decode(f, 10000).size(), 10000u);
        } catch (const sf::core::Error&) {
        }
        try {
            (void)xet::lz4_frame_decode(std::span(frame).first(i), 10000);
            ADD_FAILURE() << "a frame cut at " << i << " decoded";
        } catch (const sf::core::Error&) {
        }
    }
}

TEST(XetChunkRecords, DecodeStoredLz4AndByteGroupedChunks) {
    const auto a = sample(0, 5000), b = sample(1, 20000), c = sample(2, 8195);
    // c byte-grouped: bytes at positions = g (mod 4) for g = 0..3, then one LZ4 frame.
    std::vector<std::uint8_t> grouped;
    for (std::size_t g = 0; g < 4; ++g)
        for (std::size_t i = g; i < c.size(); i += 4) grouped.push_back(c[i]);
    const auto lb = lz4_tool(b, "-1"), lc = lz4_tool(grouped, "-1");
    ASSERT_FALSE(lb.empty());
    ASSERT_FALSE(lc.empty());
    std::vector<std::uint8_t> rec;
    auto put = [&](std::uint8_t scheme, const std::vector<std::uint8_t>& payload, std::size_t usize) {
        const std::size_t cs = payload.size();
        for (std::uint8_t x : {std::uint8_t{0}, std::uint8_t(cs), std::uint8_t(cs >> 8), std::uint8_t(cs >> 16), scheme,
                               std::uint8_t(usize), std::uint8_t(usize >> 8), std::uint8_t(usize >> 16)})
            rec.push_back(x);
        rec.insert(rec.end(), payload.begin(), payload.end());
    };
    put(0, a, a.size());
    put(1, lb, b.size());
    put(2, lc, c.size());
    const auto d = xet::decode_chunk_records(rec, 3);
    std::vector<std::uint8_t> want = a;
    want.insert(want.end(), b.begin(), b.end());
    want.insert(want.end(), c.begin(), c.end());
    EXPECT_EQ(d.bytes, want);
    EXPECT_EQ(d.lengths, (std::vector<std::uint32_t>{5000, 20000, 8195}));
    EXPECT_THROW((void)xet::decode_chunk_records(rec, 2), sf::core::Error);   // bytes after the records asked for
    EXPECT_THROW((void)xet::decode_chunk_records(rec, 4), sf::core::Error);   // a record missing
    auto bad = rec;
    bad[4] = 3;   // unknown scheme
    EXPECT_THROW((void)xet::decode_chunk_records(bad, 3), sf::core::Error);
    bad = rec;
    bad[0] = 1;   // version
    EXPECT_THROW((void)xet::decode_chunk_records(bad, 3), sf::core::Error);
}
