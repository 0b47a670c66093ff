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

// = make_qx_quants(16, nmax, x + 16*k, L + 16*k, 1, w + 16*k) for k = 0..7 (w not null), scales[k] the result.
void qx_search_x8(const float* x, const float* w, int nmax, std::int8_t* L, float* scales);

// = make_qkx2_quants(n, nmax, x + n*k, w + n*k, L + n*k, &mins[k], Laux, rmin, rdelta, nstep, use_mad=false)
// for k = 0..7, n = 16 or 32. With non-null weights this is also make_qkx3_quants (the imatrix paths).
void qkx_search_x8(int n, const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep,
                   std::uint8_t* L, float* scales, float* mins);

// = make_qkx2_quants(16, 3, x + 16*j, |x|, ..., -0.5f, 0.1f, 15, use_mad=true) for the 16 sub-blocks of Q2_K.
void q2_ref_search_x8(const float* x, std::uint8_t* L, float* scales, float* mins);

// The scale search of quantize_row_iq4_nl_impl (ntry = 7) on eight consecutive 32-element sub-blocks x[32k..],
// with their weights w[32k..]; scales[k] = the searched scale (0 for all-tiny sub-blocks).
void iq4_search_x8(const float* x, const float* w, float* scales);

// = make_q3_quants(16, 4, x + 16*j, L + 16*j, true) for the 16 sub-blocks of one Q3_K super-block.
void q3_ref_search_x8(const float* x, std::int8_t* L, float* scales);

// = quantize_block_q3_K on each of nb consecutive super-blocks (dst: BlockQ3_K[nb]); simd_q3.cpp. Runs two
// super-blocks' searches interleaved to hide the coordinate descent's latency, ~3-4x the scalar kernel.
void quantize_q3_k_blocks(const float* x, void* dst, std::int64_t nb);

// quantize_block_*_imatrix on every block of nrows rows of n (qw: the n imatrix weights of a row), with the
// sub-block searches in lanes; simd_kimat.cpp. dst: the blocks of the type.
void q2_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n);
void q3_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n);
void q4_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n);
void q5_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n);
void q6_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n);

}  // namespace shardforge::quant::simd
