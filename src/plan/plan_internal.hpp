// Shared between plan.cpp and plan_gguf.cpp: the table of tensors an output can draw from (base tensors with
// their LoRA merges, plus synthesized ones such as an untied lm_head), and the items built from them.
#pragma once
#include <shardforge/plan.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace shardforge::plan::detail {

struct VTensor {
    std::string name;  // name as an HF tensor (what the outputs see)
    Source source;
};

struct Tables {
    std::vector<VTensor> tensors;
    std::map<std::string, std::size_t> index;
    std::vector<std::int64_t> item_of;  // per tensor: the single-source item already reading it, or -1
    Item& item_for(std::size_t i, Plan& p);
};

std::string read_text(const std::filesystem::path& p);
nlohmann::json read_json(const std::filesystem::path& p);
// Row blocks, unit costs and memory sizing (schedule.cpp); throws Usage when the memory budget cannot be met.
void schedule(const Options& opt, Plan& p);
// GGUF file stem: --name or the base directory's name; Usage error unless it is a plain file name.
std::string output_stem(const Options& opt);
void add_gguf_output(const Options& opt, const OutputSpec& o, Tables& t, const nlohmann::json& config, Plan& p);
// --format gguf-lora[:f32|f16|bf16|q8_0]: the adapter(s) as a llama.cpp GGUF LoRA adapter (plan_gguf_lora.cpp).
void add_gguf_lora_output(const Options& opt, const OutputSpec& o, const std::vector<lora::Adapter>& adapters,
                          Tables& t, const nlohmann::json& config, Plan& p);

}  // namespace shardforge::plan::detail
