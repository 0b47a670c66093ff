// shardforge model: Hugging Face model directories: config.json, architectures (HF -> GGUF tensor map, transforms,
// metadata), tokenizers, and the built-in demo model. Depends on core and formats.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/formats.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shardforge::model {

// ==== architectures and config ====
// config.json and llama.cpp's HF -> GGUF conversion map (llama.cpp's convert_hf_to_gguf.py): which GGUF tensors to
// write, from which HF tensors, with which transforms, in the converter's order, and the "{arch}.*" metadata. Planned
// from tensor names, shapes and dtypes only: no tensor data is read, so unmappable names fail before any work starts.

// config.json with text_config merged into the top level (text_config wins, as the converter's
// {**hparams, **text_config}). The typed fields use the converter's key fallbacks (find_hparam); a key holding
// null counts as absent. Raw config.json only: transformers' AutoConfig defaults are not filled in.
struct HfConfig {
    // The merged object, shared and immutable (copies of an HfConfig share it); json() is null when unset.
    std::shared_ptr<const nlohmann::json> json_ptr;
    std::string file = "config.json";  // used in error messages
    std::string architecture;          // text_config.architectures[0] if present, else architectures[0]
    std::string model_type;            // "" when absent
    std::int64_t n_layer = 0;          // n_layers / num_hidden_layers / n_layer / num_layers (required)
    std::int64_t n_embd = 0;           // hidden_size / n_embd / dim; 0 when absent
    std::int64_t n_head = 0;           // num_attention_heads / n_head / n_heads; 0 when absent
    std::int64_t n_head_kv = 0;        // num_key_value_heads / n_kv_heads; n_head when absent
    std::int64_t head_dim = 0;         // head_dim; n_embd / n_head when absent
    std::int64_t n_ff = 0;             // intermediate_size (and the converter's other spellings); 0 when absent
    std::int64_t n_vocab = 0;          // vocab_size; 0 when absent
    std::int64_t n_expert = 0;         // num_local_experts / num_experts; 0 = dense
    std::int64_t n_expert_used = 0;    // num_experts_per_tok / num_experts_per_token / top_k_experts
    bool tie_word_embeddings = false;  // default true for Gemma*, false otherwise (the transformers defaults)

    [[nodiscard]] const nlohmann::json& json() const;
    [[nodiscard]] const nlohmann::json* find(std::initializer_list<std::string_view> keys) const;  // first present
    [[nodiscard]] std::optional<std::int64_t> find_int(std::initializer_list<std::string_view> keys) const;
    [[nodiscard]] std::optional<double> find_float(std::initializer_list<std::string_view> keys) const;
};
// Error(BadInput, file, "", why) on malformed JSON, missing architectures or layer count, wrong value types.
[[nodiscard]] HfConfig parse_hf_config(nlohmann::json j, std::string file = "config.json");
[[nodiscard]] HfConfig read_hf_config(const std::filesystem::path& model_dir);  // model_dir/config.json; Io if absent
// config.json against the checkpoint's tensors (src/model/validate.cpp, docs/formats.md "Config validation"): for
// an architecture we convert, hidden size, heads, KV heads, head dim, layer count, vocabulary and expert counts
// exist, are integers and agree with the tensor shapes (embeddings, lm_head, q/k/v projections, layer indices,
// routers and experts); rope settings are finite positive numbers. For other classes only present keys are
// checked. Error(BadInput, c.file, "", "'key' = ... does not match ...") on the first disagreement.
void validate_config(const HfConfig& c, const std::vector<std::pair<std::string, core::Shape>>& tensors);

// HF architecture names we convert, sorted. gguf_arch_name() throws Error(Unsupported) listing them.
[[nodiscard]] std::vector<std::string> supported_architectures();
[[nodiscard]] bool is_supported_architecture(std::string_view hf_arch);
[[nodiscard]] std::string gguf_arch_name(std::string_view hf_arch);  // "MixtralForCausalLM" -> "llama"

