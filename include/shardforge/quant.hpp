// shardforge quant: ggml block types, bit-exact quantizers/dequantizers (pure functions on rows/blocks),
// llama-quantize ftypes and per-tensor type rules. Depends on core only; knows nothing of files or MPI.
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::quant {

// ==== types and kernels (section owned by the kernel work) ====

// ggml tensor types with their on-disk ids (ggml.h; quantization.md §1).
enum class GgmlType : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
inline constexpr std::uint32_t ggml_type_count = 43;  // GGML_TYPE_COUNT of the reference release

struct TypeTraits {
    GgmlType type;
    std::string_view name;        // ggml_type_name spelling: "q4_K"
    std::int64_t block_elems;     // elements per block (1 for plain types)
    std::size_t block_bytes;      // bytes per block
};
// nullptr for ids that are unknown or removed (block size 0 in ggml).
[[nodiscard]] const TypeTraits* type_traits(std::uint32_t id) noexcept;
[[nodiscard]] const TypeTraits& traits(GgmlType t) noexcept;
// Bytes of a row of n elements; n must be a multiple of the block size (checked by the caller/plan).
[[nodiscard]] inline std::size_t row_bytes(GgmlType t, std::int64_t n) noexcept {
    const auto& tr = traits(t);
    return static_cast<std::size_t>(n / tr.block_elems) * tr.block_bytes;
}
[[nodiscard]] std::string type_upper_name(GgmlType t);  // "Q4_K", "BF16": file names, --help
[[nodiscard]] bool parse_type(std::string_view s, GgmlType& out) noexcept;  // case-insensitive "q4_k", "Q8_0"

// ==== end types and kernels ====

// ==== ftypes and per-tensor rules (section owned by the ftype work) ====

// ==== end ftypes ====

}  // namespace shardforge::quant
