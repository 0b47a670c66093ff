// The Gemma 4 demo checkpoints (dense with per-layer embeddings, and MoE): config.json, tensors and LoRA targets.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

namespace {

// Gemma 4: layer kinds and sizes of the demo. Sliding and full layers alternate (the last is full); the layers from
// g4_first_shared on reuse the KV of the last unshared layer of their kind, which llama.cpp expects to be the two
// layers just before (src/llama-model.cpp's layer reuse for gemma4), and have the double-wide MLP.
constexpr int g4_sliding_window = 8, g4_per_layer = 32, g4_kv_full = 1;
bool g4_full(const DemoOptions& o, int l) { return l % 2 == 1 || l == o.n_layer - 1; }
// Gemma4Moe (the 26B-A4B layout): no KV sharing and no per-layer embeddings; every layer has the MoE block.
int g4_first_shared(const DemoOptions& o) {
    return o.arch == DemoArch::Gemma4 && o.n_layer >= 4 ? 2 * ((o.n_layer + 2) / 4) : o.n_layer;
}
int g4_per_layer_width(const DemoOptions& o) { return o.arch == DemoArch::Gemma4 ? g4_per_layer : 0; }
bool g4_shared(const DemoOptions& o, int l) { return l >= g4_first_shared(o); }
struct G4Layer {
    std::int64_t hd, kv, ff;  // head size, KV heads, MLP width
};
G4Layer g4_layer(const DemoOptions& o, int l) {
    const std::int64_t hd = o.hidden / o.n_head;
    return {g4_full(o, l) ? 2 * hd : hd, g4_full(o, l) ? g4_kv_full : o.n_kv_head,
            g4_shared(o, l) ? 2 * o.intermediate : o.intermediate};
}

}  // namespace

// Gemma4TextConfig's keys (transformers' configuration_gemma4.py) as save_pretrained writes them.
std::string gemma4_config(const DemoOptions& o) {
    ojson j;
    j["architectures"] = ojson::array({"Gemma4ForCausalLM"});
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["attention_k_eq_v"] = true;
    j["bos_token_id"] = detail::demo_g4_bos_id;
    j["dtype"] = torch_dtype(o.dtype);
    const bool moe = o.arch == DemoArch::Gemma4Moe;
    j["enable_moe_block"] = moe;
    j["eos_token_id"] = detail::demo_g4_eos_id;
    j["final_logit_softcapping"] = 10.0;
    j["global_head_dim"] = 2 * (o.hidden / o.n_head);
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["hidden_size"] = o.hidden;
    j["hidden_size_per_layer_input"] = g4_per_layer_width(o);
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["layer_types"].push_back(g4_full(o, l) ? "full_attention" : "sliding_attention");
    j["max_position_embeddings"] = 131072;
    j["model_type"] = "gemma4_text";
    j["moe_intermediate_size"] = moe ? ojson(moe_ff(o)) : ojson();
    j["num_attention_heads"] = o.n_head;
    j["num_experts"] = moe ? ojson(o.n_expert) : ojson();
    j["num_global_key_value_heads"] = g4_kv_full;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_kv_shared_layers"] = o.n_layer - g4_first_shared(o);
    j["pad_token_id"] = detail::demo_g4_pad_id;
    j["rms_norm_eps"] = 1e-06;
    j["rope_parameters"] = {
        {"full_attention", {{"partial_rotary_factor", 0.25}, {"rope_theta", 1000000.0}, {"rope_type", "proportional"}}},
        {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}};
    j["sliding_window"] = g4_sliding_window;
    j["tie_word_embeddings"] = true;
    j["top_k_experts"] = moe ? ojson(o.n_expert_used) : ojson();
    j["transformers_version"] = "5.5.0";
    j["use_bidirectional_attention"] = nullptr;
    j["use_cache"] = true;
    j["use_double_wide_mlp"] = !moe;
    j["vocab_size"] = o.vocab;
    j["vocab_size_per_layer_input"] = o.vocab;
    return j.dump(2) + "\n";
}