// One tensor of the checkpoint, from the safetensors headers: HF row-major shape.
struct HfTensor {
    std::string name;
    core::DType dtype = core::DType::F32;
    core::Shape shape;
    std::string file;  // part file name: the converter visits parts in sorted file-name order, tensors by name
    // Built by the converter's dequant_model (llama.cpp's conversion/base.py) from compressed-tensors weight_packed:
    // visited after every stored tensor, in their own file/name order.
    bool appended = false;
};

// One GGUF output tensor: HF source tensors, each optionally sliced to rows [row_begin, row_end) of dim -2
// (within each outer index), concatenated in order along a new/first dim 0 (expert stacking: E blocks of
// [rows, cols] -> [E, rows, cols]; row slices of one 2-D tensor: a row gather, Qwen3-Next's in_proj_qkvz ->
// attn_qkv; one source: its own shape), then the transforms in order, on f32 values in HF layout.
struct SourceSlice {
    std::string hf_name;
    std::int64_t row_begin = 0;
    std::int64_t row_end = -1;  // -1 = all rows of dim -2
    std::int64_t row_step = 1;  // every row_step-th row of [row_begin, row_end) (gpt-oss's MXFP4 gate/up rows)
    // gpt-oss's fused experts (llama.cpp's conversion/gpt_oss.py): of each [rows, cols] matrix of the last two dims,
    // columns col_begin, col_begin + col_step, ... (before col_end; -1 = all) are kept, then (transpose) the two dims
    // are swapped: [cols', rows]. Llama 4's fused experts keep a contiguous half (col_end) and transpose it.
    // Not combined with a row slice.
    std::int64_t col_begin = 0;
    std::int64_t col_step = 1;
    std::int64_t col_end = -1;
    bool transpose = false;
    friend bool operator==(const SourceSlice&, const SourceSlice&) = default;
};
enum class TransformKind {
    PermuteLlamaHeads,  // arg = head count; rows of dim 0 split into arg heads of D rows, new 2i+j = old j*D/2+i
    AddOne,             // Gemma / Qwen3.5 RMSNorm weights: w + 1
    NegExp,             // Qwen3.5 A_log: -exp(w), float32 exp as torch's AVX2 CPU kernel (SLEEF expf_u10)
    // Qwen3.5 linear attention, K heads != V heads (llama.cpp's conversion/qwen.py _reorder_v_heads): the V heads, grouped by
    // K head [k0: v0..v(r-1), k1: ...], become tiled [v0: k0..k(n-1), v1: ...]. arg = K head count, head = rows
    // (columns) per V head, skip = rows (columns) before the V part, which stay.
    TileVHeadRows,      // on the rows of dim 0 (a row block must hold the whole V part: never split)
    TileVHeadColumns,   // on the columns of the last dim, in every row (out_proj)
    // DeepSeek-V2/V3 attn_k_b (llama.cpp's conversion/deepseek.py: k_b.transpose(1, 2)): per outer index, the stored
    // [shape[-1], shape[-2]] matrix becomes [shape[-2], shape[-1]] (shape is the final one). Never split.
    TransposeLastTwo,
};
struct Transform {
    TransformKind kind;
    std::int64_t arg = 0;
    std::int64_t head = 0;  // TileVHead*: rows/columns per V head
    std::int64_t skip = 0;  // TileVHead*: rows/columns before the V part
    friend bool operator==(const Transform&, const Transform&) = default;
};
struct GgufTensorMap {
    std::string gguf_name;              // "blk.3.attn_q.weight"
    std::vector<SourceSlice> sources;   // empty for generated tensors
    std::vector<float> generated;       // values of generated tensors (rope_freqs, rope_factors_*)
    core::Shape shape;                  // HF row-major shape of the final tensor (ggml ne = reversed)
    std::vector<Transform> transforms;
    bool force_f32 = false;             // type rules: 1-D, "*_norm.weight", ffn_gate_inp(_shexp), not ".weight"
    bool mxfp4 = false;                 // from MXFP4 blocks (gpt-oss): the converter writes MXFP4 at every outtype
    bool force_f16 = false;             // the converter's tensor_force_quant F16 at every outtype (Gemma 3's
                                        // mm.input_projection)
    bool f16_only_at_f16 = false;       // MmprojModel.tensor_force_quant: F16 at --outtype f16, F32 at any other
                                        // (Pixtral's v.patch_embd, mm.patch_merger)
};
struct GgufConversion {
    std::string arch;                             // "llama"; "clip" for a multimodal projector
    std::string gguf_type = "model";              // general.type: "model", or "mmproj" (plan_mmproj_conversion)
    std::vector<GgufTensorMap> tensors;           // convert_hf_to_gguf's output order
    std::vector<formats::GgufKV> early_kvs;       // set while tensors are prepared, i.e. before general.type
                                                  // (phi3 rope.scaling.attn_factor)
    std::vector<formats::GgufKV> arch_kvs;        // "{arch}.*" hparams, exact types, converter order
    std::size_t file_type_pos = 0;                // the converter writes general.file_type before arch_kvs[pos]
    std::vector<std::string> dropped;             // HF tensors intentionally not converted (gemma lm_head,
                                                  // rotary inv_freq, vision tower...)
    std::int64_t n_vocab_embed = 0;               // rows of token_embd as written (after the Gemma3 trim)
    std::int64_t block_count = 0;                 // {arch}.block_count: num_hidden_layers + MTP layers (qwen35, glm4moe)
    quant::FType auto_ftype = quant::FType::F16;  // what `--outtype auto` resolves to for this checkpoint
    bool mxfp4 = false;                           // quantization_config.quant_method "mxfp4": general.file_type of
                                                  // f32/f16/bf16/auto is MOSTLY_MXFP4_MOE
};
// tokenizer_vocab_size: Gemma3's real vocab size (token_embd is cut to it); ignored by other families; for Gemma3
// -1 ("unknown") is an Internal error. Errors: Unsupported (architecture), BadInput naming the HF tensor (no GGUF
// name, duplicate, incomplete expert set, bad shape) or config.json (missing hparam). Deviation: a tied qwen2moe
// checkpoint gets output.weight from model.embed_tokens (its loader requires output; the converter omits it).
// mtp_only: the converter's `--mtp` output (glm4moe only: the MTP layers plus token_embd, output_norm and output, the
// metadata unchanged); Unsupported for other families, BadInput for a checkpoint without MTP layers.
[[nodiscard]] GgufConversion plan_gguf_conversion(const HfConfig& cfg, const std::vector<HfTensor>& tensors,
                                                  std::int64_t tokenizer_vocab_size = -1, bool mtp_only = false);

