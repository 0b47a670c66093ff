// The multimodal projector GGUF (`mmproj-*.gguf`) of a vision-language checkpoint, as llama.cpp's
// `convert_hf_to_gguf.py --mmproj` writes it: conversion/base.py's MmprojModel (the clip.* metadata every vision
// encoder shares, the preprocessor files, the type rules) and one subclass per family (conversion/gemma.py's
// Gemma3VisionModel: projector type, tensor filter, transforms, forced types; conversion/llava.py's
// LlavaVisionModel for Mistral3ForConditionalGeneration's Pixtral tower). The tensor names are gguf-py's
// MODEL_ARCH.MMPROJ map (gguf-py/gguf/tensor_mapping.py, the V_* / MM_* rows). A later family adds a row to
// mmproj_families and its own name map; the rest is shared.
#include <shardforge/model.hpp>


#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <span>
#include <sstream>

namespace fs = std::filesystem;

namespace shardforge::model {

using core::Error;
using core::ErrorKind;
using formats::GgufKV;
using formats::GgufValue;

namespace {

enum class Projector { Gemma3, Pixtral };

struct MmprojFamily {
    const char* hf_class;      // config.json architectures[0]
    Projector projector;
    const char* projector_type;  // clip.projector_type (gguf-py VisionProjectorType)
};
// Vision-language classes whose --mmproj output we write (append new families at the end).
constexpr MmprojFamily mmproj_families[] = {
    {"Gemma3ForConditionalGeneration", Projector::Gemma3, "gemma3"},
    {"Mistral3ForConditionalGeneration", Projector::Pixtral, "pixtral"},
};

const MmprojFamily* find_family(const HfConfig& cfg) {
    for (const MmprojFamily& f : mmproj_families)
        if (cfg.architecture == f.hf_class) return &f;
    return nullptr;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool contains(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

nlohmann::json read_json_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(ErrorKind::Io, p.string(), "", "cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        nlohmann::json j = nlohmann::json::parse(ss.str());
        if (!j.is_object()) throw Error(ErrorKind::BadInput, p.string(), "", "expected a JSON object");
        return j;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::BadInput, p.string(), "", core::cat("malformed JSON: ", e.what()));
    }
}

// MmprojModel.__init__: preprocessor_config.json (media_proc_cfg lifted), then processor_config.json
// (image_processor lifted) merged over it.
nlohmann::json preprocessor_config(const fs::path& model_dir) {
    nlohmann::json out = nlohmann::json::object();
    auto merge = [&](const fs::path& p, const char* nested) {
        std::error_code ec;
        if (!fs::is_regular_file(p, ec)) return;
        nlohmann::json j = read_json_file(p);
        if (j.contains(nested) && j[nested].is_object())
            for (auto& [k, v] : j[nested].items()) j[k] = v;
        for (auto& [k, v] : j.items()) out[k] = v;
    };
    merge(model_dir / "preprocessor_config.json", "media_proc_cfg");
    merge(model_dir / "processor_config.json", "image_processor");
    return out;
}

class VisionParams {
public:
    VisionParams(const nlohmann::json& v, std::string file) : v_(v), file_(std::move(file)) {}
    // MmprojModel.find_vparam: the first key present (a null value counts as present, as in Python)
    const nlohmann::json& find(std::initializer_list<const char*> keys) const {
        for (const char* k : keys)
            if (v_.contains(k)) return v_[k];
        std::string list;
        for (const char* k : keys) list += core::cat(list.empty() ? "" : ", ", k);
        throw Error(ErrorKind::BadInput, file_, "", core::cat("vision_config has none of: ", list));
    }
    std::uint32_t u32(std::initializer_list<const char*> keys) const {
        const nlohmann::json& j = find(keys);
        if (!j.is_number_integer() || j.get<std::int64_t>() < 0 || j.get<std::int64_t>() > 0xffffffffLL)
            throw Error(ErrorKind::BadInput, file_, "",
                        core::cat("vision_config.", *keys.begin(), " must be a non-negative integer, got ", j.dump()));
        return static_cast<std::uint32_t>(j.get<std::int64_t>());
    }
    const nlohmann::json& json() const { return v_; }

private:
    const nlohmann::json& v_;
    std::string file_;
};

std::vector<float> float_list(const nlohmann::json& pre, const char* key, const std::string& file) {
    const auto it = pre.find(key);
    if (it == pre.end()) throw Error(ErrorKind::BadInput, file, "", core::cat("the image processor config has no '", key, "'"));
    std::vector<float> out;
    if (it->is_array())
        for (const auto& x : *it)
            if (x.is_number()) out.push_back(static_cast<float>(x.get<double>()));
    if (out.empty() || out.size() != it->size())
        throw Error(ErrorKind::BadInput, file, "", core::cat("'", key, "' must be a list of numbers, got ", it->dump()));
    return out;
}

// A vision tower's tensor under gguf-py's MODEL_ARCH.MMPROJ names (tensor_mapping.py), "" when unmapped: the
// .weight/.bias suffix kept; whole stems from `fixed`; "<numbered><N>" as "mm.N" (when `numbered` is set); and
// "<layers><N>.<module>" as "v.blk.N.<gguf>" through `layer`. N is a decimal below n_block: the converter builds its
// name map for block_count blocks (get_tensor_name_map(MMPROJ, block_count)).
struct TowerNames {
    std::span<const std::pair<const char*, const char*>> fixed, layer;
    std::string_view layers, numbered;
    std::uint32_t n_block = std::numeric_limits<std::uint32_t>::max();
};
std::string tower_gguf_name(const std::string& name, const TowerNames& t) {
    const auto dot = name.rfind('.');
    if (dot == std::string::npos) return "";
    const std::string stem = name.substr(0, dot), suffix = name.substr(dot);
    if (suffix != ".weight" && suffix != ".bias") return "";
    for (const auto& [hf, gg] : t.fixed)
        if (stem == hf) return gg + suffix;
    // a decimal below n_block, or -1
    auto block = [&t](const std::string& d) -> std::int64_t {
        if (d.empty() || d.size() > 9 || !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return -1;
        const std::int64_t b = std::stoll(d);
        return b < static_cast<std::int64_t>(t.n_block) ? b : -1;
    };
    if (!t.numbered.empty() && starts_with(stem, t.numbered)) {
        const std::int64_t b = block(stem.substr(t.numbered.size()));
        return b < 0 ? "" : core::cat("mm.", b, suffix);
    }
    if (!starts_with(stem, t.layers)) return "";
    const std::string rest = stem.substr(t.layers.size());
    const auto d2 = rest.find('.');
    if (d2 == std::string::npos) return "";
    const std::int64_t b = block(rest.substr(0, d2));
    if (b < 0) return "";
    const std::string module = rest.substr(d2 + 1);
    for (const auto& [hf, gg] : t.layer)
        if (module == hf) return core::cat("v.blk.", b, ".", gg, suffix);
    return "";
}

// The SigLIP tower inside Gemma3ForConditionalGeneration (vision_tower.vision_model.*) and Gemma 3's projector.
std::string gemma3_gguf_name(const std::string& name) {
    static const std::pair<const char*, const char*> fixed[] = {
        {"vision_tower.vision_model.embeddings.patch_embedding", "v.patch_embd"},
        {"vision_tower.vision_model.embeddings.position_embedding", "v.position_embd"},
        {"vision_tower.vision_model.post_layernorm", "v.post_ln"},
        {"multi_modal_projector.mm_input_projection", "mm.input_projection"},
        {"multi_modal_projector.mm_soft_emb_norm", "mm.soft_emb_norm"},
    };
    static const std::pair<const char*, const char*> layer[] = {
        {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
        {"self_attn.out_proj", "attn_out"}, {"layer_norm1", "ln1"}, {"layer_norm2", "ln2"},
        {"mlp.fc1", "ffn_up"}, {"mlp.fc2", "ffn_down"},
    };
    return tower_gguf_name(name, {fixed, layer, "vision_tower.vision_model.encoder.layers.", ""});
}


void finish(GgufConversion& out, std::uint32_t n_block, const std::vector<const HfTensor*>& order) {
    out.block_count = n_block;
    // --outtype auto: the converter looks at the first floating tensor's dtype (F32 stays F32, else F16/BF16)
    out.auto_ftype = quant::FType::F16;
    for (const HfTensor* t : order) {
        if (t->dtype == core::DType::F32) out.auto_ftype = quant::FType::F32;
        else if (t->dtype == core::DType::BF16) out.auto_ftype = quant::FType::BF16;
        else if (t->dtype != core::DType::F16) continue;
        break;
    }
}

// The rows marked "pixtral-hf" / "mistral small 3.1 - hf": the Pixtral tower (vision_tower.*) and Mistral 3's
// projector (multi_modal_projector.*); a layer or a linear_N with N >= n_block has no name.
std::string pixtral_gguf_name(const std::string& name, std::uint32_t n_block) {
    static const std::pair<const char*, const char*> fixed[] = {
        {"vision_tower.patch_conv", "v.patch_embd"},
        {"vision_tower.ln_pre", "v.pre_ln"},
        {"multi_modal_projector.norm", "mm.input_norm"},
        {"multi_modal_projector.patch_merger.merging_layer", "mm.patch_merger"},
    };
    static const std::pair<const char*, const char*> layer[] = {
        {"attention.q_proj", "attn_q"},         {"attention.k_proj", "attn_k"},       {"attention.v_proj", "attn_v"},
        {"attention.o_proj", "attn_out"},       {"attention_norm", "ln1"},            {"ffn_norm", "ln2"},
        {"feed_forward.up_proj", "ffn_up"},     {"feed_forward.gate_proj", "ffn_gate"},
        {"feed_forward.down_proj", "ffn_down"},
    };
    return tower_gguf_name(name, {fixed, layer, "vision_tower.transformer.layers.", "multi_modal_projector.linear_",
                                  n_block});
}

// LlavaVisionModel (conversion/llava.py) for a Mistral3ForConditionalGeneration in the HF layout: vision_config's
// model_type "pixtral" (anything else is refused, as the converter does); set_gguf_parameters' keys after the common
// ones; modify_tensors over the tensors MmprojModel.filter_tensors leaves (not "language_model."): the tower's and
// projector's prefixes converted, with q_proj/k_proj (weight and bias) un-permuted by the tower's head count as
// LlamaModel.permute does, everything else skipped. The [IMG_BREAK] row the class extracts from a name holding
// embed_tokens.weight never reaches it in this layout (the text model's names all hold "language_model.", which the
// filter drops first); a checkpoint that has such a tensor elsewhere is refused rather than converted differently.
void add_pixtral(const HfConfig& cfg, const VisionParams& vp, std::uint32_t n_block,
                 const std::vector<const HfTensor*>& order, GgufConversion& out) {
    const nlohmann::json& v = vp.json();
    if (v.value("model_type", nlohmann::json()) != "pixtral")
        throw Error(ErrorKind::Unsupported, cfg.file, "",
                    core::cat("vision_config.model_type must be \"pixtral\" for a Mistral3ForConditionalGeneration "
                              "projector, got ", v.value("model_type", nlohmann::json()).dump()));
    auto& kv = out.arch_kvs;
    kv.push_back({"clip.projector_type", GgufValue::string("pixtral")});
    double eps = 1e-5;  // hard-coded in transformers' modeling_pixtral.py; the converter's default
    if (const auto it = v.find("layer_norm_eps"); it != v.end()) {
        if (!it->is_number()) throw Error(ErrorKind::BadInput, cfg.file, "", "vision_config.layer_norm_eps must be a number");
        eps = it->get<double>();
    }
    kv.push_back({"clip.vision.attention.layer_norm_epsilon", GgufValue::f32(static_cast<float>(eps))});
    const nlohmann::json act = v.value("hidden_act", nlohmann::json());
    if (act == "silu") kv.push_back({"clip.use_silu", GgufValue::boolean(true)});
    else if (act == "gelu") kv.push_back({"clip.use_gelu", GgufValue::boolean(true)});
    else
        throw Error(ErrorKind::Unsupported, cfg.file, "",
                    core::cat("vision_config.hidden_act must be \"silu\" or \"gelu\", got ", act.dump()));
    // spatial_merge_size of the top-level config (the converter's global_config)
    if (const auto it = cfg.json().find("spatial_merge_size"); it != cfg.json().end()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > 0xffffffffLL)
            throw Error(ErrorKind::BadInput, cfg.file, "", "spatial_merge_size must be a non-negative integer");
        kv.push_back({"clip.vision.spatial_merge_size", GgufValue::u32(static_cast<std::uint32_t>(it->get<std::int64_t>()))});
    }
    const std::uint32_t n_head = vp.u32({"num_attention_heads"});
    for (const HfTensor* t : order) {
        const std::string& name = t->name;
        if (contains(name, "language_model.")) continue;
        const bool tower = starts_with(name, "multi_modal_projector.") || starts_with(name, "vision_tower.") ||
                           starts_with(name, "vision_encoder.") || starts_with(name, "vision_language_adapter.") ||
                           starts_with(name, "patch_merger.") || starts_with(name, "pre_mm_projector_norm");
        if (!tower) {
            if (contains(name, "embed_tokens.weight"))
                throw Error(ErrorKind::Unsupported, t->file, name,
                            "a token embedding outside language_model.*: the converter would extract its [IMG_BREAK] "
                            "row into the projector, which is not implemented");
            continue;
        }
        const std::string gg = pixtral_gguf_name(name, n_block);
        if (gg.empty())
            throw Error(ErrorKind::BadInput, t->file, name, "cannot map tensor to a multimodal projector (mmproj) GGUF name");
        GgufTensorMap m;
        m.gguf_name = gg;
        m.sources.push_back({name});
        m.shape = t->shape;
        if (gg.ends_with(".attn_q.weight") || gg.ends_with(".attn_q.bias") || gg.ends_with(".attn_k.weight") ||
            gg.ends_with(".attn_k.bias")) {
            if (n_head == 0 || t->shape.empty() || t->shape[0] % (2 * static_cast<std::int64_t>(n_head)) != 0)
                throw Error(ErrorKind::BadInput, t->file, name,
                            core::cat("rows not divisible into ", n_head, " heads of an even size"));
            m.transforms.push_back({TransformKind::PermuteLlamaHeads, n_head});
        }
        // MmprojModel.tensor_force_quant: v.patch_embd and mm.patch_merger F16 at --outtype f16, else F32; then
        // prepare_tensors' rules: 1-D and *_norm.weight F32, anything not ".weight" F32
        if (gg == "v.patch_embd.weight" || gg == "mm.patch_merger.weight") m.f16_only_at_f16 = true;
        if (t->shape.size() <= 1 || gg.ends_with("_norm.weight") || !gg.ends_with(".weight")) {
            m.force_f32 = true;
            m.f16_only_at_f16 = false;
        }
        out.tensors.push_back(std::move(m));
    }
}

}  // namespace

bool has_mmproj(const HfConfig& cfg) {
    return find_family(cfg) != nullptr && cfg.json().contains("vision_config") && cfg.json()["vision_config"].is_object();
}

GgufConversion plan_mmproj_conversion(const HfConfig& cfg, const fs::path& model_dir,
                                      const std::vector<HfTensor>& tensors) {
    const MmprojFamily* fam = find_family(cfg);
    if (!fam)
        throw Error(ErrorKind::Unsupported, cfg.file, "",
                    core::cat("a multimodal projector (mmproj) GGUF is implemented for Gemma3ForConditionalGeneration "
                              "and Mistral3ForConditionalGeneration only, not ", cfg.architecture));
    const nlohmann::json& top = cfg.json();
    if (!top.contains("vision_config") || !top["vision_config"].is_object())
        throw Error(ErrorKind::BadInput, cfg.file, "", "no vision_config object: not a vision-language checkpoint");
    const VisionParams vp(top["vision_config"], cfg.file);
    const std::string pre_file = (model_dir / "preprocessor_config.json").string();
    const nlohmann::json pre = preprocessor_config(model_dir);

    GgufConversion out;
    out.arch = "clip";
    out.gguf_type = "mmproj";
    // MmprojModel.set_gguf_parameters: general.file_type first, then the vision encoder's clip.* keys
    out.file_type_pos = 0;
    if (cfg.n_embd <= 0) throw Error(ErrorKind::BadInput, cfg.file, "", "n_embd not found (text_config.hidden_size)");
    auto& kv = out.arch_kvs;
    kv.push_back({"clip.has_vision_encoder", GgufValue::boolean(true)});
    kv.push_back({"clip.vision.projection_dim", GgufValue::u32(static_cast<std::uint32_t>(cfg.n_embd))});
    const std::uint32_t image_size = vp.u32({"image_size"}), patch_size = vp.u32({"patch_size"});
    kv.push_back({"clip.vision.image_size", GgufValue::u32(image_size)});
    kv.push_back({"clip.vision.patch_size", GgufValue::u32(patch_size)});
    kv.push_back({"clip.vision.embedding_length", GgufValue::u32(vp.u32({"hidden_size", "width", "vt_hidden_size"}))});
    kv.push_back({"clip.vision.feed_forward_length",
                  GgufValue::u32(vp.u32({"intermediate_size", "vt_intermediate_size"}))});
    const std::uint32_t n_block = vp.u32({"n_layers", "num_hidden_layers", "n_layer", "num_layers", "depth", "layers",
                                          "encoder_layers", "vt_num_hidden_layers"});
    kv.push_back({"clip.vision.block_count", GgufValue::u32(n_block)});
    kv.push_back({"clip.vision.attention.head_count",
                  GgufValue::u32(vp.u32({"num_attention_heads", "num_heads", "heads", "vt_num_attention_heads"}))});
    kv.push_back({"clip.vision.image_mean", GgufValue::arr_f32(float_list(pre, "image_mean", pre_file))});
    kv.push_back({"clip.vision.image_std", GgufValue::arr_f32(float_list(pre, "image_std", pre_file))});
    if (patch_size == 0) throw Error(ErrorKind::BadInput, cfg.file, "", "vision_config.patch_size must be > 0");

    // Tensors in the converter's visiting order (part files by name, tensors by name in each).
    std::vector<const HfTensor*> order;
    for (const HfTensor& t : tensors) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const HfTensor* a, const HfTensor* b) {
        return a->file != b->file ? a->file < b->file : a->name < b->name;
    });
    if (fam->projector == Projector::Pixtral) {
        add_pixtral(cfg, vp, n_block, order, out);
        finish(out, n_block, order);
        return out;
    }

