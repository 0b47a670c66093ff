// Fuzz target: config.json text -> model::parse_hf_config -> validate_config and plan_gguf_conversion over a fixed tensor list (the
// tensors of a 2-layer Llama with hidden 32, 4 heads, 2 KV heads, MLP 64, vocab 300) -> metadata KVs.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include "fuzz_common.hpp"

#include <string>
#include <vector>

namespace {

std::vector<shardforge::model::HfTensor> fixed_tensors() {
    using shardforge::model::HfTensor;
    const auto bf16 = shardforge::core::DType::BF16;
    std::vector<HfTensor> t{{"model.embed_tokens.weight", bf16, {300, 32}, "model.safetensors"},
                            {"model.norm.weight", bf16, {32}, "model.safetensors"},
                            {"lm_head.weight", bf16, {300, 32}, "model.safetensors"}};
    for (int l = 0; l < 2; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        t.push_back({p + "input_layernorm.weight", bf16, {32}, "model.safetensors"});
        t.push_back({p + "post_attention_layernorm.weight", bf16, {32}, "model.safetensors"});
        t.push_back({p + "self_attn.q_proj.weight", bf16, {32, 32}, "model.safetensors"});
        t.push_back({p + "self_attn.k_proj.weight", bf16, {16, 32}, "model.safetensors"});
        t.push_back({p + "self_attn.v_proj.weight", bf16, {16, 32}, "model.safetensors"});
        t.push_back({p + "self_attn.o_proj.weight", bf16, {32, 32}, "model.safetensors"});
        t.push_back({p + "mlp.gate_proj.weight", bf16, {64, 32}, "model.safetensors"});
        t.push_back({p + "mlp.up_proj.weight", bf16, {64, 32}, "model.safetensors"});
        t.push_back({p + "mlp.down_proj.weight", bf16, {32, 64}, "model.safetensors"});
    }
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::vector<shardforge::model::HfTensor> tensors = fixed_tensors();
    auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;  // not JSON: read_hf_config reports that itself
    sf_fuzz::expect_only_core_errors("fuzz_hf_config(validate_config)", [&] {
        std::vector<std::pair<std::string, shardforge::core::Shape>> shapes;
        for (const auto& t : tensors) shapes.emplace_back(t.name, t.shape);
        shardforge::model::validate_config(shardforge::model::parse_hf_config(j, "config.json"), shapes);
    });
    sf_fuzz::expect_only_core_errors("fuzz_hf_config", [&] {
        const auto cfg = shardforge::model::parse_hf_config(std::move(j), "config.json");
        (void)shardforge::model::llama3_rope_freqs(cfg);
        const auto conv = shardforge::model::plan_gguf_conversion(cfg, tensors, 300);
        (void)shardforge::model::size_label(conv);
        shardforge::model::GeneralMeta meta;
        meta.name = "fuzz";
        (void)shardforge::model::gguf_model_kvs(conv, meta, conv.auto_ftype);
    });
    return 0;
}
