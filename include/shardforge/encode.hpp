// shardforge formats, values <-> bytes: element conversion for the merge (src/formats/convert.cpp) and f32 rows to an
// output tensor's bytes in one of its three encodings (src/formats/encode.cpp). Part of <shardforge/formats.hpp>.
#pragma once
#include <shardforge/bitsandbytes.hpp>
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace shardforge::formats {

// ==== element conversion ====
// F32/F16/BF16/F64/F8_E4M3/F8_E5M2 -> f32 (exact except F64, rounded to nearest); other types throw Unsupported.
void to_f32(core::DType src_type, const std::byte* src, float* dst, std::size_t n);
// f32 -> F32/F16/BF16 (RNE, core::f32_to_f16 / f32_to_bf16); other types throw Unsupported.
void from_f32(const float* src, core::DType dst_type, std::byte* dst, std::size_t n);

// ==== f32 rows -> an output tensor's bytes (src/formats/encode.cpp) ====
// How one output tensor stores its values: each plan::Emit holds one of these.
struct RawEncoding {             // safetensors: the values in a float dtype
    core::DType dtype = core::DType::BF16;
};
struct GgmlEncoding {            // GGUF: rows of a ggml type
    quant::GgmlType type = quant::GgmlType::F32;
    std::vector<float> imatrix;  // importance per column (x experts for 3-D: one vector per expert), or empty
};
struct Bnb4Encoding {            // a bitsandbytes 4-bit group (bitsandbytes.hpp): packed codes + named parts
    core::DType dtype = core::DType::BF16;  // quant_state dtype: values are rounded to it before quantization
    quant::Bnb4Spec spec;
    Bnb4Parts parts;             // where the group's tensors after the packed codes lie in the output file
};
using Encoding = std::variant<RawEncoding, GgmlEncoding, Bnb4Encoding>;

// The quantizer of a ggml type: quant::quantize_rows's contract and bits (CPU, or the same kernels on a device).
using QuantizeRows = std::function<void(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows,
                                        std::int64_t n_per_row, const float* imatrix)>;
// Encodes v into `out`, which must be exactly v.size() values of e.dtype (checked, naming `tensor`).
void encode_rows(const RawEncoding& e, std::span<const float> v, std::span<std::byte> out, const std::string& tensor);
// Encodes v, rows [row0, row0 + v.size() / ne0) of a tensor of n_rows rows of ne0 values, into `out`, which must be
// exactly their row bytes (checked). With one importance vector per expert, the rows hold whole experts
// (plan/schedule.cpp), each quantized with its expert's vector.
void encode_rows(const GgmlEncoding& e, std::span<const float> v, std::int64_t ne0, std::int64_t row0,
                 std::int64_t n_rows, std::span<std::byte> out, const QuantizeRows& quantize,
                 const std::string& tensor);
// Quantizes a whole tensor of `shape` (v: its f32 values) as the group e describes (encode_bnb4 below).
[[nodiscard]] Bnb4Encoded encode_bnb4(const Bnb4Encoding& e, const core::Shape& shape, std::span<const float> v,
                                      const std::string& tensor);
// Each part of an encoded group with the range the plan gave it (sizes checked), in checkpoint order.
[[nodiscard]] std::vector<std::pair<ByteRange, std::span<const std::byte>>> placed_parts(
    const Bnb4Encoding& e, const Bnb4Encoded& enc, const std::string& tensor);
// ==== end f32 rows -> bytes ====

}  // namespace shardforge::formats
