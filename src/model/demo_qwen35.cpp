// The Qwen3.5 and Qwen3-Next demo checkpoints: config.json, tensors and LoRA targets.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

namespace {

// Qwen3.5: layer kinds and linear-attention sizes of the demo.
bool full_attention_layer(const DemoOptions& o, int l) { return !is_hybrid(o.arch) || (l + 1) % 4 == 0; }
struct LinearDims {
    std::int64_t n_k, n_v, head, key, value, conv;  // heads, head size, key/value/conv channel counts
};
LinearDims linear_dims(const DemoOptions& o) {
    const std::int64_t head = o.hidden / o.n_head, n_k = o.n_kv_head, n_v = 2 * o.n_kv_head;
    return {n_k, n_v, head, n_k * head, n_v * head, 2 * n_k * head + n_v * head};
}

}  // namespace

// Qwen3_5TextConfig's keys (transformers' configuration_qwen3_5.py) as a Hub config.json writes them, from the
// common ones.
std::string qwen35_config(const DemoOptions& o, const ojson& common) {
    const LinearDims d = linear_dims(o);
    const std::int64_t half_rot = o.hidden / o.n_head / 8;  // rotary pairs: a quarter of the head rotates
    ojson j;
    j["architectures"] = common["architectures"];
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = common["bos_token_id"];
    j["eos_token_id"] = common["eos_token_id"];
    j["full_attention_interval"] = 4;
    j["head_dim"] = common["head_dim"];
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l)
        j["layer_types"].push_back(full_attention_layer(o, l) ? "full_attention" : "linear_attention");
    j["linear_conv_kernel_dim"] = 4;
    j["linear_key_head_dim"] = d.head;
    j["linear_num_key_heads"] = d.n_k;
    j["linear_num_value_heads"] = d.n_v;
    j["linear_value_head_dim"] = d.head;
    j["max_position_embeddings"] = 2048;
    j["model_type"] = arch_row(o.arch).model_type;
    const bool moe = o.arch == DemoArch::Qwen35Moe;
    if (moe) j["moe_intermediate_size"] = moe_ff(o);
    j["mtp_num_hidden_layers"] = 1;
    j["mtp_use_dedicated_embeddings"] = false;
    j["num_attention_heads"] = o.n_head;
    if (moe) j["num_experts"] = o.n_expert;
    if (moe) j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["rms_norm_eps"] = 1e-06;
    j["rope_parameters"] = {{"mrope_interleaved", true},
                            {"mrope_section", ojson::array({half_rot - 2 * (half_rot / 3), half_rot / 3, half_rot / 3})},
                            {"partial_rotary_factor", 0.25},
                            {"rope_theta", 10000000},
                            {"rope_type", "default"}};
    if (moe) j["shared_expert_intermediate_size"] = o.intermediate;
    j["tie_word_embeddings"] = common["tie_word_embeddings"];
    j["torch_dtype"] = common["torch_dtype"];
    j["transformers_version"] = "4.57.0.dev0";
    j["use_cache"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// Qwen3NextConfig's keys (transformers' configuration_qwen3_next.py) as the Hub config.json of Qwen3-Next-80B-A3B writes
// them: rope_theta and partial_rotary_factor at the top level, full_attention_interval without layer_types, no
// mtp_num_hidden_layers (the checkpoint still holds the mtp.* block).
std::string qwen3next_config(const DemoOptions& o, const ojson& common) {
    const LinearDims d = linear_dims(o);
    ojson j;
    j["architectures"] = common["architectures"];
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = common["bos_token_id"];
    j["decoder_sparse_step"] = 1;
    j["eos_token_id"] = common["eos_token_id"];
    j["full_attention_interval"] = 4;
    j["head_dim"] = common["head_dim"];
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["linear_conv_kernel_dim"] = 4;
    j["linear_key_head_dim"] = d.head;
    j["linear_num_key_heads"] = d.n_k;
    j["linear_num_value_heads"] = d.n_v;
    j["linear_value_head_dim"] = d.head;
    j["max_position_embeddings"] = 2048;
    j["mlp_only_layers"] = ojson::array();
    j["model_type"] = arch_row(o.arch).model_type;
    j["moe_intermediate_size"] = moe_ff(o);
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts"] = o.n_expert;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["output_router_logits"] = false;
    j["partial_rotary_factor"] = 0.25;
    j["rms_norm_eps"] = 1e-06;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = 10000000;
    j["router_aux_loss_coef"] = 0.001;
    j["shared_expert_intermediate_size"] = o.intermediate;
    j["tie_word_embeddings"] = common["tie_word_embeddings"];
    j["torch_dtype"] = common["torch_dtype"];
    j["transformers_version"] = "4.57.0.dev0";
    j["use_cache"] = true;
    j["use_sliding_window"] = false;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

namespace {

// The full-attention layers' targets of both families: q_proj holds the query and its gate per head.
void gated_attention_targets(const DemoOptions& o, std::vector<LoraTarget>& t) {
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, q = o.n_head * hd, kv = o.n_kv_head * hd;
    t.insert(t.end(), {{"q_proj", "self_attn", h, 2 * q}, {"k_proj", "self_attn", h, kv},
                       {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}});
}

}  // namespace

// Qwen3.5: attention in the full layers, the gated delta-net projections in the linear ones, the MLP (MoE: the
// shared expert).
std::vector<LoraTarget> qwen35_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, ff = o.intermediate;
    const LinearDims d = linear_dims(o);
    std::vector<LoraTarget> t;
    if (layer < 0 || full_attention_layer(o, layer)) gated_attention_targets(o, t);
    if (layer < 0 || !full_attention_layer(o, layer)) {
        t.insert(t.end(), {{"in_proj_qkv", "linear_attn", h, d.conv}, {"in_proj_z", "linear_attn", h, d.value},
                           {"in_proj_a", "linear_attn", h, d.n_v}, {"in_proj_b", "linear_attn", h, d.n_v},
                           {"out_proj", "linear_attn", d.value, h}});
    }
    const char* mlp = o.arch == DemoArch::Qwen35Moe ? "mlp.shared_expert" : "mlp";
    t.insert(t.end(), {{"gate_proj", mlp, h, ff}, {"up_proj", mlp, h, ff}, {"down_proj", mlp, ff, h}});
    return t;
}

// Qwen3-Next: as Qwen3.5 with the fused in_proj_qkvz / in_proj_ba, and every expert's MLP.
std::vector<LoraTarget> qwen3next_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, ff = o.intermediate;
    const LinearDims d = linear_dims(o);
    std::vector<LoraTarget> t;
    if (layer < 0 || full_attention_layer(o, layer)) gated_attention_targets(o, t);
    if (layer < 0 || !full_attention_layer(o, layer)) {
        t.insert(t.end(), {{"in_proj_qkvz", "linear_attn", h, d.conv + d.value},
                           {"in_proj_ba", "linear_attn", h, 2 * d.n_v}, {"out_proj", "linear_attn", d.value, h}});
    }
    // PEFT matches the module names: gate_proj/up_proj/down_proj wrap the shared expert and every expert
    std::vector<std::string> mlps{"mlp.shared_expert"};
    for (int e = 0; layer >= 0 && e < o.n_expert; ++e) mlps.push_back(core::cat("mlp.experts.", e));
    for (const std::string& m : mlps) {
        const std::int64_t n = m == "mlp.shared_expert" ? ff : moe_ff(o);
        t.insert(t.end(), {{"gate_proj", m, h, n}, {"up_proj", m, h, n}, {"down_proj", m, n, h}});
    }
    return t;
}

