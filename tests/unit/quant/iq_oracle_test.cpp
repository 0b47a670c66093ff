// Oracle for the importance-matrix grid quantizers IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS/IQ3_S/IQ1_S/IQ1_M: our
// quantize_rows/dequantize_rows against ggml's prebuilt libggml-base.so (dlopen), with imatrices of several
// distributions (and zeros), random rows, adversarial rows, and without an imatrix where ggml allows it.
// ggml_quantize_chunk calls ggml_quantize_init(type) itself, so the oracle needs no set-up call.
// Bytes must be identical; the first ten mismatches are printed.
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
#include <thread>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

using namespace oracle;

const GgmlType kIqTypes[] = {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                             GgmlType::IQ3_S,   GgmlType::IQ1_S,  GgmlType::IQ1_M};

bool ggml_requires_imatrix(GgmlType t) {  // ggml.c ggml_quantize_requires_imatrix: asserts without one
    return t == GgmlType::IQ2_XXS || t == GgmlType::IQ2_XS || t == GgmlType::IQ1_S;
}

std::string name_of(GgmlType t) { return sf::quant::type_upper_name(t); }

// Imatrix distributions: the values llama-imatrix produces are mean squared activations (positive, heavy tailed).
std::vector<float> make_imatrix(int kind, std::int64_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> w(static_cast<std::size_t>(n));
    for (auto& v : w) {
        switch (kind) {
            case 0: v = rng.uniform() * rng.uniform() * 10.0f; break;                   // skewed
            case 1: v = 1.0f; break;                                                      // flat
            case 2: { const float z = rng.normal(); v = z * z * 1e-3f; break; }           // chi^2, small
            case 3: v = std::exp(rng.normal() * 3.0f); break;                             // log-normal, wide
            case 4: v = rng.uniform() < 0.3f ? 0.0f : rng.uniform() * 5.0f; break;       // 30% zeros
            default: v = rng.uniform() < 0.05f ? 1e4f : 1e-4f; break;                    // a few dominant columns
        }
    }
    return w;
}

std::vector<float> make_rows(int dist, std::size_t count, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x(count);
    for (auto& v : x) {
        switch (dist) {
            case 0: v = rng.uniform() * 2 - 1; break;
            case 1: v = rng.normal() * 0.02f; break;
            case 2: v = rng.normal() * (rng.uniform() < 0.01f ? 8.f : 0.05f); break;
            case 3: v = std::pow(rng.uniform(), 4.f) * (rng.next() & 1 ? 1 : -1); break;
            case 4: v = rng.uniform() * 3 + 0.5f; break;
            default: v = -(rng.uniform() * 1e-3f) - 1e-6f; break;
        }
    }
    return x;
}

std::uint64_t fnv(const std::vector<std::uint8_t>& b) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::uint8_t c : b) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}
std::vector<float> golden_imatrix() {  // exact in binary: 1 + (j % 17) / 4
    std::vector<float> w(512);
    for (int j = 0; j < 512; ++j) w[static_cast<std::size_t>(j)] = 1.0f + static_cast<float>(j % 17) * 0.25f;
    return w;
}

// Appendix B has no IQ grid rows, so these were produced the same way with the shipped libggml-base.so
// (node-llama-cpp 3.22.1): ggml_quantize_chunk(type, golden, dst, 0, 64, 512, imatrix = golden_imatrix() or NULL).
// They need no oracle library at run time.
TEST(IqGolden, HashesProducedByGgml) {
    struct Golden { GgmlType type; bool imatrix; std::size_t bytes; std::uint64_t hash; };
    const Golden table[] = {
        {GgmlType::IQ2_XXS, true, 8448, 0x60693f6984ed1219ull},
        {GgmlType::IQ2_XS, true, 9472, 0x7b080dc1dbf362b9ull},
        {GgmlType::IQ2_S, true, 10496, 0xa81ce42ff8c32a8dull},
        {GgmlType::IQ2_S, false, 10496, 0xa27207a585d99f46ull},
        {GgmlType::IQ3_XXS, true, 12544, 0x485c104296ca03ebull},
        {GgmlType::IQ3_XXS, false, 12544, 0x6b6650332f99e8edull},
        {GgmlType::IQ3_S, true, 14080, 0x49f0e48ab8e7345full},
        {GgmlType::IQ3_S, false, 14080, 0xaa728a7b1522efb6ull},
        {GgmlType::IQ1_S, true, 6400, 0x0937b56c1e420561ull},
        {GgmlType::IQ1_M, true, 7168, 0xf034d9bd86382b7cull},
        {GgmlType::IQ1_M, false, 7168, 0xe4f02d18a9795fbfull},
    };
    const auto x = golden_input();
    const auto w = golden_imatrix();
    for (const auto& g : table) {
        std::vector<std::uint8_t> out(sf::quant::row_bytes(g.type, 512) * 64);
        ASSERT_EQ(out.size(), g.bytes) << name_of(g.type);
        sf::quant::quantize_rows(g.type, x.data(), out.data(), 64, 512, g.imatrix ? w.data() : nullptr);
        char want[32], got[32];
        std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(g.hash));
        std::snprintf(got, sizeof got, "%016llx", static_cast<unsigned long long>(fnv(out)));
        EXPECT_STREQ(got, want) << name_of(g.type) << (g.imatrix ? " with imatrix" : " without imatrix");
    }
}