// The multimodal projector GGUF of a vision-language checkpoint, as `convert_hf_to_gguf.py --mmproj` writes it
// (llama.cpp's conversion/base.py MmprojModel and the family's vision model class): general.architecture "clip",
// general.type "mmproj", the clip.* keys from config.json's vision_config, the text hidden size and the image
// processor files (preprocessor_config.json, then processor_config.json over it), the vision tower's and the
// projector's tensors (gguf-py's MODEL_ARCH.MMPROJ names) with the family's transforms and forced types; the text
// model's tensors are not part of it. Implemented for Gemma3ForConditionalGeneration (SigLIP tower, projector type
// gemma3) and Mistral3ForConditionalGeneration (Pixtral tower, conversion/llava.py LlavaVisionModel, projector type
// pixtral). has_mmproj: the class is one of those and config.json has a vision_config object.
// No tensor the converter's filter takes (e.g. transformers >= 4.52's model.vision_tower.* names): no tensors.
// Errors: Unsupported (another class), BadInput naming the file or tensor (missing or malformed vision_config
// keys, image_mean/image_std, a tower tensor without a GGUF name: "cannot map tensor").
[[nodiscard]] bool has_mmproj(const HfConfig& cfg);
[[nodiscard]] GgufConversion plan_mmproj_conversion(const HfConfig& cfg, const std::filesystem::path& model_dir,
                                                    const std::vector<HfTensor>& tensors);

