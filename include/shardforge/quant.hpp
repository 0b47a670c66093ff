// shardforge quant: ggml block types, bit-exact quantizers/dequantizers (pure functions on rows/blocks),
// llama-quantize ftypes and per-tensor type rules. Depends on core only; knows nothing of files or MPI.
#pragma once
#include <shardforge/core.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::quant {

// ==== types and kernels ====

// ggml tensor types with their on-disk ids (llama.cpp's ggml/include/ggml.h).
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

// Quantize nrows rows of n_per_row floats into dst (row_bytes(type, n_per_row) * nrows bytes): the same bytes
// as ggml's ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix), i.e. what llama-quantize writes.
// imatrix: null, or n_per_row importance weights applied to every row (ignored by Q8_0, TQ1_0, TQ2_0, MXFP4 and
// the float types, as in ggml). Preconditions (checked by the planner): can_quantize(type),
// n_per_row % block_elems == 0. Throws core::Error(Unsupported) for a type we do not implement, and
// core::Error(Usage) for IQ2_XXS/IQ2_XS/IQ1_S without an imatrix (ggml aborts there; IQ2_S/IQ3_XXS/IQ3_S/IQ1_M
// have ggml's no-imatrix fallbacks). The IQ grid types build their grid tables on first use (once, thread-safe).
// Thread-safe; rows are independent, so any split of the rows gives the same bytes.
void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                   const float* imatrix = nullptr);
// As quantize_rows, rows split over n_threads std::threads (n_threads <= 1: the calling thread only).
void quantize_rows_parallel(GgmlType type, const float* src, void* dst, std::int64_t nrows,
                            std::int64_t n_per_row, const float* imatrix, int n_threads);
// Inverse, bit-exact with ggml's dequantize_row_<type> (F16/BF16/F32: exact widening). Same preconditions.
void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row);
[[nodiscard]] bool can_quantize(GgmlType type) noexcept;   // quantize_rows/dequantize_rows implement this type
// IQ2_XXS/IQ2_XS/IQ2_S/IQ1_S/IQ1_M/IQ3_XXS: llama-quantize refuses them without an imatrix
// (tensor_requires_imatrix; ggml itself asserts for IQ2_XXS/IQ2_XS/IQ1_S).
[[nodiscard]] bool needs_imatrix(GgmlType type) noexcept;
// IQ2_XXS/IQ2_XS/IQ1_S: quantize_rows throws without an imatrix, even for token_embd/output, which
// needs_imatrix()'s llama-quantize rule exempts (ggml_quantize_requires_imatrix: ggml would abort). The planner
// refuses these before any work starts.
[[nodiscard]] bool quantize_requires_imatrix(GgmlType type) noexcept;

// ==== end types and kernels ====

