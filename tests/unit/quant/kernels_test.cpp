// Kernel tests that need no oracle library: golden vectors (hashes of the bytes ggml's own libggml-base produces,
// ggml/src/ggml-quants.c), the rounding primitive, and small blocks whose expected bytes were computed with numpy
// following ggml-quants.c's formulas (float32 throughout).
#include <shardforge/quant.hpp>

#include "quant/kernels/common.hpp"
#include "quant/kernels/iq4.hpp"
#include "quant/kernels/k_quants.hpp"

#include <gtest/gtest.h>

#include "oracle_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

using oracle::golden_input;

std::uint64_t fnv(const void* p, std::size_t n) {  // the golden hashes' variant: FNV-1a-64 loop, non-standard start
    std::uint64_t h = 1469598103934665603ull;
    const auto* b = static_cast<const std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
    std::string s;
    char buf[3];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", p[i]);
        s += buf;
    }
    return s;
}

TEST(QuantGolden, InputGeneratorMatchesSpec) {
    const auto x = golden_input();
    EXPECT_EQ(fnv(x.data(), x.size() * 4), 0xc6f5317c3ce105edull);
    const std::uint32_t first[8] = {0xbe8d4bb2, 0x3c00f027, 0x3be5ee27, 0x3b5be473,
                                    0x3c43db80, 0x3c818e57, 0x3d2e9b1b, 0x3b8dc167};
    for (int i = 0; i < 8; ++i) EXPECT_EQ(sf::core::f32_bits(x[static_cast<std::size_t>(i)]), first[i]) << i;
}

struct GoldenRow {
    GgmlType type;
    std::size_t row_bytes;
    std::uint64_t hash;
    const char* first;  // leading bytes of the output, hex
};
const GoldenRow kGolden[] = {
    {GgmlType::F16, 1024, 0xc6ace8867e3151d2ull, "6ab408202f1fdf1a1f220c2475296e1c"},
    {GgmlType::BF16, 1024, 0xf1ff2d1e1f4e7aaaull, "8dbe013ce63b5c3b443c823c2f3d8e3b"},
    {GgmlType::Q4_0, 288, 0xf32dbb8355780d29ull, "6a2880987898988899789887979897888989"},
    {GgmlType::Q4_1, 320, 0x4599b97b671d3000ull, "70256ab4d0edcdedeeceefbdeddcebeeecdedede"},
    {GgmlType::Q5_0, 352, 0x6381c720e50efdedull, "6a24fee95bff0020f02021f112e0200f2e211f110101"},
    {GgmlType::Q5_1, 384, 0xe84f45c41119fd20ull, "43216ab4feffffffb0ec9cebec9cdf7beab9d7ecd9ccadbd"},
    {GgmlType::Q8_0, 544, 0x0fec8bd0d2b079ccull, "73188104030206071402fdf7ef08f7070a08000df70d0df90aee0f000c0e0a05fc01"},
    {GgmlType::Q2_K, 168, 0x77d94a5bce181ae6ull,
     "ff2424341323ac24242434149b2524259813dfbbdb87afe3d3dfafe7bbcbd7cba9fb99eb6b61660ca761b6ab5a1695babda945eefa726deca33dfee528763e7d"},
    {GgmlType::Q3_K, 220, 0x8bbe16176dbaa72eull,
     "f4b71debef5779bbcb7de8db71cd6f7d3f5fd8efd790096239d5cd7dc3c1b85fcc0c181000e0217c38142760cc1c045c50e36ec383b73648bb80ba1fe219b790"},
    {GgmlType::Q4_K, 288, 0xc365534a1cf92d14ull,
     "930d7a1c3f56906b3f0d88298fa66aa2a03dbd8d8d8eef2d4dcccb8e9cae7e9e7d7e6c8e8e2c2ebb4e0d4e6e8e3d3c8da607d5cdd6a3bae9d8d5baebafd5d7f4"},
    {GgmlType::Q5_K, 352, 0x18d9f6b0f964990dull,
     "62097c1c3f55906b3f0d88298fb669a2eac10bffdb4b6feddd6bffcf4f5b796bcdef695b6b69f9dbc9695dcd7b7949ef507b8b1b2c1cff5b9ab9a71c496ced3c"},
    {GgmlType::Q6_K, 420, 0xe42cde701d3979a4ull,
     "10f1618031d22561af5e2ce20e72d39261d541e626a3c22199e0346831e88a82b7153e0f3cc0e04a3129ca60b824257abd6e9b6102e709bf32e0c23ab11d2a02"},
    {GgmlType::IQ4_NL, 288, 0x3174d5f660c5d67dull, "73188098789898799a689887969997898989"},
    {GgmlType::IQ4_XS, 272, 0xc0ab270f59aeeeb1ull,
     "7384244aa0b575ad8098789898799a6898879699978989897b726d8899181fd1330e3e688a2c269a6848ba9179ac93f5a69a3363c0daa75b96a099a879668769"},
    {GgmlType::TQ1_0, 108, 0x248f98eb6894b1c3ull,
     "2b7d808080808080808080808080808080808080808080808080808080808080808076808080808080808080808080807f7f7f7f6a34"},
    {GgmlType::TQ2_0, 132, 0xcbaedaf2898a1684ull,
     "54155555555555555555555555555555555555555555555555555555555555555555455555555555555555555555555555555555555555555555555555555555"},
    {GgmlType::MXFP4, 272, 0xdf856acd9d86cafaull, "7b0e109010109111901009191119010101"},
};

