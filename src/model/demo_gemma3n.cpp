// The Gemma 3n demo checkpoint (Gemma3nForConditionalGeneration as google/gemma-3n-E2B stores it): the text model under
// model.language_model.* (AltUp, LAuReL, per-layer embeddings, activation sparsity), a few tensors of the vision and
// audio towers beside it, config.json with text_config / vision_config / audio_config, and LoRA targets on every
// Linear of the decoder layers.
#include "demo_family.hpp"

namespace shardforge::model::detail {

namespace {

// Sizes llama.cpp's runtime hard-codes for gemma3n (src/llama-hparams.h, src/models/gemma3n.cpp): 4 AltUp inputs
// (the first active), LAuReL rank 64, per-layer input width 256, activation sparsity 0.95 on the first 10 layers,
// and KV computed by the first 20 layers (none shared in a demo of at most 20 layers).
constexpr int g3n_altup = 4, g3n_laurel_rank = 64, g3n_per_layer = 256, g3n_sparse_layers = 10,
              g3n_kv_layers = 20, g3n_sliding_window = 8;
// Sliding and full layers as Gemma 3n's 4:1 pattern, the last layer full
bool g3n_full(const DemoOptions& o, int l) { return l % 5 == 4 || l == o.n_layer - 1; }
int g3n_shared(const DemoOptions& o) { return o.n_layer > g3n_kv_layers ? o.n_layer - g3n_kv_layers : 0; }

ojson text_config(const DemoOptions& o, const DemoTokenizer& tok) {
    ojson j;
    j["activation_sparsity_pattern"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["activation_sparsity_pattern"].push_back(l < g3n_sparse_layers ? 0.95 : 0.0);
    j["altup_active_idx"] = 0;
    j["altup_coef_clip"] = 120.0;
    j["altup_correct_scale"] = true;
    j["altup_lr_multiplier"] = 1.0;
    j["altup_num_inputs"] = g3n_altup;
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = tok.eos_id;
    j["final_logit_softcapping"] = 30.0;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["hidden_size"] = o.hidden;
    j["hidden_size_per_layer_input"] = g3n_per_layer;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["intermediate_size"].push_back(o.intermediate);
    j["laurel_rank"] = g3n_laurel_rank;
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l)
        j["layer_types"].push_back(g3n_full(o, l) ? "full_attention" : "sliding_attention");
    j["max_position_embeddings"] = 32768;
    j["model_type"] = "gemma3n_text";
    j["num_attention_heads"] = o.n_head;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_kv_shared_layers"] = g3n_shared(o);
    j["pad_token_id"] = tok.eos_id;
    j["rms_norm_eps"] = 1e-06;
    j["rope_local_base_freq"] = 10000.0;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = 1000000.0;
    j["sliding_window"] = g3n_sliding_window;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["use_cache"] = true;
    j["vocab_size"] = o.vocab;
    j["vocab_size_per_layer_input"] = o.vocab;
    return j;
}

}  // namespace

// transformers' Gemma3nConfig as save_pretrained writes it (the towers' configs cut to a few keys: nothing here reads
// them).
std::string gemma3n_config(const DemoOptions& o, const DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({"Gemma3nForConditionalGeneration"});
    j["audio_config"] = {{"hidden_size", 16}, {"model_type", "gemma3n_audio"}, {"vocab_size", 128}};
    j["audio_soft_tokens_per_image"] = 188;
    j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id});
    j["initializer_range"] = 0.02;
    j["model_type"] = "gemma3n";
    j["text_config"] = text_config(o, tok);
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.53.0";
    j["vision_config"] = {{"hidden_size", 16}, {"model_type", "gemma3n_vision"}, {"vocab_size", 128}};
    j["vision_soft_tokens_per_image"] = 256;
    return j.dump(2) + "\n";
}