TEST(IqOracle, GoldenInputMatchesGgml) {
    REQUIRE_GGML();
    const auto x = golden_input();
    const auto w = golden_imatrix();
    for (GgmlType t : kIqTypes) {
        EXPECT_TRUE(check_type(t, x, 64, 512, "golden 64x512 with imatrix", w.data()));
        if (!ggml_requires_imatrix(t)) {
            EXPECT_TRUE(check_type(t, x, 64, 512, "golden 64x512 without imatrix", nullptr));
        }
    }
}

TEST(IqOracle, GgmlRequiresImatrixForTheSameTypes) {
    REQUIRE_GGML();
    auto fn = Ggml::get().requires_imatrix();
    ASSERT_NE(fn, nullptr);
    for (GgmlType t : kIqTypes) {
        EXPECT_EQ(fn(static_cast<int>(t)), ggml_requires_imatrix(t)) << name_of(t);
        EXPECT_EQ(sf::quant::quantize_requires_imatrix(t), ggml_requires_imatrix(t)) << name_of(t);
    }
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::IQ4_XS, GgmlType::Q2_K, GgmlType::F16})
        EXPECT_EQ(sf::quant::quantize_requires_imatrix(t), fn(static_cast<int>(t))) << name_of(t);
}

TEST(IqOracle, RandomRowsWithImatrixMatchGgml) {
    REQUIRE_GGML();
    struct Shape { std::int64_t nrows, n; };
    const Shape shapes[] = {{3, 256}, {2, 1024}, {4, 768}};
    for (int dist = 0; dist < 6; ++dist)
        for (int kind = 0; kind < 6; ++kind) {
            const Shape& sh = shapes[static_cast<std::size_t>((dist + kind) % 3)];
            const auto x = make_rows(dist, static_cast<std::size_t>(sh.nrows * sh.n),
                                     static_cast<std::uint64_t>(100 + 10 * dist + kind));
            const auto w = make_imatrix(kind, sh.n, static_cast<std::uint64_t>(7 + kind + 13 * dist));
            for (GgmlType t : kIqTypes)
                EXPECT_TRUE(check_type(t, x, sh.nrows, sh.n,
                                       "dist " + std::to_string(dist) + " imatrix " + std::to_string(kind) + " " +
                                           std::to_string(sh.nrows) + "x" + std::to_string(sh.n),
                                       w.data()));
        }
}

TEST(IqOracle, RandomRowsWithoutImatrixMatchGgml) {
    REQUIRE_GGML();
    for (int dist = 0; dist < 6; ++dist) {
        const auto x = make_rows(dist, 3 * 512, static_cast<std::uint64_t>(300 + dist));
        for (GgmlType t : kIqTypes) {
            if (ggml_requires_imatrix(t)) continue;
            EXPECT_TRUE(check_type(t, x, 3, 512, "no imatrix dist " + std::to_string(dist), nullptr));
        }
    }
}

