// Gemma 3n's tensor pass (llama.cpp's conversion/gemma.py Gemma3NModel.modify_tensors): the AltUp projections stacked
// into one 3-D tensor each, the embeddings checked against vocab_size, everything else Gemma3Model's path with a norm
// shift of 0 (Gemma3nRMSNorm uses its weight as is) and without the token_embd trim.
#include "arch_planner.hpp"

namespace shardforge::model::detail {

namespace {
constexpr std::int64_t n_altup_stacked = 3;  // altup_num_inputs (4, asserted by the converter) - 1
}

void Planner::gemma3n(const Item& it) {
    const core::Shape& shape = it.t->shape;
    std::vector<SourceSlice> one{{it.t->name}};
    if (contains(it.name, "embed_tokens.weight") || contains(it.name, "embed_tokens_per_layer")) {
        // The converter pads both embeddings with zero rows up to vocab_size (default 262400: the vision and audio
        // token slots). Not implemented: a checkpoint that needs it is refused.
        const std::int64_t n_vocab = cfg_.find_int({"vocab_size"}).value_or(262400);
        if (shape.size() != 2)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("shape ", core::shape_str(shape), ": an embedding must be 2-D"));
        if (shape[0] < n_vocab)
            throw Error(ErrorKind::Unsupported, it.t->file, it.t->name,
                        core::cat("gemma3n: ", shape[0], " rows < vocab_size ", n_vocab,
                                  "; the converter's zero-row padding of the embeddings is not implemented"));
        map_and_emit(it, it.name, one, shape, {});
        return;
    }
    for (std::string_view stacked : {"altup_unembed_projections", "altup_projections"}) {
        if (!contains(it.name, stacked)) continue;
        // altup_projections.{0,1,2}.weight -> model.altup_projections.weight [3, H, H] once the three are seen
        const std::optional<std::int64_t> idx = block_id(it.name);
        if (!idx || *idx >= n_altup_stacked)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("gemma3n: expected ", stacked, ".{0,1,2} (4 AltUp inputs)"));
        const std::string merged = core::cat("model.", stacked, ".weight");
        auto& parts = altup_[merged];
        parts.emplace(*idx, it);
        if (static_cast<std::int64_t>(parts.size()) < n_altup_stacked) return;
        std::vector<SourceSlice> sources;
        const core::Shape block = parts.begin()->second.t->shape;
        for (const auto& [i, part] : parts) {
            if (part.t->shape != block || block.size() != 2)
                throw Error(ErrorKind::BadInput, part.t->file, part.t->name,
                            core::cat("shape ", core::shape_str(part.t->shape), ": the ", stacked,
                                      " must be 2-D and of one shape"));
            sources.push_back({part.t->name});
        }
        core::Shape s{n_altup_stacked};
        s.insert(s.end(), block.begin(), block.end());
        map_and_emit(it, merged, std::move(sources), std::move(s), {});
        parts.clear();
        return;
    }
    map_and_emit(it, it.name, one, shape, {});
}

// The converter stacks only complete sets and skips the rest, which llama.cpp then cannot load: refused.
void Planner::gemma3n_check_altup() const {
    for (const auto& [merged, parts] : altup_)
        if (!parts.empty())
            throw Error(ErrorKind::BadInput, parts.begin()->second.t->file, parts.begin()->second.t->name,
                        core::cat("gemma3n: ", parts.size(), " of the 3 tensors stacked into '", merged, "'"));
}

}  // namespace shardforge::model::detail
