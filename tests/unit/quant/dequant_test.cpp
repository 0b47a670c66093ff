// Quantized-input dequantization kernels (quant::dequant_*): hand-computed cases from bitsandbytes' tables
// (bitsandbytes/functional.py) and the element-range contract (any split of [0, n) gives the same values as one call),
// which row-block execution and the CUDA port rely on. Bit-identity with the independent numpy reference is tested end
// to end (tests/reference/quant_check.py, ctest quantized.safetensors).
#include <shardforge/quant.hpp>

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace q = shardforge::quant;
using shardforge::core::DType;

namespace {
std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }
}  // namespace

TEST(Dequant, CodeTablesMatchTheSpecDecimals) {
    // NF4: get_4bit_type's decimal values; FP4: raw magnitudes / 12 (bitsandbytes/functional.py)
    const double nf4[16] = {-1.0, -0.6961928010, -0.5250730515, -0.3949174881, -0.2844413817, -0.1847734302,
                            -0.0910500363, 0.0, 0.0795802996, 0.1609302014, 0.2461123019, 0.3379152417,
                            0.4407098293, 0.5626170039, 0.7229568362, 1.0};
    const double raw[8] = {0, 0.0625, 8, 12, 4, 6, 2, 3};
    for (int i = 0; i < 16; ++i) {
        EXPECT_NEAR(q::bnb_nf4_code()[i], nf4[i], 1e-8) << i;
        EXPECT_EQ(q::bnb_fp4_code()[i], (i < 8 ? 1.0f : -1.0f) * static_cast<float>(raw[i % 8] / 12.0)) << i;
    }
    EXPECT_TRUE(std::signbit(q::bnb_fp4_code()[8]));  // index 8 is -0
}

TEST(Dequant, Bnb4NibbleOrderBlocksAndRounding) {
    // 5 elements (odd), blocksize 4: block 1 holds only element 4. Byte 0 = 0xF0: element 0 high nibble (15 -> 1.0),
    // element 1 low nibble (0 -> -1.0).
    const std::uint8_t packed[3] = {0xF0, 0x87, 0x8F};
    const float absmax[2] = {2.0f, 0.5f};
    q::Bnb4View v;
    v.packed = packed;
    v.code = q::bnb_nf4_code();
    v.blocksize = 4;
    v.absmax = absmax;
    float out[5];
    q::dequant_bnb4(v, 0, 5, out);
    EXPECT_EQ(out[0], 2.0f);
    EXPECT_EQ(out[1], -2.0f);
    EXPECT_EQ(out[2], q::bnb_nf4_code()[8] * 2.0f);   // 0x87: high nibble 8
    EXPECT_EQ(out[3], 0.0f);                          // low nibble 7 = 0.0
    EXPECT_EQ(out[4], q::bnb_nf4_code()[8] * 0.5f);   // element 4: byte 2 high nibble, block 1
    // bf16 output dtype: one RNE rounding of the fp32 product: 0x3da2faff * 2 = 0x3e22faff -> bf16 0x3e23
    v.out_dtype = DType::BF16;
    q::dequant_bnb4(v, 2, 3, out);
    EXPECT_EQ(bits(out[0]), 0x3e230000u) << std::hex << bits(out[0]);
}

TEST(Dequant, Bnb4DoubleQuantAbsmax) {
    // absmax[b] = f32(f32(nested_code[c_b] * nested_absmax[b / 2]) + offset), nested blocksize 2
    const std::uint8_t packed[2] = {0xFF, 0xFF};    // every element code 15 = 1.0: the output is the absmax
    const std::uint8_t codes[4] = {0, 1, 2, 3};
    std::vector<float> nested_code(256, 0.0f);
    nested_code[0] = -1.0f;
    nested_code[1] = 0.25f;
    nested_code[2] = 0.5f;
    nested_code[3] = 0.1f;
    const float nested_absmax[2] = {3.0f, 0.3f};
    q::Bnb4View v;
    v.packed = packed;
    v.code = q::bnb_nf4_code();
    v.blocksize = 1;
    v.absmax_code = codes;
    v.nested_code = nested_code.data();
    v.nested_absmax = nested_absmax;
    v.nested_blocksize = 2;
    v.nested_offset = 0.125f;
    float out[4];
    q::dequant_bnb4(v, 0, 4, out);
    EXPECT_EQ(out[0], -3.0f + 0.125f);
    EXPECT_EQ(out[1], 0.75f + 0.125f);
    EXPECT_EQ(out[2], 0.5f * 0.3f + 0.125f);
    const float p = 0.1f * 0.3f;  // rounded to fp32 before the add (no FMA)
    EXPECT_EQ(out[3], p + 0.125f);
}

