// TQ1_0 and TQ2_0 (ternary, 256 elements): ggml's quantize_row_tq{1,2}_0_ref (llama-quantize ignores any
// imatrix) and dequantize_row_tq{1,2}_0 (llama.cpp's ggml/src/ggml-common.h, ggml/src/ggml-quants.c). SF_HD, pure.
#pragma once
#include "common.hpp"

namespace shardforge::quant {

SF_HD float tq_amax(const float* x) {
    float amax = 0.0f;
    for (int j = 0; j < qk_k; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

// The trits of a TQ block: xi[j] = lroundf(x[j] * id) + 1 (0, 1 or 2 for finite x; for NaN and infinities the
// low byte of ggml's int, which is all its uint8_t packing keeps).
SF_HD void ternary_trits(const float* x, float id, std::int8_t* xi) {
    for (int j = 0; j < qk_k; ++j) xi[j] = static_cast<std::int8_t>(static_cast<int>(lroundf(x[j] * id)) + 1);
}

// qs[0..31]: 5 trits each, elements m + 32n; qs[32..47]: elements 160 + m + 16n; first trit most significant
SF_HD void pack_block_tq1_0(const std::int8_t* xi, BlockTQ1_0& y) {
    for (int m = 0; m < 32; ++m) {
        std::uint8_t q = 0;
        for (int n = 0; n < 5; ++n) q = static_cast<std::uint8_t>(q * 3 + xi[m + n * 32]);
        y.qs[m] = static_cast<std::uint8_t>((std::uint16_t{q} * 256 + (243 - 1)) / 243);  // ceiling division
    }
    xi += 160;
    for (int m = 0; m < 16; ++m) {
        std::uint8_t q = 0;
        for (int n = 0; n < 5; ++n) q = static_cast<std::uint8_t>(q * 3 + xi[m + n * 16]);
        y.qs[32 + m] = static_cast<std::uint8_t>((std::uint16_t{q} * 256 + (243 - 1)) / 243);
    }
    xi += 80;
    for (int j = 0; j < 4; ++j) {
        std::uint8_t q = 0;
        for (int m = 0; m < 4; ++m) q = static_cast<std::uint8_t>(q * 3 + xi[j + m * 4]);
        q = static_cast<std::uint8_t>(q * 3);  // the first value goes to the most significant trit
        y.qh[j] = static_cast<std::uint8_t>((std::uint16_t{q} * 256 + (243 - 1)) / 243);
    }
}

SF_HD void quantize_block_tq1_0(const float* x, BlockTQ1_0& y) {
    const float d = tq_amax(x);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    std::int8_t xi[qk_k];
    ternary_trits(x, id, xi);
    pack_block_tq1_0(xi, y);
}

SF_HD void dequantize_block_tq1_0(const BlockTQ1_0& x, float* y) {
    const std::uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    const float d = detail::f16(x.d);
    for (int n = 0; n < 5; ++n)
        for (int m = 0; m < 32; ++m) {
            const std::uint8_t q = static_cast<std::uint8_t>(x.qs[m] * pow3[n]);
            const std::int16_t xi = static_cast<std::int16_t>((std::uint16_t{q} * 3) >> 8);
            *y++ = static_cast<float>(xi - 1) * d;
        }
    for (int n = 0; n < 5; ++n)
        for (int m = 0; m < 16; ++m) {
            const std::uint8_t q = static_cast<std::uint8_t>(x.qs[32 + m] * pow3[n]);
            const std::int16_t xi = static_cast<std::int16_t>((std::uint16_t{q} * 3) >> 8);
            *y++ = static_cast<float>(xi - 1) * d;
        }
    for (int n = 0; n < 4; ++n)
        for (int j = 0; j < 4; ++j) {
            const std::uint8_t q = static_cast<std::uint8_t>(x.qh[j] * pow3[n]);
            const std::int16_t xi = static_cast<std::int16_t>((std::uint16_t{q} * 3) >> 8);
            *y++ = static_cast<float>(xi - 1) * d;
        }
}

// qs[j + m] holds elements 4j + m + 32n (n = 0..3) in bits 2n; summing disjoint bit fields, n by n.
SF_HD void pack_block_tq2_0(const std::int8_t* xi, BlockTQ2_0& y) {
    for (int j = 0; j < 64; j += 32) {
        for (int m = 0; m < 32; ++m) y.qs[j + m] = 0;
        for (int n = 0; n < 4; ++n)
            for (int m = 0; m < 32; ++m)
                y.qs[j + m] = static_cast<std::uint8_t>(y.qs[j + m] + ((xi[m + n * 32] & 3) << (2 * n)));
        xi += 128;
    }
}

SF_HD void quantize_block_tq2_0(const float* x, BlockTQ2_0& y) {
    const float d = tq_amax(x);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    std::int8_t xi[qk_k];
    ternary_trits(x, id, xi);
    pack_block_tq2_0(xi, y);
}

SF_HD void dequantize_block_tq2_0(const BlockTQ2_0& x, float* y) {
    const float d = detail::f16(x.d);
    for (int j = 0; j < 64; j += 32)
        for (int l = 0; l < 4; ++l)
            for (int m = 0; m < 32; ++m) {
                const std::int8_t q = static_cast<std::int8_t>((x.qs[j + m] >> (l * 2)) & 3);
                *y++ = static_cast<float>(q - 1) * d;
            }
}

}  // namespace shardforge::quant
