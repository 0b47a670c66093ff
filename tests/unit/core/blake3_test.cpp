// BLAKE3 (src/core/blake3.hpp) against the official test vectors (BLAKE3-team/BLAKE3 test_vectors/test_vectors.json,
// a subset copied below) and against Debian's b3sum (the Rust reference crate's CLI) on random inputs of many sizes,
// in all three modes and with extended output.
#include "core/blake3.hpp"

#include <gtest/gtest.h>
#include <shardforge/core.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::core::Blake3;

namespace {

std::string hex(std::span<const std::uint8_t> b) { return sf::core::to_hex(b); }

// The official vectors' input: the repeating sequence 0, 1, ..., 250.
std::vector<std::uint8_t> official_input(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i % 251);
    return v;
}

constexpr std::string_view official_key = "whats the Elvish word for friend";
constexpr std::string_view official_context = "BLAKE3 2019-12-27 16:29:52 test vectors context";

sf::core::Blake3Key key_of(std::string_view s) {
    sf::core::Blake3Key k{};
    std::copy(s.begin(), s.end(), k.begin());
    return k;
}

struct Vector {
    std::size_t input_len;
    const char* hash;        // 131 bytes of extended output, hex
    const char* keyed_hash;
    const char* derive_key;
};

// Copied from the official test_vectors.json: the extremes (0, 1), the chunk edges (1023, 1024, 1025), a
// three-chunk tree (2049) and the largest case (100 chunks).
const Vector official[] = {
    {0,
     "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262e00f03e7b69af26b7faaf09fcd333050338ddfe085b8cc869ca98b206c08243a26f5487789e8f660afe6c99ef9e0c52b92e7393024a80459cf91f476f9ffdbda7001c22e159b402631f277ca96f2defdf1078282314e763699a31c5363165421cce14d",
     "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26b18171a2f22a4b94822c701f107153dba24918c4bae4d2945c20ece13387627d3b73cbf97b797d5e59948c7ef788f54372df45e45e4293c7dc18c1d41144a9758be58960856be1eabbe22c2653190de560ca3b2ac4aa692a9210694254c371e851bc8f",
     "2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d905630c8be290dfcf3e6842f13bddd573c098c3f17361f1f206b8cad9d088aa4a3f746752c6b0ce6a83b0da81d59649257cdf8eb3e9f7d4998e41021fac119deefb896224ac99f860011f73609e6e0e4540f93b273e56547dfd3aa1a035ba6689d89a0"},
    {1,
     "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213c3a6cb8bf623e20cdb535f8d1a5ffb86342d9c0b64aca3bce1d31f60adfa137b358ad4d79f97b47c3d5e79f179df87a3b9776ef8325f8329886ba42f07fb138bb502f4081cbcec3195c5871e6c23e2cc97d3c69a613eba131e5f1351f3f1da786545e5",
     "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b6568c0490609413006fbd428eb3fd14e7756d90f73a4725fad147f7bf70fd61c4e0cf7074885e92b0e3f125978b4154986d4fb202a3f331a3fb6cf349a3a70e49990f98fe4289761c8602c4e6ab1138d31d3b62218078b2f3ba9a88e1d08d0dd4cea11",
     "b3e2e340a117a499c6cf2398a19ee0d29cca2bb7404c73063382693bf66cb06c5827b91bf889b6b97c5477f535361caefca0b5d8c4746441c57617111933158950670f9aa8a05d791daae10ac683cbef8faf897c84e6114a59d2173c3f417023a35d6983f2c7dfa57e7fc559ad751dbfb9ffab39c2ef8c4aafebc9ae973a64f0c76551"},
    {1023,
     "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11a182d27a591b05592b15607500e1e8dd56bc6c7fc063715b7a1d737df5bad3339c56778957d870eb9717b57ea3d9fb68d1b55127bba6a906a4a24bbd5acb2d123a37b28f9e9a81bbaae360d58f85e5fc9d75f7c370a0cc09b6522d9c8d822f2f28f485",
     "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e890316d2e6d8b8c25b0a5b2180f94fb1a158ef508c3cde45e2966bd796a696d3e13efd86259d756387d9becf5c8bf1ce2192b87025152907b6d8cc33d17826d8b7b9bc97e38c3c85108ef09f013e01c229c20a83d9e8efac5b37470da28575fd755a10",
     "74a16c1c3d44368a86e1ca6df64be6a2f64cce8f09220787450722d85725dea59c413264404661e9e4d955409dfe4ad3aa487871bcd454ed12abfe2c2b1eb7757588cf6cb18d2eccad49e018c0d0fec323bec82bf1644c6325717d13ea712e6840d3e6e730d35553f59eff5377a9c350bcc1556694b924b858f329c44ee64b884ef00d"},
    {1024,
     "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af71cf8107265ecdaf8505b95d8fcec83a98a6a96ea5109d2c179c47a387ffbb404756f6eeae7883b446b70ebb144527c2075ab8ab204c0086bb22b7c93d465efc57f8d917f0b385c6df265e77003b85102967486ed57db5c5ca170ba441427ed9afa684e",
     "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4a78bc838c72852d4f49c864acb7adafe2478e824afe51c8919d06168414c265f298a8094b1ad813a9b8614acabac321f24ce61c5a5346eb519520d38ecc43e89b5000236df0597243e4d2493fd626730e2ba17ac4d8824d09d1a4a8f57b8227778e2de",
     "7356cd7720d5b66b6d0697eb3177d9f8d73a4a5c5e968896eb6a6896843027066c23b601d3ddfb391e90d5c8eccdef4ae2a264bce9e612ba15e2bc9d654af1481b2e75dbabe615974f1070bba84d56853265a34330b4766f8e75edd1f4a1650476c10802f22b64bd3919d246ba20a17558bc51c199efdec67e80a227251808d8ce5bad"},
    {1025,
     "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444f4c4a22b4b399155358a994e52bf255de60035742ec71bd08ac275a1b51cc6bfe332b0ef84b409108cda080e6269ed4b3e2c3f7d722aa4cdc98d16deb554e5627be8f955c98e1d5f9565a9194cad0c4285f93700062d9595adb992ae68ff12800ab67a",
     "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69362396b77fdc0d2634a552970843722066c3c15902ae5097e00ff53f1e116f1cd5352720113a837ab2452cafbde4d54085d9cf5d21ca613071551b25d52e69d6c81123872b6f19cd3bc1333edf0c52b94de23ba772cf82636cff4542540a7738d5b930",
     "effaa245f065fbf82ac186839a249707c3bddf6d3fdda22d1b95a3c970379bcb5d31013a167509e9066273ab6e2123bc835b408b067d88f96addb550d96b6852dad38e320b9d940f86db74d398c770f462118b35d2724efa13da97194491d96dd37c3c09cbef665953f2ee85ec83d88b88d11547a6f911c8217cca46defa2751e7f3ad"},
    {2049,
     "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b687952256303096de31d71d74103403822a2e0bc1eb193e7aecc9643a76b7bbc0c9f9c52e8783aae98764ca468962b5c2ec92f0c74eb5448d519713e09413719431c802f948dd5d90425a4ecdadece9eb178d80f26efccae630734dff63340285adec2aed3b51073ad3",
     "9f29700902f7c86e514ddc4df1e3049f258b2472b6dd5267f61bf13983b78dd5f9a88abfefdfa1e00b418971f2b39c64ca621e8eb37fceac57fd0c8fc8e117d43b81447be22d5d8186f8f5919ba6bcc6846bd7d50726c06d245672c2ad4f61702c646499ee1173daa061ffe15bf45a631e2946d616a4c345822f1151284712f76b2b0e",
     "2ea477c5515cc3dd606512ee72bb3e0e758cfae7232826f35fb98ca1bcbdf27316d8e9e79081a80b046b60f6a263616f33ca464bd78d79fa18200d06c7fc9bffd808cc4755277a7d5e09da0f29ed150f6537ea9bed946227ff184cc66a72a5f8c1e4bd8b04e81cf40fe6dc4427ad5678311a61f4ffc39d195589bdbc670f63ae70f4b6"},
    {102400,
     "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085e01c59dab908c04c3342b816941a26d69c2605ebee5ec5291cc55e15b76146e6745f0601156c3596cb75065a9c57f35585a52e1ac70f69131c23d611ce11ee4ab1ec2c009012d236648e77be9295dd0426f29b764d65de58eb7d01dd42248204f45f8e",
     "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7f9dbdd3e1d81dcbca3ba241bb18760f207710b751846faaeb9dff8262710999a59b2aa1aca298a032d94eacfadf1aa192418eb54808db23b56e34213266aa08499a16b354f018fc4967d05f8b9d2ad87a7278337be9693fc638a3bfdbe314574ee6fc4",
     "4652cff7a3f385a6103b5c260fc1593e13c778dbe608efb092fe7ee69df6e9c6d83a3e041bc3a48df2879f4a0a3ed40e7c961c73eff740f3117a0504c2dff4786d44fb17f1549eb0ba585e40ec29bf7732f0b7e286ff8acddc4cb1e23b87ff5d824a986458dcc6a04ac83969b80637562953df51ed1a7e90a7926924d2763778be8560"},
};

