// Host-only SIMD versions of the 32-element legacy kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4) and of the
// ternary TQ1_0/TQ2_0 kernels, without imatrix: the elements of one block in the lanes of AVX2 or AVX-512
// registers, every element going through the scalar kernel's IEEE operations in the scalar order (no FMA, no
// reassociation; reductions only where their result cannot depend on the order), so the bytes equal those of
// src/quant/kernels/legacy.hpp and ternary.hpp (checked by the oracle tests at every level). simd_legacy.cpp.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstdint>

namespace shardforge::quant::simd {

// True for the types legacy_blocks handles.
[[nodiscard]] bool has_legacy_simd(GgmlType type) noexcept;

// quantize_block_<type> on each of nb consecutive blocks of x into dst (the blocks of the type), with the
// AVX2 (level Avx2) or AVX-512 (level Avx512) lanes; the caller checks the CPU runs that level.
void legacy_blocks(GgmlType type, core::SimdLevel level, const float* x, void* dst, std::int64_t nb);

}  // namespace shardforge::quant::simd
