// Lane-parallel Q3_K (no imatrix), see simd_x8.hpp. make_q3_quants' coordinate descent carries a dependency
// through (sumlx, suml2) from element to element, with a division in it; the scalar code hides that latency
// behind branch prediction (most elements do not change), lanes cannot. So four independent chains (the two
// 8-sub-block halves of two super-blocks) advance together, element by element, and the out-of-order core
// overlaps them. The re-quantization x / d of the finish runs 8 wide. Every lane keeps the scalar operation
// order (GCC vector extensions: lane-wise IEEE ops; target avx2 without fma, so nothing is contracted).
#include "simd_lanes.hpp"
#include "simd_x8.hpp"

#include "kernels/k_quants.hpp"

#include <immintrin.h>

#include <cstring>

namespace shardforge::quant::simd {
namespace {

using namespace lanes;

// In-register 8x8 transpose: r[i][k] <- r[k][i] (pure data movement).
SF_AVX2 inline void transpose8(__m256* r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// 32 ints in [0, 255] (a, b, c, d in order) -> 32 bytes.
SF_AVX2 inline void narrow32(v8i a, v8i b, v8i c, v8i d, std::uint8_t* out) {
    const __m256i ab = _mm256_packus_epi32((__m256i)a, (__m256i)b);  // a0-3 b0-3 | a4-7 b4-7
    const __m256i cd = _mm256_packus_epi32((__m256i)c, (__m256i)d);
    const __m256i p = _mm256_packus_epi16(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
    const __m256i q = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), q);
}

constexpr int kN = 16, kNMax = 4;
constexpr int kBlocks = 2;  // super-blocks searched together

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
    for (int h = 0; h < 2; ++h) {
        __m256 r[8];
        for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(x + 16 * k + 8 * h);
        transpose8(r);
        for (int i = 0; i < 8; ++i) c.xt[8 * h + i] = (v8f)r[i];
    }
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

// L (ints, 16 per sub-block) and scales of the chain's 8 sub-blocks.
SF_AVX2 inline void chain_out(const Chain& c, int* L, float* scales) {
    const v8f zero = v8f{};
    const v8f sc = sel(c.tiny, zero, sel(c.suml2 > zero, c.sumlx / c.suml2, zero));
    std::memcpy(scales, &sc, sizeof sc);
    for (int h = 0; h < 2; ++h) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = (__m256)(c.tiny ? v8i{} : c.Lt[8 * h + i] + kNMax);
        transpose8(r);
        for (int k = 0; k < 8; ++k) _mm256_storeu_ps(reinterpret_cast<float*>(L + 16 * k + 8 * h), r[k]);
    }
}

// make_q3_quants(16, 4, ...) on C chains at once: chain c covers sub-blocks 8c..8c+7 of x (16 floats each).
template <int C>
SF_AVX2 void q3_search_chains(const float* x, int* L, float* scales) {
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
#pragma GCC unroll 8
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
SF_AVX2 void q3_finish(const float* x, int* L, const float* scales, BlockQ3_K& y) {
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
    v8i Lv[32];  // L[8v .. 8v+7]
    std::memcpy(Lv, L, sizeof Lv);
    for (int j = 0; j < 16; ++j) {
        std::int8_t sc = static_cast<std::int8_t>(j < 8 ? y.scales[j] & 0xF : y.scales[j - 8] >> 4);
        sc = static_cast<std::int8_t>((sc | (((y.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = dall * sc;
        if (!d) continue;  // keeps the search's L
        const v8f vd = v8f{} + d;
        for (int h = 0; h < 2; ++h) {
            v8f xv;
            std::memcpy(&xv, x + 16 * j + 8 * h, sizeof xv);
            Lv[2 * j + h] = clamp(nearest_int(xv / vd), -4, 3) + 4;
        }
    }
    // hmask byte m, bit h: L[32h + m] > 3 (bit 2 of L in 0..7); qs: the low two bits as pack_2bit.
    v8i hm[4] = {};
    for (int h = 0; h < 8; ++h)
        for (int q = 0; q < 4; ++q) hm[q] |= ((Lv[4 * h + q] >> 2) & 1) << h;
    narrow32(hm[0], hm[1], hm[2], hm[3], y.hmask);
    for (int half = 0; half < 2; ++half) {
        v8i p[4];
        for (int q = 0; q < 4; ++q) {
            const int v = 16 * half + q;  // L[128 half + 8q + ...] and +32, +64, +96
            p[q] = (Lv[v] & 3) | ((Lv[v + 4] & 3) << 2) | ((Lv[v + 8] & 3) << 4) | ((Lv[v + 12] & 3) << 6);
        }
        narrow32(p[0], p[1], p[2], p[3], y.qs + 32 * half);
    }
}

}  // namespace

SF_AVX2 void quantize_q3_k_blocks(const float* x, void* dst, std::int64_t nb) {
    auto* y = static_cast<BlockQ3_K*>(dst);
    alignas(32) int L[kBlocks * qk_k];
    float scales[16 * kBlocks];
    std::int64_t b = 0;
    for (; b + kBlocks <= nb; b += kBlocks) {  // kBlocks super-blocks = 2 kBlocks chains
        q3_search_chains<2 * kBlocks>(x + qk_k * b, L, scales);
        for (int k = 0; k < kBlocks; ++k) q3_finish(x + qk_k * (b + k), L + qk_k * k, scales + 16 * k, y[b + k]);
    }
    for (; b < nb; ++b) {
        q3_search_chains<2>(x + qk_k * b, L, scales);
        q3_finish(x + qk_k * b, L, scales, y[b]);
    }
}

}  // namespace shardforge::quant::simd