TEST(QuantGolden, EveryTypeMatchesAppendixB) {
    const auto x = golden_input();
    for (const auto& g : kGolden) {
        SCOPED_TRACE(sf::quant::type_upper_name(g.type));
        ASSERT_TRUE(sf::quant::can_quantize(g.type));
        ASSERT_EQ(sf::quant::row_bytes(g.type, 512), g.row_bytes);
        std::vector<std::uint8_t> out(g.row_bytes * 64);
        sf::quant::quantize_rows(g.type, x.data(), out.data(), 64, 512);
        const std::string want = g.first;
        EXPECT_EQ(hex(out.data(), want.size() / 2), want);
        EXPECT_EQ(fnv(out.data(), out.size()), g.hash);
    }
}

TEST(QuantRounding, NearestIntIsHalfToEven) {
    struct Case { float in; int out; };
    const Case cases[] = {{0.5f, 0}, {1.5f, 2}, {2.5f, 2}, {-2.5f, -2}, {-0.5f, 0}, {3.5f, 4},
                          {0.49999997f, 0}, {-1.2f, -1}, {7.7f, 8}, {-31.5f, -32}};
    for (const auto& c : cases) EXPECT_EQ(sf::quant::detail::nearest_int(c.in), c.out) << c.in;
}

std::vector<float> ramp_block() {  // x[j] = (j - 16) * 0.3f
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[static_cast<std::size_t>(j)] = static_cast<float>(j - 16) * 0.3f;
    return x;
}

TEST(QuantBlocks, Q8_0MatchesNumpyReference) {
    const auto x = ramp_block();
    std::uint8_t out[34];
    sf::quant::quantize_rows(GgmlType::Q8_0, x.data(), out, 1, 32);
    EXPECT_EQ(hex(out, 34), "d628" "81899199a1a9b1b9c0c8d0d8e0e8f0f8000810182028303840474f575f676f77");
}

TEST(QuantBlocks, Q4_0MatchesNumpyReference) {
    const auto x = ramp_block();
    std::uint8_t out[18];
    sf::quant::quantize_rows(GgmlType::Q4_0, x.data(), out, 1, 32);
    EXPECT_EQ(hex(out, 18), "cd38" "809191a2a2b3b3c4c4d5d5e6e6f7f7f8");
    // decode: (q - 8) * d, d = fp16 0x38cd
    float y[32];
    sf::quant::dequantize_rows(GgmlType::Q4_0, out, y, 1, 32);
    const float d = sf::core::f16_to_f32(0x38cd);
    EXPECT_EQ(y[0], -8 * d);
    EXPECT_EQ(y[1], -7 * d);
    EXPECT_EQ(y[31], 7 * d);
}

TEST(QuantBlocks, TQ2_0MatchesNumpyReference) {
    std::vector<float> x(256);
    for (int i = 0; i < 256; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(i)));
    std::uint8_t out[66];
    sf::quant::quantize_rows(GgmlType::TQ2_0, x.data(), out, 1, 256);
    EXPECT_EQ(hex(out, 64),
              "a96a1a050050a5aa5a050050a4a96a16014094a96a16014090a56a5a050050a516014094a96a16054050a5aa5a050050a5"
              "a95a16014094a96a16014094a56a1a");
    EXPECT_EQ(hex(out + 64, 2), "003c");
}

