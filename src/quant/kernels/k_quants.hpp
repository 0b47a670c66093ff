// 256-element super-block kernels: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (llama.cpp's ggml/src/ggml-quants.c). Without imatrix
// they follow ggml's quantize_row_*_K_ref (what llama-quantize runs); with imatrix (qw = the block's 256 weights) they
// follow quantize_row_*_K_impl. Dequantizers follow dequantize_row_*_K. SF_HD, pure.
#pragma once
#include "common.hpp"

namespace shardforge::quant {
namespace detail {

SF_HD void get_scale_min_k4(int j, const std::uint8_t* q, std::uint8_t* d, std::uint8_t* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// Packs 2-bit values: byte 32h+l of qs holds elements 128h + l + 32s in bits 2s (Q2_K, Q3_K).
SF_HD void pack_2bit(const std::uint8_t* L, std::uint8_t* qs) {
    for (int j = 0; j < qk_k; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                      (L[j + l + 96] << 6));
}

SF_HD void pack_scales_k4(int j, std::uint8_t ls, std::uint8_t lm, std::uint8_t* scales) {
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= static_cast<std::uint8_t>((ls >> 4) << 6);
        scales[j - 0] |= static_cast<std::uint8_t>((lm >> 4) << 6);
    }
}

// Q2_K tail shared by ref and impl: re-quantize with the stored fp16 scales, then pack.
SF_HD void q2_k_finish(const float* x, std::uint8_t* L, BlockQ2_K& y) {
    for (int j = 0; j < 16; ++j) {
        const float d = f16(y.d) * (y.scales[j] & 0xF);
        if (!d) continue;
        const float dm = f16(y.dmin) * (y.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int((x[16 * j + ii] + dm) / d);
            l = imax(0, imin(3, l));
            L[16 * j + ii] = static_cast<std::uint8_t>(l);
        }
    }
    pack_2bit(L, y.qs);
}

SF_HD void q3_k_pack_scale(int j, int l_in, std::uint8_t* scales) {
    int l = l_in;
    if (j < 8) scales[j] = static_cast<std::uint8_t>(l & 0xF);
    else scales[j - 8] |= static_cast<std::uint8_t>((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= static_cast<std::uint8_t>(l << (2 * (j / 4)));
}

SF_HD void q3_k_finish(const float* x, std::int8_t* L, BlockQ3_K& y) {
    for (int j = 0; j < 16; ++j) {
        std::int8_t sc = static_cast<std::int8_t>(j < 8 ? y.scales[j] & 0xF : y.scales[j - 8] >> 4);
        sc = static_cast<std::int8_t>((sc | (((y.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = f16(y.d) * sc;
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = imax(-4, imin(3, l));
            L[16 * j + ii] = static_cast<std::int8_t>(l + 4);
        }
    }
    for (int j = 0; j < 32; ++j) y.hmask[j] = 0;
    int m = 0;
    std::uint8_t hm = 1;
    for (int j = 0; j < qk_k; ++j) {
        if (L[j] > 3) {
            y.hmask[m] |= hm;
            L[j] = static_cast<std::int8_t>(L[j] - 4);
        }
        if (++m == qk_k / 8) {
            m = 0;
            hm = static_cast<std::uint8_t>(hm << 1);
        }
    }
    pack_2bit(reinterpret_cast<const std::uint8_t*>(L), y.qs);
}

// Q4_K / Q5_K tail: re-quantize with the stored scales into L (0..nmax).
SF_HD void qk4_requantize(const float* x, const std::uint8_t* scales, std::uint16_t dh, std::uint16_t dminh,
                          int nmax, std::uint8_t* L) {
    std::uint8_t sc, m;
    for (int j = 0; j < qk_k / 32; ++j) {
        get_scale_min_k4(j, scales, &sc, &m);
        const float d = f16(dh) * sc;
        if (!d) continue;
        const float dm = f16(dminh) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            l = imax(0, imin(nmax, l));
            L[32 * j + ii] = static_cast<std::uint8_t>(l);
        }
    }
}

SF_HD void q4_k_pack(const std::uint8_t* L, BlockQ4_K& y) {
    std::uint8_t* q = y.qs;
    for (int j = 0; j < qk_k; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

SF_HD void q5_k_pack(const std::uint8_t* L, BlockQ5_K& y) {
    std::uint8_t* qh = y.qh;
    std::uint8_t* ql = y.qs;
    for (int j = 0; j < qk_k / 8; ++j) qh[j] = 0;
    std::uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < qk_k; n += 64) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            int l2 = L[n + j + 32];
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            ql[j] = static_cast<std::uint8_t>(l1 | (l2 << 4));
        }
        m1 = static_cast<std::uint8_t>(m1 << 2);
        m2 = static_cast<std::uint8_t>(m2 << 2);
        ql += 32;
    }
}

// Q4_K/Q5_K reference search (no imatrix): make_qkx2 per 32 with weights av_x + |x|. Host SIMD code may
// replace this step (quantize.cpp); the lanes must give the same scales, mins and L.
SF_HD void qk4_ref_search(const float* x, int nmax, float rmin, float rdelta, int nstep, std::uint8_t* L,
                          float* scales, float* mins) {
    std::uint8_t Laux[32];
    float weights[32];
    for (int j = 0; j < qk_k / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta,
                                     nstep, false);
    }
}

// Q4_K/Q5_K reference: 6-bit scales and mins from the float maxima of the searched ones.
SF_HD void qk4_ref_scales(const float* scales, const float* mins, std::uint8_t* scales_out, std::uint16_t& dh,
                          std::uint16_t& dminh) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < qk_k / 32; ++j) {
        const float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        const float min = mins[j];
        if (min > max_min) max_min = min;
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < qk_k / 32; ++j) {
        std::uint8_t ls = static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j]));
        std::uint8_t lm = static_cast<std::uint8_t>(nearest_int(inv_min * mins[j]));
        ls = ls < 63 ? ls : std::uint8_t{63};
        lm = lm < 63 ? lm : std::uint8_t{63};
        pack_scales_k4(j, ls, lm, scales_out);
    }
    dh = to_f16(max_scale / 63.f);
    dminh = to_f16(max_min / 63.f);
}

