// The gpt-oss demo checkpoints (16-bit and MXFP4 experts): config.json, chat template and tensors.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

// GptOssConfig's keys (transformers' configuration_gpt_oss.py) as openai/gpt-oss-20b's config.json writes them:
// alternating sliding / full attention layers (sliding first), yarn rope over a 4096-token original context,
// experts of size intermediate / 2.
std::string gpt_oss_config(const DemoOptions& o, const DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({"GptOssForCausalLM"});
    j["attention_bias"] = true;
    j["attention_dropout"] = 0.0;
    j["eos_token_id"] = tok.eos_id;
    j["experts_per_token"] = o.n_expert_used;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initial_context_length"] = 4096;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = moe_ff(o);
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["layer_types"].push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
    j["max_position_embeddings"] = 131072;
    j["model_type"] = "gpt_oss";
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_local_experts"] = o.n_expert;
    j["output_router_logits"] = false;
    j["pad_token_id"] = tok.eos_id;
    if (o.arch == DemoArch::GptOssMxfp4)
        j["quantization_config"] = {{"modules_to_not_convert", ojson::array({"model.layers.*.self_attn",
                                                                            "model.layers.*.mlp.router",
                                                                            "model.embed_tokens", "lm_head"})},
                                    {"quant_method", "mxfp4"}};
    j["rms_norm_eps"] = 1e-05;
    j["rope_scaling"] = {{"beta_fast", 32.0},
                         {"beta_slow", 1.0},
                         {"factor", 32.0},
                         {"original_max_position_embeddings", 4096},
                         {"rope_type", "yarn"},
                         {"truncate", false}};
    j["rope_theta"] = arch_row(DemoArch::GptOss).rope_theta;
    j["router_aux_loss_coef"] = 0.9;
    j["sliding_window"] = demo_sliding_window;
    j["swiglu_limit"] = 7.0;
    j["tie_word_embeddings"] = false;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.55.0.dev0";
    j["use_cache"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// A harmony-format chat template (openai/gpt-oss ships its template as chat_template.jinja): every message as
// <|start|>{role}<|message|>{content}<|end|>, the generation prompt <|start|>assistant.
const char* const harmony_chat_template =
    "{#- harmony format, shortened for the demo -#}\n"
    "{%- for message in messages -%}\n"
    "{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}\n";


// GptOssForCausalLM after the embedding, as transformers' modeling_gpt_oss.py names and shapes its parameters (the
// 16-bit layout: GptOssExperts keeps gate_up_proj [E, hidden, 2 * ff] with gate and up interleaved in the last dim,
// down_proj [E, ff, hidden], and their biases); attention with biases and per-head sinks, router with a bias.
void gpt_oss_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t h = o.hidden, ff = moe_ff(o), hd = o.hidden / o.n_head, e = o.n_expert;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        if (o.arch == DemoArch::GptOssMxfp4) {  // [E, out, in / 32, 16] blocks, [E, out, in / 32] scales
            add.u8(p + "mlp.experts.down_proj_blocks", {e, h, ff / 32, 16}, Init::Mxfp4Blocks);
            add(p + "mlp.experts.down_proj_bias", {e, h}, Init::Normal, 0.1);
            add.u8(p + "mlp.experts.down_proj_scales", {e, h, ff / 32}, Init::Mxfp4Scales);
            add.u8(p + "mlp.experts.gate_up_proj_blocks", {e, 2 * ff, h / 32, 16}, Init::Mxfp4Blocks);
            add(p + "mlp.experts.gate_up_proj_bias", {e, 2 * ff}, Init::Normal, 0.1);
            add.u8(p + "mlp.experts.gate_up_proj_scales", {e, 2 * ff, h / 32}, Init::Mxfp4Scales);
        } else {
            add(p + "mlp.experts.down_proj", {e, ff, h}, Init::Normal, 0.02);
            add(p + "mlp.experts.down_proj_bias", {e, h}, Init::Normal, 0.1);
            add(p + "mlp.experts.gate_up_proj", {e, h, 2 * ff}, Init::Normal, 0.05);
            add(p + "mlp.experts.gate_up_proj_bias", {e, 2 * ff}, Init::Normal, 0.1);
        }
        add(p + "mlp.router.bias", {e}, Init::Normal, 0.1);
        add(p + "mlp.router.weight", {e, h}, Init::Normal, 0.1);  // routing logits of a few units
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
        // Biases large enough (0.1) that dropping one is visible in the logits; sinks of about one logit.
        add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.bias", {h}, Init::Normal, 0.1);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        add(p + "self_attn.sinks", {o.n_head}, Init::Normal, 1.0);
        add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
}
}  // namespace shardforge::model::detail
