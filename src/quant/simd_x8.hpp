// Host-only lane-parallel versions of the hot K-quant searches: eight independent sub-blocks in eight SIMD lanes,
// each lane doing exactly the scalar kernel's IEEE operations in the scalar order (no FMA, no reassociation), so
// results are bit-identical to src/quant/kernels (checked by the oracle and the kernels tests).
#pragma once
#include <cstdint>

namespace shardforge::quant::simd {

// True when the CPU runs AVX2 (the lane code is also correct without it, only slower).
[[nodiscard]] bool have_avx2() noexcept;

// = detail::qk4_ref_search(x, nmax, rmin, rdelta, nstep, L, scales, mins) for one 256-element super-block:
// make_qkx2_quants(32, nmax, ..., use_mad=false) on its eight sub-blocks with weights av_x + |x|.
void qk4_ref_search_x8(const float* x, int nmax, float rmin, float rdelta, int nstep, std::uint8_t* L,
                       float* scales, float* mins);

// = make_qx_quants(16, 32, x + 16*ib, L + 16*ib, 1, NULL) for the 16 sub-blocks of one Q6_K super-block.
void q6_ref_search_x8(const float* x, std::int8_t* L, float* scales);

// = make_qkx2_quants(16, 3, x + 16*j, |x|, ..., -0.5f, 0.1f, 15, use_mad=true) for the 16 sub-blocks of Q2_K.
void q2_ref_search_x8(const float* x, std::uint8_t* L, float* scales, float* mins);

// The scale search of quantize_row_iq4_nl_impl (ntry = 7) on eight consecutive 32-element sub-blocks x[32k..],
// with their weights w[32k..]; scales[k] = the searched scale (0 for all-tiny sub-blocks).
void iq4_search_x8(const float* x, const float* w, float* scales);

// = make_q3_quants(16, 4, x + 16*j, L + 16*j, true) for the 16 sub-blocks of one Q3_K super-block.
void q3_ref_search_x8(const float* x, std::int8_t* L, float* scales);

}  // namespace shardforge::quant::simd
