// 32-element block kernels: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 (llama.cpp's ggml/src/ggml-quants.c) — quantize one
// block without imatrix (ggml's quantize_row_*_ref), with imatrix (quantize_row_*_impl, per block; sigma2 is
// the row's mean square, computed by the caller), and dequantize one block. SF_HD, pure.
#pragma once
#include "common.hpp"

namespace shardforge::quant {

// ---------------------------------------------------------------- Q4_0
SF_HD void quantize_block_q4_0(const float* x, BlockQ4_0& y) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) { amax = fabsf(v); max = v; }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    for (int j = 0; j < 16; ++j) {
        const float x0 = x[j] * id;
        const float x1 = x[16 + j] * id;
        const std::uint8_t xi0 = static_cast<std::uint8_t>(detail::imin(15, detail::x86_trunc_i8(x0 + 8.5f)));
        const std::uint8_t xi1 = static_cast<std::uint8_t>(detail::imin(15, detail::x86_trunc_i8(x1 + 8.5f)));
        y.qs[j] = static_cast<std::uint8_t>(xi0 | (xi1 << 4));
    }
}
SF_HD void quantize_block_q4_0_imatrix(const float* x, const float* qw, float sigma2, BlockQ4_0& y) {
    float weight[32];
    std::int8_t L[32];
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    const float d = detail::make_qx_quants(32, 8, x, L, weight);
    y.d = detail::to_f16(d);
    for (int j = 0; j < 16; ++j) y.qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + 16] << 4));
}
SF_HD void dequantize_block_q4_0(const BlockQ4_0& x, float* y) {
    const float d = detail::f16(x.d);
    for (int j = 0; j < 16; ++j) {
        const int x0 = (x.qs[j] & 0x0F) - 8;
        const int x1 = (x.qs[j] >> 4) - 8;
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
    }
}

// ---------------------------------------------------------------- Q4_1
SF_HD void quantize_block_q4_1(const float* x, BlockQ4_1& y) {
    float min = 3.402823466e+38F;  // FLT_MAX
    float max = -3.402823466e+38F;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (v < min) min = v;
        if (v > max) max = v;
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    y.m = detail::to_f16(min);
    for (int j = 0; j < 16; ++j) {
        const float x0 = (x[j] - min) * id;
        const float x1 = (x[16 + j] - min) * id;
        const std::uint8_t xi0 = static_cast<std::uint8_t>(detail::imin(15, detail::x86_trunc_i8(x0 + 0.5f)));
        const std::uint8_t xi1 = static_cast<std::uint8_t>(detail::imin(15, detail::x86_trunc_i8(x1 + 0.5f)));
        y.qs[j] = static_cast<std::uint8_t>(xi0 | (xi1 << 4));
    }
}
SF_HD void quantize_block_q4_1_imatrix(const float* x, const float* qw, float sigma2, BlockQ4_1& y) {
    float weight[32];
    std::uint8_t L[32], Laux[32];
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    float min;
    const float d = detail::make_qkx3_quants(32, 15, x, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
    y.d = detail::to_f16(d);
    y.m = detail::to_f16(-min);
    for (int j = 0; j < 16; ++j) y.qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + 16] << 4));
}
SF_HD void dequantize_block_q4_1(const BlockQ4_1& x, float* y) {
    const float d = detail::f16(x.d);
    const float m = detail::f16(x.m);
    for (int j = 0; j < 16; ++j) {
        const int x0 = x.qs[j] & 0x0F;
        const int x1 = x.qs[j] >> 4;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

// ---------------------------------------------------------------- Q5_0
SF_HD void store_qh(std::uint8_t* dst, std::uint32_t qh) {  // little-endian u32, as ggml's memcpy on x86/ARM
    dst[0] = static_cast<std::uint8_t>(qh);
    dst[1] = static_cast<std::uint8_t>(qh >> 8);
    dst[2] = static_cast<std::uint8_t>(qh >> 16);
    dst[3] = static_cast<std::uint8_t>(qh >> 24);
}
SF_HD std::uint32_t load_qh(const std::uint8_t* src) {
    return std::uint32_t{src[0]} | (std::uint32_t{src[1]} << 8) | (std::uint32_t{src[2]} << 16) |
           (std::uint32_t{src[3]} << 24);
}

SF_HD void quantize_block_q5_0(const float* x, BlockQ5_0& y) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) { amax = fabsf(v); max = v; }
    }
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const float x0 = x[j] * id;
        const float x1 = x[16 + j] * id;
        const std::uint8_t xi0 = static_cast<std::uint8_t>(detail::imin(31, detail::x86_trunc_i8(x0 + 16.5f)));
        const std::uint8_t xi1 = static_cast<std::uint8_t>(detail::imin(31, detail::x86_trunc_i8(x1 + 16.5f)));
        y.qs[j] = static_cast<std::uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    store_qh(y.qh, qh);
}
SF_HD void quantize_block_q5_0_imatrix(const float* x, const float* qw, float sigma2, BlockQ5_0& y) {
    float weight[32];
    std::int8_t L[32];
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    const float d = detail::make_qx_quants(32, 16, x, L, weight);
    y.d = detail::to_f16(d);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const std::uint8_t xi0 = static_cast<std::uint8_t>(L[j]);
        const std::uint8_t xi1 = static_cast<std::uint8_t>(L[j + 16]);
        y.qs[j] = static_cast<std::uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    store_qh(y.qh, qh);
}
SF_HD void dequantize_block_q5_0(const BlockQ5_0& x, float* y) {
    const float d = detail::f16(x.d);
    const std::uint32_t qh = load_qh(x.qh);
    for (int j = 0; j < 16; ++j) {
        const std::uint8_t xh_0 = static_cast<std::uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
        const std::uint8_t xh_1 = static_cast<std::uint8_t>((qh >> (j + 12)) & 0x10);
        const std::int32_t x0 = ((x.qs[j] & 0x0F) | xh_0) - 16;
        const std::int32_t x1 = ((x.qs[j] >> 4) | xh_1) - 16;
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
    }
}

