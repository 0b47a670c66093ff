// Private to src/model/arch*.cpp: the model families behind the supported HF architectures, and the converter's
// view of the rope parameters.
#pragma once
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>

namespace shardforge::model::detail {

// One family per convert_hf_to_gguf model class we emulate (llama.cpp's convert_hf_to_gguf.py).
// Mistral3: LlamaModel's conversion under the "mistral3" arch (llama.cpp's conversion/mistral3.py Ministral3Model), plus the
// ministral3 rope keys.
// Glm4Moe: llama.cpp's conversion/glm.py Glm4MoeModel (GLM-4.5 / 4.6 / 4.7, GLM-4.5-Air).
// Qwen3Next: llama.cpp's conversion/qwen.py Qwen3NextModel (fused in_proj_qkvz / in_proj_ba, per-expert MoE tensors, no V-head
// tiling, no mrope sections).
// Gemma4: llama.cpp's conversion/gemma.py Gemma4Model (Gemma3Model's path without the norm +1; per-layer embeddings,
// KV sharing, per-layer head sizes, proportional rope for the full-attention layers, optional MoE).
// DeepSeek2: llama.cpp's conversion/deepseek.py DeepseekV2Model (DeepSeek-V3 / V3.1 / R1, Kimi-K2).
// GptOss: llama.cpp's conversion/gpt_oss.py GptOssModel (arch "gpt-oss").
// MiniMaxM2: llama.cpp's conversion/minimax.py MiniMaxM2Model (arch "minimax-m2": MiniMax-M2 / M2.1).
// Llama4: llama.cpp's conversion/llama.py Llama4Model (arch "llama4", the text model of Llama 4 Scout / Maverick): LlamaModel
// without the Q/K un-permute, fused experts split and transposed, interleaved MoE layers.
// Gemma3n: llama.cpp's conversion/gemma.py Gemma3NModel (arch "gemma3n", the text model of Gemma 3n E2B / E4B):
// Gemma3Model's path without the norm +1 or the token_embd trim; AltUp projections stacked, per-layer embeddings,
// LAuReL.
enum class Family { Llama, Qwen2, Qwen2Moe, Qwen3, Qwen3Moe, Gemma, Gemma2, Gemma3, Phi3, Qwen35, Qwen35Moe, Mistral3,
                    Glm4Moe, Qwen3Next, Gemma4, DeepSeek2, GptOss, MiniMaxM2, Llama4, Gemma3n };

// Error(Unsupported, cfg-file, "", "... supported: ...") for unknown names.
[[nodiscard]] Family family_of(std::string_view hf_arch, const std::string& file = "config.json");

// TextModel.__init__'s self.rope_parameters: rope_parameters, else rope_scaling, else {}; when it has neither
// "full_attention" nor "sliding_attention", the global rope_theta, the local theta (as
// sliding_attention.rope_theta), rope_type (from "type"), partial_rotary_factor and
// original_max_position_embeddings are mirrored into it from the top level.
[[nodiscard]] nlohmann::json rope_parameters(const HfConfig& cfg);
// rope_parameters.get("full_attention", rope_parameters)
[[nodiscard]] const nlohmann::json& full_attention(const nlohmann::json& rope_params);

// Gemma4Model's per-layer-type sizes (arch_kv.cpp): the full-attention layers' head size (global_head_dim, else the
// per_layer_config entry of a full-attention layer; Error(BadInput) when neither is there, as the converter asserts)
// and their KV head count (num_global_key_value_heads, else per_layer_config; nullopt when neither).
[[nodiscard]] std::int64_t gemma4_full_head_dim(const HfConfig& cfg);
[[nodiscard]] std::optional<std::int64_t> gemma4_full_kv_heads(const HfConfig& cfg);

// set_gguf_parameters of the family: fills c.arch_kvs and c.file_type_pos (arch_kv.cpp).
void append_arch_kvs(const HfConfig& cfg, GgufConversion& c);

}  // namespace shardforge::model::detail