    // Gemma3VisionModel.set_gguf_parameters
    kv.push_back({"clip.projector_type", GgufValue::string(fam->projector_type)});
    double eps = 1e-6;
    if (const auto it = vp.json().find("layer_norm_eps"); it != vp.json().end()) {
        if (!it->is_number()) throw Error(ErrorKind::BadInput, cfg.file, "", "vision_config.layer_norm_eps must be a number");
        eps = it->get<double>();
    }
    kv.push_back({"clip.vision.attention.layer_norm_epsilon", GgufValue::f32(static_cast<float>(eps))});
    kv.push_back({"clip.use_gelu", GgufValue::boolean(true)});
    std::int64_t seq = 256;
    if (const auto it = pre.find("image_seq_length"); it != pre.end()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
            throw Error(ErrorKind::BadInput, pre_file, "", "image_seq_length must be a positive integer");
        seq = it->get<std::int64_t>();
    }
    const auto n_per_side = static_cast<std::int64_t>(std::sqrt(static_cast<double>(seq)));  // int(x ** 0.5)
    if (n_per_side > 0) {
        const std::int64_t scale = (image_size / patch_size) / n_per_side;
        if (scale > 0 && scale != 4)  // written only when not llama.cpp's default
            kv.push_back({"clip.vision.projector.scale_factor", GgufValue::u32(static_cast<std::uint32_t>(scale))});
    }

