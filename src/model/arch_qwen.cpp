// The Qwen families' tensor pass (llama.cpp's conversion/qwen.py): the MTP renames (_QwenMtpMixin), Qwen2MoeModel's
// experts, Qwen3.5's V-head tiling and Qwen3-Next's fused in_proj_qkvz.
#include "arch_planner.hpp"

#include <algorithm>

namespace shardforge::model::detail {

// _QwenMtpMixin.filter_tensors: "model.mtp.*" -> "mtp.*"; mtp.layers.J.* -> model.layers.{n_layer + J}.*;
// mtp.{fc, pre_fc_norm_embedding, pre_fc_norm_hidden, norm}.* -> model.layers.{n_layer}.{eh_proj, enorm, hnorm,
// shared_head.norm}.*
std::string Planner::mtp_name(std::string name) {
    if (starts_with(name, "model.mtp.")) name.erase(0, 6);
    if (!starts_with(name, "mtp.")) return name;
    std::vector<std::string> parts;  // name.split(".", 3)
    std::size_t from = 0;
    while (parts.size() < 3) {
        const std::size_t dot = name.find('.', from);
        if (dot == std::string::npos) break;
        parts.push_back(name.substr(from, dot - from));
        from = dot + 1;
    }
    parts.push_back(name.substr(from));
    auto decimal = [](const std::string& x) {
        return !x.empty() && std::all_of(x.begin(), x.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    };
    if (parts.size() == 4 && parts[1] == "layers" && decimal(parts[2])) {
        // at most 4 digits: std::stoll cannot overflow, and n_layer + j stays small
        const std::int64_t j = parts[2].size() <= 4 ? std::stoll(parts[2]) : max_mtp_layers;
        if (j >= max_mtp_layers)
            throw Error(ErrorKind::BadInput, "", name,
                        core::cat("MTP layer number ", parts[2], " out of range (at most ", max_mtp_layers, " MTP layers)"));
        n_mtp_seen_ = std::max(n_mtp_seen_, j + 1);
        return core::cat("model.layers.", cfg_.n_layer + j, ".", parts[3]);
    }
    if (parts.size() == 3) {
        for (auto [from_name, to_name] : {std::pair{"fc", "eh_proj"}, std::pair{"pre_fc_norm_embedding", "enorm"},
                                          std::pair{"pre_fc_norm_hidden", "hnorm"},
                                          std::pair{"norm", "shared_head.norm"}})
            if (parts[1] == from_name) return core::cat("model.layers.", cfg_.n_layer, ".", to_name, ".", parts[2]);
    }
    return name;
}

// Qwen2MoeModel.modify_tensors: fused 3-D experts (down_proj gets ".weight"; gate_up_proj splits on dim -2),
// per-expert tensors stacked, anything else mapped. `name` is the tensor's name after the subclass renames.
void Planner::qwen2moe(const Item& it, const std::string& name, std::vector<SourceSlice> one, const core::Shape& shape,
                       std::vector<Transform> tr) {
    if (ends_with(name, "mlp.experts.down_proj") || ends_with(name, "mlp.experts.down_proj.weight")) {
        map_and_emit(it, ends_with(name, ".weight") ? name : name + ".weight", one, shape, std::move(tr));
        return;
    }
    if (ends_with(name, "mlp.experts.gate_up_proj") || ends_with(name, "mlp.experts.gate_up_proj.weight")) {
        if (shape.size() < 3 || shape[shape.size() - 2] % 2 != 0)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("fused gate_up_proj must be [n_expert, 2*n_ff, n_embd], found ",
                                  core::shape_str(shape)));
        const std::int64_t n_ff = shape[shape.size() - 2] / 2;
        std::string base = name;
        if (ends_with(base, ".weight")) base.resize(base.size() - 7);
        base.resize(base.size() - std::string_view(".gate_up_proj").size());
        core::Shape half = shape;
        half[half.size() - 2] = n_ff;
        map_and_emit(it, base + ".gate_proj.weight", {{it.t->name, 0, n_ff}}, half, tr);
        map_and_emit(it, base + ".up_proj.weight", {{it.t->name, n_ff, 2 * n_ff}}, half, std::move(tr));
        return;
    }
    if (contains(name, "experts")) {
        stack_experts(it, require_bid(it, block_id(name)), {"down_proj", "gate_proj", "up_proj"},
                      "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
        return;
    }
    map_and_emit(it, name, std::move(one), shape, std::move(tr));
}

// Qwen3_5TextModel.modify_tensors: _LinearAttentionVReorderBase's V-head tiling, then Qwen3NextModel's A_log,
// dt_bias, conv1d and norm transforms, then the name map (llama.cpp's conversion/qwen.py).
void Planner::qwen35(const Item& it, std::vector<SourceSlice> one) {
    std::string name = it.name;
    core::Shape shape = it.t->shape;
    std::vector<Transform> tr;
    if (contains(name, "conv1d")) std::erase(shape, 1);  // squeeze()
    const std::int64_t n_k = cfg_.find_int({"linear_num_key_heads"}).value_or(0);
    const std::int64_t n_v = cfg_.find_int({"linear_num_value_heads"}).value_or(0);
    if (n_k > 0 && n_v > 0 && n_k != n_v && contains(name, "linear_attn.")) {
        const std::int64_t head_k = require_int({"linear_key_head_dim"}, "linear attention key head size");
        const std::int64_t head_v = require_int({"linear_value_head_dim"}, "linear attention value head size");
        if (n_v % n_k != 0)
            bad_config(core::cat("linear_num_value_heads (", n_v, ") must be a multiple of linear_num_key_heads (",
                                 n_k, ")"));
        const std::int64_t qk = 2 * head_k * n_k;
        auto rows = [&](std::int64_t head, std::int64_t skip) {
            if (shape.empty() || shape[0] - skip != n_v * head)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("shape ", core::shape_str(it.t->shape), ": expected ", skip, " + ", n_v,
                                      " x ", head, " rows (linear attention heads)"));
            tr.push_back({TransformKind::TileVHeadRows, n_k, head, skip});
        };
        if (contains(name, ".in_proj_qkv.")) rows(head_v, qk);
        else if (contains(name, ".in_proj_z.")) rows(head_v, 0);
        else if (contains(name, ".in_proj_b.") || contains(name, ".in_proj_a.")) rows(1, 0);
        else if (contains(name, ".A_log") || contains(name, ".dt_bias") || contains(name, ".dt_proj")) {
            if (shape.size() == 1) rows(1, 0);
            else if (!shape.empty() && shape.back() == n_v) tr.push_back({TransformKind::TileVHeadColumns, n_k, 1, 0});
            else
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("shape ", core::shape_str(it.t->shape), ": expected ", n_v, " V heads"));
        } else if (contains(name, ".conv1d")) rows(head_v, qk);
        else if (contains(name, ".out_proj.")) {
            if (shape.size() != 2 || shape[1] != n_v * head_v)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("shape ", core::shape_str(it.t->shape), ": expected ", n_v * head_v,
                                      " columns (linear attention value size)"));
            tr.push_back({TransformKind::TileVHeadColumns, n_k, head_v, 0});
        }
    }
    if (ends_with(name, ".A_log")) tr.push_back({TransformKind::NegExp, 0});
    else if (ends_with(name, ".dt_bias")) name = name.substr(0, name.size() - 8) + ".dt_proj.bias";
    else if (!contains(name, "conv1d") && ends_with(name, "norm.weight") &&
             !ends_with(name, "linear_attn.norm.weight"))
        tr.push_back({TransformKind::AddOne, 0});
    if (family_ == Family::Qwen35Moe) qwen2moe(it, name, std::move(one), shape, std::move(tr));
    else map_and_emit(it, name, std::move(one), std::move(shape), std::move(tr));
}

