// shardforge lora: PEFT adapters: adapter_config.json semantics, key mapping to base tensors, and the merge math
// (fp32 delta in the order of docs/engine.md "Determinism", DoRA, one rounding by the caller). Depends on core and
// formats. Semantics: PEFT's tuners/lora/config.py, layer.py and dora.py.
//
// Flow: plan (rank 0, headers only) calls open_adapter() per --adapter and resolve() once; the MergeTargets it gets
// are plain data (to_json / merge_target_from_json). exec calls apply() per changed tensor on whichever rank owns
// it, then rounds the f32 result once into the output dtype (formats::from_f32).
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/formats.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardforge::lora {

// ---------------------------------------------------------------- adapter_config.json
// The fields that matter for a merge (PEFT's tuners/lora/config.py). Unknown keys are tolerated; variants we cannot
// merge correctly are refused by parse_adapter_config (ErrorKind::Unsupported).
struct AdapterConfig {
    std::string peft_type = "LORA";
    std::int64_t r = 8;
    double lora_alpha = 8.0;  // may be fractional (PiSSA conversion with rslora writes alpha*sqrt(2))
    bool use_rslora = false;
    bool fan_in_fan_out = false;
    bool lora_bias = false;
    bool use_dora = false;
    bool ensure_weight_tying = false;
    std::vector<std::pair<std::string, std::int64_t>> rank_pattern;  // JSON insertion order
    std::vector<std::pair<std::string, double>> alpha_pattern;       // JSON insertion order
    std::vector<std::string> target_parameters;
    std::vector<std::string> modules_to_save;
    std::string bias = "none";  // none | all | lora_only (saved biases are replacement values)
    std::string base_model_name_or_path;
};

// Parses and validates `json_text`; `file_for_errors` names adapter_config.json in messages.
// BadInput: not JSON / wrong field types / r <= 0. Unsupported: non-LORA peft_type, PiSSA/OLoRA/CorDA/LoftQ/LoRA-GA
// init (unconverted), aLoRA, Arrow, QALoRA, BD-LoRA, KaSA, layer_replication, trainable_token_indices.
[[nodiscard]] AdapterConfig parse_adapter_config(std::string_view json_text, const std::string& file_for_errors);

// rank_pattern / alpha_pattern lookup (PEFT's get_pattern_key in utils/other.py): the first key k, in JSON order, for
// which the regex "(.*\.)?(k)$" matches the whole module name; else r / lora_alpha. `module` is the in-model name
// without "base_model.model." ("model.layers.0.self_attn.q_proj"; "<module>.<param>" for target_parameters).
struct ModuleScale {
    std::int64_t r = 0;
    double alpha = 0.0;
    double scaling = 0.0;  // alpha / r, or alpha / sqrt(r) with use_rslora (double, like PEFT's Python float)
};
[[nodiscard]] ModuleScale module_scale(const AdapterConfig& c, std::string_view module,
                                       const std::string& file_for_errors = "adapter_config.json");
[[nodiscard]] bool pattern_matches(const std::string& key, const std::string& module);  // throws on bad regex

// ---------------------------------------------------------------- adapters
struct AdapterTensor {
    std::string key;  // as stored, e.g. "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    core::DType dtype = core::DType::F32;
    core::Shape shape;
    std::uint64_t offset = 0;  // absolute byte offset of the data in `Adapter::file`
    std::uint64_t nbytes = 0;
};

struct Adapter {
    std::filesystem::path dir;
    double weight = 1.0;  // multiplies every delta of this adapter (--adapter DIR:weight); scale = f32(s * weight)
    AdapterConfig config;
    std::filesystem::path file;  // dir / "adapter_model.safetensors"
    std::vector<AdapterTensor> tensors;  // header only, in data order
};

// Reads dir/adapter_config.json and the header of dir/adapter_model.safetensors. adapter_model.bin only (pickle):
// Unsupported. Missing directory / files: BadInput. weight must be finite (Usage otherwise).
[[nodiscard]] Adapter open_adapter(const std::filesystem::path& dir, double weight = 1.0);

// "DIR" -> (DIR, 1); "DIR:0.5" -> (DIR, 0.5). The text after the last ':' is a weight only if it parses completely
// as a finite number; otherwise the whole argument is the directory. Empty directory: Usage.
[[nodiscard]] std::pair<std::filesystem::path, double> parse_adapter_arg(std::string_view arg);

// ---------------------------------------------------------------- resolution (headers only, pure)
struct TensorRef {
    std::uint32_t adapter = 0;  // index into the adapters given to resolve()
    std::string file;           // adapter file path, for error messages
    std::string key;            // tensor key inside that file
    core::Shape shape;
};

enum class TermKind {
    Replace,    // full tensor from the adapter (modules_to_save, saved bias/embedding): W = a
    Linear,     // W += s * (B @ A)  [(in,out) transposed if fan_in_fan_out]; also Conv (A/B flattened)
    Embedding,  // W += s * (B @ A)^T
    Param3D,    // W[e] += s * B_e @ A_e (target_parameters on (E, d1, d2)); A rows e*r+k, B columns k*E+e
    BiasDelta,  // b += s * lora_B.bias
};
[[nodiscard]] std::string_view to_string(TermKind k) noexcept;

struct Term {
    TermKind kind = TermKind::Linear;
    TensorRef a;               // lora_A / lora_embedding_A / the full tensor / lora_B.bias
    TensorRef b;               // lora_B / lora_embedding_B (Linear, Embedding, Param3D)
    bool dora = false;         // DoRA: W = (m / ||W + dW||) * (W + dW), norm per output row (PEFT's dora.py)
    TensorRef m;               // lora_magnitude_vector when dora
    float scale = 1.0f;        // f32(scaling * adapter weight) in double, the one multiplier applied to B @ A
    bool fan_in_fan_out = false;  // Linear: base stored (in, out)
    std::int64_t rank = 0;        // r (per expert for Param3D)
    std::int64_t n_experts = 0;   // Param3D
    bool transposed = false;      // Param3D: base is (E, in, out) (is_transposed) instead of (E, out, in)
};

struct MergeTarget {
    std::string base_name;  // source tensor in the base model
    std::string out_name;   // usually base_name; "lm_head.weight" for the untied head of a tied model
    std::vector<Term> terms;  // applied in order (per adapter: Replace first, then its delta)
};

struct BaseTensor {
    std::string name;
    core::Shape shape;
    // The parameter PEFT's model has for this tensor when it differs from the stored one: gpt-oss's MXFP4
    // "<stem>_blocks" (logical [E, out, in]) is transformers' dequantized "<stem>" [E, in, out] (peft_swapped: its
    // last two dims swapped). Empty: the tensor itself.
    std::string peft_name{};
    bool peft_swapped = false;
};

struct Resolution {
    std::vector<MergeTarget> targets;  // only tensors that change, plus new outputs (untied lm_head.weight)
    // The output config.json must get tie_word_embeddings=false (top level and inside text_config if present).
    bool untie_embeddings = false;
    std::vector<std::string> warnings;  // also logged with core::log::warn
};

// Maps every adapter tensor onto the base (PEFT's key names and tuners/lora/layer.py). Every LoRA key must land on a
// base tensor of matching shape, else BadInput naming the adapter file and key (never a silent no-op). `base_config` is
// the base model's config.json (for tie_word_embeddings; may be null/empty).
[[nodiscard]] Resolution resolve(const std::vector<Adapter>& adapters, const std::vector<BaseTensor>& base,
                                 const nlohmann::json& base_config);

// For --save-method lora: the adapter alone must resolve cleanly against the base. Throws like resolve().
void validate_adapter(const Adapter& adapter, const std::vector<BaseTensor>& base, const nlohmann::json& base_config);

// ---------------------------------------------------------------- merge math (pure, f32)
// Loads one adapter tensor as f32, row-major, numel(ref.shape) values (exec reads and converts it).
using LoadF32 = std::function<std::vector<float>(const TensorRef&)>;

// The LoRA delta C (m x n) = B (m x k) @ A (k x n), row-major f32, in the one defined order of
// src/lora/kernels/delta.hpp (docs/engine.md, "Determinism"): per element, k ascending, a rounded f32 multiply then
// a rounded f32 add, no FMA. Same bits on every SIMD path, thread, rank and device. Never throws.
void delta_f32(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c) noexcept;

// Applies all terms of `t` to `w` (f32, row-major, `shape` = the base tensor's shape). Deltas: delta_f32 (M=out
// N=in K=r), then transpose if needed, then * scale, then one f32 add. DoRA norms: sum of squares of the f32 values
// in double, in index order, sqrt in double, rounded to f32; the factor m / norm in f32. A zero DoRA norm, a
// non-finite adapter value, or a non-finite result: BadInput naming the adapter file and tensor.
// The delta hook: empty means delta_f32 on the CPU; exec passes the CUDA kernel for --device cuda, which computes
// the same order (__fmul_rn / __fadd_rn), so both give the same bits.
using MatmulF32 = std::function<void(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n,
                                     float* c)>;
// DoRA renormalisation in place of V = W + dW (rows x cols, row-major; output features are the rows, or the
// columns when per_col), m[feature] the magnitudes. Returns the first feature whose norm is zero (V is then
// unspecified), else -1. Empty: the CPU loop; exec passes the CUDA kernel for --device cuda. Both run the same
// per-feature SF_HD function (src/lora/kernels/dora.hpp), so the result is bit-identical for the same V.
using DoraF32 = std::function<std::int64_t(float* v, std::int64_t rows, std::int64_t cols, bool per_col,
                                           const float* m)>;
void apply(const MergeTarget& t, std::span<float> w, const core::Shape& shape, const LoadF32& load,
           const MatmulF32& matmul = {}, const DoraF32& dora = {});

// Row-block merge: `w` holds rows [row_begin, row_end) of dim 0 of a tensor of `shape`; applies the same terms to
// those rows only (Linear: B[rows] @ A; Embedding / fan_in_fan_out: (B @ A[:, rows])^T; Param3D: the block's
// experts; DoRA: the per-row norm of those rows). Callers split only where row_blockable() says so.
void apply_rows(const MergeTarget& t, std::span<float> w, const core::Shape& shape, std::int64_t row_begin,
                std::int64_t row_end, const LoadF32& load, const MatmulF32& matmul = {}, const DoraF32& dora = {});
// Whether apply_rows() can split this target along dim 0 (false for DoRA with per-column norms).
[[nodiscard]] bool row_blockable(const MergeTarget& t) noexcept;
// Every term applies to whole rows of dim 0 of a 3-D expert tensor (Param3D, Replace; no DoRA): a block of whole
// experts can be merged on its own even where the written tensor is a slice of each expert (a fused gate_up's half).
[[nodiscard]] bool expert_blockable(const MergeTarget& t) noexcept;
// GEMM flops of a full merge of this target (for cost estimates).
[[nodiscard]] double merge_flops(const MergeTarget& t) noexcept;

// ---------------------------------------------------------------- plan serialization
[[nodiscard]] nlohmann::json to_json(const MergeTarget& t);
[[nodiscard]] MergeTarget merge_target_from_json(const nlohmann::json& j);  // BadInput on malformed input

}  // namespace shardforge::lora
