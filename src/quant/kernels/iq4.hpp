// IQ4_NL (32 elements) and IQ4_XS (256 elements): non-linear 4-bit with the kvalues_iq4nl table. Quantizers follow
// ggml's quantize_row_iq4_nl_impl with ntry = 7 — what quantize_iq4_nl/quantize_iq4_xs (and so llama-quantize) run —
// not the _ref functions (llama.cpp's ggml/src/ggml.c, ggml/src/ggml-quants.c). qw: the block's imatrix weights or
// null. SF_HD, pure.
#pragma once
#include "common.hpp"

namespace shardforge::quant {
namespace detail {

// One call of quantize_row_iq4_nl_impl for a super-block of NSub sub-blocks of 32 (1: IQ4_NL, 8: IQ4_XS).
// Writes *dh, q4[16*NSub]; for NSub > 1 also scales_h/scales_l.
// searched: null, or the per-sub-block scales a host SIMD search already computed with the same arithmetic
// (src/quant/simd_x8.cpp); then only the second half runs.
template <int NSub>
SF_HD void iq4_nl_impl(const float* x, std::uint16_t* dh, std::uint8_t* q4, std::uint16_t* scales_h,
                       std::uint8_t* scales_l, const float* quant_weights, int ntry, const float* searched = nullptr) {
    const signed char values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    constexpr int n_sub = NSub;
    constexpr int super_block_size = 32 * n_sub;
    float scales[n_sub];
    float weight[32];
    std::uint8_t L[super_block_size];

    float sigma2 = 0;
    for (int j = 0; j < super_block_size; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / super_block_size;

    for (int j = 0; j < super_block_size / 2; ++j) q4[j] = 0;
    dh[0] = to_f16(0.f);

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < n_sub; ++ib) {
        if (searched) {
            scales[ib] = searched[ib];
            const float abs_d = fabsf(scales[ib]);
            if (abs_d > amax_scale) {
                amax_scale = abs_d;
                max_scale = scales[ib];
            }
            continue;
        }
        const float* xb = x + ib * 32;
        std::uint8_t* Lb = L + ib * 32;
        if (quant_weights) {
            const float* qw = quant_weights + ib * 32;
            for (int j = 0; j < 32; ++j) weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax < group_max_eps) {
            scales[ib] = 0;
            continue;  // as ggml: Lb stays unset, only reached below through an all-zero re-map
        }
        float d = ntry > 0 ? -max / values[0] : max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float al = id * xb[j];
            const int l = best_index_int8(16, values, al);
            Lb[j] = static_cast<std::uint8_t>(l);
            const float q = values[l];
            const float w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; ++itry) {
            id = (itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float al = id * xb[j];
                const int l = best_index_int8(16, values, al);
                const float q = values[l];
                const float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        const float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    if constexpr (n_sub > 1) {
        scales_h[0] = 0;
        const float d = -max_scale / 32;
        dh[0] = to_f16(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < n_sub; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = imax(-32, imin(31, l));
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            std::uint8_t* Lb = L + ib * 32;
            const float* xb = x + ib * 32;
            for (int j = 0; j < 32; ++j) Lb[j] = static_cast<std::uint8_t>(best_index_int8(16, values, idl * xb[j]));
            l += 32;
            const std::uint8_t l_l = static_cast<std::uint8_t>(l & 0xf);
            const std::uint8_t l_h = static_cast<std::uint8_t>(l >> 4);
            if (ib % 2 == 0) scales_l[ib / 2] = l_l;
            else scales_l[ib / 2] |= static_cast<std::uint8_t>(l_l << 4);
            scales_h[ib / 8] |= static_cast<std::uint16_t>(l_h << 2 * (ib % 8));
        }
    } else {
        dh[0] = to_f16(scales[0]);
        if (ntry > 0) {
            const float id = scales[0] ? 1 / scales[0] : 0;
            for (int j = 0; j < super_block_size; ++j)
                L[j] = static_cast<std::uint8_t>(best_index_int8(16, values, id * x[j]));
        }
    }

    for (int i = 0; i < super_block_size / 32; ++i)
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<std::uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace detail

SF_HD void quantize_block_iq4_nl(const float* x, const float* qw, BlockIQ4_NL& y) {
    detail::iq4_nl_impl<1>(x, &y.d, y.qs, nullptr, nullptr, qw, 7);
}
SF_HD void quantize_block_iq4_xs(const float* x, const float* qw, BlockIQ4_XS& y) {
    detail::iq4_nl_impl<8>(x, &y.d, y.qs, &y.scales_h, y.scales_l, qw, 7);
}
// Second half only, given the searched sub-block scales (1 for IQ4_NL, 8 for IQ4_XS).
SF_HD void finish_block_iq4_nl(const float* x, const float* qw, const float* searched, BlockIQ4_NL& y) {
    detail::iq4_nl_impl<1>(x, &y.d, y.qs, nullptr, nullptr, qw, 7, searched);
}
SF_HD void finish_block_iq4_xs(const float* x, const float* qw, const float* searched, BlockIQ4_XS& y) {
    detail::iq4_nl_impl<8>(x, &y.d, y.qs, &y.scales_h, y.scales_l, qw, 7, searched);
}
// Weights of the IQ4 search for n_sub sub-blocks of 32: x^2, or qw*sqrt(sigma2 + x^2) with sigma2 = 2*mean(x^2)
// over the n_sub*32 elements (what iq4_nl_impl computes inline).
SF_HD void iq4_weights(int n_sub, const float* x, const float* qw, float* w) {
    const int super_block_size = 32 * n_sub;
    float sigma2 = 0;
    for (int j = 0; j < super_block_size; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / super_block_size;
    for (int j = 0; j < super_block_size; ++j) w[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
}

SF_HD void dequantize_block_iq4_nl(const BlockIQ4_NL& x, float* y) {
    const float d = detail::f16(x.d);
    for (int j = 0; j < 16; ++j) {
        y[j] = d * detail::kvalue_iq4nl(x.qs[j] & 0xf);
        y[j + 16] = d * detail::kvalue_iq4nl(x.qs[j] >> 4);
    }
}
SF_HD void dequantize_block_iq4_xs(const BlockIQ4_XS& x, float* y) {
    const std::uint8_t* qs = x.qs;
    const float d = detail::f16(x.d);
    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const int ls = ((x.scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x.scales_h >> 2 * ib) & 3) << 4);
        const float dl = d * (ls - 32);
        for (int j = 0; j < 16; ++j) {
            y[j + 0] = dl * detail::kvalue_iq4nl(qs[j] & 0xf);
            y[j + 16] = dl * detail::kvalue_iq4nl(qs[j] >> 4);
        }
        y += 32;
        qs += 16;
    }
}

}  // namespace shardforge::quant