// Qwen3NextModel.modify_tensors (llama.cpp's conversion/qwen.py): A_log -> -exp, dt_bias -> dt_proj.bias, conv1d squeezed,
// zero-centred norms + 1 (not the gated linear_attn.norm); the fused in_proj_qkvz, stored per K head as
// [q | k | v | z], becomes attn_qkv (every q, then every k, then every v) and attn_gate (every z). Each output
// row is one input row, so both are written as row slices of in_proj_qkvz: a row block reads only its rows.
// in_proj_ba goes to ssm_ba unchanged; experts, router and shared expert as Qwen2MoeModel.
void Planner::qwen3next(const Item& it, std::vector<SourceSlice> one) {
    std::string name = it.name;
    core::Shape shape = it.t->shape;
    std::vector<Transform> tr;
    if (ends_with(name, ".A_log")) tr.push_back({TransformKind::NegExp, 0});
    else if (ends_with(name, ".dt_bias")) name = name.substr(0, name.size() - 8) + ".dt_proj.bias";
    else if (contains(name, "conv1d")) std::erase(shape, 1);  // squeeze()
    else if (ends_with(name, "norm.weight") && !ends_with(name, "linear_attn.norm.weight"))
        tr.push_back({TransformKind::AddOne, 0});
    if (!contains(name, "in_proj_qkvz.weight")) {
        qwen2moe(it, name, std::move(one), std::move(shape), std::move(tr));
        return;
    }
    const std::int64_t n_k = require_int({"linear_num_key_heads"}, "linear attention key heads");
    const std::int64_t n_v = require_int({"linear_num_value_heads"}, "linear attention value heads");
    const std::int64_t head_k = require_int({"linear_key_head_dim"}, "linear attention key head size");
    const std::int64_t head_v = require_int({"linear_value_head_dim"}, "linear attention value head size");
    if (n_k <= 0 || n_v <= 0 || head_k <= 0 || head_v <= 0 || n_v % n_k != 0)
        bad_config(core::cat("linear_num_value_heads (", n_v, ") must be a positive multiple of linear_num_key_heads (",
                             n_k, "), head sizes > 0"));
    const std::int64_t vz = n_v / n_k * head_v;  // v (and z) rows per K head
    const std::int64_t group = 2 * head_k + 2 * vz;
    if (shape.size() != 2 || shape[0] != n_k * group)
        throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                    core::cat("shape ", core::shape_str(shape), ": expected ", n_k, " K heads x ", group,
                              " rows ([q, k, v, z] per K head) by hidden_size"));
    std::vector<SourceSlice> qkv, z;
    for (std::int64_t part : {std::int64_t{0}, head_k, 2 * head_k})  // offsets of q, k, v in a group
        for (std::int64_t h = 0; h < n_k; ++h) {
            const std::int64_t first = h * group + part;
            qkv.push_back({it.t->name, first, first + (part == 2 * head_k ? vz : head_k)});
        }
    for (std::int64_t h = 0; h < n_k; ++h) z.push_back({it.t->name, h * group + 2 * head_k + vz, (h + 1) * group});
    const std::string stem = name.substr(0, name.size() - std::string_view("in_proj_qkvz.weight").size());
    map_and_emit(it, stem + "in_proj_qkv.weight", std::move(qkv), {n_k * (2 * head_k + vz), shape[1]}, {});
    map_and_emit(it, stem + "in_proj_z.weight", std::move(z), {n_k * vz, shape[1]}, {});
}

}  // namespace shardforge::model::detail
