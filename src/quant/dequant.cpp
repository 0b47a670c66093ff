// Public entries of the quantized-input dequantization kernels (kernels/dequant.hpp).
#include <cmath>
#include <shardforge/quant.hpp>

#include "kernels/dequant.hpp"

#include <bit>

namespace shardforge::quant {
namespace {
// bitsandbytes/functional.py (get_4bit_type), as fp32 bit patterns.
constexpr std::uint32_t nf4_bits[16] = {0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f,
                                        0xbdba7871, 0x00000000, 0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a,
                                        0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000};
constexpr std::uint32_t fp4_bits[16] = {0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000,
                                        0x3e2aaaab, 0x3e800000, 0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000,
                                        0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000};
struct Tables {
    float nf4[16], fp4[16];
    Tables() {
        for (int i = 0; i < 16; ++i) {
            nf4[i] = std::bit_cast<float>(nf4_bits[i]);
            fp4[i] = std::bit_cast<float>(fp4_bits[i]);
        }
    }
};
const Tables& tables() {
    static const Tables t;
    return t;
}
}  // namespace

void dequant_bnb4(const Bnb4View& v, std::int64_t k0, std::int64_t k1, float* dst) noexcept {
    kernels::bnb4_range(v.packed, v.code, v.blocksize, v.absmax, v.absmax_code, v.nested_code, v.nested_absmax,
                        v.nested_blocksize, v.nested_offset, kernels::round_kind(v.out_dtype), k0, k1, dst);
}

void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                  float* dst) noexcept {
    kernels::int8_range(cb, scb, cols, k0, k1, dst);
}

void dequant_fp8(const Fp8View& v, std::int64_t k0, std::int64_t k1, float* dst) noexcept {
    kernels::fp8_range(v.w, v.e5m2, v.scale, v.cols, v.block_rows, v.block_cols, k0, k1, dst);
}

void dequant_mxfp4(const std::uint8_t* blocks, const std::uint8_t* scales, std::int64_t k0, std::int64_t k1,
                   float* dst) noexcept {
    // E2M1: sign, 2 exponent bits, 1 mantissa bit
    static constexpr float fp4[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                      -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    for (std::int64_t k = k0; k < k1; ++k) {
        const std::uint8_t byte = blocks[k / 2];
        const int code = (k & 1) ? byte >> 4 : byte & 15;
        dst[k - k0] = std::ldexp(fp4[code], static_cast<int>(scales[k / 32]) - 127);
    }
}

void dequant_packed_int(const std::uint8_t* words, const float* scale, std::int64_t cols, std::int64_t words_per_row,
                        int bits, std::int64_t group, std::int64_t k0, std::int64_t k1, float* dst) noexcept {
    const std::int64_t per_word = 32 / bits, n_groups = (cols + group - 1) / group;
    const std::uint32_t mask = (1u << bits) - 1u;
    const int offset = 1 << (bits - 1);
    for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t r = k / cols, c = k % cols;
        const std::uint8_t* w = words + 4 * (r * words_per_row + c / per_word);
        const std::uint32_t word = static_cast<std::uint32_t>(w[0]) | static_cast<std::uint32_t>(w[1]) << 8 |
                                   static_cast<std::uint32_t>(w[2]) << 16 | static_cast<std::uint32_t>(w[3]) << 24;
        const int code = static_cast<int>((word >> (bits * (c % per_word))) & mask);
        dst[k - k0] = static_cast<float>(code - offset) * scale[r * n_groups + c / group];
    }
}

void repack_mxfp4(const std::uint8_t* blocks, const std::uint8_t* scales, std::int64_t n_blocks,
                  std::uint8_t* dst) noexcept {
    for (std::int64_t b = 0; b < n_blocks; ++b) {
        const std::uint8_t* in = blocks + 16 * b;
        std::uint8_t* out = dst + 17 * b;
        out[0] = scales[b];
        auto code = [&](int i) { return (i & 1) ? in[i / 2] >> 4 : in[i / 2] & 15; };
        for (int j = 0; j < 16; ++j) out[1 + j] = static_cast<std::uint8_t>(code(j) | (code(j + 16) << 4));
    }
}

const float* bnb_nf4_code() noexcept { return tables().nf4; }
const float* bnb_fp4_code() noexcept { return tables().fp4; }

}  // namespace shardforge::quant
