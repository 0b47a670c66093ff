// Private to src/model/arch*.cpp: the model families behind the supported HF architectures, and the converter's
// view of the rope parameters.
#pragma once
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <string_view>

namespace shardforge::model::detail {

// One family per convert_hf_to_gguf model class we emulate (llama.cpp's convert_hf_to_gguf.py).
// Mistral3: LlamaModel's conversion under the "mistral3" arch (llama.cpp's conversion/mistral3.py Ministral3Model), plus the
// ministral3 rope keys.
// Glm4Moe: llama.cpp's conversion/glm.py Glm4MoeModel (GLM-4.5 / 4.6 / 4.7, GLM-4.5-Air).
// GptOss: llama.cpp's conversion/gpt_oss.py GptOssModel (arch "gpt-oss").
enum class Family { Llama, Qwen2, Qwen2Moe, Qwen3, Qwen3Moe, Gemma, Gemma2, Gemma3, Phi3, Qwen35, Qwen35Moe, Mistral3,
                    Glm4Moe, GptOss };

// Error(Unsupported, cfg-file, "", "... supported: ...") for unknown names.
[[nodiscard]] Family family_of(std::string_view hf_arch, const std::string& file = "config.json");

// TextModel.__init__'s self.rope_parameters: rope_parameters, else rope_scaling, else {}; when it has neither
// "full_attention" nor "sliding_attention", the global rope_theta, the local theta (as
// sliding_attention.rope_theta), rope_type (from "type"), partial_rotary_factor and
// original_max_position_embeddings are mirrored into it from the top level.
[[nodiscard]] nlohmann::json rope_parameters(const HfConfig& cfg);
// rope_parameters.get("full_attention", rope_parameters)
[[nodiscard]] const nlohmann::json& full_attention(const nlohmann::json& rope_params);

// set_gguf_parameters of the family: fills c.arch_kvs and c.file_type_pos (arch_kv.cpp).
void append_arch_kvs(const HfConfig& cfg, GgufConversion& c);

}  // namespace shardforge::model::detail
