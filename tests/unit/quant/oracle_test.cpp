// Oracle: our quantize_rows/dequantize_rows against ggml's own prebuilt libggml-base.so (the library
// node-llama-cpp ships, built from llama.cpp de3ff81), loaded with dlopen. Every supported type, on the kernel
// tests' golden input, random rows of several distributions and lengths, adversarial rows, and with an imatrix.
// Bytes must be identical; the first ten mismatches are printed (block, byte offset, got, expected).
#include <shardforge/quant.hpp>

#include <gtest/gtest.h>

#include "oracle_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

using namespace oracle;

const GgmlType kTypes[] = {
    GgmlType::F16,   GgmlType::BF16,  GgmlType::Q4_0,   GgmlType::Q4_1,   GgmlType::Q5_0,  GgmlType::Q5_1,
    GgmlType::Q8_0,  GgmlType::Q2_K,  GgmlType::Q3_K,   GgmlType::Q4_K,   GgmlType::Q5_K,  GgmlType::Q6_K,
    GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::MXFP4,
};

std::int64_t block_of(GgmlType t) { return sf::quant::traits(t).block_elems; }

TEST(QuantOracle, GoldenInputMatchesGgmlForEveryType) {
    REQUIRE_GGML();
    const auto x = golden_input();
    for (GgmlType t : kTypes) EXPECT_TRUE(check_type(t, x, 64, 512, "golden 64x512"));
}

TEST(QuantOracle, RandomRowsMatchGgml) {
    REQUIRE_GGML();
    struct Shape { std::int64_t nrows, n; };
    const Shape shapes[] = {{1, 256}, {3, 512}, {2, 4096}, {16, 768}, {1, 11008}};
    const Shape shapes32[] = {{1, 32}, {3, 96}, {5, 160}, {2, 2880}};  // also not multiples of 256
    for (int dist = 0; dist < 6; ++dist) {
        Rng rng(static_cast<std::uint64_t>(dist) + 7);
        auto gen = [&](std::size_t count) {
            std::vector<float> x(count);
            for (auto& v : x) {
                switch (dist) {
                    case 0: v = rng.uniform() * 2 - 1; break;                         // uniform [-1,1)
                    case 1: v = rng.normal() * 0.02f; break;                          // weight-like
                    case 2: v = rng.normal() * (rng.uniform() < 0.01f ? 8.f : 0.05f); break;  // outliers
                    case 3: v = std::pow(rng.uniform(), 4.f) * (rng.next() & 1 ? 1 : -1); break;  // heavy at 0
                    case 4: v = rng.uniform() * 3 + 0.5f; break;                      // all positive
                    default: v = -(rng.uniform() * 1e-3f) - 1e-6f; break;             // all negative, small
                }
            }
            return x;
        };
        for (GgmlType t : kTypes) {
            for (const auto& sh : shapes) {
                if (sh.n % block_of(t)) continue;
                const auto x = gen(static_cast<std::size_t>(sh.nrows * sh.n));
                EXPECT_TRUE(check_type(t, x, sh.nrows, sh.n,
                                       "dist " + std::to_string(dist) + " " + std::to_string(sh.nrows) + "x" +
                                           std::to_string(sh.n)));
            }
            if (block_of(t) > 32) continue;
            for (const auto& sh : shapes32) {
                const auto x = gen(static_cast<std::size_t>(sh.nrows * sh.n));
                EXPECT_TRUE(check_type(t, x, sh.nrows, sh.n,
                                       "dist " + std::to_string(dist) + " " + std::to_string(sh.nrows) + "x" +
                                           std::to_string(sh.n)));
            }
        }
    }
}