// Q4_K/Q5_K imatrix path: make_qkx3 per 32 with weights qw*sqrt(sigma2+x^2), make_qp_quants for the scales.
SF_HD void qk4_impl_scales(const float* x, const float* qw, int nmax, bool clamp_ls, std::uint8_t* L,
                           std::uint8_t* scales_out, std::uint16_t& dh, std::uint16_t& dminh) {
    std::uint8_t Laux[32];
    std::uint8_t Ls[qk_k / 32];
    std::uint8_t Lm[qk_k / 32];
    float weights[32];
    float sw[qk_k / 32];
    float mins[qk_k / 32];
    float scales[qk_k / 32];
    float sum_x2 = 0;
    for (int l = 0; l < qk_k; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / qk_k;
    for (int j = 0; j < qk_k / 32; ++j) {
        const float* w = qw + 32 * j;
        for (int l = 0; l < 32; ++l) weights[l] = w[l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f,
                                     36, false);
    }
    const float d_block = make_qp_quants(qk_k / 32, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(qk_k / 32, 63, mins, Lm, sw);
    for (int j = 0; j < qk_k / 32; ++j) {
        std::uint8_t ls = Ls[j];
        std::uint8_t lm = Lm[j];
        if (clamp_ls) {  // quantize_row_q5_K_impl clamps, q4_K's does not
            ls = ls < 63 ? ls : std::uint8_t{63};
            lm = lm < 63 ? lm : std::uint8_t{63};
        }
        pack_scales_k4(j, ls, lm, scales_out);
    }
    dh = to_f16(d_block);
    dminh = to_f16(m_block);
}

}  // namespace detail

// ---------------------------------------------------------------- Q2_K
// Second half of the Q2_K reference after the per-16 search gave L, scales and mins (L is overwritten).
SF_HD void finish_block_q2_K(const float* x, std::uint8_t* L, const float* scales, const float* mins, BlockQ2_K& y) {
    const float q4scale = 15.f;
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < 16; ++j) {
        const float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        const float min = mins[j];
        if (min > max_min) max_min = min;
    }
    if (max_scale > 0) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < 16; ++j) y.scales[j] = static_cast<std::uint8_t>(detail::nearest_int(iscale * scales[j]));
        y.d = detail::to_f16(max_scale / q4scale);
    } else {
        for (int j = 0; j < 16; ++j) y.scales[j] = 0;
        y.d = detail::to_f16(0.f);
    }
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < 16; ++j)
            y.scales[j] |= static_cast<std::uint8_t>(detail::nearest_int(iscale * mins[j]) << 4);
        y.dmin = detail::to_f16(max_min / q4scale);
    } else {
        y.dmin = detail::to_f16(0.f);
    }
    detail::q2_k_finish(x, L, y);
}
SF_HD void quantize_block_q2_K(const float* x, BlockQ2_K& y) {
    std::uint8_t L[qk_k];
    std::uint8_t Laux[16];
    float weights[16];
    float mins[16];
    float scales[16];
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = detail::make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                             15, true);
    }
    finish_block_q2_K(x, L, scales, mins, y);
}

