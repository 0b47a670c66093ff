// The Mistral 3 (Mistral Small 3.1, Mistral3ForConditionalGeneration) demo checkpoint: the Pixtral tower, projector
// and the text model under language_model.
#include "demo_family.hpp"

#include <algorithm>

namespace shardforge::model::detail {

namespace {

// Mistral3's Pixtral vision tower: one small layer (its tensors are written, and skipped by the GGUF conversion).
constexpr int demo_vision_hidden = 64, demo_vision_intermediate = 128, demo_vision_heads = 4, demo_vision_patch = 4,
              demo_vision_image = 32;

}  // namespace

// Mistral3ForConditionalGeneration (Mistral Small 3.1): transformers' Mistral3Config with a Mistral text config
// and a Pixtral vision config, keys as in the published config.json.
std::string mistral3_config_json(const DemoOptions& o) {
    const int hd = o.hidden / o.n_head;
    ojson text;
    text["attention_dropout"] = 0.0;
    text["head_dim"] = hd;
    text["hidden_act"] = "silu";
    text["hidden_size"] = o.hidden;
    text["initializer_range"] = 0.02;
    text["intermediate_size"] = o.intermediate;
    text["max_position_embeddings"] = 2048;
    text["model_type"] = "mistral";
    text["num_attention_heads"] = o.n_head;
    text["num_hidden_layers"] = o.n_layer;
    text["num_key_value_heads"] = o.n_kv_head;
    text["rms_norm_eps"] = 1e-05;
    text["rope_theta"] = arch_row(DemoArch::Mistral3).rope_theta;
    text["sliding_window"] = nullptr;
    text["tie_word_embeddings"] = tied(o);
    text["use_cache"] = true;
    text["vocab_size"] = o.vocab;
    ojson vision;
    vision["attention_dropout"] = 0.0;
    vision["head_dim"] = demo_vision_hidden / demo_vision_heads;
    vision["hidden_act"] = "silu";
    vision["hidden_size"] = demo_vision_hidden;
    vision["image_size"] = demo_vision_image;
    vision["initializer_range"] = 0.02;
    vision["intermediate_size"] = demo_vision_intermediate;
    vision["model_type"] = "pixtral";
    vision["num_attention_heads"] = demo_vision_heads;
    vision["num_channels"] = 3;
    vision["num_hidden_layers"] = 1;
    vision["patch_size"] = demo_vision_patch;
    vision["rope_theta"] = 10000.0;
    ojson j;
    j["architectures"] = ojson::array({"Mistral3ForConditionalGeneration"});
    j["image_token_index"] = 10;
    j["model_type"] = "mistral3";
    j["multimodal_projector_bias"] = false;
    j["projector_hidden_act"] = "gelu";
    j["spatial_merge_size"] = 2;
    j["text_config"] = std::move(text);
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.50.0.dev0";
    j["vision_config"] = std::move(vision);
    j["vision_feature_layer"] = -1;
    return j.dump(2) + "\n";
}

// Mistral3ForConditionalGeneration as its checkpoints store it (the names before transformers 4.52's
// _checkpoint_conversion_mapping): the Pixtral tower "vision_tower.*", the projector "multi_modal_projector.*", then
// the text model under "language_model.model.*" and "language_model.lm_head.weight"; state-dict order.
std::vector<DemoTensor> mistral3_layout(std::vector<DemoTensor> text, const DemoOptions& o) {
    const std::int64_t vh = demo_vision_hidden, vi = demo_vision_intermediate, p = demo_vision_patch;
    std::vector<DemoTensor> ts;
    auto add = [&](std::string name, core::Shape shape, Init init, double scale) {
        ts.push_back({formats::StEntry{std::move(name), o.dtype, std::move(shape)}, init, scale, Stored::None, {}, {}});
    };
    add("vision_tower.patch_conv.weight", {vh, 3, p, p}, Init::Normal, 0.02);
    add("vision_tower.ln_pre.weight", {vh}, Init::Norm, 0.05);
    const std::string l = "vision_tower.transformer.layers.0.";
    add(l + "attention_norm.weight", {vh}, Init::Norm, 0.05);
    add(l + "feed_forward.gate_proj.weight", {vi, vh}, Init::Normal, 0.02);
    add(l + "feed_forward.up_proj.weight", {vi, vh}, Init::Normal, 0.02);
    add(l + "feed_forward.down_proj.weight", {vh, vi}, Init::Normal, 0.02);
    for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"})
        add(core::cat(l, "attention.", w, ".weight"), {vh, vh}, Init::Normal, 0.02);
    add(l + "ffn_norm.weight", {vh}, Init::Norm, 0.05);
    add("multi_modal_projector.norm.weight", {vh}, Init::Norm, 0.05);
    add("multi_modal_projector.patch_merger.merging_layer.weight", {vh, vh * 4}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_1.weight", {o.hidden, vh}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_2.weight", {o.hidden, o.hidden}, Init::Normal, 0.02);
    for (DemoTensor& t : text) {
        std::string& n = t.entry.name;
        n = n == "lm_head.weight" ? "language_model.lm_head.weight" : "language_model." + n;
        ts.push_back(std::move(t));
    }
    return ts;
}
}  // namespace shardforge::model::detail
