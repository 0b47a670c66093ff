// shardforge formats, values <-> bytes: element conversion for the merge (src/formats/convert.cpp) and f32 rows to an
// output tensor's bytes (src/formats/encode.cpp). Part of <shardforge/formats.hpp>.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace shardforge::formats {

// ==== element conversion ====
// F32/F16/BF16/F64/F8_E4M3/F8_E5M2 -> f32 (exact except F64, rounded to nearest); other types throw Unsupported.
void to_f32(core::DType src_type, const std::byte* src, float* dst, std::size_t n);
// f32 -> F32/F16/BF16 (RNE, core::f32_to_f16 / f32_to_bf16); other types throw Unsupported.
void from_f32(const float* src, core::DType dst_type, std::byte* dst, std::size_t n);

// ==== f32 rows -> an output tensor's bytes (src/formats/encode.cpp) ====
// How one output tensor stores its values: a safetensors dtype, or a ggml type (GGUF).
struct RowEncoding {
    bool ggml = false;
    core::DType dtype = core::DType::BF16;          // !ggml
    quant::GgmlType gtype = quant::GgmlType::F32;   // ggml
    std::span<const float> imatrix;                 // ggml: importance per column (x experts for 3-D), or empty
    std::int64_t rows_per_expert = 0;               // ggml with one importance vector per expert
};
// The quantizer of a ggml type: quant::quantize_rows's contract and bits (CPU, or the same kernels on a device).
using QuantizeRows = std::function<void(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows,
                                        std::int64_t n_per_row, const float* imatrix)>;
// Encodes v, consecutive rows of ne0 values, into `out` (exactly their encoded size; checked by the caller).
// `expert0`: the expert of the first row when the imatrix has one vector per expert (rows hold whole experts).
void encode_rows(const RowEncoding& e, std::span<const float> v, std::int64_t ne0, std::int64_t expert0,
                 std::span<std::byte> out, const QuantizeRows& quantize);
// ==== end f32 rows -> bytes ====

}  // namespace shardforge::formats