// ==== GPU backend (CUDA: src/quant/cuda/; without CUDA the stubs of src/quant/gpu_stub.cpp) ====
// The CUDA kernels run the same SF_HD block functions as quantize_rows/dequantize_rows, one GPU thread per ggml
// block (src/quant/kernels/tasks.hpp), compiled with --fmad=false: same bytes as the CPU (docs/gpu.md
// lists what is verified where and the one documented exception, MXFP4's log2f).
struct Bnb4View;  // quantized-input views (below)
struct Fp8View;
namespace gpu {
[[nodiscard]] bool compiled() noexcept;          // this build has the CUDA backend
[[nodiscard]] std::string build_info();          // "CUDA 13.0 (sm_80 sm_90)" or "not built"
// Visible CUDA devices (CUDA_VISIBLE_DEVICES applies); 0 when not compiled, no driver or no device, with the
// reason in *why.
[[nodiscard]] int device_count(std::string* why = nullptr);

class Device {
public:
    // Opens visible device `index`. max_memory: bound on the device buffers this object allocates (staging
    // buffers, grids, imatrix); 0 = a quarter of the free memory. Throws core::Error(Unsupported) without CUDA or
    // device, core::Error(Usage) for a budget too small for one row.
    static std::unique_ptr<Device> open(int index, std::size_t max_memory);
    virtual ~Device() = default;
    [[nodiscard]] virtual int index() const = 0;
    [[nodiscard]] virtual std::string name() const = 0;  // "NVIDIA A100-SXM4-80GB (device 0)"
    // Same contract and bytes as quant::quantize_rows / dequantize_rows (also F32/F16/BF16). Rows stream through
    // pinned host buffers in chunks on two CUDA streams (H2D copy, kernel and D2H copy of consecutive chunks
    // overlap). Thread-safe: concurrent callers use separate stream pairs.
    virtual void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                               const float* imatrix) = 0;
    virtual void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows,
                                 std::int64_t n_per_row) = 0;
    // Element conversion to f32 (F32, F16, BF16, F8_E4M3, F8_E5M2), bit-exact as formats::to_f32.
    virtual void to_f32(core::DType dtype, const void* src, float* dst, std::size_t n) = 0;
    // Quantized-input dequantization: same contract and bits as quant::dequant_bnb4 / dequant_int8 / dequant_fp8
    // (host pointers; the inputs a range needs are staged in chunks, kernels/dequant_tasks.hpp). Usage error when
    // the memory budget cannot hold one chunk (bnb4: blocksize x nested_blocksize elements; int8: one row).
    virtual void dequant_bnb4(const Bnb4View& v, std::int64_t k0, std::int64_t k1, float* dst) = 0;
    virtual void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0,
                              std::int64_t k1, float* dst) = 0;
    virtual void dequant_fp8(const Fp8View& v, std::int64_t k0, std::int64_t k1, float* dst) = 0;
};
}  // namespace gpu
// ==== end GPU backend ====

// ==== ftypes and per-tensor rules ====
// llama-quantize's presets and its exact per-tensor type choice (llama.cpp's src/llama-quant.cpp), as pure functions.
// Step 1, tensor_facts(): walks the tensors once in llama-quantize's order and records what each one's rule
// needs (category, counter value, tied embeddings, matching --tensor-type). Step 2, choose_type(): pure, one
// tensor at a time. choose_types() does both for a whole model.

// llama_ftype ids (llama.h); written as general.file_type.
enum class FType : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9,
    Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17,
    Q6_K = 18, IQ2_XXS = 19, IQ2_XS = 20, Q2_K_S = 21, IQ3_XS = 22, IQ3_XXS = 23, IQ1_S = 24, IQ4_NL = 25,
    IQ3_S = 26, IQ3_M = 27, IQ2_S = 28, IQ2_M = 29, IQ4_XS = 30, IQ1_M = 31, BF16 = 32,
    TQ1_0 = 36, TQ2_0 = 37, MXFP4_MOE = 38,
};

// "No type given": llama's GGML_TYPE_COUNT convention. Never pass it to traits().
inline constexpr GgmlType unset_type = static_cast<GgmlType>(ggml_type_count);

struct FTypeInfo {
    std::string_view name;          // llama-quantize's QUANT_OPTIONS spelling: "Q4_K_M"; aliases "Q4_K", "COPY"
    FType ftype;                    // general.file_type
    GgmlType default_type;          // llama_ftype_get_default_type
    bool needs_imatrix;             // llama-quantize refuses it without --imatrix (some tensor always needs one)
    std::string_view description;   // QUANT_OPTIONS text, for --help
    bool only_copy = false;         // "COPY": every tensor keeps its stored type
    bool alias = false;             // "Q4_K", "COPY", "Q2_K_L": not the canonical name of its ftype
    // Presets outside llama-quantize (Unsloth's "Q2_K_L" = Q2_K + these); unset_type when not part of it.
    GgmlType preset_output_type = unset_type;
    GgmlType preset_token_embd_type = unset_type;
};
// Every accepted name, in llama-quantize's --help order, followed by our extra presets.
[[nodiscard]] const std::vector<FTypeInfo>& ftype_table();
// Case-insensitive name ("q4_k_m", "Q4_K"), or the decimal ftype id ("15") as llama-quantize accepts; nullptr if
// unknown. Aliases return their own row (so "COPY" keeps only_copy, "Q2_K_L" its preset types).
[[nodiscard]] const FTypeInfo* find_ftype(std::string_view s) noexcept;
[[nodiscard]] bool parse_ftype(std::string_view s, FType& out) noexcept;
[[nodiscard]] const FTypeInfo& ftype_info(FType f) noexcept;   // the canonical row ("Q4_K_M", not "Q4_K")
// llama_ftype_name() spelling: "Q4_K - Medium", "all F32".
[[nodiscard]] std::string_view ftype_long_name(FType f) noexcept;