SF_HD void quantize_block_q2_K_imatrix(const float* x, const float* qw, BlockQ2_K& y) {
    std::uint8_t L[qk_k];
    std::uint8_t Laux[16];
    float mins[16];
    float scales[16];
    float sw[16];
    float weight[16];
    std::uint8_t Ls[16], Lm[16];
    for (int j = 0; j < 16; ++j) sw[j] = 0;
    float sumx2 = 0;
    for (int j = 0; j < qk_k; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / qk_k;
    for (int j = 0; j < 16; ++j) {
        const float* w = qw + 16 * j;
        for (int l = 0; l < 16; ++l) weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        for (int l = 0; l < 16; ++l) sw[j] += weight[l];
        scales[j] = detail::make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f,
                                             36, false);
    }
    const float dm = detail::make_qp_quants(16, 15, scales, Ls, sw);
    const float mm = detail::make_qp_quants(16, 15, mins, Lm, sw);
    y.d = detail::to_f16(dm);
    y.dmin = detail::to_f16(mm);
    for (int j = 0; j < 16; ++j) y.scales[j] = static_cast<std::uint8_t>(Ls[j] | (Lm[j] << 4));
    detail::q2_k_finish(x, L, y);
}

SF_HD void dequantize_block_q2_K(const BlockQ2_K& x, float* y) {
    const float d = detail::f16(x.d);
    const float min = detail::f16(x.dmin);
    const std::uint8_t* q = x.qs;
    int is = 0;
    for (int n = 0; n < qk_k; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            std::uint8_t sc = x.scales[is++];
            float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<std::int8_t>((q[l] >> shift) & 3) - ml;
            sc = x.scales[is++];
            dl = d * (sc & 0xF);
            ml = min * (sc >> 4);
            for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<std::int8_t>((q[l + 16] >> shift) & 3) - ml;
            shift += 2;
        }
        q += 32;
    }
}

// ---------------------------------------------------------------- Q3_K
// Second half of the Q3_K reference after the per-16 search gave L (0..7) and scales; L is overwritten.
SF_HD void finish_block_q3_K(const float* x, std::int8_t* L, const float* scales, BlockQ3_K& y) {
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < 16; ++j) {
        const float scale = fabsf(scales[j]);
        if (scale > amax) { amax = scale; max_scale = scales[j]; }
    }
    for (int j = 0; j < 12; ++j) y.scales[j] = 0;
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
            std::int8_t l = static_cast<std::int8_t>(detail::nearest_int(iscale * scales[j]));
            l = static_cast<std::int8_t>(detail::imax(-32, detail::imin(31, l)) + 32);
            detail::q3_k_pack_scale(j, l, y.scales);
        }
        y.d = detail::to_f16(1 / iscale);
    } else {
        y.d = detail::to_f16(0.f);
    }
    detail::q3_k_finish(x, L, y);
}
SF_HD void quantize_block_q3_K(const float* x, BlockQ3_K& y) {
    std::int8_t L[qk_k];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = detail::make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    finish_block_q3_K(x, L, scales, y);
}

