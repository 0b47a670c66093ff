// The lane primitives of the host SIMD searches (simd_x8.cpp, simd_q3.cpp): eight floats or ints in one AVX2
// register, through GCC vector extensions (every operator is the lane-wise IEEE operation, comparisons give lane
// masks, `m ? a : b` selects per lane). Functions carry target("avx2"); callers check simd::have_avx2().
#pragma once
#include <immintrin.h>

namespace shardforge::quant::simd::lanes {

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
    l = l < vhi ? l : vhi;     // MIN(hi, l)
    return vlo > l ? vlo : l;  // MAX(lo, ...)
}

SF_AVX2 inline v8f to_f(v8i i) { return __builtin_convertvector(i, v8f); }

SF_AVX2 inline v8f sel(v8i m, v8f a, v8f b) { return m ? a : b; }

SF_AVX2 inline bool any(v8i m) { return _mm256_movemask_epi8((__m256i)m) != 0; }

}  // namespace shardforge::quant::simd::lanes
