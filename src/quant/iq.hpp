// Host side of the importance-matrix quantizers IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS/IQ3_S/IQ1_S/IQ1_M: the grid
// tables (built once per grid, thread-safe, like ggml_quantize_init) and the row drivers over the block kernels
// of kernels/iq{1,2,3}.hpp. Internal to the quant module; quantize.cpp dispatches here.
#pragma once
#include <shardforge/quant.hpp>

#include "kernels/iq_grids.hpp"

namespace shardforge::quant::iq {

// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M.
[[nodiscard]] bool is_grid_type(GgmlType type) noexcept;
// True for the types ggml cannot quantize without an imatrix (ggml_quantize_requires_imatrix: it asserts):
// IQ2_XXS, IQ2_XS, IQ1_S. IQ2_S, IQ3_XXS, IQ3_S and IQ1_M have ggml fallbacks we reproduce.
[[nodiscard]] bool imatrix_mandatory(GgmlType type) noexcept;
// The type's full grid (quantization), built on first use (the neighbour lists take up to ~1 s for the IQ1 grid).
// dequantize_rows uses a separate points-only copy that costs nothing to build.
[[nodiscard]] const detail::IqGrid& grid(GgmlType type);

// Same contract as quant::quantize_rows / dequantize_rows for the grid types. quantize_rows throws
// core::Error(Usage) when imatrix_mandatory(type) and imatrix is null (ggml would abort).
void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                   const float* imatrix);
void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row);

}  // namespace shardforge::quant::iq
