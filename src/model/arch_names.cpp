// HF -> GGUF tensor names: gguf-py's tensor_mapping.py resolved against MODEL_TENSORS[arch] (llama.cpp's gguf-py/gguf/
// constants.py) for the families we convert, and the converter's multimodal filter.
#include "arch_planner.hpp"

namespace shardforge::model::detail {
namespace {

// ---------------------------------------------------------------- name map (gguf-py tensor_mapping.py, resolved
// against MODEL_TENSORS[arch]; llama.cpp's convert_hf_to_gguf.py table)
using Mask = unsigned;
constexpr Mask bit(Family f) { return 1u << static_cast<unsigned>(f); }
constexpr Mask qwen35 = bit(Family::Qwen35) | bit(Family::Qwen35Moe);  // both Qwen3.5 families
// Qwen3-Next and the Qwen3.5 families: gated delta-net + full attention layers, one tensor list (constants.py)
constexpr Mask hybrid = qwen35 | bit(Family::Qwen3Next);
constexpr Mask llama_like = bit(Family::Llama) | bit(Family::Mistral3);  // same tensor list in constants.py
constexpr Mask glm4moe = bit(Family::Glm4Moe);
constexpr Mask gemma4 = bit(Family::Gemma4);
constexpr Mask ds2 = bit(Family::DeepSeek2);
constexpr Mask minimax = bit(Family::MiniMaxM2);
constexpr Mask llama4 = bit(Family::Llama4);
constexpr Mask gemma3n = bit(Family::Gemma3n);
constexpr Mask ple = gemma4 | gemma3n;  // per-layer embeddings
constexpr Mask all_families = llama_like | bit(Family::Qwen2) | bit(Family::Qwen2Moe) | bit(Family::Qwen3) |
                              bit(Family::Qwen3Moe) | bit(Family::Gemma) | bit(Family::Gemma2) |
                              bit(Family::Gemma3) | bit(Family::Phi3) | hybrid | glm4moe | gemma4 | ds2 | bit(Family::GptOss) |
                              minimax | llama4 | gemma3n;
constexpr Mask moe = llama_like | bit(Family::Qwen2Moe) | bit(Family::Qwen3Moe) | bit(Family::Qwen35Moe) |
                     bit(Family::Qwen3Next) | glm4moe | ds2 | bit(Family::GptOss) | minimax;
constexpr Mask shared_experts = bit(Family::Qwen2Moe) | bit(Family::Qwen35Moe) | bit(Family::Qwen3Next);
// Gemma 3n and 4 keep Gemma 2/3's norms
constexpr Mask gemma23 = bit(Family::Gemma2) | bit(Family::Gemma3) | gemma4 | gemma3n;
// MiniMax-M2's q/k norms span all heads ([n_head * head_dim], [n_kv_head * head_dim]); same GGUF names
constexpr Mask qk_norm = bit(Family::Qwen3) | bit(Family::Qwen3Moe) | bit(Family::Gemma3) | hybrid | glm4moe | gemma4 |
                        minimax | gemma3n;
constexpr Mask dense_gate = llama_like | bit(Family::Qwen2) | bit(Family::Qwen3) | bit(Family::Gemma) |
                            bit(Family::Gemma2) | bit(Family::Gemma3) | bit(Family::Qwen35) | glm4moe | gemma4 | ds2 |
                            gemma3n;
constexpr Mask dense_ffn = dense_gate | bit(Family::Phi3);
// qwen35, qwen3next, glm4moe and gpt-oss list ATTN_POST_NORM, not FFN_NORM (gguf-py constants.py MODEL_TENSORS)
constexpr Mask ffn_norm_families = all_families & ~gemma23 & ~hybrid & ~glm4moe & ~bit(Family::GptOss);
constexpr Mask nextn = hybrid | glm4moe;  // NEXTN_* tensors

struct NameRow {
    std::string_view hf;    // after "model.layers.N." (or the whole name for global tensors)
    std::string_view gguf;  // after "blk.N." (or the whole name)
    Mask families;
};
constexpr NameRow global_names[] = {
    {"model.embed_tokens", "token_embd", all_families},
    {"lm_head", "output", all_families & ~(bit(Family::Gemma) | bit(Family::Gemma2))},
    {"model.norm", "output_norm", all_families},
    // Gemma 3n's and Gemma 4's per-layer embeddings (gguf-py's PER_LAYER_* tensors)
    {"model.embed_tokens_per_layer", "per_layer_token_embd", ple},
    {"model.per_layer_model_projection", "per_layer_model_proj", ple},
    {"model.per_layer_projection_norm", "per_layer_proj_norm", ple},
    // Gemma 3n's AltUp projections, stacked by Gemma3NModel.modify_tensors
    {"model.altup_projections", "altup_proj", gemma3n},
    {"model.altup_unembed_projections", "altup_unembd_proj", gemma3n},
};
constexpr NameRow layer_names[] = {
    {"input_layernorm", "attn_norm", all_families},
    {"self_attn.q_proj", "attn_q", all_families},
    {"self_attn.k_proj", "attn_k", all_families},
    {"self_attn.v_proj", "attn_v", all_families},
    {"self_attn.o_proj", "attn_output", all_families},
    {"self_attn.qkv_proj", "attn_qkv", all_families & ~ds2},
    {"self_attn.q_norm", "attn_q_norm", qk_norm},
    {"self_attn.k_norm", "attn_k_norm", qk_norm},
    {"post_attention_layernorm", "ffn_norm", ffn_norm_families},
    {"post_attention_layernorm", "post_attention_norm", gemma23 | hybrid | glm4moe | bit(Family::GptOss)},
    {"pre_feedforward_layernorm", "ffn_norm", gemma23},
    {"post_feedforward_layernorm", "post_ffw_norm", gemma23},
    {"mlp.gate_proj", "ffn_gate", dense_gate},
    {"mlp.up_proj", "ffn_up", dense_ffn},
    {"mlp.down_proj", "ffn_down", dense_ffn},
    // Phi-3's fused gate|up stays fused as ffn_up (llama.cpp phi3 splits it at run time). Upstream maps it for
    // other families too, where llama.cpp could not load the result: refused there.
    {"mlp.gate_up_proj", "ffn_up", bit(Family::Phi3)},
    {"block_sparse_moe.gate", "ffn_gate_inp", moe},
    {"mlp.gate", "ffn_gate_inp", moe},
    // stacked experts (names made by the stacking step below)
    {"mlp.experts.gate_proj", "ffn_gate_exps", moe},
    {"mlp.experts.up_proj", "ffn_up_exps", moe},
    {"mlp.experts.down_proj", "ffn_down_exps", moe},
    {"block_sparse_moe.experts.w1", "ffn_gate_exps", moe},
    {"block_sparse_moe.experts.w2", "ffn_down_exps", moe},
    {"block_sparse_moe.experts.w3", "ffn_up_exps", moe},
    {"mlp.shared_expert.gate_proj", "ffn_gate_shexp", shared_experts},
    {"mlp.shared_expert.up_proj", "ffn_up_shexp", shared_experts},
    {"mlp.shared_expert.down_proj", "ffn_down_shexp", shared_experts},
    {"mlp.shared_experts.gate_proj", "ffn_gate_shexp", glm4moe | ds2},
    {"mlp.shared_experts.up_proj", "ffn_up_shexp", glm4moe | ds2},
    {"mlp.shared_experts.down_proj", "ffn_down_shexp", glm4moe | ds2},
    // the router's bias, after filter_tensors renamed e_score_correction_bias to e_score_correction.bias
    {"mlp.gate.e_score_correction", "exp_probs_b", glm4moe | ds2},
    {"block_sparse_moe.e_score_correction", "exp_probs_b", minimax},
    // gated delta-net (linear attention) layers; dt_bias is renamed to dt_proj.bias before the lookup
    {"linear_attn.in_proj_qkv", "attn_qkv", hybrid},
    {"linear_attn.in_proj_z", "attn_gate", hybrid},
    {"linear_attn.in_proj_a", "ssm_alpha", qwen35},
    {"linear_attn.in_proj_b", "ssm_beta", qwen35},
    {"linear_attn.A_log", "ssm_a", hybrid},
    {"linear_attn.dt_proj", "ssm_dt", hybrid},
    {"linear_attn.conv1d", "ssm_conv1d", hybrid},
    {"linear_attn.norm", "ssm_norm", hybrid},
    {"linear_attn.out_proj", "ssm_out", hybrid},
    {"linear_attn.in_proj_ba", "ssm_ba", bit(Family::Qwen3Next)},  // SSM_BETA_ALPHA
    // multi-token-prediction block, renumbered after the decoder layers (llama.cpp's conversion/qwen.py _QwenMtpMixin;
    // glm4moe's checkpoints number it so already)
    {"eh_proj", "nextn.eh_proj", nextn},
    {"enorm", "nextn.enorm", nextn},
    {"hnorm", "nextn.hnorm", nextn},
    {"shared_head.norm", "nextn.shared_head_norm", nextn},
    {"embed_tokens", "nextn.embed_tokens", nextn},
    {"shared_head.head", "nextn.shared_head_head", nextn},
    // Gemma 4 (gguf-py tensor_mapping.py "# gemma4" and "# gemma3n" rows): the MoE block beside the dense MLP,
    // the layer output scalar (renamed to .weight first) and the per-layer input gate and projection
    {"pre_feedforward_layernorm_2", "pre_ffw_norm_2", gemma4},
    {"post_feedforward_layernorm_1", "post_ffw_norm_1", gemma4},
    {"post_feedforward_layernorm_2", "post_ffw_norm_2", gemma4},
    {"router.proj", "ffn_gate_inp", gemma4},
    {"experts.gate_up_proj", "ffn_gate_up_exps", gemma4},
    {"experts.down_proj", "ffn_down_exps", gemma4},
    {"layer_scalar", "layer_output_scale", gemma4},
    {"per_layer_input_gate", "inp_gate", ple},
    {"per_layer_projection", "proj", ple},
    {"post_per_layer_input_norm", "post_norm", ple},
    // DeepSeek-V2/V3 multi-head latent attention, routing bias and shared experts (gguf-py tensor_mapping.py); k_b_proj /
    // v_b_proj are the converter's names for the two halves of kv_b_proj
    {"self_attn.q_a_proj", "attn_q_a", ds2},
    {"self_attn.q_a_layernorm", "attn_q_a_norm", ds2},
    {"self_attn.q_b_proj", "attn_q_b", ds2},
    {"self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa", ds2},
    {"self_attn.kv_a_layernorm", "attn_kv_a_norm", ds2},
    {"self_attn.k_b_proj", "attn_k_b", ds2},
    {"self_attn.v_b_proj", "attn_v_b", ds2},
    // gpt-oss (openai-moe in tensor_mapping.py): the router and the attention sinks ("self_attn.sinks.weight" after
    // GptOssModel.filter_tensors)
    {"mlp.router", "ffn_gate_inp", bit(Family::GptOss)},
    {"self_attn.sinks", "attn_sinks", bit(Family::GptOss)},
    // Llama 4 (gguf-py tensor_mapping.py "# llama4" rows): the dense layers' MLP, the router, the shared expert and the
    // halves of the fused experts (named by Llama4Model.modify_tensors)
    {"feed_forward.gate_proj", "ffn_gate", llama4},
    {"feed_forward.up_proj", "ffn_up", llama4},
    {"feed_forward.down_proj", "ffn_down", llama4},
    {"feed_forward.router", "ffn_gate_inp", llama4},
    {"feed_forward.experts.gate_proj", "ffn_gate_exps", llama4},
    {"feed_forward.experts.up_proj", "ffn_up_exps", llama4},
    {"feed_forward.experts.down_proj", "ffn_down_exps", llama4},
    {"feed_forward.shared_expert.gate_proj", "ffn_gate_shexp", llama4},
    {"feed_forward.shared_expert.up_proj", "ffn_up_shexp", llama4},
    {"feed_forward.shared_expert.down_proj", "ffn_down_shexp", llama4},
    // Gemma 3n (gguf-py tensor_mapping.py "# gemma3n" rows): AltUp (correct_output_scale renamed to .weight first) and
    // LAuReL
    {"altup.correction_coefs", "altup_correct_coef", gemma3n},
    {"altup.correct_output_scale", "altup_correct_scale", gemma3n},
    {"altup.prediction_coefs", "altup_predict_coef", gemma3n},
    {"altup.modality_router", "altup_router", gemma3n},
    {"altup.router_norm", "altup_router_norm", gemma3n},
    {"laurel.linear_left", "laurel_l", gemma3n},
    {"laurel.linear_right", "laurel_r", gemma3n},
    {"laurel.post_laurel_norm", "laurel_post_norm", gemma3n},
};
constexpr NameRow shexp_gate{"mlp.shared_expert_gate", "ffn_gate_inp_shexp", shared_experts};

// A name without either suffix is looked up as is (qwen35's linear_attn.A_log -> blk.N.ssm_a).
}  // namespace

std::string map_tensor_name(Family f, const std::string& name) {
    std::string_view base = name, suffix;
    if (ends_with(name, ".weight")) suffix = ".weight";
    else if (ends_with(name, ".bias")) suffix = ".bias";
    base.remove_suffix(suffix.size());
    for (const NameRow& r : global_names)
        if ((r.families & bit(f)) && base == r.hf) return core::cat(r.gguf, suffix);
    constexpr std::string_view layers = "model.layers.";
    if (!starts_with(base, layers)) return {};
    std::string_view rest = base.substr(layers.size());
    std::size_t n_digits = 0;
    while (n_digits < rest.size() && rest[n_digits] >= '0' && rest[n_digits] <= '9') ++n_digits;
    if (n_digits == 0 || n_digits >= rest.size() || rest[n_digits] != '.') return {};
    const std::string_view bid = rest.substr(0, n_digits);
    rest.remove_prefix(n_digits + 1);
    auto hit = [&](const NameRow& r) { return (r.families & bit(f)) && rest == r.hf; };
    for (const NameRow& r : layer_names)
        if (hit(r)) return core::cat("blk.", bid, ".", r.gguf, suffix);
    if (hit(shexp_gate)) return core::cat("blk.", bid, ".", shexp_gate.gguf, suffix);
    return {};
}

bool is_multimodal(std::string_view n) {
    for (std::string_view p : {"mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.",
                               "sound_encoder.", "sound_projection.", "speech_embeddings."})
        if (starts_with(n, p)) return true;
    for (std::string_view p : {"visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.",
                               "code2wav.", "projector.", "pre_mm_projector_norm", "image_newline",
                               "view_seperator", "patch_embed", "patch_embedding", "patch_merger.",
                               "patch_merge_mlp.", "model.connector."})
        if (contains(n, p)) return true;
    return false;
}

}  // namespace shardforge::model::detail
