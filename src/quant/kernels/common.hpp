// Shared pieces of the ggml block kernels: on-disk block structs, value tables, rounding and the scale-search helpers
// of ggml-quants.c (llama.cpp's ggml/src/ggml-common.h, ggml/src/ggml-quants.c). SF_HD, pure: raw pointers and counts,
// C math only, no containers, no exceptions, so the same code runs on the host and under nvcc (--fmad=false).
// Every expression keeps ggml's operand order and int->float promotions: the bits are the contract.
#pragma once
#include <shardforge/core.hpp>

#include <cmath>
#include <cstdint>

namespace shardforge::quant {

inline constexpr int qk_k = 256;  // super-block size of the K-quants, IQ4_XS, TQ1_0/TQ2_0

// ---------------------------------------------------------------- block layouts (ggml-common.h)
struct BlockQ4_0 { std::uint16_t d; std::uint8_t qs[16]; };
struct BlockQ4_1 { std::uint16_t d, m; std::uint8_t qs[16]; };
struct BlockQ5_0 { std::uint16_t d; std::uint8_t qh[4]; std::uint8_t qs[16]; };
struct BlockQ5_1 { std::uint16_t d, m; std::uint8_t qh[4]; std::uint8_t qs[16]; };
struct BlockQ8_0 { std::uint16_t d; std::int8_t qs[32]; };
struct BlockMxfp4 { std::uint8_t e; std::uint8_t qs[16]; };
struct BlockQ2_K { std::uint8_t scales[16]; std::uint8_t qs[64]; std::uint16_t d, dmin; };
struct BlockQ3_K { std::uint8_t hmask[32]; std::uint8_t qs[64]; std::uint8_t scales[12]; std::uint16_t d; };
struct BlockQ4_K { std::uint16_t d, dmin; std::uint8_t scales[12]; std::uint8_t qs[128]; };
struct BlockQ5_K { std::uint16_t d, dmin; std::uint8_t scales[12]; std::uint8_t qh[32]; std::uint8_t qs[128]; };
struct BlockQ6_K { std::uint8_t ql[128]; std::uint8_t qh[64]; std::int8_t scales[16]; std::uint16_t d; };
struct BlockIQ4_NL { std::uint16_t d; std::uint8_t qs[16]; };
struct BlockIQ4_XS { std::uint16_t d; std::uint16_t scales_h; std::uint8_t scales_l[4]; std::uint8_t qs[128]; };
struct BlockTQ1_0 { std::uint8_t qs[48]; std::uint8_t qh[4]; std::uint16_t d; };
struct BlockTQ2_0 { std::uint8_t qs[64]; std::uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18, "on-disk layout");
static_assert(sizeof(BlockQ4_1) == 20, "on-disk layout");
static_assert(sizeof(BlockQ5_0) == 22, "on-disk layout");
static_assert(sizeof(BlockQ5_1) == 24, "on-disk layout");
static_assert(sizeof(BlockQ8_0) == 34, "on-disk layout");
static_assert(sizeof(BlockMxfp4) == 17, "on-disk layout");
static_assert(sizeof(BlockQ2_K) == 84, "on-disk layout");
static_assert(sizeof(BlockQ3_K) == 110, "on-disk layout");
static_assert(sizeof(BlockQ4_K) == 144, "on-disk layout");
static_assert(sizeof(BlockQ5_K) == 176, "on-disk layout");
static_assert(sizeof(BlockQ6_K) == 210, "on-disk layout");
static_assert(sizeof(BlockIQ4_NL) == 18, "on-disk layout");
static_assert(sizeof(BlockIQ4_XS) == 136, "on-disk layout");
static_assert(sizeof(BlockTQ1_0) == 54, "on-disk layout");
static_assert(sizeof(BlockTQ2_0) == 66, "on-disk layout");

namespace detail {

// ggml-common.h value tables (functions, not arrays, so nvcc needs no __constant__ copies).
SF_HD int kvalue_iq4nl(int i) {
    constexpr signed char t[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    return t[i];
}
SF_HD int kvalue_mxfp4(int i) {  // doubled E2M1 values
    constexpr signed char t[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    return t[i];
}

SF_HD float f16(std::uint16_t h) { return core::f16_to_f32(h); }
SF_HD std::uint16_t to_f16(float f) { return core::f32_to_f16(f); }

constexpr float group_max_eps = 1e-15f;  // GROUP_MAX_EPS

// Round half to even through the 1.5*2^23 trick, valid for |f| <= 2^22 (ggml's nearest_int).
SF_HD int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    const int i = static_cast<int>(core::f32_bits(val));
    return (i & 0x007fffff) - 0x00400000;
}

// 2^(e-128), ggml's GGML_E8M0_TO_FP32_HALF (subnormal patterns for e < 2).
SF_HD float e8m0_to_f32_half(std::uint8_t e) {
    const std::uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<std::uint32_t>(e - 1) << 23);
    return core::bits_f32(bits);
}

// ggml's C converts floats straight to int8_t/uint8_t; x86 code built by GCC does that through a 32-bit truncation
// (cvttss2si: NaN and values outside int32 give INT32_MIN) and keeps the low byte. Adversarial rows (±inf after a
// scale) reach those conversions, where C++ has undefined behaviour (UBSan stops there) and CUDA saturates: this
// writes the x86 result out, so the host and the device both produce ggml's bytes without undefined behaviour.
SF_HD std::int32_t x86_trunc_i32(float v) {
    return (v >= -2147483648.0f && v < 2147483648.0f) ? static_cast<std::int32_t>(v) : INT32_MIN;
}
SF_HD std::int8_t x86_trunc_i8(float v) { return static_cast<std::int8_t>(x86_trunc_i32(v)); }
SF_HD std::uint8_t x86_trunc_u8(float v) { return static_cast<std::uint8_t>(x86_trunc_i32(v)); }

SF_HD int imax(int a, int b) { return a > b ? a : b; }
SF_HD int imin(int a, int b) { return a < b ? a : b; }

// Index of the nearest table value (ascending table of n entries); exact ties go to the higher index.
SF_HD int best_index_int8(int n, const signed char* val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < val[mav]) mu = mav; else ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// Symmetric scale search, L in [0, 2*nmax); ggml's make_qx_quants (ggml/src/ggml-quants.c). rmse_type 1 only in the
// paths we run (weights x^2, or qw when given).
SF_HD float make_qx_quants(int n, int nmax, const float* x, std::int8_t* L, const float* qw) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float wbuf[32];  // n <= 32 in every caller; the same x*x values ggml recomputes per trial
    for (int i = 0; i < n; ++i) wbuf[i] = qw ? qw[i] : x[i] * x[i];
    float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = static_cast<std::int8_t>(l + nmax);
        const float w = wbuf[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            const float w = wbuf[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearest_int(iscale * x[i]);
                L[i] = static_cast<std::int8_t>(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's coordinate-descent search (make_q3_quants with do_rmse); L returned in [0, 2*nmax).
SF_HD float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = static_cast<std::int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = imax(-nmax, imin(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<std::int8_t>(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric fit x ~ scale*L + min, L in [0, nmax]; *the_min = -min (ggml's make_qkx2_quants).
SF_HD float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L,
                             float* the_min, std::uint8_t* Laux, float rmin, float rdelta, int nstep,
                             bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = static_cast<std::uint8_t>(imax(0, imin(nmax, l)));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        const float w = weights[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = static_cast<std::uint8_t>(l);
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                const float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// make_qkx2's imatrix sibling (make_qkx3_quants): weights may be null (then x^2), "max <= min" early out.
SF_HD float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L,
                             float* the_min, std::uint8_t* Laux, float rmin, float rdelta, int nstep,
                             bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights ? weights[0] : x[0] * x[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights ? weights[i] : x[i] * x[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = static_cast<std::uint8_t>(imax(0, imin(nmax, l)));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        const float w = weights ? weights[i] : x[i] * x[i];
        best_mad += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = static_cast<std::uint8_t>(l);
            const float w = weights ? weights[i] : x[i] * x[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                const float w = weights ? weights[i] : x[i] * x[i];
                mad += w * diff;
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Non-negative scale quantization for the super-block scales under an imatrix (make_qp_quants).
SF_HD float make_qp_quants(int n, int nmax, const float* x, std::uint8_t* L, const float* quant_weights) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];  // ggml's MAX(max, x)
    if (max < group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * L[i];
        const float w = quant_weights[i];
        best_mse += w * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale_is * x[i]);
            l = imin(nmax, l);
            const float diff = x[i] - scale_is * l;
            const float w = quant_weights[i];
            mse += w * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imin(nmax, l);
        L[i] = static_cast<std::uint8_t>(l);
        const float w = quant_weights[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = quant_weights[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = imin(nmax, new_l);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<std::uint8_t>(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace detail
}  // namespace shardforge::quant
