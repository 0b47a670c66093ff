// The GLM-4.5 (glm4moe) demo checkpoint: config.json, tensors and LoRA targets.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

// Glm4MoeConfig's keys (transformers' configuration_glm4_moe.py) as GLM-4.5's config.json writes them: GLM-4.5's
// q/k norms and routed scaling 2.5, one dense layer, one shared expert, one MTP layer.
std::string glm4moe_config(const DemoOptions& o, const DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({arch_row(o.arch).class_name});
    j["attention_bias"] = true;
    j["attention_dropout"] = 0.0;
    j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id, tok.eot_id + 2});  // <|endoftext|> <|user|> <|observation|>
    j["first_k_dense_replace"] = 1;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["max_position_embeddings"] = 2048;
    j["model_type"] = arch_row(o.arch).model_type;
    j["moe_intermediate_size"] = moe_ff(o);
    j["n_group"] = 1;
    j["n_routed_experts"] = o.n_expert;
    j["n_shared_experts"] = 1;
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_nextn_predict_layers"] = 1;
    j["pad_token_id"] = tok.eos_id;
    j["partial_rotary_factor"] = 0.5;
    j["rms_norm_eps"] = 1e-05;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = arch_row(o.arch).rope_theta;
    j["routed_scaling_factor"] = 2.5;
    j["tie_word_embeddings"] = false;
    j["topk_group"] = 1;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.54.0";
    j["use_cache"] = true;
    j["use_qk_norm"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// GLM-4.5: every nn.Linear PEFT can wrap.
std::vector<LoraTarget> glm4moe_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    // Every nn.Linear PEFT can wrap (the router is not one): attention; the dense layer's MLP, else the shared
    // expert and each routed expert (moe size). The MTP layer is not built by transformers, so never wrapped.
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                 {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
    auto mlp = [&](const std::string& module, std::int64_t n) {
        t.insert(t.end(), {{"gate_proj", module, h, n}, {"up_proj", module, h, n}, {"down_proj", module, n, h}});
    };
    if (layer <= 0) {
        mlp("mlp", ff);
    } else {
        mlp("mlp.shared_experts", moe_ff(o));
        for (int e = 0; e < o.n_expert; ++e) mlp(core::cat("mlp.experts.", e), moe_ff(o));
    }
    return t;
}

// GLM-4.5 (Glm4MoeForCausalLM) after the embedding: decoder layers (layer 0 dense, the others MoE), the final norm,
// lm_head, then the MTP layer model.layers.{n_layer} as the Hub checkpoints ship it (a MoE decoder layer with
// eh_proj, enorm, hnorm, shared_head.norm/head and its own embed_tokens; transformers does not load it).
void glm4moe_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t h = o.hidden, ff = o.intermediate, m = moe_ff(o), hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    auto mlp = [&](const std::string& p, std::int64_t n) {
        add(p + "down_proj.weight", {h, n}, Init::Normal, 0.02);
        add(p + "gate_proj.weight", {n, h}, Init::Normal, 0.02);
        add(p + "up_proj.weight", {n, h}, Init::Normal, 0.02);
    };
    auto layer = [&](int l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        if (l == 0) {
            mlp(p + "mlp.", ff);
        } else {
            for (int e = 0; e < o.n_expert; ++e) mlp(core::cat(p, "mlp.experts.", e, "."), m);
            add(p + "mlp.gate.weight", {o.n_expert, h}, Init::Normal, 0.1);  // router: a few units of logit
            // a float32 buffer in transformers (Glm4MoeTopkRouter), stored as F32; 0.1 reorders the sigmoid scores
            add.as(core::DType::F32, p + "mlp.gate.e_score_correction_bias", {o.n_expert}, Init::Normal, 0.1);
            mlp(p + "mlp.shared_experts.", m);
        }
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
        // Biases large enough (0.1) that dropping one is visible in the logits.
        add(p + "self_attn.k_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    };
    for (int l = 0; l < o.n_layer; ++l) layer(l);
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    const std::string p = core::cat("model.layers.", o.n_layer, ".");
    layer(o.n_layer);
    add(p + "eh_proj.weight", {h, 2 * h}, Init::Normal, 0.02);
    add(p + "embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02);
    add(p + "enorm.weight", {h}, Init::Norm, 0.05);
    add(p + "hnorm.weight", {h}, Init::Norm, 0.05);
    add(p + "shared_head.head.weight", {o.vocab, h}, Init::Normal, 0.02);
    add(p + "shared_head.norm.weight", {h}, Init::Norm, 0.05);
}
}  // namespace shardforge::model::detail
