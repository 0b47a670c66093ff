// gpt-oss's tensor pass (llama.cpp's conversion/gpt_oss.py GptOssModel): MXFP4 and 16-bit experts.
#include "arch_planner.hpp"

namespace shardforge::model::detail {

// GptOssModel.generate_extra_tensors: MXFP4 experts (*_blocks, dequantized by the plan to [E, rows, 32 * n_blocks],
// rows as ggml's [E, out, in]) are written first, in the order their blocks come, as MXFP4: down_proj whole,
// gate_up_proj's even rows as ffn_gate_exps and its odd rows as ffn_up_exps.
void Planner::gpt_oss_mxfp4(const std::vector<Item>& items) {
    const nlohmann::json* qc = cfg_.find({"quantization_config"});
    out_.mxfp4 = qc && qc->is_object() && qc->contains("quant_method") && (*qc)["quant_method"] == "mxfp4";
    for (const Item& it : items) {
        const std::string& name = it.name;
        if (!ends_with(name, "_blocks")) continue;
        const core::Shape& shape = it.t->shape;
        if (shape.size() != 3)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("expected MXFP4 expert blocks of [n_expert, rows, n_blocks, 16], found logical "
                                  "shape ", core::shape_str(shape)));
        const std::string stem = name.substr(0, name.size() - 7);
        if (ends_with(stem, "mlp.experts.down_proj")) {
            map_and_emit(it, stem + ".weight", {{it.t->name}}, shape, {});
            out_.tensors.back().mxfp4 = true;
        } else if (ends_with(stem, "mlp.experts.gate_up_proj")) {
            if (shape[1] % 2 != 0)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("MXFP4 gate_up_proj rows must be even (gate and up interleaved), found ",
                                      shape[1]));
            const std::string base = stem.substr(0, stem.size() - std::string_view("gate_up_proj").size());
            for (std::int64_t half = 0; half < 2; ++half) {
                SourceSlice sl{it.t->name, half, -1, 2};
                map_and_emit(it, base + (half == 0 ? "gate_proj.weight" : "up_proj.weight"), {sl},
                             {shape[0], shape[1] / 2, shape[2]}, {});
                out_.tensors.back().mxfp4 = true;
            }
        } else {
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        "MXFP4 blocks other than mlp.experts.{gate_up,down}_proj (llama.cpp's converter repacks "
                        "only those)");
        }
    }
}

// GptOssModel.modify_tensors (llama.cpp's conversion/gpt_oss.py) for 16/32-bit experts as transformers'
// GptOssExperts stores them: gate_up_proj [n_expert, n_embd, 2 * n_ff] with gate and up interleaved along the
// last dim (gate = [..., ::2], up = [..., 1::2]) and down_proj [n_expert, n_ff, n_embd], both transposed to
// ggml's [n_expert, out, in]; the biases gate_up_proj_bias [n_expert, 2 * n_ff] split the same way and
// down_proj_bias renamed. Everything else goes through the name map.
void Planner::gpt_oss(const Item& it) {
    const std::string& name = it.name;
    if (ends_with(name, "_blocks")) return;  // emitted by gpt_oss_mxfp4
    const core::Shape& shape = it.t->shape;
    auto fused = [&](std::size_t dims) {
        if (shape.size() != dims)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("expected a ", dims, "-D fused expert tensor, found shape ", core::shape_str(shape)));
    };
    if (contains(name, "down_proj")) {
        if (ends_with(name, "_bias")) {
            std::string n = name;
            n.replace(n.rfind("down_proj_bias"), 14, "down_proj.bias");
            map_and_emit(it, n, {{it.t->name}}, shape, {});
            return;
        }
        fused(3);
        SourceSlice sl{it.t->name};
        sl.transpose = true;
        map_and_emit(it, name + ".weight", {sl}, {shape[0], shape[2], shape[1]}, {});
        return;
    }
    if (contains(name, "gate_up_proj")) {
        const bool bias = ends_with(name, "_bias");
        fused(bias ? 2 : 3);
        if (shape.back() % 2 != 0)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("fused gate_up_proj: the last dim of ", core::shape_str(shape),
                                  " must be even (gate and up interleaved)"));
        const std::int64_t n_ff = shape.back() / 2;
        std::string stem = name.substr(0, name.rfind("gate_up_proj"));
        for (std::int64_t half = 0; half < 2; ++half) {
            SourceSlice sl{it.t->name};
            sl.col_begin = half;
            sl.col_step = 2;
            sl.transpose = !bias;
            const std::string proj = half == 0 ? "gate_proj" : "up_proj";
            if (bias) map_and_emit(it, stem + proj + ".bias", {sl}, {shape[0], n_ff}, {});
            else map_and_emit(it, stem + proj + ".weight", {sl}, {shape[0], n_ff, shape[1]}, {});
        }
        return;
    }
    map_and_emit(it, name, {{it.t->name}}, shape, {});
}

}  // namespace shardforge::model::detail
