// Private pieces shared by demo.cpp (the files, the common decoder families, the adapter) and the per-family demo
// files demo_<family>.cpp (each family's config.json, tensors in state-dict order and LoRA targets).
#pragma once
#include "demo_internal.hpp"

#include <shardforge/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shardforge::model::detail {

using ojson = nlohmann::ordered_json;

// How a demo tensor's values are drawn (demo.cpp generate()).
enum class Init { Normal, Norm, LoraA, LoraB, Mxfp4Blocks, Mxfp4Scales };

// Quantized storage of a Normal weight (the tensor named `weight`, shaped `weight_shape`):
// - FP8 as DeepSeek-V3's quantization_config fp8: the F8_E4M3 codes, or the F32 grid of 128x128 block scales
//   (weight_scale_inv);
// - INT4 as compressed-tensors pack-quantized (Kimi-K2-Thinking's experts; symmetric, groups of 32 along a row): the
//   I32 words of eight codes (weight_packed), the BF16 group scales (weight_scale) or the I64 [rows, cols]
//   (weight_shape).
enum class Stored { None, Fp8Codes, Fp8Scales, Int4Packed, Int4Scales, Int4Shape };
inline constexpr std::int64_t int4_group = 32;
inline constexpr std::int64_t fp8_block = 128;

struct DemoTensor {
    formats::StEntry entry;
    Init init = Init::Normal;
    double scale = 0.0;  // std (Normal, LoraB), half-width (LoraA), spread around 1 (Norm)
    Stored stored = Stored::None;
    std::string weight;        // Stored::Fp8Scales and Int4*: the weight these bytes store
    core::Shape weight_shape;  // its shape
};

// The tensors of a demo checkpoint in state-dict order. add(...) stores in the checkpoint's dtype; as(...) in another.
struct TensorList {
    core::DType dtype;
    std::vector<DemoTensor> ts;

    void as(core::DType dt, std::string name, core::Shape shape, Init init, double scale) {
        ts.push_back({formats::StEntry{std::move(name), dt, std::move(shape)}, init, scale, Stored::None, {}, {}});
    }
    void operator()(std::string name, core::Shape shape, Init init, double scale) {
        as(dtype, std::move(name), std::move(shape), init, scale);
    }
    // MXFP4 blocks and scales: raw bytes
    void u8(std::string name, core::Shape shape, Init init) { as(core::DType::U8, std::move(name), std::move(shape), init, 0.0); }
};

struct ArchRow {
    DemoArch arch;
    const char* name;  // --arch spelling
    const char* model_type;
    const char* class_name;
    double rope_theta;
};
[[nodiscard]] const ArchRow& arch_row(DemoArch a);
[[nodiscard]] std::string torch_dtype(core::DType t);

inline bool is_qwen35(DemoArch a) { return a == DemoArch::Qwen35 || a == DemoArch::Qwen35Moe; }
// gated delta-net + full attention layers: Qwen3.5 and Qwen3-Next
inline bool is_hybrid(DemoArch a) { return is_qwen35(a) || a == DemoArch::Qwen3Next; }
inline bool is_gemma3n(DemoArch a) { return a == DemoArch::Gemma3n; }
inline bool is_gemma4(DemoArch a) { return a == DemoArch::Gemma4 || a == DemoArch::Gemma4Moe; }
inline bool is_gpt_oss(DemoArch a) { return a == DemoArch::GptOss || a == DemoArch::GptOssMxfp4; }
// DeepseekV3ForCausalLM: DeepSeek-V3's FP8 checkpoint, or Kimi-K2-Thinking's layout (compressed-tensors INT4 experts)
inline bool is_deepseek2(DemoArch a) { return a == DemoArch::DeepSeek2 || a == DemoArch::KimiK2Int4; }
inline bool is_moe(DemoArch a) { return a == DemoArch::Mixtral || a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe; }
inline bool is_gemma(DemoArch a) { return a == DemoArch::Gemma || a == DemoArch::Gemma2 || a == DemoArch::Gemma3; }
// Qwen2Moe's converter requires output.weight, so it is never tied.
// GLM-4.5's, DeepSeek-V3's and MiniMax-M2's checkpoints are never tied either.
inline bool tied(const DemoOptions& o) {
    return o.arch != DemoArch::Qwen2Moe && o.arch != DemoArch::Glm4Moe && !is_deepseek2(o.arch) &&
           o.arch != DemoArch::MiniMaxM2 &&
           (o.tie_word_embeddings || is_gemma(o.arch) || is_gemma4(o.arch) || is_gemma3n(o.arch));
}
inline std::int64_t moe_ff(const DemoOptions& o) {
    return o.arch == DemoArch::Mixtral ? o.intermediate : o.intermediate / 2;
}
inline constexpr int demo_sliding_window = 16;

