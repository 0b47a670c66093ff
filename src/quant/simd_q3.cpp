// Lane-parallel Q3_K (no imatrix), see simd_x8.hpp. make_q3_quants' coordinate descent carries a dependency
// through (sumlx, suml2) from element to element, with a division in it; the scalar code hides that latency
// behind branch prediction (most elements do not change), lanes cannot. So four independent chains (the two
// 8-sub-block halves of two super-blocks) advance together, element by element, and the out-of-order core
// overlaps them. The re-quantization x / d of the finish runs 8 wide. Every lane keeps the scalar operation
// order (GCC vector extensions: lane-wise IEEE ops; target avx2 without fma, so nothing is contracted).
#include "simd_x8.hpp"

#include "kernels/k_quants.hpp"

#include <immintrin.h>

#include <cstring>

namespace shardforge::quant::simd {
namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#define SF_AVX2 __attribute__((target("avx2")))

SF_AVX2 inline v8i nearest_int(v8f f) {  // detail::nearest_int per lane
    const v8f val = f + 12582912.f;
    const v8i i = (v8i)val;
    return (i & 0x007fffff) - 0x00400000;
}
SF_AVX2 inline v8i clamp(v8i l, int lo, int hi) {
    const v8i vlo = v8i{} + lo, vhi = v8i{} + hi;
    l = l < vhi ? l : vhi;
    return vlo > l ? vlo : l;
}
SF_AVX2 inline v8f to_f(v8i i) { return __builtin_convertvector(i, v8f); }
SF_AVX2 inline v8f sel(v8i m, v8f a, v8f b) { return m ? a : b; }
SF_AVX2 inline bool any(v8i m) { return _mm256_movemask_epi8((__m256i)m) != 0; }

constexpr int kN = 16, kNMax = 4;

// One chain = 8 sub-blocks in 8 lanes.
struct Chain {
    v8f xt[kN];   // xt[i][k] = element i of the lane's sub-block
    v8f wx[kN];   // (x*x)*x, the scalar's w * x[i]
    v8f w[kN];    // x*x
    v8i Lt[kN];   // l in [-4, 3]
    v8f sumlx, suml2;
    v8i tiny, active;
};

SF_AVX2 inline void chain_init(Chain& c, const float* x) {  // x: the 8 sub-blocks, 16 floats each
    for (int i = 0; i < kN; ++i)
        for (int k = 0; k < 8; ++k) c.xt[i][k] = x[16 * k + i];
    const v8f zero = v8f{};
    const v8i abs_mask = v8i{} + 0x7fffffff;
    v8f max = zero, amax = zero;
    for (int i = 0; i < kN; ++i) {
        const v8f ax = (v8f)((v8i)c.xt[i] & abs_mask);
        const v8i gt = ax > amax;
        amax = sel(gt, ax, amax);
        max = sel(gt, c.xt[i], max);
    }
    c.tiny = amax < 1e-15f;
    const v8f iscale = static_cast<float>(-kNMax) / max;
    v8f sumlx = zero, suml2 = zero;
    for (int i = 0; i < kN; ++i) {
        const v8i l = clamp(nearest_int(iscale * c.xt[i]), -kNMax, kNMax - 1);
        c.Lt[i] = l;
        c.w[i] = c.xt[i] * c.xt[i];
        c.wx[i] = c.w[i] * c.xt[i];
        const v8f fl = to_f(l);
        sumlx += c.wx[i] * fl;
        suml2 += c.w[i] * fl * fl;
    }
    c.sumlx = sumlx;
    c.suml2 = suml2;
    c.active = ~c.tiny;
}

// Element i of one coordinate-descent pass; returns the lanes that changed L[i].
SF_AVX2 inline v8i chain_step(Chain& c, int i) {
    const v8f zero = v8f{};
    const v8f fL = to_f(c.Lt[i]);
    v8f slx = c.sumlx - c.wx[i] * fL;
    const v8i pos = c.active & (slx > zero);
    v8f sl2 = c.suml2 - c.w[i] * fL * fL;
    const v8i new_l = clamp(nearest_int(c.xt[i] * sl2 / slx), -kNMax, kNMax - 1);
    const v8i changed = pos & (new_l != c.Lt[i]);
    const v8f fn = to_f(new_l);
    slx += c.wx[i] * fn;
    sl2 += c.w[i] * fn * fn;
    const v8i take = changed & (sl2 > zero) & (slx * slx * c.suml2 > c.sumlx * c.sumlx * sl2);
    c.Lt[i] = take ? new_l : c.Lt[i];
    c.sumlx = sel(take, slx, c.sumlx);
    c.suml2 = sel(take, sl2, c.suml2);
    return take;
}

SF_AVX2 inline void chain_out(const Chain& c, std::int8_t* L, float* scales) {  // L, scales: 8 sub-blocks
    const v8f zero = v8f{};
    const v8f sc = sel(c.tiny, zero, sel(c.suml2 > zero, c.sumlx / c.suml2, zero));
    for (int k = 0; k < 8; ++k) {
        scales[k] = sc[k];
        for (int i = 0; i < kN; ++i) L[16 * k + i] = static_cast<std::int8_t>(c.tiny[k] ? 0 : c.Lt[i][k] + kNMax);
    }
}

// make_q3_quants(16, 4, ...) on C chains at once: chain c covers sub-blocks 8c..8c+7 of x (16 floats each).
template <int C>
SF_AVX2 void q3_search_chains(const float* x, std::int8_t* L, float* scales) {
    Chain ch[C];
    for (int c = 0; c < C; ++c) chain_init(ch[c], x + 128 * c);
    bool live[C];
    for (int c = 0; c < C; ++c) live[c] = any(ch[c].active);
    for (int itry = 0; itry < 5; ++itry) {
        bool any_live = false;
        for (int c = 0; c < C; ++c) any_live |= live[c];
        if (!any_live) break;
        v8i n_changed[C];
        for (int c = 0; c < C; ++c) n_changed[c] = v8i{};
        for (int i = 0; i < kN; ++i) {
#pragma GCC unroll 4
            for (int c = 0; c < C; ++c)
                if (live[c]) n_changed[c] -= chain_step(ch[c], i);
        }
        for (int c = 0; c < C; ++c) {
            ch[c].active &= (n_changed[c] != 0);
            live[c] = live[c] && any(ch[c].active);
        }
    }
    for (int c = 0; c < C; ++c) chain_out(ch[c], L + 128 * c, scales + 8 * c);
}

// finish_block_q3_K with the re-quantization 8 wide (same expressions as the SF_HD kernel).
SF_AVX2 void q3_finish(const float* x, std::int8_t* L, const float* scales, BlockQ3_K& y) {
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
    const float dall = detail::f16(y.d);
    for (int j = 0; j < 16; ++j) {
        std::int8_t sc = static_cast<std::int8_t>(j < 8 ? y.scales[j] & 0xF : y.scales[j - 8] >> 4);
        sc = static_cast<std::int8_t>((sc | (((y.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = dall * sc;
        if (!d) continue;
        const v8f vd = v8f{} + d;
        for (int h = 0; h < 2; ++h) {
            v8f xv;
            std::memcpy(&xv, x + 16 * j + 8 * h, sizeof xv);
            const v8i l = clamp(nearest_int(xv / vd), -4, 3) + 4;
            for (int k = 0; k < 8; ++k) L[16 * j + 8 * h + k] = static_cast<std::int8_t>(l[k]);
        }
    }
    // hmask: bit (j / 32) of byte j % 32 for L[j] > 3; then the low two bits packed as pack_2bit.
    std::uint8_t hmask[32] = {};
    for (int j = 0; j < qk_k; ++j) {
        if (L[j] > 3) {
            hmask[j % 32] = static_cast<std::uint8_t>(hmask[j % 32] | (1u << (j / 32)));
            L[j] = static_cast<std::int8_t>(L[j] - 4);
        }
    }
    std::memcpy(y.hmask, hmask, 32);
    detail::pack_2bit(reinterpret_cast<const std::uint8_t*>(L), y.qs);
}

}  // namespace

SF_AVX2 void quantize_q3_k_blocks(const float* x, void* dst, std::int64_t nb) {
    auto* y = static_cast<BlockQ3_K*>(dst);
    std::int8_t L[2 * qk_k];
    float scales[32];
    std::int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {  // two super-blocks = four chains
        q3_search_chains<4>(x + qk_k * b, L, scales);
        q3_finish(x + qk_k * b, L, scales, y[b]);
        q3_finish(x + qk_k * (b + 1), L + qk_k, scales + 16, y[b + 1]);
    }
    for (; b < nb; ++b) {
        q3_search_chains<2>(x + qk_k * b, L, scales);
        q3_finish(x + qk_k * b, L, scales, y[b]);
    }
}

}  // namespace shardforge::quant::simd