TEST(Dequant, Int8AndFp8Recipes) {
    const std::int8_t cb[6] = {127, -127, 1, 0, 64, -1};
    const float scb[2] = {2.0f, 0.5f};
    float out[6];
    q::dequant_int8(cb, scb, 3, 0, 6, out);
    const float inv = 7.874015718698502e-3f;
    EXPECT_EQ(out[0], 254.0f * inv);
    EXPECT_EQ(out[1], -254.0f * inv);
    EXPECT_EQ(out[5], -0.5f * inv);
    // FP8 E4M3: 0x38 = 1.0, 0xB8 = -1.0, 0x01 = 2^-9 (subnormal), 0x7E = 448; 3x3 weight, 2x2 blocks -> 2x2 grid
    const std::uint8_t w[9] = {0x38, 0xB8, 0x01, 0x7E, 0x38, 0x38, 0x38, 0x38, 0x38};
    const float scale[4] = {2.0f, 3.0f, 5.0f, 7.0f};
    q::Fp8View f;
    f.w = w;
    f.scale = scale;
    f.rows = 3;
    f.cols = 3;
    f.block_rows = 2;
    f.block_cols = 2;
    float o[9];
    q::dequant_fp8(f, 0, 9, o);
    const float want[9] = {2.0f, -2.0f, 3.0f * 0.001953125f, 896.0f, 2.0f, 3.0f, 5.0f, 5.0f, 7.0f};
    for (int i = 0; i < 9; ++i) EXPECT_EQ(o[i], want[i]) << i;
}

TEST(Dequant, AnyElementRangeEqualsTheWholeTensor) {
    std::mt19937 rng(7);
    const std::int64_t rows = 37, cols = 53, n = rows * cols;  // odd count; blocks of 64 cross rows
    std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2)), codes(static_cast<std::size_t>(n));
    for (auto& b : packed) b = static_cast<std::uint8_t>(rng());
    for (auto& b : codes) b = static_cast<std::uint8_t>(rng());
    std::vector<float> absmax(static_cast<std::size_t>((n + 63) / 64)), ncode(256), nabs(8), scale(4 * 4);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& x : absmax) x = u(rng);
    for (auto& x : ncode) x = u(rng);
    for (auto& x : nabs) x = u(rng);
    for (auto& x : scale) x = u(rng);
    std::vector<std::int8_t> cb(static_cast<std::size_t>(n));
    for (auto& x : cb) x = static_cast<std::int8_t>(rng());
    std::vector<float> scb(rows);
    for (auto& x : scb) x = u(rng);

    auto check = [&](const char* what, auto&& f) {
        std::vector<float> whole(static_cast<std::size_t>(n)), part(static_cast<std::size_t>(n));
        f(0, n, whole.data());
        for (std::int64_t step : {1, 7, 64, 100, 53 * 3}) {
            for (std::int64_t k = 0; k < n; k += step) f(k, std::min(n, k + step), part.data() + k);
            for (std::int64_t i = 0; i < n; ++i)
                ASSERT_EQ(bits(part[static_cast<std::size_t>(i)]), bits(whole[static_cast<std::size_t>(i)]))
                    << what << " step " << step << " element " << i;
        }
    };
    for (bool nested : {false, true}) {
        q::Bnb4View v;
        v.packed = packed.data();
        v.code = q::bnb_fp4_code();
        v.blocksize = 64;
        if (nested) {
            v.absmax_code = codes.data();
            v.nested_code = ncode.data();
            v.nested_absmax = nabs.data();
            v.nested_blocksize = 4;
            v.nested_offset = 0.01f;
        } else {
            v.absmax = absmax.data();
        }
        v.out_dtype = DType::F16;
        check("bnb4", [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_bnb4(v, a, b, d); });
    }
    check("int8", [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_int8(cb.data(), scb.data(), cols, a, b, d); });
    q::Fp8View f;
    f.w = packed.data();  // any bytes
    f.scale = scale.data();
    f.rows = rows;
    f.cols = cols;
    f.block_rows = 16;  // 3 x 4 grid with partial edge blocks (37 = 16+16+5, 53 = 16*3+5)
    f.block_cols = 16;
    std::vector<std::uint8_t> w8(static_cast<std::size_t>(n));
    for (auto& b : w8) b = static_cast<std::uint8_t>(rng() & 0x7e);  // no NaN codes
    f.w = w8.data();
    check("fp8", [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_fp8(f, a, b, d); });
}

