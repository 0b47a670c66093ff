// shardforge formats, bitsandbytes: the quant_state JSON (reader and byte-identical writer) and the safetensors
// tensors of a 4-bit weight (src/formats/bnb_quant_state.cpp, bnb_state.cpp). Part of <shardforge/formats.hpp>.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardforge::formats {

// ==== bitsandbytes quant_state ====
// The packed JSON of `P.weight.quant_state.bitsandbytes__<nf4|fp4>` (QuantState.as_dict in bitsandbytes/functional.py),
// e.g.
// {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008], "nested_blocksize": 256,
//  "nested_dtype": "float32", "nested_offset": 0.0123}. Unknown keys are ignored.
struct BnbQuantState {
    bool nf4 = true;                          // quant_type "nf4" (else "fp4")
    std::int64_t blocksize = 64;              // power of two, 16 ... 4096
    core::DType dtype = core::DType::BF16;    // dequantization output dtype: BF16 / F16 / F32
    core::Shape shape;                        // logical weight shape, 1..4 dims, elements < 2^48
    bool nested = false;                      // double quantization (all three nested_* keys present)
    std::int64_t nested_blocksize = 256;
    float nested_offset = 0.0f;               // the JSON double rounded to fp32
};
// Pure validating parser (also the fuzz entry point): `json` is the tensor's bytes, `key_type` the key suffix
// ("nf4"/"fp4", must equal quant_type). Throws core::Error BadInput naming `file` and `tensor`.
[[nodiscard]] BnbQuantState parse_bnb_quant_state(std::string_view json, std::string_view key_type,
                                                  const std::string& file, const std::string& tensor);
// ==== end bitsandbytes quant_state ====

// ==== bitsandbytes quant_state writer (src/formats/bnb_state.cpp) ====
// The writer side of BnbQuantState (above): UTF-8 bytes of Python's json.dumps(dict) (", " and ": " separators),
// keys quant_type, blocksize, dtype, shape and, when nested, nested_blocksize, nested_dtype ("float32"),
// nested_offset (Python repr of the fp32 value as a double) — byte-identical to bitsandbytes' pack_dict_to_tensor.
[[nodiscard]] std::string python_float_repr(double v);  // repr(float): "0.012345599941909313", "1e-05", "3.0"
[[nodiscard]] std::string bnb_quant_state_json(const BnbQuantState& s);
// Bytes planned for the tensor before the data is known: the exact JSON length when not nested; when nested,
// room for the longest nested_offset repr (the JSON is then followed by spaces, which json.loads ignores).
[[nodiscard]] std::size_t bnb_quant_state_reserved(const BnbQuantState& s);

// One bitsandbytes 4-bit Linear weight as the safetensors tensors that store it: the packed codes under the
// weight's own name, then (in this order, the one checkpoints list) <name>.absmax (f32 per block, or u8 codes with
// double quant), <name>.quant_map (16 x f32), [<name>.nested_absmax (f32 per 256 blocks), <name>.nested_quant_map
// (256 x f32),] <name>.quant_state.bitsandbytes__<type> (the JSON above). Parts are named, never matched by position:
// the plan's layout (bnb4_part_specs, Bnb4Parts) and the bytes (Bnb4Encoded::bytes) meet by Bnb4Part.
enum class Bnb4Part { Absmax, QuantMap, NestedAbsmax, NestedQuantMap, QuantState };
// The parts after the packed codes in checkpoint order (the nested two with double quantization only).
[[nodiscard]] std::vector<Bnb4Part> bnb4_parts_in_order(bool double_quant);

// An absolute byte range of an output file.
struct ByteRange {
    std::uint64_t offset = 0, nbytes = 0;
    bool operator==(const ByteRange&) const = default;
};
// Where the parts of one 4-bit group after its packed codes lie in the output file.
struct Bnb4Parts {
    ByteRange absmax, quant_map;
    std::optional<ByteRange> nested_absmax, nested_quant_map;  // double quantization only
    ByteRange quant_state;
    // The range of `part` (a nested part is created on first use).
    [[nodiscard]] ByteRange& at(Bnb4Part part);
    // The part's range; nullopt for a nested part the group does not have.
    [[nodiscard]] std::optional<ByteRange> find(Bnb4Part part) const;
    // Every part the group has, in checkpoint order.
    [[nodiscard]] std::vector<std::pair<Bnb4Part, ByteRange>> list() const;
    bool operator==(const Bnb4Parts&) const = default;
};

struct Bnb4PartSpec {
    Bnb4Part part = Bnb4Part::Absmax;
    std::string suffix;     // appended to the weight's name
    core::DType dtype = core::DType::U8;
    std::int64_t n = 0;     // elements
    std::uint64_t nbytes = 0;
};
// The parts after the packed codes, in checkpoint order; `qs` without nested_offset (unknown before the data: room is
// reserved).
[[nodiscard]] std::vector<Bnb4PartSpec> bnb4_part_specs(const quant::Bnb4Spec& spec, const BnbQuantState& qs);
struct Bnb4Encoded {
    quant::Bnb4Tensor q;                  // packed codes, absmax (or its codes), nested absmax and offset
    std::array<float, 16> quant_map{};
    std::vector<float> nested_quant_map;  // double quant only
    std::string quant_state;              // padded with spaces to its planned size
    // The bytes of one part (a view into this object; empty for a nested part without double quantization).
    [[nodiscard]] std::span<const std::byte> bytes(Bnb4Part part) const;
};
// The values as the quant_state dtype rounds them: what loading the 16-bit model in 4-bit would quantize.
[[nodiscard]] std::vector<float> bnb4_rounded(core::DType dtype, std::span<const float> v);
// Quantizes v (the weight's f32 values, numel(qs.shape) of them) after rounding to qs.dtype. Throws BadInput
// (non-finite value) naming `tensor`.
[[nodiscard]] Bnb4Encoded encode_bnb4(const quant::Bnb4Spec& spec, const BnbQuantState& qs, std::span<const float> v,
                                      const std::string& tensor);
// ==== end bitsandbytes quant_state writer ====

}  // namespace shardforge::formats
