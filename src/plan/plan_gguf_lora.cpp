// --format gguf-lora[:f32|f16|bf16|q8_0|auto]: the PEFT adapter as a llama.cpp GGUF LoRA adapter (llama.cpp's
// convert_lora_to_gguf.py), written as <stem>-lora-<outtype>.gguf (Unsloth's unsloth/save.py). Layout as
// convert_lora_to_gguf.py: KVs general.architecture, general.type = "adapter", adapter.type = "lora", general.name,
// adapter.lora.alpha (f32), general.quantization_version; per target "<gguf name>.lora_a" (PEFT A (r, in), ggml ne [in,
// r]) then ".lora_b" (B (out, r), ne [r, out]), in the base conversion's tensor order. Row slices and the Q/K head
// permutation of the base tensor apply to B's rows only; Gemma's norm +1 never applies (LoRA does not target norms).
//
// Better than the reference converter: llama.cpp scales each pair by alpha/rank with rank = b.ne[0]; the exact
// PEFT factor (rsLoRA alpha/sqrt(r), rank_pattern/alpha_pattern, the --adapter DIR:w weight) differs from that,
// so B is multiplied by s_true / (alpha/rank) (Emit::scale). Most adapters get factor 1 and B is written as is.
// Refused (Unsupported, the merged --format gguf:TYPE handles them): several adapters, DoRA, fan_in_fan_out,
// modules_to_save / full replacement tensors, lora_bias, target_parameters (3-D expert weights), LoRA on tensors
// the base GGUF does not hold as one converted tensor (untied lm_head of a tied model, Gemma3's trimmed
// token_embd), and token-embedding LoRA whose rank is not a power of two (see the transpose below).
// A tensor the conversion writes as row slices of one HF tensor (Qwen3-Next's in_proj_qkvz -> attn_qkv, attn_gate)
// gets lora_b as the same row slices of B, and A's one lora_a item feeds both.
// Per-expert LoRA (experts.N.*_proj) on tensors stacked into *_exps is written as 3-D pairs, lora_a ne [in, r, E]
// and lora_b ne [r, out, E]: llama.cpp's loader checks ne[0] and ne[1] only, and build_lora_mm_id applies both
// with ggml_mul_mat_id on the selected experts. Every expert must carry LoRA, of one rank and one PEFT scale
// (llama.cpp has one alpha/rank per tensor); otherwise refused.
#include <shardforge/formats.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace shardforge::plan::detail {
namespace {

constexpr const char* use_merged = "; export a merged model instead with --format gguf:TYPE";

std::vector<std::int64_t> ggml_ne(const core::Shape& shape) {
    std::vector<std::int64_t> ne(shape.rbegin(), shape.rend());
    if (ne.empty()) ne.push_back(1);
    return ne;
}

// deepseek2's attn_q / attn_q_a / attn_q_b / attn_kv_a_mqa / attn_k_b / attn_v_b.
bool mla_projection(const std::string& gguf_name) {
    for (std::string_view w : {".attn_q.weight", ".attn_q_a.weight", ".attn_q_b.weight", ".attn_kv_a_mqa.weight",
                               ".attn_k_b.weight", ".attn_v_b.weight"})
        if (gguf_name.size() >= w.size() && gguf_name.compare(gguf_name.size() - w.size(), w.size(), w) == 0) return true;
    return false;
}

// llama.cpp's gemma3n graph multiplies the AltUp router and coefficients with plain ggml_mul_mat
// (src/models/gemma3n.cpp altup_compute_router_modalities / altup_predict / altup_correct).
bool gemma3n_altup_matrix(const std::string& gguf_name) {
    for (std::string_view w : {".altup_router.weight", ".altup_predict_coef.weight", ".altup_correct_coef.weight"})
        if (gguf_name.size() >= w.size() && gguf_name.compare(gguf_name.size() - w.size(), w.size(), w) == 0)
            return true;
    return false;
}

core::Error unsupported(const std::string& file, const std::string& tensor, const std::string& why) {
    return core::Error(core::ErrorKind::Unsupported, file, tensor, core::cat("--format gguf-lora: ", why, use_merged));
}

}  // namespace

