// The DeepSeek-V3 (deepseek2) demo checkpoint: FP8 weights with block scales, MLA, config.json and LoRA targets.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

namespace {

// DeepSeek-V3 (DeepseekV3ForCausalLM): MLA sizes and routing of the demo (see model.hpp).
struct Ds2Dims {
    std::int64_t q_lora = 192, kv_lora = 160, nope = 32, rope = 16, v = 32;
    std::int64_t n_expert, n_group, topk_group, top_k, moe;
};
Ds2Dims ds2_dims(const DemoOptions& o) {
    Ds2Dims d;
    d.n_expert = 2 * o.n_expert;  // groups of two experts
    d.n_group = o.n_expert;
    d.topk_group = std::max(1, o.n_expert / 2);
    d.top_k = std::min<std::int64_t>(o.n_expert_used + 1, 2 * d.topk_group);
    d.moe = o.intermediate / 2;
    return d;
}

}  // namespace

// DeepseekV3Config's keys as DeepSeek-V3's config.json writes them (no auto_map: the converter does not run remote
// code for it).
std::string deepseek2_config(const DemoOptions& o, const DemoTokenizer& tok) {
    const Ds2Dims d = ds2_dims(o);
    ojson j;
    j["architectures"] = ojson::array({"DeepseekV3ForCausalLM"});
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = tok.eos_id;
    j["ep_size"] = 1;
    j["first_k_dense_replace"] = 1;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["kv_lora_rank"] = d.kv_lora;
    j["max_position_embeddings"] = 163840;
    const bool kimi = o.arch == DemoArch::KimiK2Int4;
    j["model_type"] = kimi ? "kimi_k2" : "deepseek_v3";
    j["moe_intermediate_size"] = d.moe;
    j["moe_layer_freq"] = 1;
    j["n_group"] = d.n_group;
    j["n_routed_experts"] = d.n_expert;
    j["n_shared_experts"] = 1;
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = d.top_k;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_head;
    j["num_nextn_predict_layers"] = kimi ? 0 : 1;
    j["q_lora_rank"] = d.q_lora;
    j["qk_nope_head_dim"] = d.nope;
    j["qk_rope_head_dim"] = d.rope;
    if (kimi) {  // Kimi-K2-Thinking's: INT4 routed experts, everything else (the ignore list) unquantized
        const ojson weights = {{"actorder", nullptr}, {"block_structure", nullptr}, {"dynamic", false},
                               {"group_size", int4_group}, {"num_bits", 4},     {"observer", "minmax"},
                               {"observer_kwargs", ojson::object()},             {"strategy", "group"},
                               {"symmetric", true},       {"type", "int"}};
        j["quantization_config"] = {
            {"config_groups", {{"group_0", {{"input_activations", nullptr}, {"output_activations", nullptr},
                                            {"targets", ojson::array({"Linear"})}, {"weights", weights}}}}},
            {"format", "pack-quantized"},
            {"ignore", ojson::array({"lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                                     "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"})},
            {"kv_cache_scheme", nullptr},
            {"quant_method", "compressed-tensors"},
            {"quantization_status", "compressed"}};
    } else {
        j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                    {"fmt", "e4m3"},
                                    {"quant_method", "fp8"},
                                    {"weight_block_size", ojson::array({fp8_block, fp8_block})}};
    }
    j["rms_norm_eps"] = 1e-06;
    j["rope_scaling"] = {{"beta_fast", 32},
                         {"beta_slow", 1},
                         {"factor", 40},
                         {"mscale", 1.0},
                         {"mscale_all_dim", 1.0},
                         {"original_max_position_embeddings", 4096},
                         {"type", "yarn"}};
    j["rope_theta"] = 10000;
    j["routed_scaling_factor"] = 2.5;
    j["scoring_func"] = "sigmoid";
    j["tie_word_embeddings"] = false;
    j["topk_group"] = d.topk_group;
    j["topk_method"] = "noaux_tc";
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.46.3";
    j["use_cache"] = true;
    j["v_head_dim"] = d.v;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// DeepSeek-V3: the MLA projections, the dense MLP and the shared experts.
std::vector<LoraTarget> deepseek2_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, ff = o.intermediate;
    const Ds2Dims d = ds2_dims(o);
    const std::int64_t nh = o.n_head;
    std::vector<LoraTarget> t = {{"q_a_proj", "self_attn", h, d.q_lora},
                                 {"q_b_proj", "self_attn", d.q_lora, nh * (d.nope + d.rope)},
                                 {"kv_a_proj_with_mqa", "self_attn", h, d.kv_lora + d.rope},
                                 {"kv_b_proj", "self_attn", d.kv_lora, nh * (d.nope + d.v)},
                                 {"o_proj", "self_attn", nh * d.v, h}};
    // the dense layer's MLP and the MoE layers' shared expert
    const bool dense = layer == 0;
    if (layer < 0 || dense) {
        t.insert(t.end(), {{"gate_proj", "mlp", h, ff}, {"up_proj", "mlp", h, ff}, {"down_proj", "mlp", ff, h}});
    }
    if (layer < 0 || !dense) {
        t.insert(t.end(), {{"gate_proj", "mlp.shared_experts", h, d.moe}, {"up_proj", "mlp.shared_experts", h, d.moe},
                           {"down_proj", "mlp.shared_experts", d.moe, h}});
    }
    return t;
}

// DeepSeek-V3 after the embedding: n_layer decoder layers (layer 0 dense), the final norm and lm_head, then the MTP
// layer model.layers.{n_layer} (a MoE decoder layer plus enorm, hnorm, eh_proj, shared_head, embed_tokens). Every
// Linear weight is F8_E4M3 followed by its F32 weight_scale_inv; norms, router and embeddings in o.dtype,
// e_score_correction_bias F32. Kimi-K2-Thinking's storage (KimiK2Int4): no MTP layer, the routed experts INT4
// (weight_packed, weight_scale, weight_shape), the other Linear weights in o.dtype.
void deepseek2_tensors(const DemoOptions& o, TensorList& add) {
    std::vector<DemoTensor>& ts = add.ts;
    const Ds2Dims d = ds2_dims(o);
    const std::int64_t h = o.hidden, nh = o.n_head;
    auto plain = [&](std::string name, core::Shape shape, Init init, double scale, core::DType dt) {
        ts.push_back({formats::StEntry{std::move(name), dt, std::move(shape)}, init, scale, Stored::None, {}, {}});
    };
    auto fp8 = [&](const std::string& name, core::Shape shape, double std_) {
        const std::string w = name + ".weight";
        ts.push_back({formats::StEntry{w, core::DType::F8_E4M3, shape}, Init::Normal, std_, Stored::Fp8Codes, {}, {}});
        const core::Shape grid{(shape[0] + fp8_block - 1) / fp8_block, (shape[1] + fp8_block - 1) / fp8_block};
        ts.push_back({formats::StEntry{name + ".weight_scale_inv", core::DType::F32, grid}, Init::Normal, std_,
                      Stored::Fp8Scales, w, shape});
    };
    const bool kimi = o.arch == DemoArch::KimiK2Int4;
    auto int4 = [&](const std::string& name, const core::Shape& shape, double std_) {
        const std::string w = name + ".weight";
        const auto stored = [&](const char* sfx, core::DType dt, core::Shape s, Stored kind) {
            ts.push_back({formats::StEntry{name + sfx, dt, std::move(s)}, Init::Normal, std_, kind, w, shape});
        };
        stored(".weight_packed", core::DType::I32, {shape[0], shape[1] / 8}, Stored::Int4Packed);
        stored(".weight_scale", core::DType::BF16, {shape[0], shape[1] / int4_group}, Stored::Int4Scales);
        stored(".weight_shape", core::DType::I64, {2}, Stored::Int4Shape);
    };
    auto linear = [&](const std::string& name, const core::Shape& shape, double std_) {
        if (kimi) plain(name + ".weight", shape, Init::Normal, std_, o.dtype);
        else fp8(name, shape, std_);
    };
    auto norm = [&](const std::string& name, std::int64_t n) { plain(name, {n}, Init::Norm, 0.05, o.dtype); };
    auto mlp = [&](const std::string& p, std::int64_t n_ff, bool routed = false) {
        for (const auto& [proj, shape] : {std::pair{"gate_proj", core::Shape{n_ff, h}},
                                          std::pair{"up_proj", core::Shape{n_ff, h}},
                                          std::pair{"down_proj", core::Shape{h, n_ff}}}) {
            if (routed && kimi) int4(p + proj, shape, 0.05);
            else linear(p + proj, shape, 0.05);
        }
    };
    auto layer = [&](const std::string& p, bool dense) {
        const std::string a = p + "self_attn.";
        linear(a + "q_a_proj", {d.q_lora, h}, 0.05);
        norm(a + "q_a_layernorm.weight", d.q_lora);
        linear(a + "q_b_proj", {nh * (d.nope + d.rope), d.q_lora}, 0.08);
        linear(a + "kv_a_proj_with_mqa", {d.kv_lora + d.rope, h}, 0.05);
        norm(a + "kv_a_layernorm.weight", d.kv_lora);
        linear(a + "kv_b_proj", {nh * (d.nope + d.v), d.kv_lora}, 0.08);
        linear(a + "o_proj", {h, nh * d.v}, 0.05);
        if (dense) {
            mlp(p + "mlp.", o.intermediate);
        } else {
            for (std::int64_t e = 0; e < d.n_expert; ++e) mlp(core::cat(p, "mlp.experts.", e, "."), d.moe, true);
            // router std 0.1 and a bias of a few hundredths: the group and expert choices are no near ties
            plain(p + "mlp.gate.weight", {d.n_expert, h}, Init::Normal, 0.1, o.dtype);
            plain(p + "mlp.gate.e_score_correction_bias", {d.n_expert}, Init::Normal, 0.05, core::DType::F32);
            mlp(p + "mlp.shared_experts.", d.moe);
        }
        norm(p + "input_layernorm.weight", h);
        norm(p + "post_attention_layernorm.weight", h);
    };
    for (int l = 0; l < o.n_layer; ++l) layer(core::cat("model.layers.", l, "."), l == 0);
    norm("model.norm.weight", h);
    plain("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
    if (kimi) return;
    const std::string m = core::cat("model.layers.", o.n_layer, ".");
    layer(m, false);
    plain(m + "embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
    norm(m + "enorm.weight", h);
    norm(m + "hnorm.weight", h);
    fp8(m + "eh_proj", {h, 2 * h}, 0.05);
    norm(m + "shared_head.norm.weight", h);
    plain(m + "shared_head.head.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
}
}  // namespace shardforge::model::detail