std::string xof_hex(const Blake3& h, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    h.finalize(out);
    return hex(out);
}

// The test vectors' rule: each 131-byte output, and its 32-byte prefix from the default-length output.
TEST(Blake3, MatchesTheOfficialTestVectorsInAllThreeModes) {
    for (const Vector& v : official) {
        SCOPED_TRACE("input_len " + std::to_string(v.input_len));
        const auto in = official_input(v.input_len);
        Blake3 plain;
        plain.update(in);
        EXPECT_EQ(xof_hex(plain, 131), v.hash);
        EXPECT_EQ(hex(plain.finalize()), std::string(v.hash, 64));
        EXPECT_EQ(hex(sf::core::blake3(in)), std::string(v.hash, 64));

        Blake3 keyed(key_of(official_key));
        keyed.update(in);
        EXPECT_EQ(xof_hex(keyed, 131), v.keyed_hash);
        EXPECT_EQ(hex(sf::core::blake3_keyed(key_of(official_key), in)), std::string(v.keyed_hash, 64));

        Blake3 derive = Blake3::derive_key(official_context);
        derive.update(in);
        EXPECT_EQ(xof_hex(derive, 131), v.derive_key);
        EXPECT_EQ(hex(sf::core::blake3_derive_key(official_context, in)), std::string(v.derive_key, 64));
    }
}