TEST(QuantApi, TypeSupportAndImatrixRequirement) {
    EXPECT_TRUE(sf::quant::can_quantize(GgmlType::Q4_K));
    EXPECT_TRUE(sf::quant::can_quantize(GgmlType::BF16));
    EXPECT_TRUE(sf::quant::can_quantize(GgmlType::IQ2_XXS));
    EXPECT_FALSE(sf::quant::can_quantize(GgmlType::Q8_K));
    EXPECT_TRUE(sf::quant::needs_imatrix(GgmlType::IQ2_XXS));
    EXPECT_TRUE(sf::quant::needs_imatrix(GgmlType::IQ1_M));
    EXPECT_FALSE(sf::quant::needs_imatrix(GgmlType::IQ4_XS));
    EXPECT_FALSE(sf::quant::needs_imatrix(GgmlType::Q2_K));
    float x[256] = {};
    std::uint8_t y[512];
    EXPECT_THROW(sf::quant::quantize_rows(GgmlType::IQ2_XXS, x, y, 1, 256), sf::core::Error);
}

// quantize_rows may run host SIMD variants (src/quant/simd_x8.cpp) for Q4_K/Q5_K/Q6_K; they must give the
// scalar SF_HD kernel's bytes, including sub-blocks that take the early exits (flat, zero, tiny).
template <class Block, void (*Q)(const float*, Block&), int QK = 256>
void expect_rows_equal_scalar_kernel(GgmlType t) {
    constexpr int nb = 600 * 256 / QK;
    std::vector<float> x(static_cast<std::size_t>(QK * nb));
    std::uint64_t s = 77;
    auto uni = [&s]() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>(s >> 40) / 16777216.0f;
    };
    for (int b = 0; b < nb; ++b) {
        for (int j = 0; j < QK; ++j) {
            float v = (uni() - 0.5f) * 0.1f;
            const int sub = j / 16, kind = (b + sub) % 11;
            if (b % 3 == 0) {
                if (kind == 0) v = 0.0f;                   // zero sub-block
                if (kind == 1) v = -0.25f;                 // constant negative (flat after min clamp)
                if (kind == 2) v = 0.25f;                  // constant positive
                if (kind == 3) v *= 1e-16f;                // below GROUP_MAX_EPS
                if (kind == 4) v = (j % 2) ? 0.5f : -0.5f; // ties
                if (kind == 5 && j % 16 == 7) v = 40.0f;   // outlier
            }
            x[static_cast<std::size_t>(QK * b + j)] = v;
        }
    }
    std::vector<Block> got(nb), want(nb);
    sf::quant::quantize_rows(t, x.data(), got.data(), 2, QK * nb / 2);
    for (int b = 0; b < nb; ++b) Q(x.data() + QK * b, want[static_cast<std::size_t>(b)]);
    int n_bad = 0;
    for (int b = 0; b < nb && n_bad < 10; ++b) {
        const auto* g = reinterpret_cast<const std::uint8_t*>(&got[static_cast<std::size_t>(b)]);
        const auto* w = reinterpret_cast<const std::uint8_t*>(&want[static_cast<std::size_t>(b)]);
        for (std::size_t k = 0; k < sizeof(Block); ++k)
            if (g[k] != w[k]) {
                ADD_FAILURE() << sf::quant::type_upper_name(t) << " block " << b << " byte " << k << ": got "
                              << int{g[k]} << " expected " << int{w[k]};
                if (++n_bad >= 10) break;
            }
    }
}

void iq4_xs_plain(const float* x, sf::quant::BlockIQ4_XS& y) { sf::quant::quantize_block_iq4_xs(x, nullptr, y); }
void iq4_nl_plain(const float* x, sf::quant::BlockIQ4_NL& y) { sf::quant::quantize_block_iq4_nl(x, nullptr, y); }

TEST(QuantKernels, RowPathsMatchScalarKernels) {
    expect_rows_equal_scalar_kernel<sf::quant::BlockIQ4_XS, iq4_xs_plain>(GgmlType::IQ4_XS);
    expect_rows_equal_scalar_kernel<sf::quant::BlockIQ4_NL, iq4_nl_plain, 32>(GgmlType::IQ4_NL);
    expect_rows_equal_scalar_kernel<sf::quant::BlockQ4_K, sf::quant::quantize_block_q4_K>(GgmlType::Q4_K);
    expect_rows_equal_scalar_kernel<sf::quant::BlockQ5_K, sf::quant::quantize_block_q5_K>(GgmlType::Q5_K);
    expect_rows_equal_scalar_kernel<sf::quant::BlockQ6_K, sf::quant::quantize_block_q6_K>(GgmlType::Q6_K);
    expect_rows_equal_scalar_kernel<sf::quant::BlockQ2_K, sf::quant::quantize_block_q2_K>(GgmlType::Q2_K);
    expect_rows_equal_scalar_kernel<sf::quant::BlockQ3_K, sf::quant::quantize_block_q3_K>(GgmlType::Q3_K);
}

}  // namespace