std::vector<std::pair<std::string, std::vector<float>>> adversarial_rows() {
    std::vector<std::pair<std::string, std::vector<float>>> rows;
    auto add = [&rows](std::string name, auto f) {
        std::vector<float> x(256);
        for (int i = 0; i < 256; ++i) x[static_cast<std::size_t>(i)] = f(i);
        rows.emplace_back(std::move(name), std::move(x));
    };
    add("all zeros", [](int) { return 0.0f; });
    add("negative zeros", [](int) { return -0.0f; });
    add("one huge value", [](int i) { return i == 77 ? 3000.0f : 0.001f * static_cast<float>(i % 7 - 3); });
    add("one huge value per block", [](int i) { return i % 32 == 9 ? -500.0f : 0.01f * static_cast<float>(i % 5 - 2); });
    add("denormals", [](int i) { return static_cast<float>(i % 9 - 4) * 1.0e-40f; });
    add("tiny below eps", [](int i) { return static_cast<float>(i % 5 - 2) * 1.0e-17f; });
    add("tiny 1e-9", [](int i) { return static_cast<float>(i % 5 - 2) * 1.0e-9f; });
    add("tiny 1e-7", [](int i) { return static_cast<float>(i % 5 - 2) * 1.0e-7f; });
    add("ties: multiples of 0.5", [](int i) { return 0.5f * static_cast<float>(i % 33 - 16); });
    add("ties: integers -8..7", [](int i) { return static_cast<float>(i % 16 - 8); });
    add("identical positive", [](int) { return 1.0f; });
    add("identical negative", [](int) { return -3.0f; });
    add("plus/minus identical", [](int i) { return i % 2 ? 0.75f : -0.75f; });
    add("odd negatives per 8", [](int i) { return i % 8 == 0 ? -0.3f : 0.2f + 0.01f * static_cast<float>(i % 8); });
    add("ramp", [](int i) { return static_cast<float>(i - 128) / 128.0f; });
    add("mixed huge/tiny", [](int i) { return i % 16 == 0 ? 1000.0f : static_cast<float>(i % 3) * 1e-6f; });
    add("one nonzero per block", [](int i) { return i % 32 == 3 ? -2.5f : 0.0f; });
    add("half zero blocks", [](int i) { return (i / 32) % 2 ? 0.0f : 0.1f * static_cast<float>(i % 11 - 5); });
    add("grid-like levels", [](int i) { return static_cast<float>(2 * (i % 3) + 1) * (i % 5 ? 0.1f : -0.1f); });
    add("powers of two", [](int i) { return std::ldexp(1.0f, i % 20 - 10) * (i % 3 ? 1.f : -1.f); });
    add("large magnitudes", [](int i) { return static_cast<float>((i * 37) % 101 - 50) * 100.0f; });
    return rows;
}

TEST(IqOracle, AdversarialRowsMatchGgml) {
    REQUIRE_GGML();
    const auto w_rand = make_imatrix(0, 256, 11);
    const auto w_zero = make_imatrix(4, 256, 12);
    const std::vector<float> w_all_zero(256, 0.0f);
    for (const auto& [name, x] : adversarial_rows())
        for (GgmlType t : kIqTypes) {
            EXPECT_TRUE(check_type(t, x, 1, 256, name + " / imatrix", w_rand.data()));
            EXPECT_TRUE(check_type(t, x, 1, 256, name + " / imatrix with zeros", w_zero.data()));
            EXPECT_TRUE(check_type(t, x, 1, 256, name + " / imatrix all zero", w_all_zero.data()));
            if (!ggml_requires_imatrix(t)) {
                EXPECT_TRUE(check_type(t, x, 1, 256, name + " / no imatrix", nullptr));
            }
        }
}

TEST(IqOracle, DequantizeMatchesGgml) {
    REQUIRE_GGML();
    Rng rng(5);
    const auto x = make_rows(1, 4096, 77);
    const auto w = make_imatrix(0, 4096, 78);
    for (GgmlType t : kIqTypes) {
        EXPECT_TRUE(check_dequant(t, Ggml::get().quantize(t, x, 1, 4096, w.data()), 4096, "round trip"));
        std::vector<std::uint8_t> q(sf::quant::row_bytes(t, 4096));
        for (auto& b : q) b = static_cast<std::uint8_t>(rng.next() >> 24);
        EXPECT_TRUE(check_dequant(t, q, 4096, "random bytes"));
    }
}

TEST(IqOracle, MissingImatrixIsRefusedNotAborted) {
    std::vector<float> x(256, 0.5f);
    std::vector<std::uint8_t> out(256);
    for (GgmlType t : kIqTypes) {
        EXPECT_TRUE(sf::quant::can_quantize(t)) << name_of(t);
        if (t != GgmlType::IQ3_S) {  // llama-quantize's tensor_requires_imatrix list
            EXPECT_TRUE(sf::quant::needs_imatrix(t)) << name_of(t);
        }
        if (!ggml_requires_imatrix(t)) continue;
        try {
            sf::quant::quantize_rows(t, x.data(), out.data(), 1, 256, nullptr);
            ADD_FAILURE() << name_of(t) << " quantized without an imatrix";
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage) << e.what();
        }
        try {
            sf::quant::quantize_rows_parallel(t, x.data(), out.data(), 1, 256, nullptr, 4);
            ADD_FAILURE() << name_of(t) << " quantized without an imatrix (parallel)";
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage) << e.what();
        }
    }
}

TEST(IqOracle, ParallelSplitGivesTheSameBytes) {
    REQUIRE_GGML();
    const auto x = make_rows(2, 16 * 512, 91);
    const auto w = make_imatrix(3, 512, 92);
    for (GgmlType t : kIqTypes) {
        const auto want = Ggml::get().quantize(t, x, 16, 512, w.data());
        std::vector<std::uint8_t> got(want.size());
        sf::quant::quantize_rows_parallel(t, x.data(), got.data(), 16, 512, w.data(), 3);
        EXPECT_TRUE(same_bytes(t, got, want, "3 threads"));
    }
}

}  // namespace
