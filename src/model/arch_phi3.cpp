// Phi-3's LongRoPE factors (llama.cpp's convert_hf_to_gguf.py Phi3MiniModel.generate_extra_tensors).
#include "arch_planner.hpp"

#include <cmath>

namespace shardforge::model::detail {

// Phi3MiniModel.generate_extra_tensors: LongRoPE factors and rope.scaling.attn_factor.
void Planner::phi3_rope_factors() {
    const nlohmann::json rp = detail::rope_parameters(cfg_);
    auto lf = rp.find("long_factor");
    if (lf == rp.end() || lf->is_null() || (lf->is_array() && lf->empty())) return;
    const std::int64_t n_embd = require_int({"hidden_size", "n_embd"}, "embedding size");
    const std::int64_t n_head = require_int({"num_attention_heads", "n_head"}, "head count");
    const std::int64_t max_pos = require_int({"n_positions", "max_position_embeddings"}, "context length");
    auto orig = rp.find("original_max_position_embeddings");
    if (orig == rp.end() || !orig->is_number()) bad_config("missing 'original_max_position_embeddings' (phi3)");
    const double orig_ctx = orig->get<double>();
    double rot_pct = 1.0;
    if (auto p = rp.find("partial_rotary_factor"); p != rp.end() && p->is_number()) rot_pct = p->get<double>();
    const std::int64_t rope_dims = static_cast<std::int64_t>(rot_pct * static_cast<double>(n_embd)) / n_head;
    const double scale = static_cast<double>(max_pos) / orig_ctx;
    std::string type;
    if (auto t = rp.find("rope_type"); t != rp.end() && t->is_string()) type = t->get<std::string>();
    for (char& ch : type)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (type.empty()) bad_config("missing the required key rope_scaling.type (phi3 long_factor)");
    double attn_factor = 1.0;
    if (type == "su" || type == "longrope") {
        if (scale > 1.0) attn_factor = std::sqrt(1.0 + std::log(scale) / std::log(orig_ctx));
    } else if (type == "yarn") {
        if (scale > 1.0) attn_factor = 0.1 * std::log(scale) + 1.0;
    } else {
        throw Error(ErrorKind::Unsupported, cfg_.file, "",
                    core::cat("phi3 rope scaling type '", type, "' is not supported"));
    }
    out_.early_kvs.push_back(
        {core::cat(out_.arch, ".rope.scaling.attn_factor"), formats::GgufValue::f32(static_cast<float>(attn_factor))});
    auto sf = rp.find("short_factor");
    auto floats = [&](const nlohmann::json& a, const char* what) {
        if (!a.is_array()) bad_config(core::cat("rope_scaling.", what, " must be a list of numbers"));
        std::vector<float> v;
        for (const auto& x : a) {
            if (!x.is_number()) bad_config(core::cat("rope_scaling.", what, " must be a list of numbers"));
            v.push_back(static_cast<float>(x.get<double>()));
        }
        if (static_cast<std::int64_t>(v.size()) * 2 != rope_dims)
            bad_config(core::cat("rope_scaling.", what, " has ", v.size(), " entries, expected ", rope_dims / 2.0));
        return v;
    };
    if (sf == rp.end()) bad_config("missing rope_scaling.short_factor (phi3)");
    std::vector<float> lv = floats(*lf, "long_factor"), sv = floats(*sf, "short_factor");
    emit("rope_factors_long.weight", {}, {static_cast<std::int64_t>(lv.size())}, {}, nullptr);
    out_.tensors.back().generated = std::move(lv);
    emit("rope_factors_short.weight", {}, {static_cast<std::int64_t>(sv.size())}, {}, nullptr);
    out_.tensors.back().generated = std::move(sv);
}

}  // namespace shardforge::model::detail