// OpenAI's MXFP4 (transformers' integrations/mxfp4.py): byte j of a block holds element 2j (low nibble) and 2j+1
// (high), FP4 E2M1 codes, scaled by 2^(scale - 127); hand-computed values.
TEST(Dequant, Mxfp4BlocksAndScales) {
    std::uint8_t blocks[32] = {};
    blocks[0] = 0x71;   // elements 0: code 1 (0.5), 1: code 7 (6.0)
    blocks[1] = 0x9F;   // 2: code 15 (-6.0), 3: code 9 (-0.5)
    blocks[15] = 0x25;  // 30: code 5 (3.0), 31: code 2 (1.0)
    blocks[16] = 0x04;  // second block, element 32: code 4 (2.0)
    const std::uint8_t scales[2] = {127, 120};  // 2^0, 2^-7
    float out[64];
    q::dequant_mxfp4(blocks, scales, 0, 64, out);
    EXPECT_EQ(out[0], 0.5f);
    EXPECT_EQ(out[1], 6.0f);
    EXPECT_EQ(out[2], -6.0f);
    EXPECT_EQ(out[3], -0.5f);
    EXPECT_EQ(out[30], 3.0f);
    EXPECT_EQ(out[31], 1.0f);
    EXPECT_EQ(out[32], 2.0f / 128.0f);
    EXPECT_EQ(out[33], 0.0f);
    float part[10];
    q::dequant_mxfp4(blocks, scales, 28, 38, part);  // any element range gives the same values
    for (int k = 0; k < 10; ++k) EXPECT_EQ(bits(part[k]), bits(out[28 + k])) << k;
}

// compressed-tensors pack-quantized (llama.cpp's conversion/base.py dequant_packed): 4-bit codes, lowest bits first, in
// little-endian int32 words per row (a row of 10 values takes two words, the second half empty), minus 8, times the
// scale of the value's group; hand-computed values.
TEST(Dequant, PackedIntFourBitCodesTimesGroupScales) {
    const std::uint32_t words[4] = {0x76543210u, 0x000000F8u,   // row 0: codes 0..7, then 8, 15
                                    0x88888888u, 0x00000019u};  // row 1: eight 8s (zero), then 9, 1
    std::uint8_t bytes[16];
    for (int i = 0; i < 4; ++i)
        for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<std::uint8_t>(words[i] >> (8 * b));
    const float scale[6] = {0.5f, 2.0f, -1.0f, 0.25f, 4.0f, 8.0f};  // [2 rows, 3 groups of 4]
    float out[20];
    q::dequant_packed_int(bytes, scale, 10, 2, 4, 4, 0, 20, out);
    const float want[20] = {-4.0f, -3.5f, -3.0f, -2.5f, -8.0f, -6.0f, -4.0f, -2.0f, 0.0f, -7.0f,
                            0.0f,  0.0f,  0.0f,  0.0f,  0.0f,  0.0f,  0.0f,  0.0f,  8.0f, -56.0f};
    for (int k = 0; k < 20; ++k) EXPECT_EQ(out[k], want[k]) << k;
    float part[7];
    q::dequant_packed_int(bytes, scale, 10, 2, 4, 4, 7, 14, part);  // any element range gives the same values
    for (int k = 0; k < 7; ++k) EXPECT_EQ(bits(part[k]), bits(out[7 + k])) << k;
    float two[2];
    const std::uint8_t w2[4] = {0xE4, 0, 0, 0};  // 2-bit codes 0, 1, 2, 3 (offset 2): values 2 and 3 of the row
    const float s2 = 3.0f;
    q::dequant_packed_int(w2, &s2, 4, 1, 2, 16, 2, 4, two);
    EXPECT_EQ(two[0], 0.0f);
    EXPECT_EQ(two[1], 3.0f);
}

// The repacked block_mxfp4 (llama.cpp's conversion/gpt_oss.py repack_mxfp4) dequantizes in ggml to the same values,
// for every code and a spread of scales.
TEST(Dequant, Mxfp4RepackKeepsEveryValueInGgmlsLayout) {
    std::mt19937 rng(7);
    const int n_blocks = 64;
    std::vector<std::uint8_t> blocks(16 * n_blocks), scales(n_blocks);
    for (auto& b : blocks) b = static_cast<std::uint8_t>(rng());
    for (int i = 0; i < n_blocks; ++i) scales[i] = static_cast<std::uint8_t>(100 + i);
    std::vector<float> want(32 * n_blocks), got(32 * n_blocks);
    q::dequant_mxfp4(blocks.data(), scales.data(), 0, 32 * n_blocks, want.data());
    std::vector<std::uint8_t> packed(17 * n_blocks);
    q::repack_mxfp4(blocks.data(), scales.data(), n_blocks, packed.data());
    EXPECT_EQ(packed[17], scales[1]);
    EXPECT_EQ(packed[1], static_cast<std::uint8_t>((blocks[0] & 15) | ((blocks[8] & 15) << 4)))
        << "value 0 and value 16 of block 0";
    q::dequantize_rows(q::GgmlType::MXFP4, packed.data(), got.data(), 1, 32 * n_blocks);
    // equal values (code 8 is -0.0 in transformers' table, +0 in ggml's kvalues_mxfp4)
    for (int k = 0; k < 32 * n_blocks; ++k) EXPECT_EQ(got[k], want[k]) << k;
}