// Any split of the input into update() calls gives the same output, and finalize() leaves the state usable.
TEST(Blake3, IncrementalUpdatesAnySplitEqualOneShot) {
    const auto in = official_input(102400);
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        Blake3 h(key_of(official_key));
        std::size_t pos = 0;
        while (pos < in.size()) {
            const std::size_t step = std::min<std::size_t>(in.size() - pos, rng() % (trial < 10 ? 70 : 3000));
            h.update(std::span(in).subspan(pos, step));
            pos += step;
            if (trial % 3 == 0) (void)h.finalize();   // must not disturb the state
        }
        EXPECT_EQ(xof_hex(h, 131), official[6].keyed_hash) << "trial " << trial;
    }
    Blake3 r(key_of(official_key));
    r.update(in);
    r.reset();
    r.update(std::span(in).first(1025));
    EXPECT_EQ(xof_hex(r, 131), official[4].keyed_hash);
}

// ---------------------------------------------------------------- b3sum (Debian package b3sum)

std::string run(const std::string& cmd) {
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    if (!p) return "popen failed";
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, p.get())) > 0) out.append(buf, n);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

class Blake3VsB3sum : public ::testing::Test {
protected:
    void SetUp() override {
        // No skip: the b3sum package is a test dependency (jobs/install-deps.sh --test).
        ASSERT_EQ(run("command -v b3sum >/dev/null && echo yes"), "yes")
            << "b3sum is not installed: install the Debian package b3sum (jobs/install-deps.sh --test)";
        dir_ = std::filesystem::temp_directory_path() /
               ("sf_blake3_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                std::to_string(reinterpret_cast<std::uintptr_t>(this)));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string write(const std::string& name, std::span<const std::uint8_t> bytes) {
        const auto p = dir_ / name;
        std::ofstream f(p, std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return p.string();
    }
    std::filesystem::path dir_;
};

TEST_F(Blake3VsB3sum, RandomInputsOfManySizesInAllModesEqualB3sum) {
    const std::size_t sizes[] = {0,    1,    2,    63,    64,    65,    1023,  1024,   1025,
                                 2047, 2048, 2049, 3072,  4095,  4097,  8192,  16383,  31745,
                                 65536, 65537, 102401, (1u << 20) + 7, (3u << 20) + 12345};
    std::mt19937_64 rng(20261207);
    sf::core::Blake3Key key{};
    for (auto& b : key) b = static_cast<std::uint8_t>(rng());
    const std::string key_file = write("key", key);
    const std::string context = "shardforge test 2026-12-07 blake3 context";
    for (const std::size_t n : sizes) {
        SCOPED_TRACE("size " + std::to_string(n));
        std::vector<std::uint8_t> in(n);
        for (auto& b : in) b = static_cast<std::uint8_t>(rng() >> 56);
        const std::string f = write("in", in);
        const std::size_t out_len = n % 3 == 0 ? 32 : (n % 3 == 1 ? 200 : 65);   // default, several blocks, 1+
        const std::string len = " --length " + std::to_string(out_len);

        Blake3 plain;
        plain.update(in);
        EXPECT_EQ(xof_hex(plain, out_len), run("b3sum --no-names" + len + " '" + f + "'"));
        Blake3 keyed(key);
        keyed.update(in);
        EXPECT_EQ(xof_hex(keyed, out_len), run("b3sum --no-names --keyed" + len + " '" + f + "' < '" + key_file + "'"));
        Blake3 derive = Blake3::derive_key(context);
        derive.update(in);
        EXPECT_EQ(xof_hex(derive, out_len),
                  run("b3sum --no-names --derive-key '" + context + "'" + len + " '" + f + "'"));
    }
}

// Every official input length, with b3sum as the oracle for the cases not copied above.
TEST_F(Blake3VsB3sum, EveryOfficialInputLengthEqualsB3sum) {
    const std::size_t lens[] = {0,    1,    1023, 1024, 1025, 2048, 2049, 3072,  3073,  4096,  4097,
                                5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744, 102400};
    const std::string key_file = write("key", std::span(reinterpret_cast<const std::uint8_t*>(official_key.data()),
                                                        official_key.size()));
    for (const std::size_t n : lens) {
        SCOPED_TRACE("input_len " + std::to_string(n));
        const auto in = official_input(n);
        const std::string f = write("in", in);
        Blake3 keyed(key_of(official_key));
        keyed.update(in);
        EXPECT_EQ(xof_hex(keyed, 131), run("b3sum --no-names --keyed --length 131 '" + f + "' < '" + key_file + "'"));
        Blake3 plain;
        plain.update(in);
        EXPECT_EQ(xof_hex(plain, 131), run("b3sum --no-names --length 131 '" + f + "'"));
    }
}

}  // namespace
