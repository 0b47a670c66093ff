// The Llama 4 demo checkpoint (Llama4ForConditionalGeneration, Maverick's layout): config.json with text_config and
// vision_config, the vision tower and projector, the text model under language_model., and the LoRA targets.
#include "demo_family.hpp"

namespace shardforge::model::detail {

namespace {

// Llama4VisionModel: one small layer (its tensors are written, and skipped by the text GGUF conversion).
constexpr int demo_vision_hidden = 64, demo_vision_intermediate = 128, demo_vision_heads = 4, demo_vision_patch = 4,
              demo_vision_image = 16, demo_vision_output = 128;
constexpr int demo_llama4_moe_step = 2;  // Maverick: every other layer is MoE (layers 1, 3, ...)

bool moe_layer(int l) { return (l + 1) % demo_llama4_moe_step == 0; }

}  // namespace

// transformers' Llama4Config (configuration_llama4.py) as meta-llama/Llama-4-Maverick-17B-128E's config.json writes
// it: text_config (Llama4TextConfig) and vision_config (Llama4VisionConfig). The chunk size (8192), the NoPE layers
// (every 4th), the temperature tuning (floor 8192, scale 0.1) and the QK L2 norm are the values llama.cpp's llama4
// hard-codes (src/models/llama4.cpp; it uses the L2 norm unless the model has 128 experts), so the demo's HF model and
// llama.cpp compute the same function.
std::string llama4_config(const DemoOptions& o, const DemoTokenizer& tok) {
    const int hd = o.hidden / o.n_head;
    ojson text;
    text["attention_bias"] = false;
    text["attention_chunk_size"] = 8192;
    text["attention_dropout"] = 0.0;
    text["attn_scale"] = 0.1;
    text["attn_temperature_tuning"] = true;
    text["bos_token_id"] = tok.bos_id;
    text["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id});
    text["floor_scale"] = 8192;
    text["for_llm_compressor"] = false;
    text["head_dim"] = hd;
    text["hidden_act"] = "silu";
    text["hidden_size"] = o.hidden;
    text["initializer_range"] = 0.02;
    text["interleave_moe_layer_step"] = demo_llama4_moe_step;
    text["intermediate_size"] = moe_ff(o);
    text["intermediate_size_mlp"] = o.intermediate;
    text["max_position_embeddings"] = 1048576;
    text["model_type"] = "llama4_text";
    text["moe_layers"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l)
        if (moe_layer(l)) text["moe_layers"].push_back(l);
    text["no_rope_layers"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) text["no_rope_layers"].push_back((l + 1) % 4 != 0 ? 1 : 0);
    text["num_attention_heads"] = o.n_head;
    text["num_experts_per_tok"] = o.n_expert_used;
    text["num_hidden_layers"] = o.n_layer;
    text["num_key_value_heads"] = o.n_kv_head;
    text["num_local_experts"] = o.n_expert;
    text["output_router_logits"] = false;
    text["pad_token_id"] = tok.eos_id;
    text["rms_norm_eps"] = 1e-05;
    // Scout's llama3 rope scaling (low = high frequency factor): the converter writes it as rope_freqs.weight
    text["rope_scaling"] = {{"factor", 16.0},
                            {"high_freq_factor", 1.0},
                            {"low_freq_factor", 1.0},
                            {"original_max_position_embeddings", 8192},
                            {"rope_type", "llama3"}};
    text["rope_theta"] = 500000.0;
    text["router_aux_loss_coef"] = 0.001;
    text["router_jitter_noise"] = 0.0;
    text["torch_dtype"] = torch_dtype(o.dtype);
    text["use_cache"] = true;
    text["use_qk_norm"] = true;
    text["vocab_size"] = o.vocab;
    ojson vision;
    vision["attention_dropout"] = 0.0;
    vision["hidden_act"] = "gelu";
    vision["hidden_size"] = demo_vision_hidden;
    vision["image_size"] = demo_vision_image;
    vision["initializer_range"] = 0.02;
    vision["intermediate_layers_indices"] = ojson::array();
    vision["intermediate_size"] = demo_vision_intermediate;
    vision["model_type"] = "llama4_vision_model";
    vision["multi_modal_projector_bias"] = false;
    vision["norm_eps"] = 1e-05;
    vision["num_attention_heads"] = demo_vision_heads;
    vision["num_channels"] = 3;
    vision["num_hidden_layers"] = 1;
    vision["patch_size"] = demo_vision_patch;
    vision["pixel_shuffle_ratio"] = 0.5;
    vision["projector_dropout"] = 0.0;
    vision["projector_input_dim"] = demo_vision_output;
    vision["projector_output_dim"] = demo_vision_output;
    vision["rope_theta"] = 10000;
    vision["vision_feature_layer"] = -1;
    vision["vision_feature_select_strategy"] = "default";
    vision["vision_output_dim"] = demo_vision_output;
    ojson j;
    j["architectures"] = ojson::array({"Llama4ForConditionalGeneration"});
    j["boi_token_index"] = o.vocab - 3;
    j["eoi_token_index"] = o.vocab - 2;
    j["image_token_index"] = o.vocab - 1;
    j["model_type"] = "llama4";
    j["text_config"] = std::move(text);
    j["tie_word_embeddings"] = false;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.51.0.dev0";
    j["vision_config"] = std::move(vision);
    return j.dump(2) + "\n";
}

// Llama4ForConditionalGeneration as its checkpoints store it: the vision tower "vision_model.*", the projector
// "multi_modal_projector.linear_1", then the text model under "language_model.model.*" and
// "language_model.lm_head.weight". A MoE layer holds the fused experts (gate_up_proj [E, hidden, 2 * ff],
// down_proj [E, ff, hidden]: Parameters, not Linear), the router and the shared expert; a dense layer the MLP of
// size intermediate_size_mlp.
void llama4_tensors(const DemoOptions& o, TensorList& add) {
    const std::int64_t vh = demo_vision_hidden, vi = demo_vision_intermediate, p = demo_vision_patch;
    const std::int64_t n_patches = (demo_vision_image / p) * (demo_vision_image / p);
    // the vision tower first: add(...) appends, so rebuild the list with the text tensors after it
    TensorList text{add.dtype, std::move(add.ts)};
    add.ts.clear();
    add("vision_model.class_embedding", {vh}, Init::Normal, 0.02);
    add("vision_model.positional_embedding_vlm", {n_patches + 1, vh}, Init::Normal, 0.02);
    add("vision_model.patch_embedding.linear.weight", {vh, 3 * p * p}, Init::Normal, 0.02);
    add("vision_model.layernorm_pre.weight", {vh}, Init::Norm, 0.05);
    add("vision_model.layernorm_pre.bias", {vh}, Init::Normal, 0.02);
    add("vision_model.layernorm_post.weight", {vh}, Init::Norm, 0.05);
    add("vision_model.layernorm_post.bias", {vh}, Init::Normal, 0.02);
    const std::string l = "vision_model.model.layers.0.";
    for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
        add(core::cat(l, "self_attn.", w, ".weight"), {vh, vh}, Init::Normal, 0.02);
        add(core::cat(l, "self_attn.", w, ".bias"), {vh}, Init::Normal, 0.02);
    }
    add(l + "mlp.fc1.weight", {vi, vh}, Init::Normal, 0.02);
    add(l + "mlp.fc1.bias", {vi}, Init::Normal, 0.02);
    add(l + "mlp.fc2.weight", {vh, vi}, Init::Normal, 0.02);
    add(l + "mlp.fc2.bias", {vh}, Init::Normal, 0.02);
    add(l + "input_layernorm.weight", {vh}, Init::Norm, 0.05);
    add(l + "input_layernorm.bias", {vh}, Init::Normal, 0.02);
    add(l + "post_attention_layernorm.weight", {vh}, Init::Norm, 0.05);
    add(l + "post_attention_layernorm.bias", {vh}, Init::Normal, 0.02);
    // pixel shuffle (ratio 0.5) makes 4 * vh features; the adapter MLP maps them to the projector's input
    add("vision_model.vision_adapter.mlp.fc1.weight", {demo_vision_output, 4 * vh}, Init::Normal, 0.02);
    add("vision_model.vision_adapter.mlp.fc2.weight", {demo_vision_output, demo_vision_output}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_1.weight", {o.hidden, demo_vision_output}, Init::Normal, 0.02);

    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, q = o.n_head * hd, kv = o.n_kv_head * hd;
    const std::int64_t ff = o.intermediate, ffe = moe_ff(o), E = o.n_expert;
    for (DemoTensor& t : text.ts) {  // model.embed_tokens.weight (demo.cpp adds it first)
        t.entry.name = "language_model." + t.entry.name;
        add.ts.push_back(std::move(t));
    }
    for (int layer = 0; layer < o.n_layer; ++layer) {
        const std::string pre = core::cat("language_model.model.layers.", layer, ".");
        add(pre + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        add(pre + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(pre + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(pre + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        const std::string f = pre + "feed_forward.";
        if (moe_layer(layer)) {
            add(f + "experts.gate_up_proj", {E, h, 2 * ffe}, Init::Normal, 0.02);
            add(f + "experts.down_proj", {E, ffe, h}, Init::Normal, 0.02);
            // Router std 0.1: routing logits of a few units, so the top-k choice is not a near tie.
            add(f + "router.weight", {E, h}, Init::Normal, 0.1);
            add(f + "shared_expert.gate_proj.weight", {ffe, h}, Init::Normal, 0.02);
            add(f + "shared_expert.up_proj.weight", {ffe, h}, Init::Normal, 0.02);
            add(f + "shared_expert.down_proj.weight", {h, ffe}, Init::Normal, 0.02);
        } else {
            add(f + "gate_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(f + "up_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(f + "down_proj.weight", {h, ff}, Init::Normal, 0.02);
        }
        add(pre + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        add(pre + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
    }
    add("language_model.model.norm.weight", {h}, Init::Norm, 0.05);
    add("language_model.lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
}

// PEFT's Linear modules of the text model: attention, the dense layers' MLP and the MoE layers' shared expert (the
// fused experts are Parameters, which target_modules does not wrap).
std::vector<LoraTarget> llama4_lora_targets(const DemoOptions& o, int layer) {
    const std::int64_t h = o.hidden, hd = o.hidden / o.n_head, q = o.n_head * hd, kv = o.n_kv_head * hd;
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                 {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
    if (layer < 0 || !moe_layer(layer)) {
        const std::int64_t ff = o.intermediate;
        t.push_back({"gate_proj", "feed_forward", h, ff});
        t.push_back({"up_proj", "feed_forward", h, ff});
        t.push_back({"down_proj", "feed_forward", ff, h});
    } else {
        const std::int64_t ff = moe_ff(o);
        t.push_back({"gate_proj", "feed_forward.shared_expert", h, ff});
        t.push_back({"up_proj", "feed_forward.shared_expert", h, ff});
        t.push_back({"down_proj", "feed_forward.shared_expert", ff, h});
    }
    return t;
}

}  // namespace shardforge::model::detail
