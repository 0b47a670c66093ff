// HF -> GGUF tensor map: emulates convert_hf_to_gguf's tensor pass (llama.cpp's conversion/base.py prepare_tensors and the
// model classes' filter_tensors / modify_tensors / generate_extra_tensors) on names and shapes only.
#include "arch_planner.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <map>
#include <set>

namespace shardforge::model {
namespace detail {
namespace {

struct ArchRow {
    std::string_view hf;
    std::string_view gguf;
    Family family;
};
constexpr std::array<ArchRow, 29> arch_table{{
    {"LlamaForCausalLM", "llama", Family::Llama},
    {"MistralForCausalLM", "llama", Family::Llama},
    {"MixtralForCausalLM", "llama", Family::Llama},
    {"Qwen2ForCausalLM", "qwen2", Family::Qwen2},
    {"Qwen2MoeForCausalLM", "qwen2moe", Family::Qwen2Moe},
    {"Qwen3ForCausalLM", "qwen3", Family::Qwen3},
    {"Qwen3MoeForCausalLM", "qwen3moe", Family::Qwen3Moe},
    {"GemmaForCausalLM", "gemma", Family::Gemma},
    {"Gemma2ForCausalLM", "gemma2", Family::Gemma2},
    {"Gemma3ForCausalLM", "gemma3", Family::Gemma3},
    {"Gemma3ForConditionalGeneration", "gemma3", Family::Gemma3},
    {"Phi3ForCausalLM", "phi3", Family::Phi3},
    {"Qwen3_5ForCausalLM", "qwen35", Family::Qwen35},
    {"Qwen3_5ForConditionalGeneration", "qwen35", Family::Qwen35},
    {"Qwen3_5MoeForCausalLM", "qwen35moe", Family::Qwen35Moe},
    {"Qwen3_5MoeForConditionalGeneration", "qwen35moe", Family::Qwen35Moe},
    // llama.cpp's conversion/mistral3.py: the text model of Mistral Small 3.x / Devstral / Ministral 3 (model_type "mistral4"
    // is refused below: its DeepSeek-V2 conversion is not implemented)
    {"Mistral3ForConditionalGeneration", "mistral3", Family::Mistral3},
    {"Ministral3ForCausalLM", "mistral3", Family::Mistral3},
    // llama.cpp's conversion/glm.py Glm4MoeModel (the vision-language Glm4vMoeForConditionalGeneration is not ours)
    {"Glm4MoeForCausalLM", "glm4moe", Family::Glm4Moe},
    {"Qwen3NextForCausalLM", "qwen3next", Family::Qwen3Next},
    // llama.cpp's conversion/gemma.py Gemma4Model: the text model (the vision and audio towers are skipped)
    {"Gemma4ForCausalLM", "gemma4", Family::Gemma4},
    {"Gemma4ForConditionalGeneration", "gemma4", Family::Gemma4},
    // llama.cpp's conversion/deepseek.py DeepseekV2Model: DeepSeek-V3 / V3.1 / R1 and Kimi-K2 (same architecture)
    {"DeepseekV3ForCausalLM", "deepseek2", Family::DeepSeek2},
    {"GptOssForCausalLM", "gpt-oss", Family::GptOss},
    // llama.cpp's conversion/minimax.py MiniMaxM2Model (MiniMax-M2 / M2.1)
    {"MiniMaxM2ForCausalLM", "minimax-m2", Family::MiniMaxM2},
    // llama.cpp's conversion/llama.py Llama4Model: the text model of Llama 4 Scout / Maverick (the vision tower and the
    // projector go to the converter's separate mmproj output, conversion/llama4.py: skipped here)
    {"Llama4ForConditionalGeneration", "llama4", Family::Llama4},
    {"Llama4ForCausalLM", "llama4", Family::Llama4},
    // llama.cpp's conversion/gemma.py Gemma3NModel: the text model (the vision and audio towers go to its mmproj
    // output)
    {"Gemma3nForCausalLM", "gemma3n", Family::Gemma3n},
    {"Gemma3nForConditionalGeneration", "gemma3n", Family::Gemma3n},
}};

const ArchRow* find_arch(std::string_view hf) {
    for (const ArchRow& r : arch_table)
        if (r.hf == hf) return &r;
    return nullptr;
}

}  // namespace

Family family_of(std::string_view hf_arch, const std::string& file) {
    if (const ArchRow* r = find_arch(hf_arch)) return r->family;
    // llama.cpp's conversion/deepseek.py converts DeepSeek-V3.2 as its own arch "deepseek32" (DeepseekV32Model: the
    // DSA indexer's tensors and hparams, the MTP block kept); not emulated here.
    if (hf_arch == "DeepseekV32ForCausalLM")
        throw core::Error(core::ErrorKind::Unsupported, file, "",
                          "DeepseekV32ForCausalLM (DeepSeek-V3.2, llama.cpp arch 'deepseek32') is not supported: its "
                          "sparse-attention indexer tensors (self_attn.indexer.*) are not converted; supported: "
                          "DeepseekV3ForCausalLM (DeepSeek-V3/V3.1/R1, Kimi-K2)");
    std::string list;
    for (const std::string& s : supported_architectures()) list += (list.empty() ? "" : ", ") + s;
    throw core::Error(core::ErrorKind::Unsupported, file, "",
                      core::cat("architecture '", hf_arch, "' is not supported; supported: ", list));
}

}  // namespace detail

std::vector<std::string> supported_architectures() {
    std::vector<std::string> v;
    for (const auto& r : detail::arch_table) v.emplace_back(r.hf);
    std::sort(v.begin(), v.end());
    return v;
}

bool is_supported_architecture(std::string_view hf_arch) { return detail::find_arch(hf_arch) != nullptr; }

std::string gguf_arch_name(std::string_view hf_arch) {
    (void)detail::family_of(hf_arch);
    return std::string(detail::find_arch(hf_arch)->gguf);
}

namespace detail {

std::optional<std::int64_t> block_id(std::string_view name) {  // first all-digit dotted component
    while (!name.empty()) {
        const std::size_t dot = name.find('.');
        const std::string_view part = name.substr(0, dot);
        if (!part.empty() && std::all_of(part.begin(), part.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return std::stoll(std::string(part));
        if (dot == std::string_view::npos) break;
        name.remove_prefix(dot + 1);
    }
    return std::nullopt;
}

GgufConversion Planner::run(const std::vector<HfTensor>& tensors) {
    // Visiting order: part files sorted by name, tensors in each part sorted by name (SafetensorsLocal sorts).
    std::vector<const HfTensor*> order;
    order.reserve(tensors.size());
    for (const HfTensor& t : tensors) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const HfTensor* a, const HfTensor* b) {
        if (a->appended != b->appended) return b->appended;
        return a->file != b->file ? a->file < b->file : a->name < b->name;
    });

    std::vector<Item> items;
    std::map<std::string, const HfTensor*> seen;
    for (const HfTensor* t : order) {
        std::string name = t->name;
        if (llama_family()) replace_all(name, "text_model.");
        if (family_ == Family::Gemma4) name = gemma4_filter_name(std::move(name));
        if (family_ == Family::Gemma3n && ends_with(name, "_scale")) name += ".weight";  // Gemma3NModel.filter_tensors
        if ((family_ == Family::Gemma || family_ == Family::Gemma2) && name == "lm_head.weight") {
            out_.dropped.push_back(t->name);  // llama.cpp's gemma/gemma2 have no output tensor
            continue;
        }
        if (is_multimodal(name)) {
            out_.dropped.push_back(t->name);
            continue;
        }
        // ModelBase.filter_tensors: the expert-bias rename and the "language_model." strip
        if (ends_with(name, "e_score_correction_bias"))
            name.replace(name.size() - std::string_view("_bias").size(), 1, ".");
        replace_all(name, "language_model.");
        if (hybrid_family()) name = mtp_name(std::move(name));
        if (family_ == Family::GptOss && contains(name, "sinks")) name += ".weight";  // GptOssModel.filter_tensors
        if (auto [it, fresh] = seen.emplace(name, t); !fresh)
            throw Error(ErrorKind::BadInput, t->file, t->name,
                        core::cat("same tensor as '", it->second->name, "' in ", it->second->file,
                                  " after the converter's renaming"));
        items.push_back({std::move(name), t});
    }
    out_.auto_ftype = auto_ftype(items);
    out_.block_count = cfg_.n_layer;
    if (hybrid_family()) {
        // _QwenMtpMixin: mtp_num_hidden_layers, else the MTP layers the checkpoint holds. Deviation: a checkpoint
        // without MTP tensors (transformers' save_pretrained drops them and keeps mtp_num_hidden_layers) is
        // converted without MTP layers, i.e. as the converter's --no-mtp: its default output declares MTP
        // blocks it has no tensors for, which llama.cpp refuses to load ("missing tensor
        // 'blk.N.attn_norm.weight'"), or stops on an assertion when the config does not count them either.
        const std::int64_t n_mtp = cfg_.find_int({"mtp_num_hidden_layers"}).value_or(0);
        if (n_mtp < 0 || n_mtp > max_mtp_layers)
            bad_config(core::cat("'mtp_num_hidden_layers' must be in [0, ", max_mtp_layers, "], got ", n_mtp));
        if (n_mtp_seen_ > 0) out_.block_count += n_mtp > 0 ? n_mtp : n_mtp_seen_;
    }
    if (family_ == Family::Glm4Moe) {
        // Glm4MoeModel.__init__ (the converter's default, MTP kept): block_count += num_nextn_predict_layers,
        // whether or not the checkpoint holds those layers; llama.cpp loads a file without them as trunk only.
        const std::int64_t n_mtp = cfg_.find_int({"num_nextn_predict_layers"}).value_or(0);
        if (n_mtp < 0 || n_mtp > max_mtp_layers)
            bad_config(core::cat("'num_nextn_predict_layers' must be in [0, ", max_mtp_layers, "], got ", n_mtp));
        out_.block_count += n_mtp;
        if (mtp_only_ && n_mtp == 0)
            bad_config("an MTP-only GGUF (gguf-mtp) needs MTP layers: num_nextn_predict_layers is 0 or missing");
        // Glm4MoeModel.filter_tensors with --mtp: the MTP layers and the tensors they share with the trunk
        if (mtp_only_)
            std::erase_if(items, [&](const Item& it) {
                const std::optional<std::int64_t> bid = block_id(it.name);
                const bool mtp = starts_with(it.name, "model.layers.") && bid && *bid >= cfg_.n_layer;
                return !mtp && it.name != "model.embed_tokens.weight" && it.name != "model.norm.weight" &&
                       it.name != "lm_head.weight";
            });
        if (mtp_only_) out_.auto_ftype = auto_ftype(items);  // --outtype auto looks at the kept tensors
    }

    generate_extra();
    if (family_ == Family::GptOss) gpt_oss_mxfp4(items);
    for (const Item& it : items) {
        if (ends_with(it.name, ".attention.masked_bias") || ends_with(it.name, ".attention.bias") ||
            ends_with(it.name, ".rotary_emb.inv_freq")) {
            out_.dropped.push_back(it.t->name);
            continue;
        }
        modify(it);
    }
    for (const auto& [bid, names] : experts_) {
        if (!names.empty()) {
            const Item& first = names.begin()->second;
            throw Error(ErrorKind::BadInput, first.t->file, first.t->name,
                        core::cat("incomplete expert set in layer ", bid, ": ", names.size(),
                                  " expert tensors left unstacked (config says ", n_experts(), " experts)"));
        }
    }
    if (family_ == Family::Gemma3n) gemma3n_check_altup();
    finish();
    return std::move(out_);
}

// `--outtype auto` (ModelBase.__init__): dtype of the first >= 2-D tensor that is bf16 or f16.
quant::FType Planner::auto_ftype(const std::vector<Item>& items) {
    for (const Item& it : items) {
        if (it.t->shape.size() < 2) continue;
        if (it.t->dtype == core::DType::BF16) return quant::FType::BF16;
        if (it.t->dtype == core::DType::F16) return quant::FType::F16;
    }
    return quant::FType::F16;
}

void Planner::emit(std::string gguf_name, std::vector<SourceSlice> sources, core::Shape shape,
                   std::vector<Transform> transforms, const Item* origin) {
    if (gguf_name.size() >= 64)
        throw Error(ErrorKind::BadInput, origin ? origin->t->file : cfg_.file, origin ? origin->t->name : "",
                    core::cat("GGUF name '", gguf_name, "' is longer than 63 bytes"));
    GgufTensorMap m;
    m.force_f32 = shape.size() <= 1 || ends_with(gguf_name, "_norm.weight") || !ends_with(gguf_name, ".weight");
    // ffn_gate_inp(_shexp).weight, gemma3n's altup_correct_coef / altup_predict_coef: match_model_tensor_name with the
    // ".weight" suffix
    if (auto bid = block_id(gguf_name)) {
        const std::string stem = core::cat("blk.", *bid, ".");
        if (gguf_name == stem + "ffn_gate_inp.weight" || gguf_name == stem + "ffn_gate_inp_shexp.weight" ||
            (hybrid_family() && gguf_name == stem + "ssm_conv1d.weight") ||
            gguf_name == stem + "altup_correct_coef.weight" || gguf_name == stem + "altup_predict_coef.weight")
            m.force_f32 = true;
    }
    if (gguf_name == "token_embd.weight") out_.n_vocab_embed = shape.empty() ? 0 : shape[0];
    if (!names_.insert(gguf_name).second)
        throw Error(ErrorKind::BadInput, origin ? origin->t->file : cfg_.file, origin ? origin->t->name : "",
                    core::cat("maps to '", gguf_name, "', which another tensor already maps to"));
    m.gguf_name = std::move(gguf_name);
    m.sources = std::move(sources);
    m.shape = std::move(shape);
    m.transforms = std::move(transforms);
    out_.tensors.push_back(std::move(m));
}

// TextModel.modify_tensors: the name map; transforms decided by the family's modify_tensors.
void Planner::map_and_emit(const Item& it, const std::string& name, std::vector<SourceSlice> sources, core::Shape shape,
                           std::vector<Transform> transforms) {
    std::string gguf_name = map_tensor_name(family_, name);
    // get_tensor_name_map(arch, block_count) knows blocks [0, block_count) only
    if (const auto bid = block_id(name); bid && *bid >= out_.block_count && starts_with(name, "model.layers."))
        gguf_name.clear();
    if (gguf_name.empty())
        throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                    core::cat("no GGUF name for this tensor in arch '", out_.arch,
                              "' (llama.cpp's converter: \"Can not map tensor\")"));
    emit(std::move(gguf_name), std::move(sources), std::move(shape), std::move(transforms), &it);
}

void Planner::generate_extra() {
    if (llama_family()) {
        std::vector<float> f = llama3_rope_freqs(cfg_);
        if (!f.empty()) {
            core::Shape shape{static_cast<std::int64_t>(f.size())};
            emit("rope_freqs.weight", {}, shape, {}, nullptr);
            out_.tensors.back().generated = std::move(f);
        }
    } else if (family_ == Family::Phi3) {
        phi3_rope_factors();
    } else if (family_ == Family::Gemma4) {
        gemma4_rope_freqs();
    }
}

void Planner::check_rows(const Item& it, const core::Shape& shape, std::int64_t divisor, std::string_view why) const {
    if (shape.empty() || divisor <= 0 || shape[0] % divisor != 0)
        throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                    core::cat("shape ", core::shape_str(shape), ": rows must be a multiple of ", divisor, " (",
                              why, ")"));
}