struct QuantTensor {
    std::string name;                  // GGUF name, e.g. "blk.3.attn_v.weight"
    std::vector<std::int64_t> ne;      // ggml order: ne[0] is the row length
    GgmlType type = GgmlType::F16;     // type stored in the input (kept by tensors that are not quantized)
};

// Model-wide facts the rules read (from the GGUF/HF hparams): arch = general.architecture ("llama").
struct ModelFacts {
    std::string arch;
    int n_layer = 0;      // block_count
    int n_head = 0;       // of layer 0
    int n_head_kv = 0;    // of layer 0
    int n_expert = 0;     // expert_count (0 = dense)
};
// llama.cpp's LLM_TYPE_70B, the only model size the rules look at (llama 80 layers with GQA, qwen2/deci/olmo 80
// layers, jais2 68 layers).
[[nodiscard]] bool is_type_70b(const ModelFacts& m) noexcept;

struct TensorTypeOverride {
    std::string pattern;   // ECMAScript regex, regex_search on the tensor name; first match wins
    GgmlType type;
};
struct Overrides {
    GgmlType output_type = unset_type;      // --output-tensor-type (no fallback)
    GgmlType token_embd_type = unset_type;  // --token-embedding-type (no fallback)
    std::vector<TensorTypeOverride> tensor_types;   // --tensor-type, in command-line order
    bool pure = false;                      // --pure
    bool leave_output = false;              // --leave-output-tensor
    bool has_imatrix = false;               // --imatrix given (changes some rules)
};
// "--tensor-type" argument "NAME=TYPE" as llama-quantize parses it (NAME lower-cased, TYPE case-insensitive);
// false if malformed.
[[nodiscard]] bool parse_tensor_type_override(std::string_view arg, TensorTypeOverride& out);
// Adds a preset's output/token_embd types unless the user gave their own.
void apply_preset(const FTypeInfo& info, Overrides& ov) noexcept;

enum class TensorCategory {
    TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other
};
[[nodiscard]] TensorCategory tensor_category(std::string_view name) noexcept;
// tensor_allows_quantization: ≥2-D, ends in "weight", not a norm/router/pos-embd/... (llama.cpp's src/llama-quant.cpp).
[[nodiscard]] bool tensor_allows_quantization(const QuantTensor& t, const Overrides& ov, bool only_copy);

struct TensorFacts {
    const QuantTensor* tensor = nullptr;   // into the vector given to tensor_facts()
    TensorCategory category = TensorCategory::Other;
    bool quantizable = false;     // tensor_allows_quantization
    std::string kept_reason;      // why not, when !quantizable ("1-D", "norm", ...)
    bool output_like = false;     // output.weight, or token_embd.weight when the model has no output.weight
    int i_counter = -1;           // this category's counter (i_attention_wv, i_ffn_down/gate/up) when the mixture
                                  // rule runs for it; -1 when the rule does not count this tensor
    int n_counter = 0;            // matching total: number of attn_v-like tensors, or block_count for ffn
    int blk = -1;                 // N of a "blk.N." name prefix (MoE ffn rules use it as the layer), else -1
    GgmlType manual_type = unset_type;   // type of the first matching --tensor-type pattern
    int manual_index = -1;               // which pattern
};

// Index permutation of llama-quantize's processing and output order (llama_model_loader::weights_map:
// blk.N layer, -1 for non-block tensors, then byte-wise name). Counters follow this order, not file order.
[[nodiscard]] std::vector<std::size_t> quantize_order(const std::vector<QuantTensor>& tensors);

// Facts for every tensor, index-aligned with `tensors` (any order: they are walked in quantize_order()).
// TensorFacts::tensor points into `tensors`. Throws core::Error(Usage) for an invalid --tensor-type regex.
[[nodiscard]] std::vector<TensorFacts> tensor_facts(const std::vector<QuantTensor>& tensors, const ModelFacts& m,
                                                    FType ftype, const Overrides& ov, bool only_copy = false);