// What PEFT wraps: one Linear per layer (module path under the layer, projection name, in/out features).
struct LoraTarget {
    const char* name;
    std::string module;
    std::int64_t in, out;
};

// ---------------------------------------------------------------- the families (demo_<family>.cpp)
// config.json text; `common` is the key set demo.cpp builds for every decoder (some families start from it).
// *_tensors: the tensors after model.embed_tokens, in state-dict order. *_lora_targets: layer -1 gives every target
// name (adapter_config.json's target_modules), else the targets that layer has.
[[nodiscard]] std::string qwen35_config(const DemoOptions& o, const ojson& common);
[[nodiscard]] std::string qwen3next_config(const DemoOptions& o, const ojson& common);
void qwen35_tensors(const DemoOptions& o, TensorList& add);  // Qwen3.5 and Qwen3-Next
[[nodiscard]] std::vector<LoraTarget> qwen35_lora_targets(const DemoOptions& o, int layer);
[[nodiscard]] std::vector<LoraTarget> qwen3next_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string glm4moe_config(const DemoOptions& o, const DemoTokenizer& tok);
void glm4moe_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> glm4moe_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string deepseek2_config(const DemoOptions& o, const DemoTokenizer& tok);
void deepseek2_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> deepseek2_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string gpt_oss_config(const DemoOptions& o, const DemoTokenizer& tok);
void gpt_oss_tensors(const DemoOptions& o, TensorList& add);
extern const char* const harmony_chat_template;  // chat_template.jinja of the gpt-oss demos

[[nodiscard]] std::string gemma3n_config(const DemoOptions& o, const DemoTokenizer& tok);
// the text model under model.language_model. (add holds model.embed_tokens.weight: renamed too), then the towers
void gemma3n_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> gemma3n_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string gemma4_config(const DemoOptions& o);
void gemma4_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> gemma4_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string minimax_m2_config(const DemoOptions& o, const DemoTokenizer& tok);
void minimax_m2_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> minimax_m2_lora_targets(const DemoOptions& o, int layer);

[[nodiscard]] std::string mistral3_config_json(const DemoOptions& o);
// the text model's tensors moved under language_model., after the Pixtral tower and the projector
[[nodiscard]] std::vector<DemoTensor> mistral3_layout(std::vector<DemoTensor> text, const DemoOptions& o);
// PixtralImageProcessor's preprocessor_config.json and the PixtralProcessor's processor_config.json (the keys of
// mistralai/Mistral-Small-3.1-24B-Instruct-2503, the demo's sizes); tokenizer_config.json with the [IMG_BREAK] entry
// the converter's --mmproj looks up; the adapter's factors on the Pixtral tower and the projector
[[nodiscard]] std::string mistral3_preprocessor_config();
[[nodiscard]] std::string mistral3_processor_config();
[[nodiscard]] std::string mistral3_tokenizer_config(const std::string& tokenizer_config_json);
void mistral3_vision_adapter_tensors(const DemoOptions& o, std::vector<DemoTensor>& ts);

[[nodiscard]] std::string llama4_config(const DemoOptions& o, const DemoTokenizer& tok);
// the vision tower and projector, then the text model under language_model. (add holds model.embed_tokens.weight)
void llama4_tensors(const DemoOptions& o, TensorList& add);
[[nodiscard]] std::vector<LoraTarget> llama4_lora_targets(const DemoOptions& o, int layer);
// Gemma 3 vision-language (gemma3-vl, demo_gemma3vl.cpp): the text parts are the gemma3 demo's; these add the
// top-level config around its config.json, the processor files, the tower and projector tensors before the text
// model (moved under language_model.), and the tower's LoRA targets and adapter tensors.
[[nodiscard]] std::string gemma3vl_config(const DemoOptions& o, const std::string& text_config_json);
[[nodiscard]] std::string gemma3vl_preprocessor_config();
[[nodiscard]] std::string gemma3vl_processor_config();
[[nodiscard]] std::vector<DemoTensor> gemma3vl_layout(std::vector<DemoTensor> text, const DemoOptions& o);
[[nodiscard]] std::vector<LoraTarget> gemma3vl_vision_lora_targets();
void gemma3vl_vision_adapter_tensors(const DemoOptions& o, std::vector<DemoTensor>& ts);

}  // namespace shardforge::model::detail
