// Lane-parallel make_qkx2_quants for Q4_K/Q5_K (see simd_x8.hpp). GCC vector extensions: every operator is the
// lane-wise IEEE operation, comparisons give lane masks, `m ? a : b` selects per lane. Branches of the scalar
// code become masks; lanes that would have left early just have their results discarded.
#include <shardforge/core.hpp>

#include "simd_lanes.hpp"
#include "simd_x8.hpp"

#include <immintrin.h>

#include <cstring>

namespace shardforge::quant::simd {
namespace {

using namespace lanes;

// make_qkx2_quants(32, nmax, x, w, L, &the_min, Laux, rmin, rdelta, nstep, use_mad=false), lane k = sub-block k.
// xt/wt: transposed, xt[i][k] = element i of sub-block k. Lt: L transposed (int lanes).
template <int N, bool UseMad>
SF_AVX2 void make_qkx2_x8(const v8f* xt, const v8f* wt, int nmax, float rmin, float rdelta, int nstep, v8i* Lt,
                          v8f& scale_out, v8f& the_min_out) {
    constexpr int n = N;
    const v8i abs_mask = v8i{} + 0x7fffffff;
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
        diff = UseMad ? (v8f)((v8i)diff & abs_mask) : diff * diff;
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
            diff = UseMad ? (v8f)((v8i)diff & abs_mask) : diff * diff;
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

// make_qx_quants(16, nmax, x, L, rmse_type=1, qw) per lane; Lt gets l + nmax. qwt: transposed weights, or
// null for x*x.
SF_AVX2 v8f make_qx_x8(const v8f* xt, int nmax, v8i* Lt, const v8f* qwt = nullptr) {
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
    for (int i = 0; i < n; ++i) w[i] = qwt ? qwt[i] : xt[i] * xt[i];
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

bool have_avx2() noexcept { return core::simd_level() >= core::SimdLevel::Avx2; }

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
    make_qkx2_x8<32, false>(xt, wt, nmax, rmin, rdelta, nstep, Lt, scale, the_min);
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

SF_AVX2 void qx_search_x8(const float* x, const float* w, int nmax, std::int8_t* L, float* scales) {
    v8f xt[16], wt[16];
    v8i Lt[16];
    for (int i = 0; i < 16; ++i)
        for (int k = 0; k < 8; ++k) {
            xt[i][k] = x[16 * k + i];
            wt[i][k] = w[16 * k + i];
        }
    const v8f sc = make_qx_x8(xt, nmax, Lt, wt);
    for (int k = 0; k < 8; ++k) {
        scales[k] = sc[k];
        for (int i = 0; i < 16; ++i) L[16 * k + i] = static_cast<std::int8_t>(Lt[i][k]);
    }
}

template <int N>
SF_AVX2 void qkx_search_x8_n(const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep,
                             std::uint8_t* L, float* scales, float* mins) {
    v8f xt[N], wt[N];
    v8i Lt[N];
    for (int i = 0; i < N; ++i)
        for (int k = 0; k < 8; ++k) {
            xt[i][k] = x[N * k + i];
            wt[i][k] = w[N * k + i];
        }
    v8f scale, the_min;
    make_qkx2_x8<N, false>(xt, wt, nmax, rmin, rdelta, nstep, Lt, scale, the_min);
    for (int k = 0; k < 8; ++k) {
        scales[k] = scale[k];
        mins[k] = the_min[k];
        for (int i = 0; i < N; ++i) L[N * k + i] = static_cast<std::uint8_t>(Lt[i][k]);
    }
}

void qkx_search_x8(int n, const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep,
                   std::uint8_t* L, float* scales, float* mins) {
    if (n == 16) qkx_search_x8_n<16>(x, w, nmax, rmin, rdelta, nstep, L, scales, mins);
    else qkx_search_x8_n<32>(x, w, nmax, rmin, rdelta, nstep, L, scales, mins);
}

SF_AVX2 void q2_ref_search_x8(const float* x, std::uint8_t* L, float* scales, float* mins) {
    const v8i abs_mask = v8i{} + 0x7fffffff;
    for (int g = 0; g < 2; ++g) {  // sub-blocks 8g .. 8g+7
        v8f xt[16], wt[16];
        v8i Lt[16];
        for (int i = 0; i < 16; ++i)
            for (int k = 0; k < 8; ++k) xt[i][k] = x[16 * (8 * g + k) + i];
        for (int i = 0; i < 16; ++i) wt[i] = (v8f)((v8i)xt[i] & abs_mask);  // fabsf(x)
        v8f scale, the_min;
        make_qkx2_x8<16, true>(xt, wt, 3, -0.5f, 0.1f, 15, Lt, scale, the_min);
        for (int k = 0; k < 8; ++k) {
            scales[8 * g + k] = scale[k];
            mins[8 * g + k] = the_min[k];
            for (int i = 0; i < 16; ++i) L[16 * (8 * g + k) + i] = static_cast<std::uint8_t>(Lt[i][k]);
        }
    }
}

namespace {
// best_index_int8(16, kvalues_iq4nl, x) per lane. The scalar binary search ends with val[mu-1] <= x < val[mu],
// i.e. mu = #{j : val[j] <= x}; then the same float comparison picks mu-1 or mu.
SF_AVX2 inline v8i iq4_best_index(v8f x, const v8f* val, __m256 tlo, __m256 thi) {
    v8i mu = v8i{};
    for (int j = 0; j < 16; ++j) mu -= (x >= val[j]);  // masks are -1
    mu = clamp(mu, 1, 15);
    const v8i m1 = mu - 1;
    const v8f lo = sel(m1 < 8, (v8f)_mm256_permutevar8x32_ps(tlo, (__m256i)m1),
                       (v8f)_mm256_permutevar8x32_ps(thi, (__m256i)m1));
    const v8f hi = sel(mu < 8, (v8f)_mm256_permutevar8x32_ps(tlo, (__m256i)mu),
                       (v8f)_mm256_permutevar8x32_ps(thi, (__m256i)mu));
    v8i r = (x - lo < hi - x) ? m1 : mu;
    r = (x <= val[0]) ? v8i{} : r;
    r = (x >= val[15]) ? v8i{} + 15 : r;
    return r;
}
}  // namespace

SF_AVX2 void iq4_search_x8(const float* x, const float* w, float* scales) {
    constexpr int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    v8f val[16];
    for (int j = 0; j < 16; ++j) val[j] = v8f{} + static_cast<float>(kv[j]);
    const __m256 tlo = _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10);
    const __m256 thi = _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113);
    v8f xt[32], wt[32];
    for (int i = 0; i < 32; ++i)
        for (int k = 0; k < 8; ++k) {
            xt[i][k] = x[32 * k + i];
            wt[i][k] = w[32 * k + i];
        }
    const v8f zero = v8f{};
    const v8i abs_mask = v8i{} + 0x7fffffff;
    v8f amax = zero, max = zero;
    for (int j = 0; j < 32; ++j) {
        const v8f ax = (v8f)((v8i)xt[j] & abs_mask);
        const v8i gt = ax > amax;
        amax = sel(gt, ax, amax);
        max = sel(gt, xt[j], max);
    }
    const v8i tiny = amax < 1e-15f;
    const v8f d0 = -max / static_cast<float>(kv[0]);
    v8f id = 1.0f / d0;
    v8f sumqx = zero, sumq2 = zero;
    for (int j = 0; j < 32; ++j) {
        const v8f al = id * xt[j];
        const v8i l = iq4_best_index(al, val, tlo, thi);
        const v8f q = sel(l < 8, (v8f)_mm256_permutevar8x32_ps(tlo, (__m256i)l),
                          (v8f)_mm256_permutevar8x32_ps(thi, (__m256i)l));
        sumqx += wt[j] * q * xt[j];
        sumq2 += wt[j] * q * q;
    }
    v8f d = sel(sumq2 > zero, sumqx / sumq2, zero);
    v8f best = d * sumqx;
    for (int itry = -7; itry <= 7; ++itry) {
        id = static_cast<float>(itry + kv[0]) / max;
        sumqx = sumq2 = zero;
        for (int j = 0; j < 32; ++j) {
            const v8f al = id * xt[j];
            const v8i l = iq4_best_index(al, val, tlo, thi);
            const v8f q = sel(l < 8, (v8f)_mm256_permutevar8x32_ps(tlo, (__m256i)l),
                              (v8f)_mm256_permutevar8x32_ps(thi, (__m256i)l));
            sumqx += wt[j] * q * xt[j];
            sumq2 += wt[j] * q * q;
        }
        const v8i take = (sumq2 > zero) & (sumqx * sumqx > best * sumq2);
        d = sel(take, sumqx / sumq2, d);
        best = sel(take, d * sumqx, best);
    }
    d = sel(tiny, zero, d);
    for (int k = 0; k < 8; ++k) scales[k] = d[k];
}

SF_AVX2 void q3_ref_search_x8(const float* x, std::int8_t* L, float* scales) {
    constexpr int n = 16, nmax = 4;
    const v8f zero = v8f{};
    const v8i abs_mask = v8i{} + 0x7fffffff;
    for (int g = 0; g < 2; ++g) {  // sub-blocks 8g .. 8g+7, lane k = sub-block 8g+k
        v8f xt[n];
        v8i Lt[n];
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < 8; ++k) xt[i][k] = x[16 * (8 * g + k) + i];
        v8f max = zero, amax = zero;
        for (int i = 0; i < n; ++i) {
            const v8f ax = (v8f)((v8i)xt[i] & abs_mask);
            const v8i gt = ax > amax;
            amax = sel(gt, ax, amax);
            max = sel(gt, xt[i], max);
        }
        const v8i tiny = amax < 1e-15f;
        const v8f iscale = static_cast<float>(-nmax) / max;
        v8f sumlx = zero, suml2 = zero;
        for (int i = 0; i < n; ++i) {
            const v8i l = clamp(nearest_int(iscale * xt[i]), -nmax, nmax - 1);
            Lt[i] = l;
            const v8f w = xt[i] * xt[i];
            const v8f fl = to_f(l);
            sumlx += w * xt[i] * fl;
            suml2 += w * fl * fl;
        }
        v8i active = ~tiny;  // lanes still iterating (scalar: break after a pass without change)
        for (int itry = 0; itry < 5 && any(active); ++itry) {
            v8i n_changed = v8i{};
            for (int i = 0; i < n; ++i) {
                const v8f w = xt[i] * xt[i];
                const v8f fL = to_f(Lt[i]);
                v8f slx = sumlx - w * xt[i] * fL;
                const v8i pos = active & (slx > zero);
                v8f sl2 = suml2 - w * fL * fL;
                const v8i new_l = clamp(nearest_int(xt[i] * sl2 / slx), -nmax, nmax - 1);
                const v8i changed = pos & (new_l != Lt[i]);
                const v8f fn = to_f(new_l);
                slx += w * xt[i] * fn;
                sl2 += w * fn * fn;
                const v8i take = changed & (sl2 > zero) & (slx * slx * suml2 > sumlx * sumlx * sl2);
                Lt[i] = take ? new_l : Lt[i];
                sumlx = sel(take, slx, sumlx);
                suml2 = sel(take, sl2, suml2);
                n_changed -= take;
            }
            active &= (n_changed != 0);
        }
        const v8f sc = sel(tiny, zero, sel(suml2 > zero, sumlx / suml2, zero));
        for (int k = 0; k < 8; ++k) {
            scales[8 * g + k] = sc[k];
            for (int i = 0; i < n; ++i)
                L[16 * (8 * g + k) + i] = static_cast<std::int8_t>(tiny[k] ? 0 : Lt[i][k] + nmax);
        }
    }
}

}  // namespace shardforge::quant::simd