struct Choice {
    GgmlType type;
    std::string rule;             // why, for --explain: "attn_v: use_more_bits -> q6_K"
    bool fallback = false;        // ne[0] did not fit the rule's type (llama-quantize warns and counts it)
    bool requires_imatrix = false;   // tensor_requires_imatrix: llama-quantize would refuse without --imatrix
};

// Pure. Throws core::Error(Unsupported) when a fallback is needed for a type that has none, and
// core::Error(BadInput) for an MoE ffn tensor without a valid "blk.N." layer (as llama-quantize does).
[[nodiscard]] Choice choose_type(const TensorFacts& t, const ModelFacts& m, FType ftype, const Overrides& ov);
// Whole model, index-aligned with `tensors`.
[[nodiscard]] std::vector<Choice> choose_types(const std::vector<QuantTensor>& tensors, const ModelFacts& m,
                                               FType ftype, const Overrides& ov, bool only_copy = false);

// ==== end ftypes ====

// ==== bitsandbytes 4-bit (kernels in src/quant/kernels/bnb_quant.hpp) ====
// NF4/FP4 blockwise quantization with optional double quantization, bit-exact with bitsandbytes' CPU rules
// (bitsandbytes' functional.py and backends/default/ops.py quantize_4bit), except the double-quant offset: bitsandbytes
// takes an fp32 torch mean whose reduction order is implementation-defined; ours is fp32(sequential double sum /
// count), documented and reproduced by tests/reference/bnb_ref.py. The offset is stored in the checkpoint, so
// dequantization is exact.
enum class Bnb4Type : std::uint8_t { NF4, FP4 };
struct Bnb4Spec {
    Bnb4Type type = Bnb4Type::NF4;
    bool double_quant = false;
    int blocksize = 64;            // 32..4096, a power of two (transformers always uses 64)
};
struct Bnb4Layout {
    std::int64_t n = 0;            // elements
    std::int64_t packed_bytes = 0; // (n + 1) / 2
    std::int64_t blocks = 0;       // ceil(n / blocksize)
    std::int64_t nested_blocks = 0;// ceil(blocks / 256) with double quant, else 0
};
[[nodiscard]] Bnb4Layout bnb4_layout(const Bnb4Spec& s, std::int64_t n) noexcept;
struct Bnb4Tensor {
    std::vector<std::uint8_t> packed;        // packed_bytes: element k in byte k/2, even k in the high nibble
    std::vector<float> absmax;               // per block: stored absmax, or (double quant) its dequantized value
    std::vector<std::uint8_t> absmax_codes;  // double quant: the stored 8-bit codes
    std::vector<float> nested_absmax;        // double quant: per 256 blocks
    float nested_offset = 0.0f;              // double quant: fp32 mean of the absmax
};
// Quantizes n fp32 values (the flattened row-major tensor). Throws core::Error(BadInput) on non-finite input.
void bnb4_quantize(const Bnb4Spec& s, const float* x, std::int64_t n, Bnb4Tensor& out);
// Dequantizes to fp32 (code * absmax, absmax as a reader reconstructs it).
void bnb4_dequantize(const Bnb4Spec& s, const Bnb4Tensor& q, float* out, std::int64_t n);
void bnb4_quant_map(Bnb4Type t, float out[16]);   // the stored quant_map
void bnb_dynamic_map(float out[256]);              // the stored nested_quant_map (signed dynamic map)

// ==== end bitsandbytes ====

// ==== quantized-input dequantization ====
// bitsandbytes 4-bit (NF4/FP4, optional double quantization), LLM.int8 and FP8 checkpoints back to real values
// (bitsandbytes' functional.py, backends/default/ops.py dequantize_4bit, nn/modules.py Int8Params). Pure functions over
// whole-tensor arrays (index 0 = element/block 0 of the flattened row-major logical tensor); each computes elements
// [k0, k1) into dst[0 .. k1-k0). Bit-exact with the independent numpy references in tests/reference/quant_ref.py.
// Kernels: src/quant/kernels/dequant.hpp (SF_HD).

