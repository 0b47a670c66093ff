// The CPU LoRA delta C = B @ A in the order of kernels/delta.hpp (docs/engine.md, "Determinism"): every path below
// (scalar, AVX2, AVX-512; picked by core::simd_level()) computes, for each C[i, j], the same k-ascending chain of
// rounded multiplies and adds, so they give the same bits. The vector paths keep a 4-row x W-column block of C in
// registers while k runs (one broadcast of B[i, k] and one load of A's row k per step) and walk A in column tiles
// that stay in L2. No FMA: the vector code multiplies and adds separately, and the host build has
// -ffp-contract=off so the compiler never fuses them either.
#include <shardforge/lora.hpp>

#include "delta.hpp"
#include "kernels/delta.hpp"

#include <immintrin.h>

#include <algorithm>

namespace shardforge::lora {
namespace {

constexpr int rows_per_block = 4;

// C[i0.., j] for columns [j0, j1) of rows [i0, i0 + n_rows), one element at a time (tails of the vector paths).
void delta_columns(const float* b, const float* a, std::int64_t k, std::int64_t n, float* c, std::int64_t i0,
                   std::int64_t n_rows, std::int64_t j0, std::int64_t j1) {
    for (std::int64_t i = i0; i < i0 + n_rows; ++i)
        for (std::int64_t j = j0; j < j1; ++j) c[i * n + j] = kernels::delta_element(b + i * k, a, k, n, j);
}

// Scalar path: row i of C accumulates k passes over A's rows (the same per-element chain, unit-stride access).
void delta_scalar(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c) {
    for (std::int64_t i = 0; i < m; ++i) {
        float* ci = c + i * n;
        std::fill(ci, ci + n, 0.0f);
        for (std::int64_t q = 0; q < k; ++q) {
            const float bq = b[i * k + q];
            const float* aq = a + q * n;
            for (std::int64_t j = 0; j < n; ++j) ci[j] = kernels::add_rn(ci[j], kernels::mul_rn(bq, aq[j]));
        }
    }
}

// Column tile width: A's tile (k x tile floats) stays within about 128 KiB of L2, and is a multiple of `w`.
std::int64_t column_tile(std::int64_t k, std::int64_t w) {
    const std::int64_t t = std::max<std::int64_t>(w, (std::int64_t{32768} / std::max<std::int64_t>(k, 1)) / w * w);
    return t;
}

// One register block, written once for both vector widths: MR rows x NV vectors of LANES lanes of C, columns
// [j, j + LANES NV). A macro rather than a template over the intrinsics: a function's target attribute cannot be a
// template parameter, and the intrinsics only inline into a function compiled for their target. The fixed-count
// loops are unrolled completely (the pragmas), so the accumulators live in registers.
#define SF_DELTA_BLOCK(NAME, TARGET, VEC, LANES, ZERO, LOAD, SET1, ADD, MUL, STORE)                                  \
    template <int MR, int NV>                                                                                       \
    __attribute__((target(TARGET))) void NAME(const float* b, const float* a, std::int64_t k, std::int64_t n,      \
                                              float* c, std::int64_t j) {                                           \
        VEC acc[MR][NV];                                                                                            \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; ++r)                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = ZERO();                               \
        for (std::int64_t q = 0; q < k; ++q) {                                                                      \
            VEC av[NV];                                                                                             \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) av[v] = LOAD(a + q * n + j + (LANES) * v);        \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; ++r) {                                                 \
                const VEC bb = SET1(b[r * k + q]);                                                                  \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = ADD(acc[r][v], MUL(bb, av[v]));   \
            }                                                                                                       \
        }                                                                                                           \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; ++r)                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) STORE(c + r * n + j + (LANES) * v, acc[r][v]);    \
    }

SF_DELTA_BLOCK(block_avx2, "avx2", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_add_ps,
               _mm256_mul_ps, _mm256_storeu_ps)
SF_DELTA_BLOCK(block_avx512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps,
               _mm512_add_ps, _mm512_mul_ps, _mm512_storeu_ps)
#undef SF_DELTA_BLOCK

// The tiled driver of one vector path: Block<MR>(b_rows, a, k, n, c_rows, j) fills MR rows x W columns.
template <std::int64_t W, auto Block4, auto Block1>
void delta_tiled(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c) {
    const std::int64_t tile = column_tile(k, W);
    for (std::int64_t j0 = 0; j0 < n; j0 += tile) {
        const std::int64_t j1 = std::min(n, j0 + tile);
        const std::int64_t jv = j0 + (j1 - j0) / W * W;  // vector columns end here; the rest one by one
        std::int64_t i = 0;
        for (; i + rows_per_block <= m; i += rows_per_block) {
            for (std::int64_t j = j0; j < jv; j += W) Block4(b + i * k, a, k, n, c + i * n, j);
            delta_columns(b, a, k, n, c, i, rows_per_block, jv, j1);
        }
        for (; i < m; ++i) {
            for (std::int64_t j = j0; j < jv; j += W) Block1(b + i * k, a, k, n, c + i * n, j);
            delta_columns(b, a, k, n, c, i, 1, jv, j1);
        }
    }
}

}  // namespace

void delta_f32_at(core::SimdLevel level, const float* b, const float* a, std::int64_t m, std::int64_t k,
                  std::int64_t n, float* c) noexcept {
    if (m <= 0 || n <= 0) return;
    switch (level) {
        case core::SimdLevel::Avx512:
            delta_tiled<64, block_avx512<rows_per_block, 4>, block_avx512<1, 4>>(b, a, m, k, n, c);
            return;
        case core::SimdLevel::Avx2:
            delta_tiled<24, block_avx2<rows_per_block, 3>, block_avx2<1, 3>>(b, a, m, k, n, c);
            return;
        case core::SimdLevel::Scalar: break;
    }
    delta_scalar(b, a, m, k, n, c);
}

void delta_f32(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c) noexcept {
    delta_f32_at(core::simd_level(), b, a, m, k, n, c);
}

}  // namespace shardforge::lora
