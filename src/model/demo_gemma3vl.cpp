// The Gemma 3 vision-language demo checkpoint (Gemma3ForConditionalGeneration, "gemma3-vl"): the Gemma 3 text model
// under language_model.*, a SigLIP vision tower (vision_tower.vision_model.*) and the Gemma 3 multimodal projector
// (multi_modal_projector.*), with the processor files the Hub checkpoints ship, and LoRA targets in both the
// language model and the vision tower.
#include "demo_family.hpp"

#include <cmath>

namespace shardforge::model::detail {

namespace {

// SigLIP tower sizes (transformers' SiglipVisionConfig keys): 32x32 images in 4x4 patches (an 8x8 grid), pooled
// 2x2 by the projector to 16 image tokens (mm_tokens_per_image); rows a multiple of 32 so Q8_0 applies.
constexpr int vision_hidden = 64, vision_intermediate = 128, vision_heads = 4, vision_layers = 2, vision_patch = 4,
              vision_image = 32, mm_tokens = 16;

std::string vision_prefix(int layer) { return core::cat("vision_tower.vision_model.encoder.layers.", layer, "."); }

}  // namespace

// The top-level config of google/gemma-3-4b-it's layout (transformers' Gemma3Config): text_config holds the text
// model's keys (here every key, so no transformers default is needed), vision_config the SigLIP tower's.
std::string gemma3vl_config(const DemoOptions& o, const std::string& text_config_json) {
    ojson text = ojson::parse(text_config_json);
    text.erase("architectures");
    text.erase("torch_dtype");
    text.erase("transformers_version");
    ojson vision;
    vision["attention_dropout"] = 0.0;
    vision["hidden_act"] = "gelu_pytorch_tanh";
    vision["hidden_size"] = vision_hidden;
    vision["image_size"] = vision_image;
    vision["intermediate_size"] = vision_intermediate;
    vision["layer_norm_eps"] = 1e-06;
    vision["model_type"] = "siglip_vision_model";
    vision["num_attention_heads"] = vision_heads;
    vision["num_channels"] = 3;
    vision["num_hidden_layers"] = vision_layers;
    vision["patch_size"] = vision_patch;
    vision["vision_use_head"] = false;
    ojson j;
    j["architectures"] = ojson::array({"Gemma3ForConditionalGeneration"});
    j["boi_token_index"] = 2;  // the demo tokenizer's <|start_header_id|> stands in for <start_of_image>
    j["eoi_token_index"] = 3;
    j["eos_token_id"] = text.value("eos_token_id", ojson(1));
    j["image_token_index"] = 4;
    j["initializer_range"] = 0.02;
    j["mm_tokens_per_image"] = mm_tokens;
    j["model_type"] = "gemma3";
    j["text_config"] = std::move(text);
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.50.0.dev0";
    j["vision_config"] = std::move(vision);
    return j.dump(2) + "\n";
}

// Gemma3ImageProcessor's preprocessor_config.json (google/gemma-3-4b-it's keys, the demo's sizes) and the
// processor_config.json beside it.
std::string gemma3vl_preprocessor_config() {
    ojson j;
    j["do_convert_rgb"] = nullptr;
    j["do_normalize"] = true;
    j["do_pan_and_scan"] = nullptr;
    j["do_rescale"] = true;
    j["do_resize"] = true;
    j["image_mean"] = {0.5, 0.5, 0.5};
    j["image_processor_type"] = "Gemma3ImageProcessor";
    j["image_seq_length"] = mm_tokens;
    j["image_std"] = {0.5, 0.5, 0.5};
    j["pan_and_scan_max_num_crops"] = nullptr;
    j["pan_and_scan_min_crop_size"] = nullptr;
    j["pan_and_scan_min_ratio_to_activate"] = nullptr;
    j["processor_class"] = "Gemma3Processor";
    j["resample"] = 2;
    j["rescale_factor"] = 0.00392156862745098;
    j["size"] = {{"height", vision_image}, {"width", vision_image}};
    return j.dump(2) + "\n";
}
std::string gemma3vl_processor_config() {
    ojson j;
    j["image_seq_length"] = mm_tokens;
    j["processor_class"] = "Gemma3Processor";
    return j.dump(2) + "\n";
}

// State-dict order of Gemma3ForConditionalGeneration before transformers 4.52 (the names the Hub checkpoints
// keep): vision_tower (SiglipVisionModel), multi_modal_projector, then the text model under language_model.
std::vector<DemoTensor> gemma3vl_layout(std::vector<DemoTensor> text, const DemoOptions& o) {
    const std::int64_t vh = vision_hidden, vi = vision_intermediate, p = vision_patch;
    const std::int64_t n_patches = (vision_image / vision_patch) * (vision_image / vision_patch);
    TensorList add{o.dtype, {}};
    const std::string e = "vision_tower.vision_model.embeddings.";
    add(e + "patch_embedding.weight", {vh, 3, p, p}, Init::Normal, 0.1);
    add(e + "patch_embedding.bias", {vh}, Init::Normal, 0.1);
    add(e + "position_embedding.weight", {n_patches, vh}, Init::Normal, 0.1);
    for (int l = 0; l < vision_layers; ++l) {
        const std::string lp = vision_prefix(l);
        for (const char* w : {"k_proj", "v_proj", "q_proj", "out_proj"}) {  // SiglipAttention's order
            add(core::cat(lp, "self_attn.", w, ".weight"), {vh, vh}, Init::Normal, 0.1);
            add(core::cat(lp, "self_attn.", w, ".bias"), {vh}, Init::Normal, 0.1);
        }
        add(lp + "layer_norm1.weight", {vh}, Init::Norm, 0.1);
        add(lp + "layer_norm1.bias", {vh}, Init::Normal, 0.1);
        add(lp + "mlp.fc1.weight", {vi, vh}, Init::Normal, 0.1);
        add(lp + "mlp.fc1.bias", {vi}, Init::Normal, 0.1);
        add(lp + "mlp.fc2.weight", {vh, vi}, Init::Normal, 0.1);
        add(lp + "mlp.fc2.bias", {vh}, Init::Normal, 0.1);
        add(lp + "layer_norm2.weight", {vh}, Init::Norm, 0.1);
        add(lp + "layer_norm2.bias", {vh}, Init::Normal, 0.1);
    }
    add("vision_tower.vision_model.post_layernorm.weight", {vh}, Init::Norm, 0.1);
    add("vision_tower.vision_model.post_layernorm.bias", {vh}, Init::Normal, 0.1);
    // Gemma3MultiModalProjector: a bare parameter [vision hidden, text hidden] (x @ W) and a Gemma RMSNorm (1 + w)
    add("multi_modal_projector.mm_input_projection_weight", {vh, o.hidden}, Init::Normal, 0.1);
    add("multi_modal_projector.mm_soft_emb_norm.weight", {vh}, Init::Normal, 0.1);
    for (DemoTensor& t : text) {
        std::string& n = t.entry.name;
        n = n == "lm_head.weight" ? "language_model.lm_head.weight" : "language_model." + n;
        add.ts.push_back(std::move(t));
    }
    return std::move(add.ts);
}

// SigLIP's Linear modules, which the adapter wraps beside the text model's (PEFT matches target_modules names
// anywhere: q_proj/k_proj/v_proj also name the tower's attention projections).
std::vector<LoraTarget> gemma3vl_vision_lora_targets() {
    const std::int64_t vh = vision_hidden, vi = vision_intermediate;
    return {{"q_proj", "self_attn", vh, vh}, {"k_proj", "self_attn", vh, vh}, {"v_proj", "self_attn", vh, vh},
            {"out_proj", "self_attn", vh, vh}, {"fc1", "mlp", vh, vi},         {"fc2", "mlp", vi, vh}};
}

// PEFT's names on today's transformers (the wrapped model's model.vision_tower.*), factors as demo.cpp's.
void gemma3vl_vision_adapter_tensors(const DemoOptions& o, std::vector<DemoTensor>& ts) {
    const std::int64_t r = o.lora_rank;
    for (int l = 0; l < vision_layers; ++l) {
        for (const LoraTarget& t : gemma3vl_vision_lora_targets()) {
            const std::string p = core::cat("base_model.model.model.", vision_prefix(l), t.module, ".", t.name, ".");
            ts.push_back({formats::StEntry{p + "lora_A.weight", core::DType::F32, {r, t.in}}, Init::LoraA,
                          1.0 / std::sqrt(static_cast<double>(t.in)), Stored::None, {}, {}});
            ts.push_back({formats::StEntry{p + "lora_B.weight", core::DType::F32, {t.out, r}}, Init::LoraB, 0.05,
                          Stored::None, {}, {}});
        }
    }
}

}  // namespace shardforge::model::detail
