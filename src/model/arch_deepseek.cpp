// DeepSeek-V2/V3/R1 and Kimi-K2's tensor pass (llama.cpp's conversion/deepseek.py DeepseekV2Model).
#include "arch_planner.hpp"

namespace shardforge::model::detail {

// DeepseekV2Model.modify_tensors (llama.cpp's conversion/deepseek.py): a tied lm_head and the MTP layers (numbered
// from num_hidden_layers; skip_mtp) are dropped, per-expert tensors stacked, kv_b_proj split per head into k_b
// (transposed) and v_b.
void Planner::deepseek2(const Item& it, std::vector<SourceSlice> one) {
    const std::string& name = it.name;
    if (cfg_.tie_word_embeddings && (name == "lm_head.weight" || name == "model.lm_head.weight")) {
        out_.dropped.push_back(it.t->name);
        return;
    }
    const std::optional<std::int64_t> bid = block_id(name);
    if (starts_with(name, "model.layers.") && bid && *bid >= cfg_.n_layer) {
        out_.dropped.push_back(it.t->name);
        return;
    }
    if (contains(name, "mlp.experts")) {
        stack_experts(it, require_bid(it, bid), {"down_proj", "gate_proj", "up_proj"},
                      "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
        return;
    }
    if (ends_with(name, "kv_b_proj.weight")) {
        const std::int64_t n_kv = require_int({"num_key_value_heads"}, "kv_b_proj split");
        const std::int64_t v = require_int({"v_head_dim"}, "kv_b_proj split");
        const std::int64_t nope = require_int({"qk_nope_head_dim"}, "kv_b_proj split");
        const core::Shape& shape = it.t->shape;
        if (n_kv <= 0 || v <= 0 || nope <= 0 || shape.size() != 2 || shape[0] != n_kv * (v + nope))
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("shape ", core::shape_str(shape), ": expected [num_key_value_heads (", n_kv,
                                  ") * (qk_nope_head_dim (", nope, ") + v_head_dim (", v, ")), kv_lora_rank]"));
        const std::int64_t per = v + nope, rank = shape[1];
        std::vector<SourceSlice> k_src, v_src;
        for (std::int64_t h = 0; h < n_kv; ++h) {
            k_src.push_back({it.t->name, h * per, h * per + nope});
            v_src.push_back({it.t->name, h * per + nope, (h + 1) * per});
        }
        std::string base = name.substr(0, name.size() - std::string_view("kv_b_proj.weight").size());
        map_and_emit(it, base + "k_b_proj.weight", std::move(k_src), {n_kv, rank, nope},
                     {{TransformKind::TransposeLastTwo, 0}});
        map_and_emit(it, base + "v_b_proj.weight", std::move(v_src), {n_kv, v, rank}, {});
        return;
    }
    map_and_emit(it, name, std::move(one), it.t->shape, {});
}

}  // namespace shardforge::model::detail