SF_HD void quantize_block_q3_K_imatrix(const float* x, const float* qw, BlockQ3_K& y) {
    std::int8_t L[qk_k];
    float scales[16];
    float weight[16];
    float sw[16];
    std::int8_t Ls[16];
    float sumx2 = 0;
    for (int j = 0; j < qk_k; ++j) sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / qk_k;
    for (int j = 0; j < 16; ++j) {
        const float* w = qw + 16 * j;
        for (int l = 0; l < 16; ++l) weight[l] = w[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 16; ++l) sumw += weight[l];
        sw[j] = sumw;
        scales[j] = detail::make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
    }
    for (int j = 0; j < 12; ++j) y.scales[j] = 0;
    const float d_block = detail::make_qx_quants(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) detail::q3_k_pack_scale(j, Ls[j], y.scales);
    y.d = detail::to_f16(d_block);
    detail::q3_k_finish(x, L, y);
}

SF_HD void dequantize_block_q3_K(const BlockQ3_K& x, float* y) {
    const std::uint32_t kmask1 = 0x03030303;
    const std::uint32_t kmask2 = 0x0f0f0f0f;
    std::uint32_t aux[4];
    for (int k = 0; k < 3; ++k)
        aux[k] = std::uint32_t{x.scales[4 * k]} | (std::uint32_t{x.scales[4 * k + 1]} << 8) |
                 (std::uint32_t{x.scales[4 * k + 2]} << 16) | (std::uint32_t{x.scales[4 * k + 3]} << 24);
    const std::uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    std::int8_t scales[16];
    for (int k = 0; k < 16; ++k) scales[k] = static_cast<std::int8_t>((aux[k / 4] >> (8 * (k % 4))) & 0xff);

    const float d_all = detail::f16(x.d);
    const std::uint8_t* q = x.qs;
    const std::uint8_t* hm = x.hmask;
    std::uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < qk_k; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            float dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * (static_cast<std::int8_t>((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
            dl = d_all * (scales[is++] - 32);
            for (int l = 0; l < 16; ++l)
                *y++ = dl * (static_cast<std::int8_t>((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m = static_cast<std::uint8_t>(m << 1);
        }
        q += 32;
    }
}

// ---------------------------------------------------------------- Q4_K
// Second half of the Q4_K reference, after the search gave L, scales and mins (L is overwritten).
SF_HD void finish_block_q4_K(const float* x, std::uint8_t* L, const float* scales, const float* mins, BlockQ4_K& y) {
    detail::qk4_ref_scales(scales, mins, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 15, L);
    detail::q4_k_pack(L, y);
}
SF_HD void quantize_block_q4_K(const float* x, BlockQ4_K& y) {
    std::uint8_t L[qk_k];
    float scales[8], mins[8];
    detail::qk4_ref_search(x, 15, -1.f, 0.1f, 20, L, scales, mins);
    finish_block_q4_K(x, L, scales, mins, y);
}
SF_HD void quantize_block_q4_K_imatrix(const float* x, const float* qw, BlockQ4_K& y) {
    std::uint8_t L[qk_k];
    detail::qk4_impl_scales(x, qw, 15, false, L, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 15, L);
    detail::q4_k_pack(L, y);
}
SF_HD void dequantize_block_q4_K(const BlockQ4_K& x, float* y) {
    const std::uint8_t* q = x.qs;
    const float d = detail::f16(x.d);
    const float min = detail::f16(x.dmin);
    int is = 0;
    std::uint8_t sc, m;
    for (int j = 0; j < qk_k; j += 64) {
        detail::get_scale_min_k4(is + 0, x.scales, &sc, &m);
        const float d1 = d * sc;
        const float m1 = min * m;
        detail::get_scale_min_k4(is + 1, x.scales, &sc, &m);
        const float d2 = d * sc;
        const float m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}

// ---------------------------------------------------------------- Q5_K
SF_HD void finish_block_q5_K(const float* x, std::uint8_t* L, const float* scales, const float* mins, BlockQ5_K& y) {
    detail::qk4_ref_scales(scales, mins, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 31, L);
    detail::q5_k_pack(L, y);
}
SF_HD void quantize_block_q5_K(const float* x, BlockQ5_K& y) {
    std::uint8_t L[qk_k];
    float scales[8], mins[8];
    detail::qk4_ref_search(x, 31, -0.5f, 0.1f, 15, L, scales, mins);
    finish_block_q5_K(x, L, scales, mins, y);
}
SF_HD void quantize_block_q5_K_imatrix(const float* x, const float* qw, BlockQ5_K& y) {
    std::uint8_t L[qk_k];
    detail::qk4_impl_scales(x, qw, 31, true, L, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 31, L);
    detail::q5_k_pack(L, y);
}
SF_HD void dequantize_block_q5_K(const BlockQ5_K& x, float* y) {
    const std::uint8_t* ql = x.qs;
    const std::uint8_t* qh = x.qh;
    const float d = detail::f16(x.d);
    const float min = detail::f16(x.dmin);
    int is = 0;
    std::uint8_t sc, m;
    std::uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < qk_k; j += 64) {
        detail::get_scale_min_k4(is + 0, x.scales, &sc, &m);
        const float d1 = d * sc;
        const float m1 = min * m;
        detail::get_scale_min_k4(is + 1, x.scales, &sc, &m);
        const float d2 = d * sc;
        const float m2 = min * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 = static_cast<std::uint8_t>(u1 << 2);
        u2 = static_cast<std::uint8_t>(u2 << 2);
    }
}

// ---------------------------------------------------------------- Q6_K
// Second half of Q6_K after the per-16 search gave L (0..63) and scales; L is overwritten.
SF_HD void finish_block_q6_K(const float* x, std::int8_t* L, const float* scales, BlockQ6_K& y) {
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
        const float scale = scales[ib];
        const float abs_scale = fabsf(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < detail::group_max_eps) {
        std::uint8_t* p = reinterpret_cast<std::uint8_t*>(&y);
        for (unsigned k = 0; k < sizeof(BlockQ6_K); ++k) p[k] = 0;
        y.d = detail::to_f16(0.f);
        return;
    }
    const float iscale = -128.f / max_scale;
    y.d = detail::to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib)
        y.scales[ib] = static_cast<std::int8_t>(detail::imin(127, detail::nearest_int(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
        const float d = detail::f16(y.d) * y.scales[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = detail::nearest_int(x[16 * j + ii] / d);
            l = detail::imax(-32, detail::imin(31, l));
            L[16 * j + ii] = static_cast<std::int8_t>(l + 32);
        }
    }
    std::uint8_t* ql = y.ql;
    std::uint8_t* qh = y.qh;
    for (int j = 0; j < qk_k; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const std::uint8_t q1 = L[j + l + 0] & 0xF;
            const std::uint8_t q2 = L[j + l + 32] & 0xF;
            const std::uint8_t q3 = L[j + l + 64] & 0xF;
            const std::uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = static_cast<std::uint8_t>(q1 | (q3 << 4));
            ql[l + 32] = static_cast<std::uint8_t>(q2 | (q4 << 4));
            qh[l] = static_cast<std::uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}
// qw: the block's 256 imatrix weights, or null for the reference path (the two differ only in the weights).
SF_HD void quantize_block_q6_K_w(const float* x, const float* qw, BlockQ6_K& y) {
    std::int8_t L[qk_k];
    float scales[16];
    for (int ib = 0; ib < 16; ++ib)
        scales[ib] = detail::make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    finish_block_q6_K(x, L, scales, y);
}
SF_HD void quantize_block_q6_K(const float* x, BlockQ6_K& y) { quantize_block_q6_K_w(x, nullptr, y); }
SF_HD void quantize_block_q6_K_imatrix(const float* x, const float* qw, BlockQ6_K& y) {
    quantize_block_q6_K_w(x, qw, y);
}
SF_HD void dequantize_block_q6_K(const BlockQ6_K& x, float* y) {
    const float d = detail::f16(x.d);
    const std::uint8_t* ql = x.ql;
    const std::uint8_t* qh = x.qh;
    const std::int8_t* sc = x.scales;
    for (int n = 0; n < qk_k; n += 128) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const std::int8_t q1 = static_cast<std::int8_t>(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            const std::int8_t q2 = static_cast<std::int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            const std::int8_t q3 = static_cast<std::int8_t>(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            const std::int8_t q4 = static_cast<std::int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            y[l + 0] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

}  // namespace shardforge::quant
