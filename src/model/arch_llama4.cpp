// Llama 4's text tensor pass (llama.cpp's conversion/llama.py Llama4Model).
#include "arch_planner.hpp"

namespace shardforge::model::detail {

// Llama4Model.modify_tensors (llama.cpp's conversion/llama.py; undo_permute off): the fused experts as transformers'
// Llama4TextExperts stores them, gate_up_proj [n_expert, n_embd, 2 * n_ff] (gate = the first n_ff columns, up = the
// rest) and down_proj [n_expert, n_ff, n_embd], transposed to ggml's [n_expert, out, in]. Each half is a column
// range of every expert's matrix: a row block reads whole experts, never the whole fused tensor.
void Planner::llama4(const Item& it) {
    const std::string& name = it.name;
    const core::Shape& shape = it.t->shape;
    if (contains(name, "gate_up_proj")) {
        if (shape.size() != 3 || shape[2] % 2 != 0)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("fused gate_up_proj must be [n_expert, n_embd, 2 * n_ff], found ",
                                  core::shape_str(shape)));
        const std::int64_t n_ff = shape[2] / 2;
        const std::size_t at = name.find("gate_up_proj");
        for (std::int64_t half = 0; half < 2; ++half) {
            SourceSlice sl{it.t->name};
            sl.col_begin = half * n_ff;
            sl.col_end = (half + 1) * n_ff;
            sl.transpose = true;
            std::string n = name;
            n.replace(at, std::string_view("gate_up_proj").size(), half == 0 ? "gate_proj.weight" : "up_proj.weight");
            map_and_emit(it, n, {sl}, {shape[0], n_ff, shape[1]}, {});
        }
        return;
    }
    if (ends_with(name, "down_proj")) {
        if (shape.size() != 3)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("fused down_proj must be [n_expert, n_ff, n_embd], found ", core::shape_str(shape)));
        SourceSlice sl{it.t->name};
        sl.transpose = true;
        map_and_emit(it, name + ".weight", {sl}, {shape[0], shape[2], shape[1]}, {});
        return;
    }
    map_and_emit(it, name, {{it.t->name}}, shape, {});
}

}  // namespace shardforge::model::detail
