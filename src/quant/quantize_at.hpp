// quantize_rows with the SIMD level given instead of core::simd_level() (which quantize_rows passes): the tests
// compare every level's bytes within one process. level must not exceed what the CPU runs (core::simd_level()
// with SHARDFORGE_SIMD unset is the most it may be).
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstdint>

namespace shardforge::quant {

void quantize_rows_at(core::SimdLevel level, GgmlType type, const float* src, void* dst, std::int64_t nrows,
                      std::int64_t n_per_row, const float* imatrix);

}  // namespace shardforge::quant
