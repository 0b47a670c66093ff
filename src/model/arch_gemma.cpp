// Gemma 4's tensor renames and generated rope frequencies (llama.cpp's conversion/gemma.py Gemma4Model).
#include "arch_planner.hpp"

#include <algorithm>

namespace shardforge::model::detail {

// Gemma4Model.filter_tensors: buffers stored without a suffix get ".weight" (the layer scalar, the audio
// tower's per_dim_scale) and so do the fused expert parameters.
std::string Planner::gemma4_filter_name(std::string name) {
    if (ends_with(name, "per_dim_scale") || ends_with(name, "layer_scalar")) name += ".weight";
    if (contains(name, ".experts.") && !ends_with(name, ".weight") && !ends_with(name, ".weight_scale") &&
        !ends_with(name, ".weight_scale_2") && !ends_with(name, ".input_scale"))
        name += ".weight";
    return name;
}

// Gemma4Model.generate_extra_tensors: the full-attention layers' "proportional" rope rotates the first
// partial_rotary_factor of each half of the head (dims i and i + head_dim/2); llama.cpp's neox rope over the
// whole head gets frequency factors 1 for the rotated pairs and 1e30 (no rotation) for the others.
void Planner::gemma4_rope_freqs() {
    const nlohmann::json* rp = cfg_.find({"rope_parameters"});
    const nlohmann::json* full = rp && rp->is_object() && rp->contains("full_attention") ? &(*rp)["full_attention"]
                                                                                      : nullptr;
    if (!full || !full->is_object())
        bad_config("gemma4 needs rope_parameters.full_attention (the converter reads it)");
    auto type = full->find("rope_type");
    if (type == full->end() || *type != "proportional")
        bad_config(core::cat("gemma4: rope_parameters.full_attention.rope_type must be 'proportional', found ",
                             type == full->end() ? std::string("none") : type->dump()));
    auto f = full->find("partial_rotary_factor");
    if (f == full->end() || !f->is_number())
        bad_config("gemma4: rope_parameters.full_attention.partial_rotary_factor must be a number");
    const double factor = f->get<double>();
    const std::int64_t head_dim = detail::gemma4_full_head_dim(cfg_);
    if (!(factor >= 0.0 && factor <= 1.0) || head_dim <= 0 || head_dim > 65536)
        bad_config(core::cat("gemma4: partial_rotary_factor ", factor, " or global head size ", head_dim,
                             " out of range"));
    const auto n_rot = static_cast<std::int64_t>(static_cast<double>(head_dim) * factor / 2.0);
    std::vector<float> v(static_cast<std::size_t>(head_dim / 2), 1e30f);
    std::fill(v.begin(), v.begin() + std::min<std::int64_t>(n_rot, head_dim / 2), 1.0f);
    emit("rope_freqs.weight", {}, {static_cast<std::int64_t>(v.size())}, {}, nullptr);
    out_.tensors.back().generated = std::move(v);
}

}  // namespace shardforge::model::detail
