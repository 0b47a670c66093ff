// Lane-parallel make_qkx2_quants for Q4_K/Q5_K (see simd_x8.hpp). GCC vector extensions: every operator is the
// lane-wise IEEE operation, comparisons give lane masks, `m ? a : b` selects per lane. Branches of the scalar
// code become masks; lanes that would have left early just have their results discarded.
#include "simd_x8.hpp"

#include <immintrin.h>

#include <cstring>

namespace shardforge::quant::simd {
namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#define SF_AVX2 __attribute__((target("avx2")))

SF_AVX2 inline v8i nearest_int(v8f f) {  // detail::nearest_int per lane
    const v8f val = f + 12582912.f;
    const v8i i = (v8i)val;  // bit reinterpretation (same-size vector cast)
    return (i & 0x007fffff) - 0x00400000;
}

SF_AVX2 inline v8i clamp(v8i l, int lo, int hi) {
    const v8i vlo = v8i{} + lo, vhi = v8i{} + hi;
    l = l < vhi ? l : vhi;  // MIN(hi, l)
    return vlo > l ? vlo : l;  // MAX(lo, ...)
}

SF_AVX2 inline v8f to_f(v8i i) { return __builtin_convertvector(i, v8f); }

SF_AVX2 inline v8f sel(v8i m, v8f a, v8f b) { return m ? a : b; }

SF_AVX2 inline bool any(v8i m) { return _mm256_movemask_epi8((__m256i)m) != 0; }

// make_qkx2_quants(32, nmax, x, w, L, &the_min, Laux, rmin, rdelta, nstep, use_mad=false), lane k = sub-block k.
// xt/wt: transposed, xt[i][k] = element i of sub-block k. Lt: L transposed (int lanes).
SF_AVX2 void make_qkx2_x8(const v8f* xt, const v8f* wt, int nmax, float rmin, float rdelta, int nstep, v8i* Lt,
                          v8f& scale_out, v8f& the_min_out) {
    constexpr int n = 32;
    v8f min = xt[0], max = xt[0];
    v8f sum_w = wt[0];
    v8f sum_x = sum_w * xt[0];
    for (int i = 1; i < n; ++i) {
        min = sel(xt[i] < min, xt[i], min);
        max = sel(xt[i] > max, xt[i], max);
        const v8f w = wt[i];
        sum_w += w;
        sum_x += w * xt[i];
    }
    const v8f zero = v8f{};
    min = sel(min > zero, zero, min);
    const v8i flat = max == min;
    const v8f flat_min = min;
    v8f iscale = static_cast<float>(nmax) / (max - min);
    v8f scale = 1.0f / iscale;
    v8f best_error = zero;
    for (int i = 0; i < n; ++i) {
        const v8i l = clamp(nearest_int(iscale * (xt[i] - min)), 0, nmax);
        Lt[i] = l;
        v8f diff = scale * to_f(l) + min - xt[i];
        diff = diff * diff;
        best_error += wt[i] * diff;
    }
    v8i laux[n];
    for (int is = 0; is <= nstep; ++is) {
        const float num = rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax);
        iscale = num / (max - min);
        v8f sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            const v8i l = clamp(nearest_int(iscale * (xt[i] - min)), 0, nmax);
            laux[i] = l;
            const v8f w = wt[i];
            const v8f fl = to_f(l);
            sum_l += w * fl;
            sum_l2 += w * fl * fl;
            sum_xl += w * fl * xt[i];
        }
        const v8f D = sum_w * sum_l2 - sum_l * sum_l;
        const v8i dpos = D > zero;
        if (!any(dpos & ~flat)) continue;
        v8f this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        v8f this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        const v8i minpos = this_min > zero;
        this_min = sel(minpos, zero, this_min);
        this_scale = sel(minpos, sum_xl / sum_l2, this_scale);
        v8f cur_error = zero;
        for (int i = 0; i < n; ++i) {
            v8f diff = this_scale * to_f(laux[i]) + this_min - xt[i];
            diff = diff * diff;
            cur_error += wt[i] * diff;
        }
        const v8i better = dpos & ~flat & (cur_error < best_error);
        for (int i = 0; i < n; ++i) Lt[i] = better ? laux[i] : Lt[i];
        best_error = sel(better, cur_error, best_error);
        scale = sel(better, this_scale, scale);
        min = sel(better, this_min, min);
    }
    // flat lanes (max == min): L = 0, the_min = -min, scale = 0 (min already clamped to <= 0 there)
    for (int i = 0; i < n; ++i) Lt[i] = flat ? v8i{} : Lt[i];
    scale_out = sel(flat, zero, scale);
    the_min_out = -sel(flat, flat_min, min);
}

