// The AVX2 lane-parallel Q3_K path (src/quant/simd_q3.cpp) against the scalar SF_HD kernel
// quantize_block_q3_K, byte for byte: many distributions and scales, the early exits (zero, tiny, constant
// sub-blocks), ties, outliers, and odd block counts (the one-block tail runs two chains instead of four).
#include <shardforge/quant.hpp>

#include "quant/kernels/k_quants.hpp"
#include "quant/simd_x8.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sf = shardforge;
using sf::quant::BlockQ3_K;
using sf::quant::GgmlType;

namespace {

struct Rng {
    std::uint64_t s;
    float uni() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return (static_cast<float>(s >> 40) + 0.5f) / 16777216.0f;
    }
    float normal() { return std::sqrt(-2.0f * std::log(uni())) * std::cos(6.2831853f * uni()); }
};

// nb super-blocks; `style` picks the distribution, sub-blocks get special patterns now and then.
std::vector<float> make_data(int nb, int style, std::uint64_t seed) {
    Rng r{seed};
    std::vector<float> x(static_cast<std::size_t>(256 * nb));
    for (int b = 0; b < nb; ++b)
        for (int j = 0; j < 256; ++j) {
            float v = 0;
            switch (style) {
                case 0: v = 0.02f * r.normal(); break;
                case 1: v = (r.uni() - 0.5f) * 3.0f; break;
                case 2: v = r.normal() * r.normal() * 1e-3f; break;                       // heavy tails
                case 3: v = std::round((r.uni() - 0.5f) * 8.0f) * 0.125f; break;          // many ties
                case 4: v = 1e4f * r.normal(); break;                                     // large
                default: v = (r.uni() < 0.9f ? 0.0f : 1.0f) * r.normal(); break;         // sparse
            }
            const int sub = j / 16, kind = (b * 7 + sub * 3 + style) % 13;
            if (b % 2 == 1) {
                if (kind == 0) v = 0.0f;
                if (kind == 1) v = -0.25f;
                if (kind == 2) v = 0.25f;
                if (kind == 3) v *= 1e-16f;
                if (kind == 4) v = (j % 2) ? 0.5f : -0.5f;
                if (kind == 5 && j % 16 == 7) v = 40.0f;
                if (kind == 6 && j % 16 == 3) v = -40.0f;
            }
            x[static_cast<std::size_t>(256 * b + j)] = v;
        }
    return x;
}

int count_mismatches(const std::vector<BlockQ3_K>& got, const std::vector<BlockQ3_K>& want, const char* what) {
    int bad = 0;
    for (std::size_t b = 0; b < got.size(); ++b)
        if (std::memcmp(&got[b], &want[b], sizeof(BlockQ3_K)) != 0) {
            if (bad < 5) ADD_FAILURE() << what << ": block " << b << " differs from the scalar kernel";
            ++bad;
        }
    return bad;
}

std::vector<BlockQ3_K> scalar(const std::vector<float>& x) {
    std::vector<BlockQ3_K> y(x.size() / 256);
    for (std::size_t b = 0; b < y.size(); ++b) sf::quant::quantize_block_q3_K(x.data() + 256 * b, y[b]);
    return y;
}

}  // namespace

TEST(SimdQ3, BlocksMatchScalarKernel) {
    if (!sf::quant::simd::have_avx2()) GTEST_SKIP() << "CPU has no AVX2: the lane path is not dispatched here";
    for (int style = 0; style < 6; ++style)
        for (int nb : {1, 2, 3, 7, 64}) {
            const auto x = make_data(nb, style, 1000u + static_cast<std::uint64_t>(style * 31 + nb));
            std::vector<BlockQ3_K> got(static_cast<std::size_t>(nb));
            sf::quant::simd::quantize_q3_k_blocks(x.data(), got.data(), nb);
            EXPECT_EQ(count_mismatches(got, scalar(x), "quantize_q3_k_blocks"), 0) << "style " << style << " nb " << nb;
        }
}

TEST(SimdQ3, QuantizeRowsMatchesScalarKernel) {
    // quantize_rows dispatches to the lane path on AVX2 CPUs and to the scalar kernel elsewhere: same bytes.
    const int nrows = 5, ncols = 256 * 9;  // odd block count per chunk
    auto x = make_data(nrows * 9, 0, 7);
    const auto x2 = make_data(nrows * 9, 2, 8);
    for (std::size_t i = 0; i < x.size(); i += 2) x[i] = x2[i];
    std::vector<BlockQ3_K> got(static_cast<std::size_t>(nrows * 9));
    sf::quant::quantize_rows(GgmlType::Q3_K, x.data(), got.data(), nrows, ncols);
    EXPECT_EQ(count_mismatches(got, scalar(x), "quantize_rows"), 0);
    std::vector<BlockQ3_K> par(got.size());
    sf::quant::quantize_rows_parallel(GgmlType::Q3_K, x.data(), par.data(), nrows, ncols, nullptr, 2);
    EXPECT_EQ(std::memcmp(par.data(), got.data(), got.size() * sizeof(BlockQ3_K)), 0);
}

TEST(SimdQ3, DetectsADifference) {
    // The comparison itself can fail: one flipped input element changes the scalar bytes of its block.
    auto x = make_data(2, 0, 3);
    auto want = scalar(x);
    x[300] = 1.0f;
    EXPECT_NE(std::memcmp(scalar(x).data() + 1, want.data() + 1, sizeof(BlockQ3_K)), 0);
}
