// Scalar conversions checked against the x86 F16C instructions (the hardware oracle ggml uses)
// and against hand-derived bit patterns.
#include <cpuid.h>
#include <shardforge/core.hpp>

#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <random>

namespace sf = shardforge;

// CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c").
static bool cpu_has_f16c() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}

__attribute__((target("f16c"))) static std::uint16_t hw_f32_to_f16(float f) {
    return static_cast<std::uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(std::uint16_t h) { return _cvtsh_ss(h); }

TEST(Convert, F16ToF32MatchesF16cForEveryHalf) {
    if (!cpu_has_f16c()) GTEST_SKIP() << "CPU has no F16C instructions to compare against";
    for (std::uint32_t h = 0; h < 65536; ++h) {
        const float a = sf::core::f16_to_f32(static_cast<std::uint16_t>(h));
        const float b = hw_f16_to_f32(static_cast<std::uint16_t>(h));
        if (std::isnan(b)) {
            ASSERT_TRUE(std::isnan(a)) << h;
        } else {
            ASSERT_EQ(sf::core::f32_bits(a), sf::core::f32_bits(b)) << "half 0x" << std::hex << h;
        }
    }
}

TEST(Convert, F32ToF16MatchesF16cOnRandomAndEdgeBits) {
    if (!cpu_has_f16c()) GTEST_SKIP() << "CPU has no F16C instructions to compare against";
    std::mt19937 rng(42);
    std::vector<std::uint32_t> cases = {0u, 0x80000000u, 0x7f800000u, 0x477fe000u, 0x477ff000u, 0x477fefffu,
                                        0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u, 0x3f800000u};
    for (int i = 0; i < 2000000; ++i) cases.push_back(rng());
    for (std::uint32_t e = 96; e < 150; ++e)  // dense coverage of the subnormal/normal boundary
        for (std::uint32_t m = 0; m < 4096; ++m) cases.push_back((e << 23) | (m * 2047u));
    for (std::uint32_t u : cases) {
        const float f = sf::core::bits_f32(u);
        if (std::isnan(f)) continue;
        ASSERT_EQ(sf::core::f32_to_f16(f), hw_f32_to_f16(f)) << "f32 bits 0x" << std::hex << u;
    }
}

TEST(Convert, Bf16RoundsToNearestEven) {
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0.
    EXPECT_EQ(sf::core::f32_to_bf16(sf::core::bits_f32(0x3f808000u)), 0x3f80);
    // 1.0078125 + half ulp ties to even -> 1.015625 (0x3f82)
    EXPECT_EQ(sf::core::f32_to_bf16(sf::core::bits_f32(0x3f818000u)), 0x3f82);
    EXPECT_EQ(sf::core::f32_to_bf16(sf::core::bits_f32(0x3f808001u)), 0x3f81);
    EXPECT_EQ(sf::core::f32_to_bf16(sf::core::bits_f32(0x7f7fffffu)), 0x7f80);  // overflow to inf
    EXPECT_EQ(sf::core::f32_to_bf16(std::nanf("")) & 0x7fc0, 0x7fc0);
    for (std::uint32_t h = 0; h < 65536; ++h) {
        const float f = sf::core::bf16_to_f32(static_cast<std::uint16_t>(h));
        if (!std::isnan(f)) {
            ASSERT_EQ(sf::core::f32_to_bf16(f), h);
        }
    }
}

TEST(Convert, F8E4M3DecodesOcpValues) {
    EXPECT_EQ(sf::core::f8e4m3_to_f32(0x7e), 448.0f);      // max finite
    EXPECT_EQ(sf::core::f8e4m3_to_f32(0x01), 0.001953125f);  // 2^-9 smallest subnormal
    EXPECT_EQ(sf::core::f8e4m3_to_f32(0x38), 1.0f);
    EXPECT_EQ(sf::core::f8e4m3_to_f32(0xb8), -1.0f);
    EXPECT_TRUE(std::isnan(sf::core::f8e4m3_to_f32(0x7f)));
    EXPECT_EQ(sf::core::f8e5m2_to_f32(0x3c), 1.0f);
    EXPECT_EQ(sf::core::f8e5m2_to_f32(0x7b), 57344.0f);
}

TEST(Error, MessageNamesFileAndTensor) {
    sf::core::Error e(sf::core::ErrorKind::BadInput, "a.safetensors", "w", "bad");
    EXPECT_STREQ(e.what(), "a.safetensors: tensor 'w': bad");
    EXPECT_EQ(sf::core::exit_code(e.kind()), 3);
}