void Planner::modify(const Item& it) {
    const std::optional<std::int64_t> bid = block_id(it.name);
    const core::Shape& shape = it.t->shape;
    std::vector<SourceSlice> one{{it.t->name}};
    switch (family_) {
    case Family::Llama:
    case Family::Mistral3: {
        std::vector<Transform> tr;
        const std::int64_t n_head = require_int({"n_heads", "num_attention_heads"}, "head count");
        const std::int64_t n_kv = cfg_.find_int({"n_kv_heads", "num_key_value_heads"}).value_or(n_head);
        if (ends_with(it.name, "q_proj.weight") || ends_with(it.name, "q_proj.bias")) {
            check_rows(it, shape, 2 * n_head, "llama Q un-permute over num_attention_heads");
            tr.push_back({TransformKind::PermuteLlamaHeads, n_head});
        }
        if (ends_with(it.name, "k_proj.weight") || ends_with(it.name, "k_proj.bias")) {
            check_rows(it, shape, 2 * n_kv, "llama K un-permute over num_key_value_heads");
            tr.push_back({TransformKind::PermuteLlamaHeads, n_kv});
        }
        if (contains(it.name, "block_sparse_moe.experts")) {
            stack_experts(it, require_bid(it, bid), {"w1", "w2", "w3"},
                          "model.layers.{bid}.block_sparse_moe.experts.{x}.{w}.weight",
                          "model.layers.{bid}.block_sparse_moe.experts.{w}.weight");
            return;
        }
        map_and_emit(it, it.name, one, shape, std::move(tr));
        return;
    }
    case Family::Qwen2Moe:
    case Family::Qwen3Moe:
        qwen2moe(it, it.name, std::move(one), shape, {});
        return;
    case Family::Gemma:
    case Family::Gemma2: {
        std::vector<Transform> tr;
        if (ends_with(it.name, "norm.weight")) tr.push_back({TransformKind::AddOne, 0});
        map_and_emit(it, it.name, one, shape, std::move(tr));
        return;
    }
    case Family::Gemma4:
        if (ends_with(it.name, "router.scale")) {  // Gemma4Model.modify_tensors: the router's input scale
            emit(core::cat("blk.", require_bid(it, bid), ".ffn_gate_inp.scale"), one, shape, {}, &it);
            return;
        }
        if (contains(it.name, ".per_expert_scale")) {  // scales each expert's output: ffn_down_exps.scale
            emit(core::cat("blk.", require_bid(it, bid), ".ffn_down_exps.scale"), one, shape, {}, &it);
            return;
        }
        [[fallthrough]];  // Gemma3Model.modify_tensors, whose norm shift Gemma 4 sets to 0
    case Family::Gemma3: {
        core::Shape s = shape;
        if (contains(it.name, "embed_tokens.weight")) {
            if (vocab_ < 0)
                throw Error(ErrorKind::Internal, it.t->file, it.t->name,
                            "gemma3 needs the tokenizer's vocab size to trim token_embd (this is a bug)");
            if (!s.empty() && vocab_ < s[0]) {
                one[0].row_end = vocab_;  // data[:n_vocab_real] on dim 0 (= dim -2 of the 2-D embedding)
                s[0] = vocab_;
            }
        }
        std::vector<Transform> tr;
        if (family_ == Family::Gemma3 && ends_with(it.name, "norm.weight")) tr.push_back({TransformKind::AddOne, 0});
        map_and_emit(it, it.name, one, s, std::move(tr));
        return;
    }
    case Family::Qwen2:
    case Family::Qwen3:
    case Family::Phi3:
        map_and_emit(it, it.name, one, shape, {});
        return;
    case Family::Gemma3n: gemma3n(it); return;
    case Family::Qwen35:
    case Family::Qwen35Moe: qwen35(it, one); return;
    case Family::Glm4Moe:
        // Glm4MoeModel.modify_tensors: per-expert tensors stacked per layer (the MTP layer's too), the rest mapped
        if (contains(it.name, "mlp.experts")) {
            stack_experts(it, require_bid(it, bid), {"down_proj", "gate_proj", "up_proj"},
                          "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
            return;
        }
        map_and_emit(it, it.name, one, shape, {});
        return;
    case Family::Qwen3Next: qwen3next(it, std::move(one)); return;
    case Family::DeepSeek2: deepseek2(it, std::move(one)); return;
    case Family::GptOss: gpt_oss(it); return;
    case Family::MiniMaxM2:
        // MiniMaxM2Model.modify_tensors: per-expert w1/w2/w3 stacked per layer (emitted w1, w2, w3), the rest mapped
        if (contains(it.name, "block_sparse_moe.experts.")) {
            stack_experts(it, require_bid(it, bid), {"w1", "w2", "w3"},
                          "model.layers.{bid}.block_sparse_moe.experts.{x}.{w}.weight",
                          "model.layers.{bid}.block_sparse_moe.experts.{w}.weight");
            return;
        }
        map_and_emit(it, it.name, one, shape, {});
        return;
    case Family::Llama4: llama4(it); return;
    }
}

std::int64_t Planner::require_bid(const Item& it, const std::optional<std::int64_t>& bid) const {
    if (!bid) throw Error(ErrorKind::BadInput, it.t->file, it.t->name, "expert tensor without a layer number");
    // Qwen2MoeModel keeps one expert buffer per block (block_count: MTP layers included)
    if (*bid < 0 || *bid >= out_.block_count)
        throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                    core::cat("layer ", *bid, " is out of range (", out_.block_count, " blocks: num_hidden_layers ",
                              cfg_.n_layer, out_.block_count > cfg_.n_layer ? " + MTP layers" : "", ")"));
    return *bid;
}

