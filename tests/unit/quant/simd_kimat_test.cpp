// The lane-parallel imatrix paths of the K-quants (src/quant/simd_kimat.cpp) against the scalar SF_HD
// kernels quantize_block_*_imatrix, byte for byte, on varied data and importance weights (including zero
// weights and the early-exit sub-blocks), through quantize_rows as the exporter calls it.
#include <shardforge/quant.hpp>

#include "quant/kernels/k_quants.hpp"
#include "quant/simd_x8.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sf = shardforge;
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

template <class Block, void (*Q)(const float*, const float*, Block&)>
void expect_same(GgmlType t, int style) {
    const int nrows = 6, nb = 5, n = 256 * nb;
    Rng r{static_cast<std::uint64_t>(100 + style * 7 + static_cast<int>(t))};
    std::vector<float> x(static_cast<std::size_t>(nrows * n)), qw(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        float w = style == 2 ? 1.0f : r.uni() * r.uni() * 50.0f;
        if (style == 1 && i % 37 < 5) w = 0.0f;
        if (style == 1 && (i / 16) % 9 == 4) w = 0.0f;  // a whole zero-weight sub-block now and then
        qw[static_cast<std::size_t>(i)] = w;
    }
    for (int row = 0; row < nrows; ++row)
        for (int i = 0; i < n; ++i) {
            float v = style == 0 ? 0.02f * r.normal() : (r.uni() - 0.5f) * (style == 1 ? 2.0f : 0.1f);
            const int sub = i / 16, kind = (row * 5 + sub) % 13;
            if (row % 2 == 1) {
                if (kind == 0) v = 0.0f;
                if (kind == 1) v = -0.25f;
                if (kind == 2) v = 0.25f;
                if (kind == 3) v *= 1e-16f;
                if (kind == 4) v = (i % 2) ? 0.5f : -0.5f;
                if (kind == 5 && i % 16 == 7) v = 40.0f;
            }
            x[static_cast<std::size_t>(row * n + i)] = v;
        }
    std::vector<Block> got(static_cast<std::size_t>(nrows * nb)), want(got.size());
    sf::quant::quantize_rows(t, x.data(), got.data(), nrows, n, qw.data());
    for (int row = 0; row < nrows; ++row)
        for (int b = 0; b < nb; ++b)
            Q(x.data() + row * n + 256 * b, qw.data() + 256 * b, want[static_cast<std::size_t>(row * nb + b)]);
    int bad = 0;
    for (std::size_t b = 0; b < got.size(); ++b)
        if (std::memcmp(&got[b], &want[b], sizeof(Block)) != 0 && ++bad <= 5)
            ADD_FAILURE() << sf::quant::type_upper_name(t) << " style " << style << ": block " << b
                          << " differs from the scalar imatrix kernel";
}

}  // namespace

TEST(SimdKImatrix, RowsMatchScalarKernels) {
    if (!sf::quant::simd::have_avx2()) GTEST_SKIP() << "CPU has no AVX2: quantize_rows runs the scalar kernels";
    for (int style = 0; style < 3; ++style) {
        expect_same<sf::quant::BlockQ2_K, sf::quant::quantize_block_q2_K_imatrix>(GgmlType::Q2_K, style);
        expect_same<sf::quant::BlockQ3_K, sf::quant::quantize_block_q3_K_imatrix>(GgmlType::Q3_K, style);
        expect_same<sf::quant::BlockQ4_K, sf::quant::quantize_block_q4_K_imatrix>(GgmlType::Q4_K, style);
        expect_same<sf::quant::BlockQ5_K, sf::quant::quantize_block_q5_K_imatrix>(GgmlType::Q5_K, style);
        expect_same<sf::quant::BlockQ6_K, sf::quant::quantize_block_q6_K_imatrix>(GgmlType::Q6_K, style);
    }
}

TEST(SimdKImatrix, ImatrixChangesTheBytes) {
    // The comparison is meaningful: with a different imatrix the scalar kernel gives different bytes.
    Rng r{5};
    std::vector<float> x(256), a(256), b(256);
    for (int i = 0; i < 256; ++i) {
        x[static_cast<std::size_t>(i)] = r.normal();
        a[static_cast<std::size_t>(i)] = 1.0f;
        b[static_cast<std::size_t>(i)] = i % 2 ? 100.0f : 0.01f;
    }
    sf::quant::BlockQ4_K ya{}, yb{};
    sf::quant::quantize_block_q4_K_imatrix(x.data(), a.data(), ya);
    sf::quant::quantize_block_q4_K_imatrix(x.data(), b.data(), yb);
    EXPECT_NE(std::memcmp(&ya, &yb, sizeof ya), 0);
}
