// to_f32 / from_f32: tables of input bits -> expected bits, worked out by hand from the IEEE / OCP encodings.
#include <shardforge/formats.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace sf = shardforge;
namespace fmt = shardforge::formats;
using sf::core::DType;

namespace {

template <class T> std::vector<std::byte> bytes_of(const std::vector<T> &v) {
    std::vector<std::byte> b(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}
std::uint32_t bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void expect_to_f32(DType t, const std::vector<std::byte> &in, const std::vector<std::uint32_t> &want_bits) {
    std::vector<float> out(want_bits.size(), -7.0f);
    fmt::to_f32(t, in.data(), out.data(), out.size());
    int shown = 0;
    for (std::size_t i = 0; i < out.size() && shown < 10; ++i)
        if (bits(out[i]) != want_bits[i]) {
            ADD_FAILURE() << sf::core::dtype_name(t) << " [" << i << "]: got 0x" << std::hex << bits(out[i])
                          << ", expected 0x" << want_bits[i];
            ++shown;
        }
}

} // namespace

TEST(Convert, Bf16ToF32) {
    // 1.0, -2.5, smallest subnormal, +inf, NaN payload kept
    expect_to_f32(DType::BF16, bytes_of<std::uint16_t>({0x3f80, 0xc020, 0x0001, 0x7f80, 0x7fc1}),
                  {0x3f800000, 0xc0200000, 0x00010000, 0x7f800000, 0x7fc10000});
}

TEST(Convert, F16ToF32) {
    // 1.0, -2.0, 65504, 2^-24 (smallest subnormal), 2^-14 (smallest normal), -0, inf
    expect_to_f32(DType::F16, bytes_of<std::uint16_t>({0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00}),
                  {0x3f800000, 0xc0000000, 0x477fe000, 0x33800000, 0x38800000, 0x80000000, 0x7f800000});
}

TEST(Convert, F8ToF32) {
    // E4M3FN: 0x38 = 1.0, 0x7e = 448, 0x01 = 2^-9, 0xb8 = -1.0; 0x7f is NaN (checked separately)
    expect_to_f32(DType::F8_E4M3, bytes_of<std::uint8_t>({0x38, 0x7e, 0x01, 0xb8}),
                  {0x3f800000, 0x43e00000, 0x3b000000, 0xbf800000});
    std::vector<std::byte> nan{std::byte{0x7f}};
    float f = 0;
    fmt::to_f32(DType::F8_E4M3, nan.data(), &f, 1);
    EXPECT_TRUE(std::isnan(f));
    // E5M2: 0x3c = 1.0, 0x7b = 57344, 0x7c = inf, 0x01 = 2^-16
    expect_to_f32(DType::F8_E5M2, bytes_of<std::uint8_t>({0x3c, 0x7b, 0x7c, 0x01}),
                  {0x3f800000, 0x47600000, 0x7f800000, 0x37800000});
}

TEST(Convert, F64AndF32ToF32) {
    expect_to_f32(DType::F64, bytes_of<double>({1.0, -0.5, 0.1, 1e300}),
                  {0x3f800000, 0xbf000000, 0x3dcccccd, 0x7f800000});
    expect_to_f32(DType::F32, bytes_of<std::uint32_t>({0x12345678, 0xffc00001}), {0x12345678, 0xffc00001});
}

TEST(Convert, F32ToBf16RoundsToNearestEven) {
    const std::vector<float> in = {from_bits(0x3f800000), from_bits(0x3f808000),  // tie, even stays
                                   from_bits(0x3f818000),                         // tie, odd rounds up
                                   from_bits(0x3f808001), from_bits(0x477fe000)}; // above tie; 65504
    std::vector<std::byte> out(in.size() * 2);
    fmt::from_f32(in.data(), DType::BF16, out.data(), in.size());
    std::vector<std::uint16_t> got(in.size());
    std::memcpy(got.data(), out.data(), out.size());
    EXPECT_EQ(got, (std::vector<std::uint16_t>{0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x4780}));
}

TEST(Convert, F32ToF16RoundsToNearestEvenAndOverflowsToInf) {
    const std::vector<float> in = {1.0f,
                                   -2.0f,
                                   65504.0f,
                                   65520.0f,
                                   from_bits(0x33800000) /*2^-24*/,
                                   from_bits(0x3f801000) /*1 + 2^-11: tie, even*/};
    std::vector<std::byte> out(in.size() * 2);
    fmt::from_f32(in.data(), DType::F16, out.data(), in.size());
    std::vector<std::uint16_t> got(in.size());
    std::memcpy(got.data(), out.data(), out.size());
    EXPECT_EQ(got, (std::vector<std::uint16_t>{0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x3c00}));
}

TEST(Convert, IntegerTypesAreUnsupported) {
    std::vector<std::byte> b(8);
    float f[2];
    for (DType t : {DType::I64, DType::I32, DType::I8, DType::U8, DType::BOOL}) {
        try {
            fmt::to_f32(t, b.data(), f, 1);
            ADD_FAILURE() << "to_f32 accepted " << sf::core::dtype_name(t);
        } catch (const sf::core::Error &e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::Unsupported);
        }
    }
    EXPECT_THROW(fmt::from_f32(f, DType::F8_E4M3, b.data(), 1), sf::core::Error);
    EXPECT_THROW(fmt::from_f32(f, DType::I32, b.data(), 1), sf::core::Error);
}