std::string Planner::fill(std::string pattern, std::int64_t bid, std::int64_t x, std::string_view w) {
    auto put = [&](std::string_view key, const std::string& value) {
        if (auto p = pattern.find(key); p != std::string::npos) pattern.replace(p, key.size(), value);
    };
    put("{bid}", std::to_string(bid));
    put("{x}", std::to_string(x));
    put("{w}", std::string(w));
    return pattern;
}

// Buffer per-expert tensors of a layer; once n_experts * 3 have arrived, stack each projection in expert
// order (torch.stack(dim=0)) and map it. The stacked tensor is emitted when its last expert arrives.
void Planner::stack_experts(const Item& it, std::int64_t bid, std::array<std::string_view, 3> projections,
                            const char* expert_pattern, const char* merged_pattern) {
    const std::int64_t n = n_experts();
    auto& layer = experts_[bid];
    layer.emplace(it.name, it);
    if (static_cast<std::int64_t>(layer.size()) < n * 3) return;
    for (std::string_view w : projections) {
        std::vector<SourceSlice> sources;
        core::Shape block;
        const Item* last = nullptr;
        for (std::int64_t x = 0; x < n; ++x) {
            const std::string ename = fill(expert_pattern, bid, x, w);
            auto e = layer.find(ename);
            if (e == layer.end())
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("layer ", bid, " has ", layer.size(), " expert tensors but not '", ename, "'"));
            if (x == 0) block = e->second.t->shape;
            else if (e->second.t->shape != block)
                throw Error(ErrorKind::BadInput, e->second.t->file, e->second.t->name,
                            core::cat("shape ", core::shape_str(e->second.t->shape), " differs from expert 0's ",
                                      core::shape_str(block)));
            sources.push_back({e->second.t->name});
            last = &e->second;
        }
        core::Shape stacked{n};
        stacked.insert(stacked.end(), block.begin(), block.end());
        Item origin = *last;
        map_and_emit(origin, fill(merged_pattern, bid, 0, w), std::move(sources), std::move(stacked), {});
        for (std::int64_t x = 0; x < n; ++x) layer.erase(fill(expert_pattern, bid, x, w));
    }
}

void Planner::finish() {
    // qwen2moe's loader requires output.weight (src/models/qwen2moe.cpp) and the converter never synthesizes
    // it: a tied checkpoint would give an unloadable file. We write token_embd's data again as output.
    if (family_ == Family::Qwen2Moe && !names_.count("output.weight")) {
        auto te = std::find_if(out_.tensors.begin(), out_.tensors.end(),
                               [](const GgufTensorMap& t) { return t.gguf_name == "token_embd.weight"; });
        if (te != out_.tensors.end()) {
            GgufTensorMap out = *te;
            out.gguf_name = "output.weight";
            out_.tensors.insert(te + 1, std::move(out));
            names_.insert("output.weight");
        }
    }
}

}  // namespace detail

GgufConversion plan_gguf_conversion(const HfConfig& cfg, const std::vector<HfTensor>& tensors,
                                    std::int64_t tokenizer_vocab_size, bool mtp_only) {
    detail::Planner p(cfg, tokenizer_vocab_size, mtp_only);
    GgufConversion c = p.run(tensors);
    detail::append_arch_kvs(cfg, c);
    return c;
}

}  // namespace shardforge::model