// Qwen3.5 and Qwen3-Next after the embedding: decoder layers, final norm, lm_head, then the MTP block (mtp.*).
// Zero-centred RMSNorm weights (Qwen3_5RMSNorm: 1 + w) are small values around 0; the gated norm of the linear
// layers (Qwen3_5RMSNormGated: w) is around 1. Qwen3-Next (transformers' modeling_qwen3_next) stores per-expert MoE
// tensors in every layer (the MTP block's too) and the fused in_proj_qkvz / in_proj_ba.
void qwen35_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd, m = moe_ff(o), e = o.n_expert;
    const LinearDims d = linear_dims(o);
    const bool next = o.arch == DemoArch::Qwen3Next;
    auto full_attention = [&](const std::string& p) {
        add(p + "self_attn.k_norm.weight", {hd}, Init::Normal, 0.2);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {hd}, Init::Normal, 0.2);
        add(p + "self_attn.q_proj.weight", {2 * q, h}, Init::Normal, 0.02);  // query | gate per head
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    };
    auto mlp_and_norms = [&](const std::string& p) {
        add(p + "input_layernorm.weight", {h}, Init::Normal, 0.05);
        if (next) {
            for (int x = 0; x < e; ++x) {
                const std::string ep = core::cat(p, "mlp.experts.", x, ".");
                add(ep + "down_proj.weight", {h, m}, Init::Normal, 0.02);
                add(ep + "gate_proj.weight", {m, h}, Init::Normal, 0.02);
                add(ep + "up_proj.weight", {m, h}, Init::Normal, 0.02);
            }
        } else if (o.arch == DemoArch::Qwen35Moe) {
            add(p + "mlp.experts.down_proj", {e, h, m}, Init::Normal, 0.02);
            add(p + "mlp.experts.gate_up_proj", {e, 2 * m, h}, Init::Normal, 0.02);
        }
        if (next || o.arch == DemoArch::Qwen35Moe) {
            add(p + "mlp.gate.weight", {e, h}, Init::Normal, 0.1);  // router: a few units of logit
            add(p + "mlp.shared_expert.down_proj.weight", {h, ff}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert.up_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert_gate.weight", {1, h}, Init::Normal, 0.1);
        } else {
            add(p + "mlp.down_proj.weight", {h, ff}, Init::Normal, 0.02);
            add(p + "mlp.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.up_proj.weight", {ff, h}, Init::Normal, 0.02);
        }
        add(p + "post_attention_layernorm.weight", {h}, Init::Normal, 0.05);
    };
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        mlp_and_norms(p);
        if (full_attention_layer(o, l)) {
            full_attention(p);
            continue;
        }
        const std::string la = p + "linear_attn.";
        add(la + "A_log", {d.n_v}, Init::Normal, 1.0);    // log of the decay rate A
        add(la + "conv1d.weight", {d.conv, 1, 4}, Init::Normal, 0.3);
        add(la + "dt_bias", {d.n_v}, Init::Norm, 0.5);
        // std 0.15 for the q/k projection: with 0.05 some q/k vectors come out of the conv near zero, and their l2
        // norm magnifies f16 rounding of these weights into 0.03 of logit (measured with tests/reference/forward.py)
        if (next) {
            add(la + "in_proj_ba.weight", {2 * d.n_v, h}, Init::Normal, 0.05);           // [b, a] per K head
            add(la + "in_proj_qkvz.weight", {d.conv + d.value, h}, Init::Normal, 0.15);  // [q, k, v, z] per K head
        } else {
            add(la + "in_proj_a.weight", {d.n_v, h}, Init::Normal, 0.05);
            add(la + "in_proj_b.weight", {d.n_v, h}, Init::Normal, 0.05);
            add(la + "in_proj_qkv.weight", {d.conv, h}, Init::Normal, 0.15);
            add(la + "in_proj_z.weight", {d.value, h}, Init::Normal, 0.05);
        }
        add(la + "norm.weight", {d.head}, Init::Norm, 0.2);
        add(la + "out_proj.weight", {h, d.value}, Init::Normal, 0.02);
    }
    add("model.norm.weight", {h}, Init::Normal, 0.05);
    if (!tied(o)) add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    add("mtp.fc.weight", {h, 2 * h}, Init::Normal, 0.02);
    mlp_and_norms("mtp.layers.0.");
    full_attention("mtp.layers.0.");
    add("mtp.norm.weight", {h}, Init::Normal, 0.05);
    add("mtp.pre_fc_norm_embedding.weight", {h}, Init::Normal, 0.05);
    add("mtp.pre_fc_norm_hidden.weight", {h}, Init::Normal, 0.05);
}
}  // namespace shardforge::model::detail
