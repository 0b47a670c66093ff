// The MiniMax-M2 (minimax-m2) demo checkpoint: config.json, FP8 tensors with block scales, LoRA targets.
#include "demo_family.hpp"

namespace shardforge::model::detail {

namespace {

// MiniMax-M2 rotates half of each head (rotary_dim 64 of head_dim 128); the demo keeps that ratio.
std::int64_t minimax_rotary_dim(const DemoOptions& o) { return o.hidden / o.n_head / 2; }

}  // namespace

// MiniMaxM2Config's keys as MiniMax-M2's config.json writes them: intermediate_size is the size of each expert (no
// dense MLP, no shared expert), sigmoid scores with e_score_correction_bias, q/k norms over all heads, partial
// rotary (rotary_dim), quantization_config fp8 with 128x128 blocks and the modules left in 16 bits.
std::string minimax_m2_config(const DemoOptions& o, const DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({"MiniMaxM2ForCausalLM"});
    j["attention_dropout"] = 0.0;
    j["attn_type_list"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["attn_type_list"].push_back(1);
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = tok.eos_id;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = moe_ff(o);
    j["max_position_embeddings"] = 196608;
    j["model_type"] = "minimax_m2";
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_local_experts"] = o.n_expert;
    j["output_router_logits"] = false;
    j["qk_norm_type"] = "per_layer";
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "float8_e4m3fn"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", ojson::array({fp8_block, fp8_block})},
                                {"modules_to_not_convert", ojson::array({"gate", "e_score_correction_bias", "lm_head"})}};
    j["rms_norm_eps"] = 1e-06;
    j["rope_theta"] = 5000000;
    j["rotary_dim"] = minimax_rotary_dim(o);
    j["router_aux_loss_coef"] = 0.001;
    j["router_jitter_noise"] = 0.0;
    j["scoring_func"] = "sigmoid";
    j["shared_intermediate_size"] = 0;
    j["tie_word_embeddings"] = false;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.57.1";
    j["use_cache"] = true;
    j["use_qk_norm"] = true;
    j["use_routing_bias"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// MiniMax-M2: every nn.Linear PEFT wraps by name in transformers' per-expert layout: attention, the router
// (block_sparse_moe.gate, an nn.Linear llama.cpp also applies a LoRA to) and each expert's w1/w2/w3.
std::vector<LoraTarget> minimax_m2_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, m = moe_ff(o);
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                 {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
    t.push_back({"gate", "block_sparse_moe", h, o.n_expert});
    const int n = layer < 0 ? 1 : o.n_expert;
    for (int e = 0; e < n; ++e) {
        const std::string module = core::cat("block_sparse_moe.experts.", e);
        t.insert(t.end(), {{"w1", module, h, m}, {"w2", module, m, h}, {"w3", module, h, m}});
    }
    return t;
}

// MiniMax-M2 (MiniMaxM2ForCausalLM) after the embedding: decoder layers, the final norm and lm_head. Every attention
// and expert Linear weight is F8_E4M3 followed by its F32 weight_scale_inv (128x128 blocks, partial at the edges);
// norms, the router and lm_head in o.dtype, e_score_correction_bias F32 (a float32 buffer in transformers).
void minimax_m2_tensors(const DemoOptions& o, TensorList& add) {
    std::vector<DemoTensor>& ts = add.ts;
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, m = moe_ff(o);
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    auto fp8 = [&](const std::string& name, core::Shape shape, double std_) {
        const std::string w = name + ".weight";
        ts.push_back({formats::StEntry{w, core::DType::F8_E4M3, shape}, Init::Normal, std_, Stored::Fp8Codes, {}, {}});
        const core::Shape grid{(shape[0] + fp8_block - 1) / fp8_block, (shape[1] + fp8_block - 1) / fp8_block};
        ts.push_back({formats::StEntry{name + ".weight_scale_inv", core::DType::F32, grid}, Init::Normal, std_,
                      Stored::Fp8Scales, w, shape});
    };
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        const std::string a = p + "self_attn.";
        fp8(a + "q_proj", {q, h}, 0.05);
        fp8(a + "k_proj", {kv, h}, 0.05);
        fp8(a + "v_proj", {kv, h}, 0.05);
        fp8(a + "o_proj", {h, q}, 0.05);
        add(a + "q_norm.weight", {q}, Init::Norm, 0.2);
        add(a + "k_norm.weight", {kv}, Init::Norm, 0.2);
        const std::string moe = p + "block_sparse_moe.";
        add(moe + "gate.weight", {o.n_expert, h}, Init::Normal, 0.1);  // router: a few units of logit
        for (int e = 0; e < o.n_expert; ++e) {
            const std::string ep = core::cat(moe, "experts.", e, ".");
            fp8(ep + "w1", {m, h}, 0.05);
            fp8(ep + "w2", {h, m}, 0.05);
            fp8(ep + "w3", {m, h}, 0.05);
        }
        // 0.1 reorders the sigmoid scores, so selection by score + bias differs from selection by score
        add.as(core::DType::F32, moe + "e_score_correction_bias", {o.n_expert}, Init::Normal, 0.1);
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
}

}  // namespace shardforge::model::detail
