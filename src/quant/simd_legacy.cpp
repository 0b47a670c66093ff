// AVX2 and AVX-512 lanes for the legacy, MXFP4 and ternary kernels (see simd_legacy.hpp). The kernels are
// written once (simd_legacy_kernels.inc) against the lane vocabulary below, which exists twice: 8 lanes under
// target("avx2") and 16 lanes under target("avx512f,avx512bw,avx512vl"). Every operation is the lane-wise IEEE
// or integer operation of the scalar code; cvttps2dq is the x86 truncation detail::x86_trunc_i32 writes out.
#include "simd_legacy.hpp"

#include "kernels/legacy.hpp"
#include "kernels/ternary.hpp"

#include <immintrin.h>

#include <cstring>

// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics (_mm512_undefined_*) as
// maybe-uninitialized once they are inlined here; nothing of ours is read uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace shardforge::quant::simd {

namespace avx2 {
#define SF_TGT __attribute__((target("avx2")))
using F = __m256;
using I = __m256i;
using M = __m256;  // lane masks: all-ones lanes
struct W {
    static constexpr int N = 8;
    SF_TGT static F load(const float* p) { return _mm256_loadu_ps(p); }
    SF_TGT static F set1(float v) { return _mm256_set1_ps(v); }
    SF_TGT static I iset1(int v) { return _mm256_set1_epi32(v); }
    SF_TGT static F abs(F v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
    SF_TGT static F max(F a, F b) { return _mm256_max_ps(a, b); }  // a > b ? a : b
    SF_TGT static F min(F a, F b) { return _mm256_min_ps(a, b); }  // a < b ? a : b
    SF_TGT static F add(F a, F b) { return _mm256_add_ps(a, b); }
    SF_TGT static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    SF_TGT static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    // max/min of NaN-free lanes: the same value in any order, so a shuffle tree
    SF_TGT static float hmax(F v) { return h8(_mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1)), true); }
    SF_TGT static float hmin(F v) { return h8(_mm256_min_ps(v, _mm256_permute2f128_ps(v, v, 1)), false); }
    SF_TGT static float h8(F v, bool is_max) {  // lanes 0..3 (= lanes 4..7) reduced
        __m128 h = _mm256_castps256_ps128(v);
        const __m128 s1 = _mm_shuffle_ps(h, h, 0x4E);
        h = is_max ? _mm_max_ps(h, s1) : _mm_min_ps(h, s1);
        const __m128 s2 = _mm_shuffle_ps(h, h, 0xB1);
        h = is_max ? _mm_max_ps(h, s2) : _mm_min_ps(h, s2);
        return _mm_cvtss_f32(h);
    }
    SF_TGT static unsigned eq_bits(F a, F b) {
        return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)));
    }
    SF_TGT static unsigned nan_bits(F a) {
        return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
    }
    SF_TGT static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
    SF_TGT static F blend(M m, F a, F b) { return _mm256_blendv_ps(a, b, m); }  // m ? b : a
    SF_TGT static I blendi(M m, I a, I b) {
        return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m));
    }
    SF_TGT static M ieq0(I a) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_setzero_si256())); }
    SF_TGT static I cvtt(F v) { return _mm256_cvttps_epi32(v); }
    SF_TGT static I sext8(I v) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24); }
    SF_TGT static I imin(I v, int hi) { return _mm256_min_epi32(v, _mm256_set1_epi32(hi)); }
    SF_TGT static I and_(I a, I b) { return _mm256_and_si256(a, b); }
    SF_TGT static I or_(I a, I b) { return _mm256_or_si256(a, b); }
    SF_TGT static I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
    SF_TGT static I shl(I a, int n) { return _mm256_sll_epi32(a, _mm_cvtsi32_si128(n)); }
    // lroundf/roundf: half away from zero. v - trunc(v) is exact, so the comparison with 0.5 decides exactly.
    SF_TGT static F round_away(F v) {
        const F t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const F up = _mm256_cmp_ps(abs(_mm256_sub_ps(v, t)), set1(0.5f), _CMP_GE_OQ);
        const F sign1 = _mm256_or_ps(_mm256_and_ps(v, set1(-0.0f)), set1(1.0f));
        return _mm256_blendv_ps(t, _mm256_add_ps(t, sign1), up);
    }
    SF_TGT static unsigned bit4(I v) {  // bit 4 of each lane
        return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 27))));
    }
    SF_TGT static void store_u8(std::uint8_t* dst, I v) {  // the low byte of each lane
        const I pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
        const I s = _mm256_shuffle_epi8(v, pick);
        const int lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(s));
        const int hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(s, 1));
        std::memcpy(dst, &lo, 4);
        std::memcpy(dst + 4, &hi, 4);
    }
};
#include "simd_legacy_kernels.inc"
#undef SF_TGT
}  // namespace avx2