// make_qx_quants(16, nmax, x, L, rmse_type=1, qw=NULL) per lane; Lt gets l + nmax.
SF_AVX2 v8f make_qx_x8(const v8f* xt, int nmax, v8i* Lt) {
    constexpr int n = 16;
    const v8f zero = v8f{};
    const v8i abs_mask = v8i{} + 0x7fffffff;
    v8f max = zero, amax = zero;
    for (int i = 0; i < n; ++i) {
        const v8f ax = (v8f)((v8i)xt[i] & abs_mask);
        const v8i gt = ax > amax;
        amax = sel(gt, ax, amax);
        max = sel(gt, xt[i], max);
    }
    const v8i tiny = amax < 1e-15f;  // GROUP_MAX_EPS: L = 0, scale 0
    v8f w[n];
    for (int i = 0; i < n; ++i) w[i] = xt[i] * xt[i];
    v8f iscale = static_cast<float>(-nmax) / max;
    v8f sumlx = zero, suml2 = zero;
    for (int i = 0; i < n; ++i) {
        const v8i l = clamp(nearest_int(iscale * xt[i]), -nmax, nmax - 1);
        Lt[i] = l + nmax;
        const v8f fl = to_f(l);
        sumlx += w[i] * xt[i] * fl;
        suml2 += w[i] * fl * fl;
    }
    v8f scale = sel(suml2 != zero, sumlx / suml2, zero);
    v8f best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float num = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is));
        iscale = num / max;
        sumlx = suml2 = zero;
        v8i lt[n];
        for (int i = 0; i < n; ++i) {
            const v8i l = clamp(nearest_int(iscale * xt[i]), -nmax, nmax - 1);
            lt[i] = l;
            const v8f fl = to_f(l);
            sumlx += w[i] * xt[i] * fl;
            suml2 += w[i] * fl * fl;
        }
        const v8i take = (suml2 > zero) & (sumlx * sumlx > best * suml2);
        if (!any(take)) continue;
        for (int i = 0; i < n; ++i) Lt[i] = take ? lt[i] + nmax : Lt[i];
        scale = sel(take, sumlx / suml2, scale);
        best = sel(take, scale * sumlx, best);
    }
    for (int i = 0; i < n; ++i) Lt[i] = tiny ? v8i{} : Lt[i];
    return sel(tiny, zero, scale);
}

}  // namespace

bool have_avx2() noexcept { return __builtin_cpu_supports("avx2"); }

SF_AVX2 void qk4_ref_search_x8(const float* x, int nmax, float rmin, float rdelta, int nstep, std::uint8_t* L,
                               float* scales, float* mins) {
    v8f xt[32], wt[32];
    v8i Lt[32];
    for (int i = 0; i < 32; ++i)
        for (int k = 0; k < 8; ++k) xt[i][k] = x[32 * k + i];
    v8f sum_x2 = v8f{};
    for (int i = 0; i < 32; ++i) sum_x2 += xt[i] * xt[i];
    const v8f av_x = (v8f)_mm256_sqrt_ps((__m256)(sum_x2 / 32.0f));  // IEEE sqrt, as sqrtf
    const v8i abs_mask = v8i{} + 0x7fffffff;
    for (int i = 0; i < 32; ++i) wt[i] = av_x + (v8f)((v8i)xt[i] & abs_mask);  // av_x + fabsf(x)
    v8f scale, the_min;
    make_qkx2_x8(xt, wt, nmax, rmin, rdelta, nstep, Lt, scale, the_min);
    for (int k = 0; k < 8; ++k) {
        scales[k] = scale[k];
        mins[k] = the_min[k];
        for (int i = 0; i < 32; ++i) L[32 * k + i] = static_cast<std::uint8_t>(Lt[i][k]);
    }
}

SF_AVX2 void q6_ref_search_x8(const float* x, std::int8_t* L, float* scales) {
    for (int g = 0; g < 2; ++g) {  // sub-blocks 8g .. 8g+7
        v8f xt[16];
        v8i Lt[16];
        for (int i = 0; i < 16; ++i)
            for (int k = 0; k < 8; ++k) xt[i][k] = x[16 * (8 * g + k) + i];
        const v8f sc = make_qx_x8(xt, 32, Lt);
        for (int k = 0; k < 8; ++k) {
            scales[8 * g + k] = sc[k];
            for (int i = 0; i < 16; ++i) L[16 * (8 * g + k) + i] = static_cast<std::int8_t>(Lt[i][k]);
        }
    }
}

}  // namespace shardforge::quant::simd