// Gemma 4: attention (no k/v in KV-shared layers, no v in full layers), MLP, per-layer-embedding projections.
std::vector<LoraTarget> gemma4_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden;
    const std::vector<LoraTarget> all = {{"q_proj", "self_attn", 0, 0}, {"k_proj", "self_attn", 0, 0},
                                         {"v_proj", "self_attn", 0, 0}, {"o_proj", "self_attn", 0, 0},
                                         {"gate_proj", "mlp", 0, 0}, {"up_proj", "mlp", 0, 0},
                                         {"down_proj", "mlp", 0, 0}, {"per_layer_input_gate", "", 0, 0},
                                         {"per_layer_projection", "", 0, 0}};
    if (layer < 0) return g4_per_layer_width(o) > 0 ? all : std::vector<LoraTarget>(all.begin(), all.end() - 2);
    const G4Layer g = g4_layer(o, layer);
    const std::int64_t qg = o.n_head * g.hd, kvg = g.kv * g.hd;
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, qg}};
    if (!g4_shared(o, layer)) t.push_back({"k_proj", "self_attn", h, kvg});
    if (!g4_shared(o, layer) && !g4_full(o, layer)) t.push_back({"v_proj", "self_attn", h, kvg});
    t.insert(t.end(), {{"o_proj", "self_attn", qg, h}, {"gate_proj", "mlp", h, g.ff}, {"up_proj", "mlp", h, g.ff},
                       {"down_proj", "mlp", g.ff, h}});
    if (g4_per_layer_width(o) > 0)
        t.insert(t.end(), {{"per_layer_input_gate", "", h, g4_per_layer}, {"per_layer_projection", "", g4_per_layer, h}});
    return t;
}

// Gemma 4 after the embedding: decoder layers (no k/v projections or k_norm in KV-shared layers, no v_proj in
// full-attention layers: keys are the values), final norm, then the per-layer embedding parts. Gemma4RMSNorm uses
// its weight as is: norms around 1.
void gemma4_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t h = o.hidden, ple = g4_per_layer_width(o);
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        const G4Layer g = g4_layer(o, l);
        add(p + "layer_scalar", {1}, Init::Norm, 0.3);
        add(p + "self_attn.q_proj.weight", {o.n_head * g.hd, h}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {g.hd}, Init::Norm, 0.2);
        if (!g4_shared(o, l)) {
            add(p + "self_attn.k_norm.weight", {g.hd}, Init::Norm, 0.2);
            add(p + "self_attn.k_proj.weight", {g.kv * g.hd, h}, Init::Normal, 0.02);
            if (!g4_full(o, l)) add(p + "self_attn.v_proj.weight", {g.kv * g.hd, h}, Init::Normal, 0.02);
        }
        add(p + "self_attn.o_proj.weight", {h, o.n_head * g.hd}, Init::Normal, 0.02);
        add(p + "mlp.gate_proj.weight", {g.ff, h}, Init::Normal, 0.02);
        add(p + "mlp.up_proj.weight", {g.ff, h}, Init::Normal, 0.02);
        add(p + "mlp.down_proj.weight", {h, g.ff}, Init::Normal, 0.02);
        for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                              "post_feedforward_layernorm"})
            add(core::cat(p, n, ".weight"), {h}, Init::Norm, 0.05);
        if (o.arch == DemoArch::Gemma4Moe) {  // transformers' Gemma4TextRouter and Gemma4TextExperts
            const std::int64_t e = o.n_expert, m = moe_ff(o);
            add(p + "experts.down_proj", {e, h, m}, Init::Normal, 0.02);
            add(p + "experts.gate_up_proj", {e, 2 * m, h}, Init::Normal, 0.02);
            add(p + "post_feedforward_layernorm_1.weight", {h}, Init::Norm, 0.05);
            add(p + "post_feedforward_layernorm_2.weight", {h}, Init::Norm, 0.05);
            add(p + "pre_feedforward_layernorm_2.weight", {h}, Init::Norm, 0.05);
            add(p + "router.per_expert_scale", {e}, Init::Norm, 0.3);
            add(p + "router.proj.weight", {e, h}, Init::Normal, 0.1);  // routing logits of a few units
            add(p + "router.scale", {h}, Init::Norm, 0.05);
        }
        if (ple == 0) continue;
        add(p + "per_layer_input_gate.weight", {ple, h}, Init::Normal, 0.05);
        add(p + "per_layer_projection.weight", {h, ple}, Init::Normal, 0.05);
        add(p + "post_per_layer_input_norm.weight", {h}, Init::Norm, 0.05);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    if (ple == 0) return;
    add("model.embed_tokens_per_layer.weight", {o.vocab, o.n_layer * ple}, Init::Normal, 0.05);
    add("model.per_layer_model_projection.weight", {o.n_layer * ple, h}, Init::Normal, 0.05);
    add("model.per_layer_projection_norm.weight", {ple}, Init::Norm, 0.05);
}
}  // namespace shardforge::model::detail