// Named adversarial rows of 256 elements (one super-block; eight 32-blocks).
std::vector<std::pair<std::string, std::vector<float>>> adversarial_rows() {
    std::vector<std::pair<std::string, std::vector<float>>> rows;
    auto add = [&rows](std::string name, auto f) {
        std::vector<float> x(256);
        for (int i = 0; i < 256; ++i) x[static_cast<std::size_t>(i)] = f(i);
        rows.emplace_back(std::move(name), std::move(x));
    };
    Rng rng(99);
    add("all zeros", [](int) { return 0.0f; });
    add("negative zeros", [](int) { return -0.0f; });
    add("one huge value", [](int i) { return i == 77 ? 30000.0f : 0.001f * static_cast<float>(i % 7 - 3); });
    add("one value beyond fp16", [](int i) { return i == 5 ? 1.0e6f : 0.5f; });
    add("denormals", [](int i) { return static_cast<float>(i % 9 - 4) * 1.0e-40f; });
    add("tiny below eps", [](int i) { return static_cast<float>(i % 5 - 2) * 1.0e-17f; });
    add("tiny", [](int i) { return static_cast<float>(i % 5 - 2) * 1.0e-7f; });
    add("ties: multiples of 0.5", [](int i) { return 0.5f * static_cast<float>(i % 33 - 16); });
    add("ties: integers -8..7", [](int i) { return static_cast<float>(i % 16 - 8); });
    add("ties: quarter steps", [](int i) { return 0.25f * static_cast<float>((i * 7) % 31 - 15); });
    add("identical positive", [](int) { return 1.0f; });
    add("identical negative", [](int) { return -3.0f; });
    add("plus/minus identical", [](int i) { return i % 2 ? 0.75f : -0.75f; });
    add("ramp", [](int i) { return static_cast<float>(i - 128) / 128.0f; });
    add("mixed huge/tiny", [](int i) { return i % 16 == 0 ? 1000.0f : static_cast<float>(i % 3) * 1e-6f; });
    add("one nonzero per block", [](int i) { return i % 32 == 3 ? -2.5f : 0.0f; });
    add("iq4 table values", [](int i) {
        const int k[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        return static_cast<float>(k[i % 16]) * 0.01f;
    });
    add("fp4 table values", [](int i) {
        const float k[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
        return (i & 8 ? -1.f : 1.f) * k[i % 8];
    });
    add("large magnitudes", [&rng](int) { return (rng.uniform() - 0.5f) * 60000.0f; });
    add("powers of two", [](int i) { return std::ldexp(1.0f, i % 20 - 10) * (i % 3 ? 1.f : -1.f); });
    // the SIMD paths reduce min/max in trees: which signed zero, which of equal magnitudes, FLT_MAX starts
    add("signed zeros, non-negative", [](int i) { return i % 5 == 0 ? -0.0f : i % 5 == 2 ? 0.0f : 0.125f * (i % 3); });
    add("signed zeros, non-positive", [](int i) { return i % 4 == 1 ? 0.0f : i % 4 == 3 ? -0.0f : -0.25f * (i % 3); });
    add("zeros, -0 first", [](int i) { return i % 32 == 0 ? -0.0f : 0.0f; });
    add("equal magnitudes, both signs", [](int i) { return i % 32 == 31 ? 2.0f : i % 32 == 30 ? -2.0f : 0.5f; });
    add("FLT_MAX", [](int i) { return i % 3 ? 3.402823466e+38F : -3.402823466e+38F; });
    add("infinities", [](int i) { return i % 64 == 5 ? INFINITY : i % 64 == 40 ? -INFINITY : 0.25f; });
    add("all +inf", [](int) { return INFINITY; });
    add("NaN in some blocks", [](int i) { return i % 97 == 3 ? NAN : 0.01f * static_cast<float>(i % 11 - 5); });
    add("fp4 midpoints, both signs", [](int i) {  // with 6 in every block the MXFP4 steps are 0.5 .. 6
        const float mid[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
        return i % 32 == 0 ? 6.0f : (i % 2 ? -1.f : 1.f) * mid[(i / 2) % 7];
    });
    add("denormal amax", [](int i) { return static_cast<float>(i % 7 - 3) * 1.0e-45f * static_cast<float>(i % 5); });
    return rows;
}

TEST(QuantOracle, AdversarialRowsMatchGgml) {
    REQUIRE_GGML();
    for (const auto& [name, x] : adversarial_rows())
        for (GgmlType t : kTypes) EXPECT_TRUE(check_type(t, x, 1, 256, name));
}

TEST(QuantOracle, ImatrixMatchesGgml) {
    REQUIRE_GGML();
    Rng rng(4242);
    const std::int64_t nrows = 4, n = 512;
    std::vector<float> x(static_cast<std::size_t>(nrows * n));
    for (auto& v : x) v = rng.normal() * (rng.uniform() < 0.02f ? 0.3f : 0.02f);
    std::vector<float> imat(static_cast<std::size_t>(n));
    for (auto& v : imat) v = rng.uniform() * rng.uniform() * 10.0f;
    std::vector<float> imat_zeros = imat;
    for (std::size_t i = 0; i < imat_zeros.size(); i += 3) imat_zeros[i] = 0.0f;
    const auto golden = golden_input();
    for (GgmlType t : kTypes) {
        EXPECT_TRUE(check_type(t, x, nrows, n, "imatrix random", imat.data()));
        EXPECT_TRUE(check_type(t, x, nrows, n, "imatrix with zeros", imat_zeros.data()));
        EXPECT_TRUE(check_type(t, golden, 64, 512, "imatrix golden", imat.data()));
        for (const auto& [name, row] : adversarial_rows()) {
            if (name == "one value beyond fp16" || name == "large magnitudes") continue;  // see below
            EXPECT_TRUE(check_type(t, row, 1, 256, "imatrix " + name, imat.data()));
        }
    }
}

TEST(QuantOracle, DequantizeMatchesGgml) {
    REQUIRE_GGML();
    const auto x = golden_input();
    Rng rng(5);
    for (GgmlType t : kTypes) {
        // round trip of ggml's own quantization of the golden input (all rows as one row)
        EXPECT_TRUE(check_dequant(t, Ggml::get().quantize(t, x, 1, 32768, nullptr), 32768, "golden"));
        // arbitrary block bytes: every bit pattern of scales and quants, fp16 specials included
        std::vector<std::uint8_t> q(sf::quant::row_bytes(t, 4096));
        for (auto& b : q) b = static_cast<std::uint8_t>(rng.next() >> 24);
        EXPECT_TRUE(check_dequant(t, q, 4096, "random bytes"));
    }
}

TEST(QuantOracle, ParallelSplitGivesTheSameBytes) {
    REQUIRE_GGML();
    const auto x = golden_input();
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::IQ4_XS}) {
        const auto want = Ggml::get().quantize(t, x, 64, 512, nullptr);
        std::vector<std::uint8_t> got(want.size());
        sf::quant::quantize_rows_parallel(t, x.data(), got.data(), 64, 512, nullptr, 3);
        EXPECT_TRUE(same_bytes(t, got, want, "3 threads"));
    }
}

}  // namespace