    for (const HfTensor* t : order) {
        std::string name = t->name;
        // MmprojModel.filter_tensors / Gemma3VisionModel.filter_tensors: the text model and everything outside the
        // tower and projector are not the projector's; tinygemma3's vision_model.head is skipped.
        if (contains(name, "language_model.") || contains(name, "vision_model.head.") ||
            !(starts_with(name, "multi_modal_projector.") || starts_with(name, "vision_tower.") ||
              starts_with(name, "multimodal_projector.") || starts_with(name, "vision_model."))) {
            continue;
        }
        if (const auto pos = name.find("_weight"); pos != std::string::npos) name.replace(pos, 7, ".weight");
        const std::string gg = gemma3_gguf_name(name);
        if (gg.empty())
            throw Error(ErrorKind::BadInput, t->file, t->name,
                        "cannot map tensor to a multimodal projector (mmproj) GGUF name");
        GgufTensorMap m;
        m.gguf_name = gg;
        m.sources.push_back({t->name});
        m.shape = t->shape;
        // Gemma3VisionModel.modify_tensors: Gemma3RMSNorm's 1 + w for the projector's norm only (SigLIP's are
        // LayerNorms)
        if (contains(name, "soft_emb_norm.weight")) m.transforms.push_back({TransformKind::AddOne, 0});
        // Gemma3VisionModel.tensor_force_quant, then prepare_tensors' rules: 1-D and *_norm.weight as F32,
        // V_ENC_EMBD_POS (v.position_embd) as F32
        if (contains(name, "input_projection")) m.force_f16 = true;
        if (contains(name, ".embeddings.")) m.force_f32 = true;
        if (t->shape.size() <= 1 || gg.ends_with("_norm.weight") || gg == "v.position_embd.weight") {
            m.force_f32 = true;
            m.force_f16 = false;
        }
        if (!gg.ends_with(".weight")) m.force_f32 = true;
        if (m.force_f32) m.force_f16 = false;
        out.tensors.push_back(std::move(m));
    }
    // No tensor passes the filter (transformers >= 4.52's model.vision_tower.* names, which Gemma3VisionModel's filter
    // does not take either): an empty conversion, and the caller writes no projector.
    finish(out, n_block, order);
    return out;
}

}  // namespace shardforge::model