// ---------------------------------------------------------------- Q5_1
SF_HD void quantize_block_q5_1(const float* x, BlockQ5_1& y) {
    float min = 3.402823466e+38F;
    float max = -3.402823466e+38F;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (v < min) min = v;
        if (v > max) max = v;
    }
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    y.m = detail::to_f16(min);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const float x0 = (x[j] - min) * id;
        const float x1 = (x[16 + j] - min) * id;
        const std::uint8_t xi0 = detail::x86_trunc_u8(x0 + 0.5f);  // no clamp, as ggml
        const std::uint8_t xi1 = detail::x86_trunc_u8(x1 + 0.5f);
        y.qs[j] = static_cast<std::uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    store_qh(y.qh, qh);
}
SF_HD void quantize_block_q5_1_imatrix(const float* x, const float* qw, float sigma2, BlockQ5_1& y) {
    float weight[32];
    std::uint8_t L[32], Laux[32];
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    float min;
    const float d = detail::make_qkx3_quants(32, 31, x, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
    y.d = detail::to_f16(d);
    y.m = detail::to_f16(-min);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const std::uint8_t xi0 = L[j];
        const std::uint8_t xi1 = L[j + 16];
        y.qs[j] = static_cast<std::uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    store_qh(y.qh, qh);
}
SF_HD void dequantize_block_q5_1(const BlockQ5_1& x, float* y) {
    const float d = detail::f16(x.d);
    const float m = detail::f16(x.m);
    const std::uint32_t qh = load_qh(x.qh);
    for (int j = 0; j < 16; ++j) {
        const std::uint8_t xh_0 = static_cast<std::uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
        const std::uint8_t xh_1 = static_cast<std::uint8_t>((qh >> (j + 12)) & 0x10);
        const int x0 = (x.qs[j] & 0x0F) | xh_0;
        const int x1 = (x.qs[j] >> 4) | xh_1;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

// ---------------------------------------------------------------- Q8_0 (imatrix ignored by ggml)
SF_HD void quantize_block_q8_0(const float* x, BlockQ8_0& y) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;  // ggml's MAX(); fmaxf would differ on NaN
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y.d = detail::to_f16(d);
    for (int j = 0; j < 32; ++j) y.qs[j] = detail::x86_trunc_i8(roundf(x[j] * id));
}
SF_HD void dequantize_block_q8_0(const BlockQ8_0& x, float* y) {
    const float d = detail::f16(x.d);
    for (int j = 0; j < 32; ++j) y[j] = x.qs[j] * d;
}

// ---------------------------------------------------------------- MXFP4 (imatrix ignored by ggml)
SF_HD int best_index_mxfp4(const signed char* kvalues, float x, float e) {
    int best_index = 0;
    float best_err = fabsf(kvalues[0] * e - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf(kvalues[i] * e - x);
        if (err < best_err) {
            best_index = i;
            best_err = err;
        }
    }
    return best_index;
}
// The shared exponent of a block whose largest magnitude is amax.
SF_HD std::uint8_t mxfp4_exponent(float amax) {
    // ggml casts the float straight to uint8_t; x86 gcc converts through int32 and keeps the low byte, which
    // only matters for amax < 2^-125 (negative exponent). log2f: host libm (same as ggml's on this machine).
    return amax > 0.0f ? static_cast<std::uint8_t>(detail::x86_trunc_i32(floorf(log2f(amax)) - 2 + 127))
                       : std::uint8_t{0};
}
SF_HD void quantize_block_mxfp4(const float* x, BlockMxfp4& y) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) amax = fabsf(v);
    }
    const std::uint8_t e = mxfp4_exponent(amax);
    const float d = detail::e8m0_to_f32_half(e);
    y.e = e;
    const signed char kvalues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    for (int j = 0; j < 16; ++j) {
        const int x0 = best_index_mxfp4(kvalues, x[j], d);
        const int x1 = best_index_mxfp4(kvalues, x[16 + j], d);
        y.qs[j] = static_cast<std::uint8_t>(x0 | (x1 << 4));
    }
}
SF_HD void dequantize_block_mxfp4(const BlockMxfp4& x, float* y) {
    const float d = detail::e8m0_to_f32_half(x.e);
    for (int j = 0; j < 16; ++j) {
        const int x0 = detail::kvalue_mxfp4(x.qs[j] & 0x0F);
        const int x1 = detail::kvalue_mxfp4(x.qs[j] >> 4);
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
    }
}

}  // namespace shardforge::quant
