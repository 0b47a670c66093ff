// lora::delta_f32: the LoRA delta in its documented order (docs/engine.md, "Determinism"): per element, k ascending,
// a rounded f32 multiply then a rounded f32 add. Every SIMD path the CPU has gives the bits of an element-by-element
// loop written here, for shapes that exercise the register blocks, the column tiles and every tail; the order is
// sequential (not pairwise or blocked) and there is no fused multiply-add.
#include <shardforge/lora.hpp>

#include "lora/delta.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace sf = shardforge;
using sf::core::SimdLevel;

namespace {

std::vector<float> values(std::int64_t n, std::uint64_t seed) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const auto u = static_cast<std::int64_t>(seed >> 40);
        // mixed magnitudes, so that the order of the additions shows in the last bits
        x = static_cast<float>(u % 20001 - 10000) / 777.0f * std::ldexp(1.0f, static_cast<int>(u % 13) - 6);
    }
    return v;
}

// The documented order, one element at a time; volatile forces each product and sum to be rounded to f32.
std::vector<float> reference(const std::vector<float>& b, const std::vector<float>& a, std::int64_t m, std::int64_t k,
                             std::int64_t n) {
    std::vector<float> c(static_cast<std::size_t>(m * n));
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            volatile float acc = 0.0f;
            for (std::int64_t q = 0; q < k; ++q) {
                volatile float p = b[static_cast<std::size_t>(i * k + q)] * a[static_cast<std::size_t>(q * n + j)];
                acc = acc + p;
            }
            c[static_cast<std::size_t>(i * n + j)] = acc;
        }
    return c;
}

std::vector<SimdLevel> levels() {  // every level up to what this CPU (and SHARDFORGE_SIMD) allows
    std::vector<SimdLevel> l{SimdLevel::Scalar};
    if (sf::core::simd_level() >= SimdLevel::Avx2) l.push_back(SimdLevel::Avx2);
    if (sf::core::simd_level() >= SimdLevel::Avx512) l.push_back(SimdLevel::Avx512);
    return l;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(Delta, EveryPathGivesTheReferenceBits) {
    std::printf("SIMD level of this process: %s\n", std::string(sf::core::to_string(sf::core::simd_level())).c_str());
    const std::int64_t shapes[][3] = {{1, 1, 1},   {5, 3, 17},   {4, 8, 64},    {7, 16, 100}, {9, 64, 257},
                                      {33, 8, 129}, {6, 256, 70}, {13, 1, 1000}, {3, 600, 80}, {17, 16, 4100}};
    for (const auto& s : shapes) {
        const std::int64_t m = s[0], k = s[1], n = s[2];
        const std::vector<float> b = values(m * k, 7u + static_cast<std::uint64_t>(m)), a = values(k * n, 9u + static_cast<std::uint64_t>(n));
        const std::vector<float> want = reference(b, a, m, k, n);
        for (const SimdLevel l : levels()) {
            std::vector<float> c(want.size(), std::nanf(""));
            sf::lora::delta_f32_at(l, b.data(), a.data(), m, k, n, c.data());
            EXPECT_TRUE(same_bits(c, want)) << "level " << sf::core::to_string(l) << " shape " << m << "x" << k << "x" << n;
        }
        std::vector<float> c(want.size());
        sf::lora::delta_f32(b.data(), a.data(), m, k, n, c.data());
        EXPECT_TRUE(same_bits(c, want)) << "delta_f32, shape " << m << "x" << k << "x" << n;
    }
}

// k ascending, one add at a time: B's row is 1e8, eight ones, -1e8. Each 1e8 + 1 rounds back to 1e8 (f32 spacing 8
// there), so the sum is 0; four interleaved accumulators would give 4, and adding the ones first would give 8.
TEST(Delta, SumsInIndexOrder) {
    const std::vector<float> b{1e8f, 1, 1, 1, 1, 1, 1, 1, 1, -1e8f};
    const std::int64_t k = 10;
    for (const std::int64_t n : {std::int64_t{1}, std::int64_t{64}, std::int64_t{100}}) {  // tail, vector body, both
        const std::vector<float> a(static_cast<std::size_t>(k * n), 1.0f);
        for (const SimdLevel l : levels()) {
            std::vector<float> c(static_cast<std::size_t>(n), -1.0f);
            sf::lora::delta_f32_at(l, b.data(), a.data(), 1, k, n, c.data());
            for (float x : c) EXPECT_EQ(x, 0.0f) << sf::core::to_string(l) << " n=" << n;
        }
    }
}

// No FMA: (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 rounds (ties to even) to 1 + 2^-11; adding it to -1 gives 2^-11. A fused
// multiply-add would keep the 2^-24.
TEST(Delta, MultipliesAndAddsAreRoundedSeparately) {
    const float e = 1.0f + std::ldexp(1.0f, -12);
    const std::int64_t n = 80;  // vector body and tail
    std::vector<float> b{-1.0f, e}, a(static_cast<std::size_t>(2 * n)), c(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) {
        a[static_cast<std::size_t>(j)] = 1.0f;
        a[static_cast<std::size_t>(n + j)] = e;
    }
    for (const SimdLevel l : levels()) {
        sf::lora::delta_f32_at(l, b.data(), a.data(), 1, 2, n, c.data());
        for (float x : c) EXPECT_EQ(x, std::ldexp(1.0f, -11)) << sf::core::to_string(l);
    }
}
