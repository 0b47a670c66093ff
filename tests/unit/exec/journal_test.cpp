// Resume journal records (src/exec/journal.hpp): a torn or corrupted tail is never trusted, every complete record
// before it is, and SHA-256 matches OpenSSL's published test vector.
#include "exec/journal.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sf = shardforge;
using sf::exec::resume::UnitRecord;

namespace {

UnitRecord make(std::uint32_t unit, std::size_t n_emits) {
    UnitRecord r;
    r.unit = unit;
    r.rank = static_cast<int>(unit % 3);
    r.seconds = 0.25 * unit;
    r.dw2 = unit % 2 ? 0.125 : -1;
    r.w2 = 2.5 * unit;
    for (std::size_t k = 0; k < n_emits; ++k) {
        sf::exec::resume::EmitFacts f;
        for (std::size_t i = 0; i < f.sha.size(); ++i) f.sha[i] = static_cast<std::uint8_t>(unit * 31 + k * 7 + i);
        f.nan_count = unit + k;
        f.q_err2 = k ? 0.0625 : -1;
        f.q_ref2 = k ? 3.0 : 0;
        r.emits.push_back(f);
    }
    return r;
}

std::vector<UnitRecord> decode(const std::string& s, std::size_t& valid) {
    return sf::exec::resume::decode_records(std::as_bytes(std::span(s.data(), s.size())), valid);
}

}  // namespace

TEST(Journal, RoundTrip) {
    std::string all;
    for (std::uint32_t u = 0; u < 5; ++u) all += sf::exec::resume::encode_record(make(u, u % 3 + 1));
    std::size_t valid = 0;
    const auto recs = decode(all, valid);
    ASSERT_EQ(recs.size(), 5u);
    EXPECT_EQ(valid, all.size());
    for (std::uint32_t u = 0; u < 5; ++u) {
        const UnitRecord want = make(u, u % 3 + 1);
        EXPECT_EQ(recs[u].unit, want.unit);
        EXPECT_EQ(recs[u].rank, want.rank);
        EXPECT_DOUBLE_EQ(recs[u].seconds, want.seconds);
        EXPECT_DOUBLE_EQ(recs[u].dw2, want.dw2);
        EXPECT_DOUBLE_EQ(recs[u].w2, want.w2);
        ASSERT_EQ(recs[u].emits.size(), want.emits.size());
        for (std::size_t k = 0; k < want.emits.size(); ++k) {
            EXPECT_EQ(recs[u].emits[k].sha, want.emits[k].sha);
            EXPECT_EQ(recs[u].emits[k].nan_count, want.emits[k].nan_count);
            EXPECT_DOUBLE_EQ(recs[u].emits[k].q_err2, want.emits[k].q_err2);
            EXPECT_DOUBLE_EQ(recs[u].emits[k].q_ref2, want.emits[k].q_ref2);
        }
    }
}

// kill -9 or a power loss can cut the file anywhere: only the records wholly before the cut survive.
TEST(Journal, TornTailAtEveryByteIsIgnored) {
    std::vector<std::size_t> ends;
    std::string all;
    for (std::uint32_t u = 0; u < 4; ++u) {
        all += sf::exec::resume::encode_record(make(u, 2));
        ends.push_back(all.size());
    }
    for (std::size_t cut = 0; cut <= all.size(); ++cut) {
        std::size_t valid = 0;
        const auto recs = decode(all.substr(0, cut), valid);
        std::size_t want = 0;
        while (want < ends.size() && ends[want] <= cut) ++want;
        ASSERT_EQ(recs.size(), want) << "cut at " << cut;
        EXPECT_EQ(valid, want ? ends[want - 1] : 0) << "cut at " << cut;
    }
}

// A flipped byte anywhere in a record (a torn sector, garbage appended) ends the trusted prefix there.
TEST(Journal, CorruptRecordEndsTheTrustedPrefix) {
    std::string all;
    std::vector<std::size_t> ends;
    for (std::uint32_t u = 0; u < 3; ++u) {
        all += sf::exec::resume::encode_record(make(u, 1));
        ends.push_back(all.size());
    }
    for (std::size_t pos = ends[0]; pos < ends[1]; ++pos) {
        std::string bad = all;
        bad[pos] = static_cast<char>(bad[pos] ^ 0x41);
        std::size_t valid = 0;
        const auto recs = decode(bad, valid);
        ASSERT_EQ(recs.size(), 1u) << "flip at " << pos;
        EXPECT_EQ(valid, ends[0]);
    }
}

TEST(Journal, Sha256KnownAnswer) {
    const std::string abc = "abc";  // FIPS 180-2 appendix B.1
    EXPECT_EQ(sf::exec::resume::to_hex(sf::exec::resume::sha256(std::as_bytes(std::span(abc.data(), abc.size())))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