// Pure, in place, on one tensor's f32 values in HF row-major layout (shape as in GgufTensorMap::shape; 1-D
// tensors are a column of rows). Preconditions (checked by the plan): rows divisible by 2 * arg; for TileVHead*,
// (rows or columns - skip) divisible by arg * head.
void apply_transform(const Transform& t, float* data, const core::Shape& shape);

// Llama-3 rope_freqs.weight values (llama.cpp's convert_hf_to_gguf.py), float32 step by step as the converter's torch
// code; empty unless rope_scaling.rope_type (or type) is "llama3".
[[nodiscard]] std::vector<float> llama3_rope_freqs(const HfConfig& cfg);

// Output types (convert_hf_to_gguf.py). --outtype f32|f16|bf16|q8_0|auto.
enum class OutType { F32, F16, BF16, Q8_0, Auto };
[[nodiscard]] bool parse_outtype(std::string_view s, OutType& out) noexcept;
[[nodiscard]] quant::FType outtype_ftype(OutType t, const GgufConversion& c);  // the tensors' file type
// general.file_type: outtype_ftype, or MOSTLY_MXFP4_MOE for the f32/f16/bf16/auto outputs of an MXFP4 checkpoint
[[nodiscard]] quant::FType outtype_file_type(OutType t, const GgufConversion& c);
// The type the converter writes a tensor with: F32 when force_f32, else by ftype; Q8_0 rows not a multiple of
// 32 fall back to F16 (QuantError). ftype must be F32, F16, BF16 or Q8_0 (else Error Unsupported).
[[nodiscard]] quant::GgmlType converter_tensor_type(const GgufTensorMap& t, quant::FType ftype);

// general.* authorship keys; empty strings are left out.
struct GeneralMeta {
    std::string name;        // general.name (the converter falls back to the model directory name)
    std::string version, finetune, basename, size_label;
};
// gguf_writer's parameter count -> size label ("8.0B", "8x7.0B", "135M"), from the planned tensor shapes.
[[nodiscard]] std::string size_label(const GgufConversion& c);
// Every KV the converter writes before the tokenizer keys, in its order: general.architecture, early_kvs,
// general.type (c.gguf_type), general.name / version / finetune / basename / size_label, arch_kvs with
// general.file_type (u32) at file_type_pos, general.quantization_version (u32 2).
[[nodiscard]] std::vector<formats::GgufKV> gguf_model_kvs(const GgufConversion& c, const GeneralMeta& meta,
                                                          quant::FType file_type);

// ==== end architectures ====

// ==== tokenizers ====
// Tokenizers embedded into GGUF (llama.cpp's gguf-py/gguf/vocab.py): the tokenizer.* keys convert_hf_to_gguf writes,
// built from the small tokenizer files of a HF model directory without running an HF tokenizer.

// tokenizer.ggml.token_type values (llama.cpp's gguf-py/gguf/vocab.py, constants.py TokenType).
enum class TokenType : std::int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// One SentencePiece piece. type is the ModelProto enum (1 NORMAL .. 6 BYTE), same numbering as TokenType.
struct SpPiece {
    std::string piece;  // raw bytes of the piece (UTF-8 with U+2581 for spaces)
    float score = 0.0f;
    int type = 1;
    friend bool operator==(const SpPiece&, const SpPiece&) = default;
};
// A parsed tokenizer.model: pieces plus the few trainer/normalizer flags a converter may need (proto defaults when
// absent).
struct SpModel {
    std::vector<SpPiece> pieces;
    int model_type = 1;                   // trainer_spec.model_type: 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
    bool byte_fallback = false;           // trainer_spec.byte_fallback
    bool add_dummy_prefix = true;         // normalizer_spec.add_dummy_prefix
    bool remove_extra_whitespaces = true; // normalizer_spec.remove_extra_whitespaces
};

// Pure protobuf parsers (fuzzed). Strict: truncation, bad wire types, lengths past the end, unknown piece types,
// empty or duplicate pieces, or no pieces at all throw Error(BadInput) naming file_for_errors; never read out of
// bounds.
[[nodiscard]] SpModel parse_sentencepiece(std::string_view bytes, const std::string& file_for_errors);
[[nodiscard]] std::vector<SpPiece> parse_sentencepiece_model(std::string_view bytes,
                                                             const std::string& file_for_errors);

