// The Mistral 3 (Mistral Small 3.1, Mistral3ForConditionalGeneration) demo checkpoint: the Pixtral tower, projector
// and the text model under language_model.
#include "demo_family.hpp"

#include <algorithm>
#include <cmath>

namespace shardforge::model::detail {

namespace {

// Mistral3's Pixtral vision tower: three small layers (the converter's --mmproj names multi_modal_projector.linear_N
// through a map built for the tower's block count, so linear_2 needs at least three), 32x32 images in 4x4 patches,
// merged 2x2 by the projector; rows a multiple of 32 so Q8_0 applies.
constexpr int demo_vision_hidden = 64, demo_vision_intermediate = 128, demo_vision_heads = 4, demo_vision_patch = 4,
              demo_vision_image = 32, demo_vision_layers = 3, demo_spatial_merge = 2;

std::string vision_layer(int l) { return core::cat("vision_tower.transformer.layers.", l, "."); }

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
    vision["num_hidden_layers"] = demo_vision_layers;
    vision["patch_size"] = demo_vision_patch;
    vision["rope_theta"] = 10000.0;
    ojson j;
    j["architectures"] = ojson::array({"Mistral3ForConditionalGeneration"});
    j["image_token_index"] = 10;
    j["model_type"] = "mistral3";
    j["multimodal_projector_bias"] = false;
    j["projector_hidden_act"] = "gelu";
    j["spatial_merge_size"] = demo_spatial_merge;
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
    for (int layer = 0; layer < demo_vision_layers; ++layer) {
        const std::string l = vision_layer(layer);
        add(l + "attention_norm.weight", {vh}, Init::Norm, 0.05);
        add(l + "feed_forward.gate_proj.weight", {vi, vh}, Init::Normal, 0.02);
        add(l + "feed_forward.up_proj.weight", {vi, vh}, Init::Normal, 0.02);
        add(l + "feed_forward.down_proj.weight", {vh, vi}, Init::Normal, 0.02);
        for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"})
            add(core::cat(l, "attention.", w, ".weight"), {vh, vh}, Init::Normal, 0.02);
        add(l + "ffn_norm.weight", {vh}, Init::Norm, 0.05);
    }
    const std::int64_t merged = vh * demo_spatial_merge * demo_spatial_merge;
    add("multi_modal_projector.norm.weight", {vh}, Init::Norm, 0.05);
    add("multi_modal_projector.patch_merger.merging_layer.weight", {vh, merged}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_1.weight", {o.hidden, vh}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_2.weight", {o.hidden, o.hidden}, Init::Normal, 0.02);
    for (DemoTensor& t : text) {
        std::string& n = t.entry.name;
        n = n == "lm_head.weight" ? "language_model.lm_head.weight" : "language_model." + n;
        ts.push_back(std::move(t));
    }
    return ts;
}

std::string mistral3_preprocessor_config() {
    ojson j;
    j["crop_size"] = nullptr;
    j["do_center_crop"] = nullptr;
    j["do_convert_rgb"] = true;
    j["do_normalize"] = true;
    j["do_rescale"] = true;
    j["do_resize"] = true;
    j["image_mean"] = {0.48145466, 0.4578275, 0.40821073};
    j["image_processor_type"] = "PixtralImageProcessor";
    j["image_std"] = {0.26862954, 0.26130258, 0.27577711};
    j["patch_size"] = {{"height", demo_vision_patch}, {"width", demo_vision_patch}};
    j["processor_class"] = "PixtralProcessor";
    j["resample"] = 3;
    j["rescale_factor"] = 0.00392156862745098;
    j["size"] = {{"longest_edge", demo_vision_image}};
    return j.dump(2) + "\n";
}
std::string mistral3_processor_config() {
    ojson j;
    j["image_break_token"] = "[IMG_BREAK]";
    j["image_end_token"] = "[IMG_END]";
    j["image_token"] = "[IMG]";
    j["patch_size"] = demo_vision_patch;
    j["processor_class"] = "PixtralProcessor";
    j["spatial_merge_size"] = demo_spatial_merge;
    return j.dump(2) + "\n";
}

// llama.cpp's conversion/llava.py LlavaVisionModel looks [IMG_BREAK] up in added_tokens_decoder (then
// tokenizer.json) and stops when it is missing; its id (12, as Mistral Small 3.1's) only picks a row of a token
// embedding this layout never hands the projector pass. The text conversions (theirs and ours) read the byte-level
// BPE's added tokens from tokenizer.json, so the entry leaves the text GGUF as it was.
std::string mistral3_tokenizer_config(const std::string& tokenizer_config_json) {
    ojson j = ojson::parse(tokenizer_config_json);
    ojson e;
    e["content"] = "[IMG_BREAK]";
    e["lstrip"] = false;
    e["normalized"] = false;
    e["rstrip"] = false;
    e["single_word"] = false;
    e["special"] = true;
    j["added_tokens_decoder"]["12"] = std::move(e);
    return j.dump(2) + "\n";
}

// PEFT's names on today's transformers (model.vision_tower.*, model.multi_modal_projector.*): every Linear of the
// Pixtral layers, the projector's two layers and its patch merger; factors as demo.cpp's.
void mistral3_vision_adapter_tensors(const DemoOptions& o, std::vector<DemoTensor>& ts) {
    const std::int64_t r = o.lora_rank, vh = demo_vision_hidden, vi = demo_vision_intermediate;
    auto pair = [&](const std::string& module, std::int64_t in, std::int64_t out) {
        const std::string p = core::cat("base_model.model.model.", module, ".");
        ts.push_back({formats::StEntry{p + "lora_A.weight", core::DType::F32, {r, in}}, Init::LoraA,
                      1.0 / std::sqrt(static_cast<double>(in)), Stored::None, {}, {}});
        ts.push_back({formats::StEntry{p + "lora_B.weight", core::DType::F32, {out, r}}, Init::LoraB, 0.05,
                      Stored::None, {}, {}});
    };
    for (int layer = 0; layer < demo_vision_layers; ++layer) {
        const std::string l = vision_layer(layer);
        for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"}) pair(core::cat(l, "attention.", w), vh, vh);
        pair(l + "feed_forward.gate_proj", vh, vi);
        pair(l + "feed_forward.up_proj", vh, vi);
        pair(l + "feed_forward.down_proj", vi, vh);
    }
    pair("multi_modal_projector.patch_merger.merging_layer", vh * demo_spatial_merge * demo_spatial_merge, vh);
    pair("multi_modal_projector.linear_1", vh, o.hidden);
    pair("multi_modal_projector.linear_2", o.hidden, o.hidden);
}

}  // namespace shardforge::model::detail