// bitsandbytes 4-bit: w[k] = round_through(out_dtype, code[nibble k] * absmax[k / blocksize]) in fp32.
struct Bnb4View {
    const std::uint8_t* packed = nullptr;       // the weight's bytes (any quant_storage dtype): >= ceil(n/2)
    const float* code = nullptr;                // [16] the stored quant_map (never a built-in table)
    std::int64_t blocksize = 64;
    const float* absmax = nullptr;              // [nblocks] f32 absmax; null with double quantization
    const std::uint8_t* absmax_code = nullptr;  // [nblocks] 8-bit absmax codes (double quantization)
    const float* nested_code = nullptr;         // [256] the stored nested_quant_map
    const float* nested_absmax = nullptr;       // [ceil(nblocks / nested_blocksize)]
    std::int64_t nested_blocksize = 256;
    float nested_offset = 0.0f;                 // the JSON nested_offset rounded to fp32
    core::DType out_dtype = core::DType::F32;   // the JSON dtype: one RNE rounding through it (F32: none)
};
void dequant_bnb4(const Bnb4View& v, std::int64_t k0, std::int64_t k1, float* dst) noexcept;
// LLM.int8: CB int8 [rows, cols], SCB f32 [rows]: w = fp32(fp32(cb * scb[row]) * fp32(1/127)).
void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                  float* dst) noexcept;
// FP8 [rows, cols] with an f32 scale grid [ceil(rows/block_rows), ceil(cols/block_cols)]: w = fp32(x) * scale.
// DeepSeek-V3 weight_scale_inv: 128 x 128 (partial edge blocks); per-channel: 1 x cols; per-tensor: rows x cols.
struct Fp8View {
    const std::uint8_t* w = nullptr;
    bool e5m2 = false;                          // false: F8_E4M3 (E4M3FN)
    const float* scale = nullptr;
    std::int64_t rows = 0, cols = 0, block_rows = 128, block_cols = 128;
};
void dequant_fp8(const Fp8View& v, std::int64_t k0, std::int64_t k1, float* dst) noexcept;
// OpenAI's MXFP4 (gpt-oss *_blocks / *_scales, transformers' integrations/mxfp4.py): blocks [..., n_blocks, 16]
// bytes, element 2j of a 32-value block in the low nibble of byte j and 2j+1 in the high one, each an FP4 (E2M1)
// code; scales [..., n_blocks] E8M0 bytes: w = fp4(code) * 2^(scale - 127), exact in f32 (0 below 2^-149).
void dequant_mxfp4(const std::uint8_t* blocks, const std::uint8_t* scales, std::int64_t k0, std::int64_t k1,
                   float* dst) noexcept;
// n_blocks of those blocks (scales[i], blocks + 16 i) as ggml block_mxfp4 (17 bytes: the E8M0 byte, then value j in
// the low nibble of byte j and value j + 16 in the high one): only bits move (llama.cpp's conversion/gpt_oss.py
// repack_mxfp4); ggml's kvalues_mxfp4 are the same codes at twice the value and half the scale.
// compressed-tensors "pack-quantized" integers (group strategy, symmetric; Kimi-K2-Thinking's INT4 experts): each row
// of a [rows, cols] weight is `words_per_row` little-endian int32 words holding `bits`-bit codes, the lowest bits
// first; w[r][c] = f32(code - 2^(bits - 1)) * scale[r][c / group], scale [rows, ceil(cols / group)] widened to f32.
void dequant_packed_int(const std::uint8_t* words, const float* scale, std::int64_t cols, std::int64_t words_per_row,
                        int bits, std::int64_t group, std::int64_t k0, std::int64_t k1, float* dst) noexcept;
void repack_mxfp4(const std::uint8_t* blocks, const std::uint8_t* scales, std::int64_t n_blocks,
                  std::uint8_t* dst) noexcept;
// The standard bitsandbytes 4-bit code tables (get_4bit_type in bitsandbytes/functional.py), for writers and tests;
// readers use the quant_map stored in the checkpoint.
[[nodiscard]] const float* bnb_nf4_code() noexcept;  // [16]
[[nodiscard]] const float* bnb_fp4_code() noexcept;  // [16]

// ==== end quantized-input dequantization ====

}  // namespace shardforge::quant