void add_gguf_lora_output(const Options& opt, const OutputSpec& o, const std::vector<lora::Adapter>& adapters,
                          Tables& t, const nlohmann::json&, Plan& p) {
    if (adapters.empty())
        throw core::Error(core::ErrorKind::Usage, "", "", "--format gguf-lora needs an --adapter to convert");
    if (adapters.size() > 1)
        throw unsupported("", "", "one adapter per GGUF LoRA file (several --adapter given)");
    const lora::Adapter& ad = adapters[0];
    const std::string ad_cfg = (ad.dir / "adapter_config.json").string();
    const lora::AdapterConfig& c = ad.config;
    if (c.use_dora) throw unsupported(ad_cfg, "", "DoRA (use_dora) cannot be expressed as a llama.cpp LoRA");
    if (c.fan_in_fan_out) throw unsupported(ad_cfg, "", "fan_in_fan_out adapters are not supported");
    if (c.lora_bias) throw unsupported(ad_cfg, "", "lora_bias (trained B biases) cannot be expressed in a GGUF LoRA");
    if (!c.target_parameters.empty())
        throw unsupported(ad_cfg, "", "target_parameters (3-D expert weights) are not supported");

    // The base conversion, from the base tensors only (what the base GGUF holds): names, order, slices, transforms.
    // Synthesized outputs (untied lm_head) are not in the base GGUF.
    const model::GgufConversion conv = plan_gguf_base(opt, t, p, true).conv;

    model::OutType ot;
    if (!model::parse_outtype(o.type, ot))
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("unknown GGUF LoRA type '", o.type, "' (f32, f16, bf16, q8_0 or auto)"));
    const quant::FType ftype = model::outtype_ftype(ot, conv);

    // Every changed tensor must be reachable; synthesized ones never are.
    for (const auto& v : t.tensors)
        if (v.source.merge && v.name != v.source.name)
            throw unsupported(ad.file.string(), v.name,
                              core::cat("the adapter trains ", v.name, " of a model with tied embeddings; the base "
                                        "GGUF has no separate output tensor to attach it to"));

    // The adapter file becomes an input file: its tensors are read like base tensors.
    const auto ad_file = static_cast<std::uint32_t>(p.input_files.size());
    p.input_files.push_back(fs::absolute(ad.file).string());
    std::map<std::string, const lora::AdapterTensor*> by_key;
    for (const auto& at : ad.tensors) by_key[at.key] = &at;
    auto adapter_source = [&](const lora::TensorRef& ref) {
        const auto it = by_key.find(ref.key);
        if (it == by_key.end())
            throw core::Error(core::ErrorKind::BadInput, ad.file.string(), ref.key, "tensor listed but not found");
        Source s;
        s.file = ad_file;
        s.name = ref.key;
        s.dtype = it->second->dtype;
        s.shape = it->second->shape;
        s.offset = it->second->offset;
        s.nbytes = it->second->nbytes;
        if (!core::is_float(s.dtype))
            throw core::Error(core::ErrorKind::BadInput, ad.file.string(), ref.key,
                              "LoRA factor is not a float tensor");
        return s;
    };

    const float alpha = static_cast<float>(c.lora_alpha);
    struct Pair {
        std::string name;                 // "<gguf name>" without the suffix
        Source a, b;                      // b carries the row slice
        core::Shape a_out, b_out;         // row-major shapes as written (ggml ne reversed)
        core::Shape a_item;               // shape of A's f32 work item (token_embd: flat, transposed in place)
        std::vector<model::Transform> a_transforms, b_transforms;
        float b_scale = 1.0f;
        // Stacked experts (*_exps, (E, out, in)): every expert's A and B, concatenated into (E, r, in) and
        // (E, out, r); llama.cpp applies them per selected expert (build_lora_mm_id: ggml_mul_mat_id on both).
        std::vector<Source> a_stack, b_stack;
    };
    std::vector<Pair> pairs;
    std::set<std::string> covered;  // HF names whose LoRA made it into the file
    std::map<std::string, std::pair<int, std::string>> folded;  // scale note -> (count, first tensor)
    // The one Linear term of a merge target, or a refusal naming why the adapter cannot be a llama.cpp LoRA.
    auto linear_term = [&](const lora::MergeTarget& mt, bool embedding_ok) -> const lora::Term* {
        const lora::Term* term = nullptr;
        for (const auto& tr : mt.terms) {
            const std::string& key = tr.a.key;
            switch (tr.kind) {
            case lora::TermKind::Linear: break;
            case lora::TermKind::Replace:
                throw unsupported(ad.file.string(), key, "full replacement tensor (modules_to_save / saved weight)");
            case lora::TermKind::BiasDelta: throw unsupported(ad.file.string(), key, "trained LoRA bias");
            case lora::TermKind::Param3D: throw unsupported(ad.file.string(), key, "3-D expert parameter LoRA");
            case lora::TermKind::Embedding:
                if (!embedding_ok) throw unsupported(ad.file.string(), key, "embedding LoRA on an expert tensor");
                break;
            }
            if (tr.dora) throw unsupported(ad.file.string(), key, "DoRA");
            if (tr.fan_in_fan_out) throw unsupported(ad.file.string(), key, "fan_in_fan_out");
            if (term) throw unsupported(ad.file.string(), key, "two LoRA terms on one tensor");
            term = &tr;
        }
        return term;
    };
    // llama.cpp: scale = alpha ? user_scale * alpha / rank : user_scale, in float, rank = b.ne[0]; B takes the
    // factor that makes it the exact PEFT scale.
    auto fold_scale = [&](Pair& pr, float peft_scale, std::int64_t r) {
        const auto rank = static_cast<float>(r);
        const float llama_scale = alpha != 0.0f ? 1.0f * alpha / rank : 1.0f;
        pr.b_scale = peft_scale == llama_scale
                         ? 1.0f
                         : static_cast<float>(static_cast<double>(peft_scale) / static_cast<double>(llama_scale));
        if (pr.b_scale != 1.0f) {
            const std::string why = core::cat(pr.b_scale, " (PEFT scale ", peft_scale, ", llama.cpp alpha/rank ",
                                              llama_scale, ")");
            auto& [n, first] = folded[why];
            if (n++ == 0) first = pr.name;
        }
    };
    for (const model::GgufTensorMap& tm : conv.tensors) {
        // llama.cpp's deepseek2 graph multiplies the MLA projections with plain ggml_mul_mat, never build_lora_mm
        // (src/models/deepseek2.cpp): an adapter pair for them would load and be ignored.
        if (conv.arch == "deepseek2" && mla_projection(tm.gguf_name))
            for (const auto& sl : tm.sources)
                if (t.tensors[t.index.at(sl.hf_name)].source.merge)
                    throw unsupported(ad.file.string(), sl.hf_name,
                                      core::cat("llama.cpp applies no LoRA to ", tm.gguf_name,
                                                " (deepseek2's MLA projections)"));
        if (conv.arch == "gemma3n" && gemma3n_altup_matrix(tm.gguf_name))
            for (const auto& sl : tm.sources)
                if (t.tensors[t.index.at(sl.hf_name)].source.merge)
                    throw unsupported(ad.file.string(), sl.hf_name,
                                      core::cat("llama.cpp applies no LoRA to ", tm.gguf_name,
                                                " (gemma3n's AltUp router and coefficients)"));
        const bool gathered = tm.sources.size() > 1 &&
                              std::all_of(tm.sources.begin(), tm.sources.end(), [&](const model::SourceSlice& sl) {
                                  return sl.hf_name == tm.sources[0].hf_name;
                              });
        if (gathered) {
            // Row slices of one tensor (Qwen3-Next's in_proj_qkvz -> attn_qkv / attn_gate): W[rows] + B[rows] A, so
            // lora_b is the same row slices of B and lora_a is A (shared with the other outputs of that tensor).
            const auto& src = t.tensors[t.index.at(tm.sources[0].hf_name)].source;
            if (!src.merge) continue;
            const lora::Term* term = linear_term(*src.merge, false);
            if (!term) continue;
            if (!tm.transforms.empty())
                throw unsupported(ad.file.string(), term->a.key,
                                  core::cat("LoRA on ", tm.gguf_name, ", whose conversion changes its values"));
            Pair pr;
            pr.name = tm.gguf_name;
            pr.a = adapter_source(term->a);
            const Source b = adapter_source(term->b);
            if (pr.a.shape.size() != 2 || b.shape.size() != 2 || pr.a.shape[0] != b.shape[1] || tm.shape.size() != 2 ||
                pr.a.shape[1] != tm.shape[1])
                throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                  core::cat("LoRA factor shapes do not fit ", tm.gguf_name));
            std::int64_t rows = 0;
            for (const auto& sl : tm.sources) {
                Source part = b;
                part.row_begin = sl.row_begin;
                part.row_end = sl.row_end;
                const std::int64_t end = sl.row_end < 0 ? b.shape[0] : sl.row_end;
                if (sl.row_begin < 0 || end > b.shape[0] || end < sl.row_begin)
                    throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                      core::cat("lora_B rows do not fit ", tm.gguf_name));
                rows += end - sl.row_begin;
                pr.b_stack.push_back(std::move(part));
            }
            if (rows != tm.shape[0])
                throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                  core::cat("lora_B rows do not fit ", tm.gguf_name));
            pr.b = pr.b_stack[0];
            pr.a_out = pr.a_item = pr.a.shape;
            pr.b_out = {rows, b.shape[1]};
            fold_scale(pr, term->scale, b.shape[1]);
            covered.insert(src.merge->base_name);
            pairs.push_back(std::move(pr));
            continue;
        }
        if (tm.sources.size() > 1) {
            // Experts stacked into one 3-D tensor: all of them or none must carry LoRA, of one rank and scale.
            std::size_t n_lora = 0;
            for (const auto& sl : tm.sources) n_lora += t.tensors[t.index.at(sl.hf_name)].source.merge.has_value();
            if (n_lora == 0) continue;
            const std::string& first_name = tm.sources[0].hf_name;
            if (n_lora != tm.sources.size() || tm.shape.size() != 3 ||
                static_cast<std::int64_t>(tm.sources.size()) != tm.shape[0])
                throw unsupported(ad.file.string(), first_name,
                                  core::cat("LoRA on ", n_lora, " of the ", tm.sources.size(), " tensors stacked into ",
                                            tm.gguf_name, " (a llama.cpp expert LoRA needs every expert)"));
            for (const auto& tf : tm.transforms)
                if (tf.kind != model::TransformKind::AddOne)
                    throw unsupported(ad.file.string(), first_name,
                                      core::cat("LoRA on the stacked tensor ", tm.gguf_name,
                                                ", whose conversion reorders or changes its values"));
            Pair pr;
            pr.name = tm.gguf_name;
            std::int64_t r = -1;
            float peft_scale = 0.0f;
            for (const auto& sl : tm.sources) {
                const lora::MergeTarget& emt = *t.tensors[t.index.at(sl.hf_name)].source.merge;
                const lora::Term* term = linear_term(emt, false);
                if (!term) throw unsupported(ad.file.string(), sl.hf_name, "no LoRA term on an expert");
                Source a = adapter_source(term->a), b = adapter_source(term->b);
                if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[0] != b.shape[1] ||
                    a.shape[1] != tm.shape[2])
                    throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                      core::cat("LoRA factor shapes do not fit ", tm.gguf_name));
                b.row_begin = sl.row_begin;
                b.row_end = sl.row_end;
                if ((sl.row_end < 0 ? b.shape[0] : sl.row_end) - sl.row_begin != tm.shape[1])
                    throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                      core::cat("lora_B rows do not fit ", tm.gguf_name));
                if (r < 0) {
                    r = a.shape[0];
                    peft_scale = term->scale;
                } else if (a.shape[0] != r || term->scale != peft_scale) {
                    throw unsupported(ad.file.string(), term->a.key,
                                      core::cat("experts of ", tm.gguf_name, " with different LoRA ranks or scales "
                                                "(llama.cpp applies one rank and scale to the stacked tensor)"));
                }
                pr.a_stack.push_back(std::move(a));
                pr.b_stack.push_back(std::move(b));
                covered.insert(emt.base_name);
            }
            pr.a = pr.a_stack[0];
            pr.b = pr.b_stack[0];
            pr.a_out = pr.a_item = {tm.shape[0], r, tm.shape[2]};
            pr.b_out = {tm.shape[0], tm.shape[1], r};
            fold_scale(pr, peft_scale, r);
            pairs.push_back(std::move(pr));
            continue;
        }
        const lora::MergeTarget* mt = nullptr;
        for (const auto& sl : tm.sources) {
            const auto& src = t.tensors[t.index.at(sl.hf_name)].source;
            if (!src.merge) continue;
            mt = &*src.merge;
        }
        if (!mt) continue;
        const model::SourceSlice& sl = tm.sources[0];
        const lora::Term* term = linear_term(*mt, true);
        if (!term) continue;
        if (sl.col_step != 1 || sl.col_end >= 0 || sl.transpose || sl.row_step != 1)
            throw unsupported(ad.file.string(), sl.hf_name,
                              core::cat("LoRA on ", tm.gguf_name, ", a split or transposed fused expert tensor (a GGUF "
                                        "LoRA cannot express it; merge the adapter instead)"));
        Pair pr;
        pr.name = tm.gguf_name;
        pr.a = adapter_source(term->a);
        pr.b = adapter_source(term->b);
        if (term->kind == lora::TermKind::Embedding) {
            // llama.cpp: delta rows = get_rows(lora_a, tokens) @ lora_b, so lora_a = A^T (vocab, r), lora_b = B (dim,
            // r) (llama.cpp's convert_lora_to_gguf.py). The transpose of the row-major (r, vocab) values is log2(r)
            // perfect shuffles of the flat array, i.e. PermuteLlamaHeads with one head on a (r * vocab, 1) view.
            const std::int64_t r = pr.a.shape.size() == 2 ? pr.a.shape[0] : 0;
            if (pr.a.shape.size() != 2 || pr.b.shape.size() != 2 || pr.b.shape[1] != r || tm.shape.size() != 2 ||
                pr.a.shape[1] != tm.shape[0] || pr.b.shape[0] != tm.shape[1])
                throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->a.key,
                                  core::cat("LoRA embedding factor shapes do not fit ", tm.gguf_name));
            if (sl.row_begin != 0 || sl.row_end >= 0)
                throw unsupported(ad.file.string(), term->a.key,
                                  core::cat("token-embedding LoRA on a trimmed ", tm.gguf_name));
            if ((r & (r - 1)) != 0)
                throw unsupported(ad.file.string(), term->a.key,
                                  core::cat("token-embedding LoRA of rank ", r, " (only powers of two)"));
            pr.a_out = {pr.a.shape[1], r};
            pr.a_item = {r * pr.a.shape[1], 1};
            pr.a.shape = pr.a_item;
            for (std::int64_t k = 1; k < r; k *= 2)
                pr.a_transforms.push_back({model::TransformKind::PermuteLlamaHeads, 1});
            pr.b_out = pr.b.shape;
        } else {
            if (pr.a.shape.size() != 2 || pr.b.shape.size() != 2 || pr.a.shape[0] != pr.b.shape[1] ||
                tm.shape.size() != 2 || pr.a.shape[1] != tm.shape[1])
                throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                  core::cat("LoRA factor shapes do not fit ", tm.gguf_name));
            pr.b.row_begin = sl.row_begin;
            pr.b.row_end = sl.row_end;
            const std::int64_t b_rows = (sl.row_end < 0 ? pr.b.shape[0] : sl.row_end) - sl.row_begin;
            if (b_rows != tm.shape[0])
                throw core::Error(core::ErrorKind::BadInput, ad.file.string(), term->b.key,
                                  core::cat("lora_B rows do not fit ", tm.gguf_name));
            // Row reorders act on B's rows, column reorders on A's columns: P_r (W + BA) P_c = P_r W P_c +
            // (P_r B)(A P_c). Value transforms (Gemma's +1, A_log's -exp) never meet a LoRA target.
            for (const auto& tf : tm.transforms) {
                if (tf.kind == model::TransformKind::PermuteLlamaHeads || tf.kind == model::TransformKind::TileVHeadRows)
                    pr.b_transforms.push_back(tf);
                else if (tf.kind == model::TransformKind::TileVHeadColumns)
                    pr.a_transforms.push_back(tf);
                else
                    throw unsupported(ad.file.string(), term->a.key,
                                      core::cat("LoRA on ", tm.gguf_name, ", whose conversion changes its values"));
            }
            pr.a_out = pr.a.shape;
            pr.a_item = pr.a.shape;
            pr.b_out = {b_rows, pr.b.shape[1]};
        }
        fold_scale(pr, term->scale, pr.b.shape[1]);
        covered.insert(mt->base_name);
        pairs.push_back(std::move(pr));
    }
    for (const auto& v : t.tensors)
        if (v.source.merge && !covered.count(v.name))
            throw unsupported(ad.file.string(), v.name, "the base GGUF conversion has no tensor for this LoRA target");
    if (pairs.empty()) throw unsupported(ad.file.string(), "", "the adapter changes no tensor");
    for (const auto& [why, nf] : folded)
        p.notes.push_back(core::cat("GGUF LoRA: lora_b of ", nf.first, " tensor(s) (", nf.second,
                                    (nf.first > 1 ? ", ..." : ""), ") scaled by ", why));

    // KVs as convert_lora_to_gguf.py writes them (no hparams, tokenizer or file type).
    const std::string name = output_stem(opt);
    const std::vector<formats::GgufKV> kvs = {
        {"general.architecture", formats::GgufValue::string(conv.arch)},
        {"general.type", formats::GgufValue::string("adapter")},
        {"adapter.type", formats::GgufValue::string("lora")},
        {"general.name", formats::GgufValue::string(name)},
        {"adapter.lora.alpha", formats::GgufValue::f32(alpha)},
        {"general.quantization_version", formats::GgufValue::u32(2)},
    };
    std::vector<formats::GgufTensorDecl> decls;
    auto decl = [&](const std::string& n, const core::Shape& shape, const core::Shape& item) {
        model::GgufTensorMap m;
        m.gguf_name = n;
        m.shape = shape;
        quant::GgmlType type = model::converter_tensor_type(m, ftype);
        // The flat transposed token_embd.lora_a is encoded with rows of one value: no block types.
        if (item.back() != shape.back() && type != quant::GgmlType::F32 && type != quant::GgmlType::BF16 &&
            type != quant::GgmlType::F16) {
            type = quant::GgmlType::F16;
            p.notes.push_back(core::cat("GGUF LoRA: ", n, " written as F16 (the converter would quantize it)"));
        }
        decls.push_back({n, ggml_ne(shape), type});
    };
    for (const auto& pr : pairs) {
        decl(pr.name + ".lora_a", pr.a_out, pr.a_item);
        decl(pr.name + ".lora_b", pr.b_out, pr.b_out);
    }
    const formats::GgufLayout lay = formats::layout_gguf(kvs, decls);
    FileOut fo;
    fo.name = core::cat(name, "-lora-", o.type, ".gguf");
    fo.kind = FileKind::Tensors;
    fo.header = lay.header;
    fo.size = lay.file_size;
    for (const auto& other : p.files)
        if (other.name == fo.name)
            throw core::Error(core::ErrorKind::Usage, "", "", core::cat("two outputs would both write ", fo.name));
    const auto file_idx = static_cast<std::uint32_t>(p.files.size());
    p.files.push_back(std::move(fo));

    // One item per distinct A (a fused qkv's A feeds three lora_a), one per B slice.
    std::map<std::string, std::size_t> a_item;
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        const Pair& pr = pairs[k];
        Emit ea;
        ea.file = file_idx;
        ea.name = decls[2 * k].name;
        ea.encoding = GgmlEncoding{decls[2 * k].type, {}};
        ea.transforms = pr.a_transforms;
        ea.offset = lay.offsets[2 * k];
        ea.nbytes = lay.nbytes[2 * k];
        const std::string a_key = pr.a_stack.empty() ? pr.a.name : pr.name + ".lora_a";
        auto ai = a_item.find(a_key);
        if (ai == a_item.end()) {
            Item it;
            it.sources = pr.a_stack.empty() ? std::vector<Source>{pr.a} : pr.a_stack;
            it.shape = pr.a_item;
            p.items.push_back(std::move(it));
            ai = a_item.emplace(a_key, p.items.size() - 1).first;
        }
        p.items[ai->second].emits.push_back(std::move(ea));

        Emit eb;
        eb.file = file_idx;
        eb.name = decls[2 * k + 1].name;
        eb.encoding = GgmlEncoding{decls[2 * k + 1].type, {}};
        eb.transforms = pr.b_transforms;
        eb.scale = pr.b_scale;
        eb.offset = lay.offsets[2 * k + 1];
        eb.nbytes = lay.nbytes[2 * k + 1];
        Item it;
        it.sources = pr.b_stack.empty() ? std::vector<Source>{pr.b} : pr.b_stack;
        it.shape = pr.b_out;
        it.emits.push_back(std::move(eb));
        p.items.push_back(std::move(it));
    }
    p.input_bytes += fs::file_size(ad.file);
}

}  // namespace shardforge::plan::detail