// Everything read_tokenizer learned. kvs hold every tokenizer.* key with its exact GGUF type, in the order the
// reference converter writes them (set_vocab + SpecialVocab.add_to_gguf).
struct TokenizerInfo {
    std::vector<formats::GgufKV> kvs;
    std::int64_t vocab_size = 0;  // real tokenizer vocabulary (Gemma3 trims token_embd rows to this), <= n_vocab
    std::string model;            // tokenizer.ggml.model: "llama" (SentencePiece) | "gpt2" (byte-level BPE)
    std::string pre;              // tokenizer.ggml.pre
};

// model_dir: HF directory (tokenizer.model / tokenizer.json / tokenizer_config.json / added_tokens.json /
// chat_template.{jinja,json} / merges.txt). config: its parsed config.json. arch: GGUF arch name ("llama",
// "qwen2", "gemma3", "phi3", ...). n_vocab: config vocab_size == embedding rows; ids >= n_vocab are an error for
// BPE vocabularies. Reads only small files. Errors: BadInput (malformed files, vocab larger than n_vocab),
// Unsupported (unknown BPE pre-tokenizer, no usable tokenizer), naming the file.
[[nodiscard]] TokenizerInfo read_tokenizer(const std::filesystem::path& model_dir, const nlohmann::json& config,
                                           const std::string& arch, std::int64_t n_vocab);

// Pure helpers behind read_tokenizer, exposed for tests.
// tokenizer.ggml.pre for a byte-level BPE tokenizer.json, from its pre_tokenizer (Split regexes, ByteLevel
// use_regex, Digits); tokenizer_config and arch break ties (deepseek-r1-qwen, llama4, starcoder, phi-2).
// Unknown structure -> Error(Unsupported) naming file_for_errors.
[[nodiscard]] std::string detect_bpe_pre(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config,
                                         const std::string& arch, const std::string& file_for_errors);
// convert_hf_to_gguf does_token_look_special: "<|...|>", "<｜...｜>", "<pad>", "<mask>", "<2mass>", "[@BOS@]",
// "<unused...>".
[[nodiscard]] bool token_looks_special(std::string_view text);

// ==== end tokenizers ====