// Every Linear of a decoder layer (transformers' Gemma3nTextDecoderLayer): attention, MLP, LAuReL, the AltUp router
// and coefficients, the per-layer input gate and projection.
std::vector<LoraTarget> gemma3n_lora_targets(const DemoOptions& o, int layer) {
    (void)layer;
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, ff = o.intermediate, n = g3n_altup;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    return {{"q_proj", "self_attn", h, q},
            {"k_proj", "self_attn", h, kv},
            {"v_proj", "self_attn", h, kv},
            {"o_proj", "self_attn", q, h},
            {"gate_proj", "mlp", h, ff},
            {"up_proj", "mlp", h, ff},
            {"down_proj", "mlp", ff, h},
            {"linear_left", "laurel", h, g3n_laurel_rank},
            {"linear_right", "laurel", g3n_laurel_rank, h},
            {"modality_router", "altup", h, n},
            {"prediction_coefs", "altup", n, n * n},
            {"correction_coefs", "altup", n, n},
            {"per_layer_input_gate", "", h, g3n_per_layer},
            {"per_layer_projection", "", g3n_per_layer, h}};
}

// Gemma3nTextModel's state dict under model.language_model. (add holds model.embed_tokens.weight, renamed here), then
// one small tensor of each tower. Gemma3nRMSNorm uses its weight as is: norms around 1.
void gemma3n_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, ff = o.intermediate, n = g3n_altup;
    const std::int64_t ple = g3n_per_layer, r = g3n_laurel_rank;
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "self_attn.q_proj.weight", {o.n_head * hd, h}, Init::Normal, 0.02);
        add(p + "self_attn.k_proj.weight", {o.n_kv_head * hd, h}, Init::Normal, 0.02);
        add(p + "self_attn.v_proj.weight", {o.n_kv_head * hd, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.weight", {h, o.n_head * hd}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.k_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "mlp.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
        add(p + "mlp.up_proj.weight", {ff, h}, Init::Normal, 0.02);
        add(p + "mlp.down_proj.weight", {h, ff}, Init::Normal, 0.02);
        for (const char* nm : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                               "post_feedforward_layernorm"})
            add(core::cat(p, nm, ".weight"), {h}, Init::Norm, 0.05);
        add(p + "altup.correct_output_scale", {h}, Init::Normal, 0.3);
        add(p + "altup.correction_coefs.weight", {n, n}, Init::Normal, 0.1);
        add(p + "altup.prediction_coefs.weight", {n * n, n}, Init::Normal, 0.1);
        add(p + "altup.modality_router.weight", {n, h}, Init::Normal, 0.1);
        add(p + "altup.router_norm.weight", {h}, Init::Norm, 0.05);
        add(p + "laurel.linear_left.weight", {r, h}, Init::Normal, 0.05);
        add(p + "laurel.linear_right.weight", {h, r}, Init::Normal, 0.05);
        add(p + "laurel.post_laurel_norm.weight", {h}, Init::Norm, 0.05);
        add(p + "per_layer_input_gate.weight", {ple, h}, Init::Normal, 0.05);
        add(p + "per_layer_projection.weight", {h, ple}, Init::Normal, 0.05);
        add(p + "post_per_layer_input_norm.weight", {h}, Init::Norm, 0.05);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("model.embed_tokens_per_layer.weight", {o.vocab, o.n_layer * ple}, Init::Normal, 0.05);
    add("model.per_layer_model_projection.weight", {o.n_layer * ple, h}, Init::Normal, 0.05);
    add("model.per_layer_projection_norm.weight", {ple}, Init::Norm, 0.05);
    for (const char* nm : {"altup_projections", "altup_unembed_projections"})
        for (int i = 0; i < n - 1; ++i) add(core::cat("model.", nm, ".", i, ".weight"), {h, h}, Init::Normal, 0.05);
    for (DemoTensor& t : add.ts) {
        std::string& name = t.entry.name;
        if (name.rfind("model.", 0) == 0) name = "model.language_model." + name.substr(6);
    }
    // the towers (never part of the text GGUF): one tensor each of MobileNetV5, the Conformer and both embedders
    add("model.vision_tower.timm_model.conv_stem.conv.weight", {16, 3, 3, 3}, Init::Normal, 0.1);
    add("model.embed_vision.embedding_projection.weight", {h, 16}, Init::Normal, 0.1);
    add("model.audio_tower.subsample_conv_projection.conv_0.conv.weight", {16, 1, 3, 3}, Init::Normal, 0.1);
    add("model.embed_audio.embedding_projection.weight", {h, 16}, Init::Normal, 0.1);
}

}  // namespace shardforge::model::detail