namespace avx512 {
#define SF_TGT __attribute__((target("avx512f,avx512bw,avx512vl")))
using F = __m512;
using I = __m512i;
using M = __mmask16;
struct W {
    static constexpr int N = 16;
    SF_TGT static F load(const float* p) { return _mm512_loadu_ps(p); }
    SF_TGT static F set1(float v) { return _mm512_set1_ps(v); }
    SF_TGT static I iset1(int v) { return _mm512_set1_epi32(v); }
    SF_TGT static F abs(F v) {
        return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
    }
    SF_TGT static F max(F a, F b) { return _mm512_max_ps(a, b); }  // a > b ? a : b
    SF_TGT static F min(F a, F b) { return _mm512_min_ps(a, b); }  // a < b ? a : b
    SF_TGT static F add(F a, F b) { return _mm512_add_ps(a, b); }
    SF_TGT static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    SF_TGT static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    SF_TGT static float hmax(F v) {  // NaN-free lanes: a shuffle tree, as avx2::W::hmax
        return avx2::W::hmax(_mm256_max_ps(_mm512_castps512_ps256(v),
                                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    SF_TGT static float hmin(F v) {
        return avx2::W::hmin(_mm256_min_ps(_mm512_castps512_ps256(v),
                                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    SF_TGT static unsigned eq_bits(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
    SF_TGT static unsigned nan_bits(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
    SF_TGT static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
    SF_TGT static F blend(M m, F a, F b) { return _mm512_mask_blend_ps(m, a, b); }  // m ? b : a
    SF_TGT static I blendi(M m, I a, I b) { return _mm512_mask_blend_epi32(m, a, b); }
    SF_TGT static M ieq0(I a) { return _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512()); }
    SF_TGT static I cvtt(F v) { return _mm512_cvttps_epi32(v); }
    SF_TGT static I sext8(I v) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24); }
    SF_TGT static I imin(I v, int hi) { return _mm512_min_epi32(v, _mm512_set1_epi32(hi)); }
    SF_TGT static I and_(I a, I b) { return _mm512_and_si512(a, b); }
    SF_TGT static I or_(I a, I b) { return _mm512_or_si512(a, b); }
    SF_TGT static I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
    SF_TGT static I shl(I a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
    SF_TGT static F round_away(F v) {  // as avx2::W::round_away
        const F t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const M up = _mm512_cmp_ps_mask(abs(_mm512_sub_ps(v, t)), set1(0.5f), _CMP_GE_OQ);
        const F sign1 = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u))),
            _mm512_castps_si512(set1(1.0f))));
        return _mm512_mask_blend_ps(up, t, _mm512_add_ps(t, sign1));
    }
    SF_TGT static unsigned bit4(I v) { return _mm512_test_epi32_mask(v, _mm512_set1_epi32(0x10)); }
    SF_TGT static void store_u8(std::uint8_t* dst, I v) {  // the low byte of each lane (vpmovdb truncates)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(v));
    }
};
#include "simd_legacy_kernels.inc"
#undef SF_TGT
}  // namespace avx512

bool has_legacy_simd(GgmlType type) noexcept {
    switch (type) {
        case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
        case GgmlType::MXFP4: case GgmlType::TQ1_0: case GgmlType::TQ2_0:
            return true;
        default:
            return false;
    }
}

void legacy_blocks(GgmlType type, core::SimdLevel level, const float* x, void* dst, std::int64_t nb) {
    if (level >= core::SimdLevel::Avx512) return avx512::run(type, x, dst, nb);
    return avx2::run(type, x, dst, nb);
}

}  // namespace shardforge::quant::simd