// ==== demo model ====
// `shardforge demo DIR`: a small, fully deterministic Llama-architecture checkpoint and a PEFT LoRA adapter for
// it, so every command can be tried (and tested) without a download. Written by write_demo():
//   DIR/base/     config.json, generation_config.json, tokenizer.json (byte-level BPE trained on an embedded
//                 corpus, Llama-3 pre-tokenizer and specials), tokenizer_config.json (chat template),
//                 special_tokens_map.json, model[-0000i-of-0000n].safetensors (+ model.safetensors.index.json)
//   DIR/adapter/  adapter_config.json (LORA), adapter_model.safetensors (F32 lora_A / lora_B, B non-zero)
// Weights come from our own integer PRNG seeded per tensor name, so the bytes are identical on every machine and
// independent of the shard count. The defaults (4 layers, hidden 256, vocab 640, 2 shards) keep every test small;
// the knobs scale the model up for benchmarks.
// Architecture variants share the tensors and the tokenizer; they differ in config.json and:
//   Mistral: none (model_type "mistral");  Qwen2: q/k/v_proj biases, rope_theta 1e6;
//   Qwen3: per-head self_attn.q_norm / k_norm weights [head_dim], rope_theta 1e6.
//   Llama3 ("llama3"): Llama with rope_theta 5e5 and rope_scaling llama3 (factor 8, original context 8192).
//   Mixtral: block_sparse_moe.gate + experts.{e}.w1/w2/w3 (n_expert experts, top n_expert_used).
//   Qwen2Moe ("qwen2moe"): qkv biases, mlp.gate + experts.{e}.gate/up/down_proj (moe size intermediate / 2),
//     shared_expert (size intermediate) + shared_expert_gate, norm_topk_prob false; never tied.
//   Qwen3Moe ("qwen3moe"): q/k norms, mlp.gate + experts (moe size intermediate / 2), norm_topk_prob true.
//   Gemma / Gemma2 / Gemma3: norms stored as w (used as 1 + w), gelu-tanh, tied embeddings; Gemma and Gemma2
//     ship a SentencePiece tokenizer.model (no tokenizer.json), Gemma3 the BPE tokenizer.json.
//     Gemma2: pre/post feed-forward norms, attention/final logit softcapping 5 / 3, sliding window 16 on even
//     layers; Gemma3 (text): q/k norms, sliding window 16 with pattern 6, local rope base 1e4, global 1e6.
//   Phi3: fused self_attn.qkv_proj and mlp.gate_up_proj (GPT2Tokenizer class, so the BPE tokenizer.json is used).
//   Qwen35 (Qwen3_5ForCausalLM, transformers' modeling_qwen3_5 layout): every 4th layer full attention (q_proj
//     twice as wide, the output gate; q/k norms), the others gated delta-net linear attention
//     (linear_attn.in_proj_qkv/z/a/b, A_log, dt_bias, conv1d [C, 1, 4], norm, out_proj) with n_kv_head K heads and
//     2 * n_kv_head V heads of head size hidden / n_head, zero-centred norms (used as 1 + w), partial rotary 0.25
//     with mrope sections, and one MTP layer (mtp.*) as the Hub checkpoints ship it.
//   Qwen35Moe (Qwen3_5MoeForCausalLM): Qwen35 with transformers' sparse block in every layer (the MTP one too):
//     mlp.gate [n_expert, hidden], fused mlp.experts.gate_up_proj [n_expert, 2 * moe, hidden] and down_proj
//     [n_expert, hidden, moe] (moe = intermediate / 2), shared_expert (size intermediate) + shared_expert_gate.
//   Mistral3 ("mistral3"): Mistral3ForConditionalGeneration as Mistral Small 3.1 stores it: the Mistral text model
//     (rope_theta 1e9) under language_model.model.* / language_model.lm_head, a one-layer Pixtral vision_tower.* and
//     the multi_modal_projector.*; the adapter uses PEFT's names on today's transformers
//     (base_model.model.model.language_model.layers.N...) and a target_modules regex that leaves the tower out.
//   Ministral3 ("ministral3"): Ministral3ForCausalLM, yarn rope_parameters (factor 16 over 16384, mscale_all_dim 1,
//     llama_4_scaling_beta 0.1), max_position_embeddings 262144.
//   Glm4Moe ("glm4moe"): Glm4MoeForCausalLM as GLM-4.5 stores it: q/k/v biases, q/k norms (use_qk_norm),
//     partial rotary 0.5, layer 0 dense (first_k_dense_replace 1, size intermediate), the others MoE: router
//     mlp.gate [n_expert, hidden] with an F32 mlp.gate.e_score_correction_bias, experts.{e}.gate/up/down_proj (moe
//     size intermediate / 2), one shared expert (mlp.shared_experts.*, the moe size); sigmoid routing with
//     routed_scaling_factor 2.5; one MTP layer model.layers.{n_layer}.* (a MoE decoder layer plus eh_proj, enorm,
//     hnorm, shared_head.norm/head and its own embed_tokens); GLM's special tokens ([gMASK], <sop>, <|user|>, ...).
//   Qwen3Next ("qwen3next"): Qwen3NextForCausalLM as the Hub checkpoints store it (transformers 4.57's
//     modeling_qwen3_next): Qwen35's layer pattern and sizes with the fused linear_attn.in_proj_qkvz ([q, k, v, z] per
//     K head) and in_proj_ba ([b, a] per K head), per-expert mlp.experts.{e}.gate/up/down_proj (moe size
//     intermediate / 2), mlp.gate, shared_expert (size intermediate) + shared_expert_gate in every layer, rope_theta
//     and partial_rotary_factor at the top level (no mrope), full_attention_interval 4 and no layer_types, and one
//     MTP layer (mtp.*, its own experts) without mtp_num_hidden_layers, as the Hub config.json has it.
//   Gemma4 ("gemma4"): Gemma4ForCausalLM (transformers' modeling_gemma4 layout) with the features of the published
//     E2B/E4B and 31B text models at once: sliding (head_dim hidden / n_head, window 8) and full-attention
//     layers alternating, full layers with global_head_dim 2 * head_dim, one KV head and keys used as values
//     (attention_k_eq_v, no v_proj), proportional rope (partial_rotary_factor 0.25, theta 1e6; sliding 1e4);
//     the last layers share the KV of the last unshared layer of their type (num_kv_shared_layers: no k/v
//     projections or k_norm there) and have the double-wide MLP; per-layer embeddings (hidden_size_per_layer_input
//     32), layer_scalar, norms used as w (not 1 + w), final logit softcapping 10; the Gemma 4 SentencePiece-style
//     BPE tokenizer.json (byte fallback, U+2581 spaces) with its chat markers.
//   Gemma4Moe ("gemma4moe"): the 26B-A4B layout: Gemma4 without KV sharing or per-layer embeddings, every layer with
//     the MoE block beside the dense MLP (router.proj / scale / per_expert_scale, fused experts.gate_up_proj
//     [n_expert, 2 * moe, hidden] and experts.down_proj, moe = intermediate / 2, top n_expert_used) and its norms.
//   DeepSeek2 ("deepseek2"): DeepseekV3ForCausalLM as DeepSeek-V3 ships it: MLA attention (q_a_proj, q_a_layernorm,
//     q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj; q_lora_rank 192, kv_lora_rank 160, nope 32,
//     rope 16, v 32 per head), the first layer dense (first_k_dense_replace 1), the others n_expert routed experts
//     in 2 groups (sigmoid scores, e_score_correction_bias, noaux_tc) plus one shared expert, yarn rope_scaling, one
//     MTP layer (model.layers.{n_layer}.*), every Linear weight stored F8_E4M3 with 128x128 weight_scale_inv blocks
//     (quantization_config fp8); the LoRA targets the MLA projections, the dense MLP and the shared experts.
//   GptOss ("gpt-oss"): GptOssForCausalLM in transformers' 16-bit layout (what a fine-tune saves): q/k/v/o with
//     biases, per-head self_attn.sinks, mlp.router (weight, bias), fused mlp.experts.gate_up_proj [E, hidden, 2 * moe]
//     (gate and up interleaved in the last dim) and down_proj [E, moe, hidden] with biases (moe = intermediate / 2),
//     alternating sliding (window 16) and full attention layers, yarn rope; harmony chat template in
//     chat_template.jinja.
//   GptOssMxfp4 ("gpt-oss-mxfp4"): the same model as OpenAI publishes it: the experts as MXFP4
//     mlp.experts.{gate_up,down}_proj_blocks U8 [E, out, in / 32, 16] and *_scales U8 [E, out, in / 32]
//     (quantization_config quant_method "mxfp4"); a third of the blocks use only small codes, so re-quantizing them
//     would change their bytes.
//   KimiK2Int4 ("kimi-k2-int4"): DeepSeek2's model in Kimi-K2-Thinking's storage (model_type kimi_k2): the routed
//     experts as compressed-tensors pack-quantized INT4 (weight_packed I32 [out, in / 8], BF16 weight_scale per group
//     of 32, weight_shape; symmetric), every other weight in the checkpoint dtype; the demo BPE tokenizer (Kimi's
//     tiktoken tokenizer is not converted); the same LoRA targets as DeepSeek2.
//   MiniMaxM2 ("minimax-m2"): MiniMaxM2ForCausalLM as MiniMax-M2 ships it: q/k/v/o with q_norm / k_norm over all
//     heads ([n_head * head_dim], [n_kv_head * head_dim]), rotary_dim half the head, every layer MoE:
//     block_sparse_moe.gate [n_expert, hidden], F32 e_score_correction_bias (sigmoid scores), experts.{e}.w1/w2/w3
//     (size intermediate / 2, written as intermediate_size); attention and expert weights F8_E4M3 with 128x128
//     weight_scale_inv blocks (quantization_config fp8); the LoRA targets attention, the router (block_sparse_moe.gate)
//     and every expert's w1/w2/w3.
//   Gemma3Vl ("gemma3-vl"): Gemma3ForConditionalGeneration as google/gemma-3-4b-it stores it: the gemma3 text model
//     under language_model.model.*, a two-layer SigLIP tower vision_tower.vision_model.* (32x32 images, 4x4
//     patches, hidden 64) and multi_modal_projector.{mm_input_projection_weight, mm_soft_emb_norm.weight} (pooled to
//     16 image tokens); text_config / vision_config, preprocessor_config.json, processor_config.json and
//     chat_template.json; the adapter wraps the text model's and the tower's Linear modules (PEFT's
//     base_model.model.model.{language_model,vision_tower}.* names).
//   Gemma3n ("gemma3n"): Gemma3nForConditionalGeneration as google/gemma-3n-E2B stores it: the text model under
//     model.language_model.* (q/k norms, 4 AltUp streams with altup_projections / altup_unembed_projections.{0,1,2}
//     and per-layer altup router/coefficients, LAuReL rank 64, per-layer embeddings of width 256, activation
//     sparsity 0.95 in the first 10 layers, intermediate_size as a per-layer list, a full-attention layer every
//     fifth and last, window 8, KV shared past layer 20), one tensor each of the vision and audio towers and their
//     embedders, text_config / vision_config / audio_config, the demo BPE tokenizer; the adapter wraps every Linear
//     of the decoder layers (a regex on language_model: the audio tower has q/k/v_proj too).
// LoRA targets: q/k/v/o + gate/up/down (Phi3: qkv/o/gate_up/down; Qwen35 linear layers: in_proj_qkv/z/a/b +
// out_proj; Gemma4 also per_layer_input_gate and per_layer_projection); MoE variants: attention only (Qwen35Moe:
// attention, linear attention and the shared expert; Glm4Moe: attention, the dense layer's MLP, the shared and the
// routed experts; Qwen3Next: attention, in_proj_qkvz/ba + out_proj, and gate/up/down of the shared expert and of
// every expert; Gemma4Moe: attention and the dense MLP).
enum class DemoArch {
    Llama, Mistral, Qwen2, Qwen3, Llama3, Mixtral, Qwen2Moe, Qwen3Moe, Gemma, Gemma2, Gemma3, Phi3, Qwen35, Qwen35Moe,
    Mistral3, Ministral3, Glm4Moe, Qwen3Next, Gemma4, Gemma4Moe, DeepSeek2, GptOss, GptOssMxfp4,
    KimiK2Int4, MiniMaxM2, Llama4, Gemma3Vl, Gemma3n
};
[[nodiscard]] std::string_view to_string(DemoArch a) noexcept;               // "llama", "mistral", ...
[[nodiscard]] bool parse_demo_arch(std::string_view s, DemoArch& out) noexcept;

struct DemoOptions {
    DemoArch arch = DemoArch::Llama;
    int n_layer = 4;
    int hidden = 256;
    int intermediate = 768;
    int n_head = 8;
    int n_kv_head = 2;                          // GQA: n_head % n_kv_head == 0
    int vocab = 640;                            // embedding rows incl. special tokens; >= 256 + 5 specials
    int n_shards = 2;                           // base weight files; 1 gives model.safetensors, no index
    core::DType dtype = core::DType::BF16;      // BF16, F16 or F32 (config torch_dtype follows)
    bool tie_word_embeddings = false;           // true: no lm_head.weight
    int lora_rank = 8;
    int lora_alpha = 16;
    int n_expert = 4;                           // MoE variants only
    int n_expert_used = 2;
    std::uint64_t seed = 20261122;
    // adapter_config.json base_model_name_or_path; empty: the absolute path of DIR/base.
    std::string base_model_name_or_path;
};

// Creates DIR/base and DIR/adapter (and DIR itself); overwrites our files there. Usage on bad options,
// Io on write failures.
void write_demo(const std::filesystem::path& dir, const DemoOptions& opt = {});

// ==== end demo ====

}  // namespace shardforge::model
