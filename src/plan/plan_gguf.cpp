// GGUF outputs of the plan. Two regimes, as in the reference workflow:
//  * gguf:f32|f16|bf16|q8_0|auto: what convert_hf_to_gguf.py --outtype writes (tensor order, types, KVs);
//  * gguf:<ftype> (q4_k_m, ...): what llama-quantize writes from the converter's 16-bit output: its tensor order,
//    its per-tensor type choices (quant::choose_types), and its KV edits (file_type/quantization_version re-set).
#include <shardforge/formats.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <numeric>
#include <variant>

namespace fs = std::filesystem;

namespace shardforge::plan::detail {
namespace {

std::vector<std::int64_t> ggml_ne(const core::Shape& shape) {
    std::vector<std::int64_t> ne(shape.rbegin(), shape.rend());
    if (ne.empty()) ne.push_back(1);
    return ne;
}

bool is_plain_type(quant::GgmlType t) {
    return t == quant::GgmlType::F32 || t == quant::GgmlType::F16 || t == quant::GgmlType::BF16;
}

}  // namespace

std::string output_stem(const Options& opt) {
    std::string name = opt.name;
    if (name.empty()) {
        // "dir/base/" and "dir/base/." name the directory "base", not "" or ".".
        fs::path b = fs::absolute(opt.base).lexically_normal();
        if (!b.has_filename()) b = b.parent_path();
        name = b.filename().string();
        // A Hugging Face cache snapshot (.../models--ORG--NAME/snapshots/<commit>, from --base ORG/NAME; or
        // shardforge-sparse/<commit>, multi-rank --download): NAME.
        const std::string repo_dir = b.parent_path().parent_path().filename().string();
        const std::string kind = b.parent_path().filename().string();
        if ((kind == "snapshots" || kind == "shardforge-sparse") && repo_dir.rfind("models--", 0) == 0 &&
            repo_dir.find("--", 8) != std::string::npos)
            name = repo_dir.substr(repo_dir.find("--", 8) + 2);
    }
    // The name becomes the output file stem: it must stay a plain basename inside --out.
    if (name.empty() || name[0] == '.' || name.find_first_of(std::string("/\\\0", 3)) != std::string::npos ||
        name.find("..") != std::string::npos)
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("--name '", name, "': the GGUF file stem must be a plain file name (no '/', "
                                    "'\\', '..', NUL or leading '.')"));
    return name;
}

void add_map_emit(const model::GgufTensorMap& tm, Tables& t, Plan& p, Emit e) {
    const auto whole = [](const model::SourceSlice& sl) { return sl == model::SourceSlice{sl.hf_name}; };
    // The item that already reads this HF tensor whole (one read, many outputs).
    if (tm.generated.empty() && tm.sources.size() == 1 && whole(tm.sources[0])) {
        const std::size_t vi = t.index.at(tm.sources[0].hf_name);
        if (t.tensors[vi].source.shape == tm.shape) return t.add_emit(vi, std::move(e), p);
    }
    // The item another GGUF output made of the same sources and slices.
    std::string key;
    if (tm.generated.empty()) {
        key = "shape";
        for (auto d : tm.shape) key += core::cat(",", d);
        for (const auto& sl : tm.sources)
            key += core::cat("|", sl.hf_name, ":", sl.row_begin, ":", sl.row_end, ":", sl.row_step, ":", sl.col_begin,
                             ":", sl.col_step, ":", sl.col_end, ":", sl.transpose);
        if (const auto found = t.item_by_key.find(key); found != t.item_by_key.end())
            return p.items[found->second].emits.push_back(std::move(e));
    }
    Item it;
    it.shape = tm.shape;
    it.generated = tm.generated;
    for (const auto& sl : tm.sources) {
        Source s = t.tensors[t.index.at(sl.hf_name)].source;
        s.row_begin = sl.row_begin;
        s.row_end = sl.row_end;
        s.row_step = sl.row_step;
        s.col_begin = sl.col_begin;
        s.col_step = sl.col_step;
        s.col_end = sl.col_end;
        s.transpose = sl.transpose;
        it.sources.push_back(std::move(s));
    }
    const std::size_t at = p.items.size();
    if (!key.empty()) t.item_by_key[key] = at;
    // A whole source that fills whole rows of this item (an expert of a stacked tensor) and already has its own item
    // whose emits can be written as rows of this one (raw or bnb, untransformed): those emits move here, windowed,
    // and the tensor is read once for every output.
    const std::int64_t rows0 = tm.shape.empty() ? 0 : tm.shape[0];
    const std::int64_t R = rows0 > 0 ? core::numel(tm.shape) / rows0 : 0;
    std::int64_t c0 = 0;
    for (std::size_t k = 0; k < tm.sources.size() && R > 0 && tm.generated.empty(); ++k) {
        const Source& s = it.sources[k];
        if (s.kept_elems() % R != 0) break;  // rows of this item no longer start at a source boundary
        const std::int64_t n = s.kept_elems() / R;
        const std::size_t vi = t.index.at(tm.sources[k].hf_name);
        const std::int64_t own = t.item_of[vi];
        const bool absorbable = whole(tm.sources[k]) && own >= 0 && t.window_of[vi].second < 0 && n > 0 &&
                                p.items[static_cast<std::size_t>(own)].sources.size() == 1 &&
                                p.items[static_cast<std::size_t>(own)].variants.empty() &&
                                std::all_of(p.items[static_cast<std::size_t>(own)].emits.begin(),
                                            p.items[static_cast<std::size_t>(own)].emits.end(), [](const Emit& x) {
                                                return !x.windowed() && x.transforms.empty() && x.scale == 1.0f &&
                                                       !std::holds_alternative<GgmlEncoding>(x.encoding);
                                            });
        if (absorbable) {
            Item& mine = p.items[static_cast<std::size_t>(own)];
            for (auto& x : mine.emits) {
                x.row_begin = c0;
                x.row_end = c0 + n;
                x.shape = mine.shape;
                it.emits.push_back(std::move(x));
            }
            mine.emits.clear();
            t.item_of[vi] = static_cast<std::int64_t>(at);
            t.window_of[vi] = {c0, c0 + n};
        }
        c0 += n;
    }
    it.emits.push_back(std::move(e));
    p.items.push_back(std::move(it));
}

// A merged fine-tune records what it was made from (gguf-py's general.base_model.* keys), after general.*.
void add_base_model_kvs(const Options& opt, const model::HfConfig& cfg, std::vector<formats::GgufKV>& kvs) {
    if (!opt.adapters.empty()) {
        std::vector<formats::GgufKV> bm;
        bm.push_back({"general.base_model.count", formats::GgufValue::u32(1)});
        Options base_only = opt;
        base_only.name.clear();  // the base's own name, not --name
        bm.push_back({"general.base_model.0.name", formats::GgufValue::string(output_stem(base_only))});
        const std::string id = cfg.json().value("_name_or_path", std::string());
        const auto slash = id.find('/');
        if (slash != std::string::npos && slash > 0 && id.find('/', slash + 1) == std::string::npos && id[0] != '.') {
            bm.push_back({"general.base_model.0.organization", formats::GgufValue::string(id.substr(0, slash))});
            bm.push_back({"general.base_model.0.repo_url", formats::GgufValue::string("https://huggingface.co/" + id)});
        }
        auto pos = kvs.begin();
        for (auto it = kvs.begin(); it != kvs.end(); ++it)
            if (it->key.rfind("general.", 0) == 0 && it->key != "general.file_type" &&
                it->key != "general.quantization_version")
                pos = it + 1;
        kvs.insert(pos, bm.begin(), bm.end());
    }
}

GgufBase plan_gguf_base(const Options& opt, const Tables& t, const Plan& p, bool base_only, bool mtp_only) {
    GgufBase b;
    b.cfg = model::read_hf_config(opt.base);
    b.arch = model::gguf_arch_name(b.cfg.architecture);
    std::vector<model::HfTensor> hf;
    std::int64_t embed_rows = 0;
    for (const auto& v : t.tensors) {
        if (base_only && v.name != v.source.name) continue;
        const bool packed = v.source.dequant && v.source.dequant->kind == DequantKind::PackedInt;
        hf.push_back({v.name, v.source.dtype, v.source.shape, fs::path(p.input_files[v.source.file]).filename().string(),
                      packed});
        if (v.name.ends_with("embed_tokens.weight") && !v.source.shape.empty()) embed_rows = v.source.shape[0];
    }
    const std::int64_t n_vocab = b.cfg.n_vocab > 0 ? b.cfg.n_vocab : embed_rows;
    b.tok = model::read_tokenizer(opt.base, b.cfg.json(), b.arch, n_vocab);
    b.conv = model::plan_gguf_conversion(b.cfg, hf, b.tok.vocab_size, mtp_only);
    return b;
}

void add_gguf_output(const Options& opt, const OutputSpec& o, Tables& t, const nlohmann::json&, Plan& p) {
    const bool mtp = o.format == Format::GgufMtp;  // convert_hf_to_gguf.py --mtp: the MTP draft alone
    const GgufBase base = plan_gguf_base(opt, t, p, false, mtp);
    const model::HfConfig& cfg = base.cfg;
    const std::string& arch = base.arch;
    const model::TokenizerInfo& tok = base.tok;
    const model::GgufConversion& conv = base.conv;

    // Per-tensor output types, KV edits and order for this output.
    formats::Imatrix imat;
    if (!opt.imatrix.empty()) imat = formats::read_imatrix(opt.imatrix);
    const std::size_t n = conv.tensors.size();
    std::vector<quant::GgmlType> types(n);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    quant::FType file_type;
    std::string type_label;
    bool quantize_mode = false;
    model::OutType ot;
    if (model::parse_outtype(o.type, ot)) {
        file_type = model::outtype_file_type(ot, conv);
        const quant::FType tensor_ftype = model::outtype_ftype(ot, conv);
        for (std::size_t i = 0; i < n; ++i) types[i] = model::converter_tensor_type(conv.tensors[i], tensor_ftype);
        type_label = std::string(quant::ftype_info(tensor_ftype).name);  // file names follow --outtype
    } else if (const quant::FTypeInfo* info = quant::find_ftype(o.type)) {
        quantize_mode = true;
        if (info->needs_imatrix && imat.by_tensor.empty())
            throw core::Error(core::ErrorKind::Usage, "", "",
                              core::cat("gguf:", o.type, " needs an importance matrix: pass --imatrix FILE "
                                        "(llama-imatrix output), or choose e.g. q4_k_m, q5_k_m, q6_k or q8_0"));
        file_type = info->ftype;
        type_label = std::string(quant::ftype_info(info->ftype).name);
        // The intermediate a user would quantize: the converter's output in the base's 16-bit type.
        std::vector<quant::QuantTensor> qts;
        for (const auto& tm : conv.tensors)
            qts.push_back({tm.gguf_name, ggml_ne(tm.shape), model::converter_tensor_type(tm, conv.auto_ftype)});
        quant::ModelFacts facts;
        facts.arch = arch;
        facts.n_layer = static_cast<int>(conv.block_count);  // llama.cpp n_layer_all: MTP layers included
        facts.n_head = static_cast<int>(cfg.n_head);
        facts.n_head_kv = static_cast<int>(cfg.n_head_kv);
        facts.n_expert = static_cast<int>(cfg.n_expert);
        quant::Overrides ov = opt.quant_overrides;
        ov.has_imatrix = !imat.by_tensor.empty();
        quant::apply_preset(*info, ov);
        const std::vector<quant::Choice> ch = quant::choose_types(qts, facts, info->ftype, ov, info->only_copy);
        for (std::size_t i = 0; i < n; ++i) {
            types[i] = ch[i].type;
            if (ch[i].requires_imatrix && imat.by_tensor.empty())
                throw core::Error(core::ErrorKind::Unsupported, "", conv.tensors[i].gguf_name,
                                  core::cat("type ", quant::type_upper_name(ch[i].type),
                                            " requires an importance matrix (--imatrix)"));
            if (ch[i].fallback)
                p.notes.push_back(core::cat(conv.tensors[i].gguf_name, ": ", ch[i].rule));
        }
        order = quant::quantize_order(qts);
    } else {
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("unknown GGUF type '", o.type,
                                    "' (f32, f16, bf16, q8_0, auto, or a llama-quantize type such as q4_k_m)"));
    }
    // llama-quantize's use of the imatrix: an entry of ne[0] x experts floats per tensor; a missing entry means
    // none; a size mismatch is an error except for token_embd (quantized without it).
    std::vector<std::vector<float>> imats(n);
    if (quantize_mode && !imat.by_tensor.empty()) {
        for (std::size_t i = 0; i < n; ++i) {
            const auto& tm = conv.tensors[i];
            const auto it = imat.by_tensor.find(tm.gguf_name);
            if (it == imat.by_tensor.end() || is_plain_type(types[i])) continue;
            const std::vector<std::int64_t> ne = ggml_ne(tm.shape);
            const std::int64_t want = ne[0] * (ne.size() >= 3 ? ne[2] : 1);
            if (static_cast<std::int64_t>(it->second.size()) != want) {
                if (tm.gguf_name == "token_embd.weight") continue;
                throw core::Error(core::ErrorKind::BadInput, opt.imatrix.string(), tm.gguf_name,
                                  core::cat("imatrix entry has ", it->second.size(), " values, tensor needs ", want));
            }
            imats[i] = it->second;
        }
        std::string note = core::cat("imatrix ", opt.imatrix.string(), ": ", imat.by_tensor.size(), " entries, ",
                                     imat.chunk_count, " chunks");
        if (std::find(p.notes.begin(), p.notes.end(), note) == p.notes.end()) p.notes.push_back(std::move(note));  // once per plan
    }
    for (std::size_t i = 0; i < n; ++i)
        if (quantize_mode && imats[i].empty() && quant::quantize_requires_imatrix(types[i]))
            throw core::Error(core::ErrorKind::Usage, "", conv.tensors[i].gguf_name,
                              core::cat("type ", quant::type_upper_name(types[i]),
                                        " needs importance-matrix data for this tensor (--imatrix)"));
    for (std::size_t i = 0; i < n; ++i)
        if (!is_plain_type(types[i]) && !quant::can_quantize(types[i]))
            throw core::Error(core::ErrorKind::Unsupported, "", conv.tensors[i].gguf_name,
                              core::cat("quantization to ", quant::type_upper_name(types[i]), " is not implemented"));

    // KVs: the converter's, then tokenizer keys; llama-quantize re-sets quantization_version and file_type,
    // which moves them to the end (gguf_set_val removes the old key and appends).
    model::GeneralMeta meta;
    meta.name = output_stem(opt);
    meta.size_label = model::size_label(conv);
    std::vector<formats::GgufKV> kvs =
        model::gguf_model_kvs(conv, meta, quantize_mode ? conv.auto_ftype : file_type);
    add_base_model_kvs(opt, cfg, kvs);
    kvs.insert(kvs.end(), tok.kvs.begin(), tok.kvs.end());
    if (quantize_mode) {
        std::erase_if(kvs, [](const formats::GgufKV& kv) {
            return kv.key == "general.quantization_version" || kv.key == "general.file_type";
        });
        kvs.push_back({"general.quantization_version", formats::GgufValue::u32(2)});
        kvs.push_back({"general.file_type", formats::GgufValue::u32(static_cast<std::uint32_t>(file_type))});
        // llama-quantize --imatrix records the matrix as KV overrides, appended in this order: the file name as
        // given and the first dataset (each cut at a NUL and to 127 bytes: a char[128] override), the number of
        // entries and, when known, of chunks (llama.cpp tools/quantize/quantize.cpp, main).
        if (!imat.by_tensor.empty()) {
            const auto override_str = [](const std::string& s) {
                return formats::GgufValue::string(s.substr(0, std::min<std::size_t>(s.find('\0'), 127)));
            };
            kvs.push_back({"quantize.imatrix.file", override_str(opt.imatrix.string())});
            if (!imat.datasets.empty()) kvs.push_back({"quantize.imatrix.dataset", override_str(imat.datasets[0])});
            kvs.push_back({"quantize.imatrix.entries_count",
                           formats::GgufValue::u32(static_cast<std::uint32_t>(imat.by_tensor.size()))});
            if (imat.chunk_count > 0)
                kvs.push_back({"quantize.imatrix.chunks_count",
                               formats::GgufValue::u32(static_cast<std::uint32_t>(imat.chunk_count))});
        }
    }

    // Split into files (tensor order kept), then lay each file out.
    std::vector<std::uint64_t> sizes;
    for (std::size_t k : order)
        sizes.push_back(formats::gguf_tensor_nbytes(ggml_ne(conv.tensors[k].shape), types[k]));
    const std::vector<std::uint32_t> shard =
        formats::plan_gguf_split(sizes, opt.split_max_size, opt.split_max_tensors ? opt.split_max_tensors : 0);
    const std::uint32_t n_files = shard.empty() ? 1 : shard.back() + 1;
    const std::string stem = (mtp ? "mtp-" : "") + meta.name + "." + type_label;
    for (std::uint32_t f = 0; f < n_files; ++f) {
        std::vector<formats::GgufKV> fkvs;
        if (f == 0) fkvs = kvs;
        if (n_files > 1) {
            auto sk = formats::gguf_split_kvs(f, n_files, static_cast<std::int32_t>(n));
            fkvs.insert(fkvs.end(), sk.begin(), sk.end());
        }
        std::vector<formats::GgufTensorDecl> decls;
        std::vector<std::size_t> members;
        for (std::size_t j = 0; j < order.size(); ++j) {
            if (shard[j] != f) continue;
            const auto& tm = conv.tensors[order[j]];
            // The converter's outputs keep the HF rank (gguf-py writes len(shape) dims: Qwen2-MoE's
            // shared_expert_gate [1, n_embd] is ne [n_embd, 1]); llama-quantize's drop trailing 1s (ggml_n_dims).
            decls.push_back({tm.gguf_name, ggml_ne(tm.shape), types[order[j]], !quantize_mode});
            members.push_back(order[j]);
        }
        const formats::GgufLayout lay = formats::layout_gguf(fkvs, decls);
        FileOut fo;
        fo.name = n_files > 1 ? formats::gguf_split_name(stem, f, n_files) : stem + ".gguf";
        fo.kind = FileKind::Tensors;
        fo.header = lay.header;
        fo.size = lay.file_size;
        const auto file_idx = static_cast<std::uint32_t>(p.files.size());
        for (const auto& other : p.files)
            if (other.name == fo.name)
                throw core::Error(core::ErrorKind::Usage, "", "", core::cat("two outputs would both write ", fo.name));
        p.files.push_back(std::move(fo));

        for (std::size_t k = 0; k < members.size(); ++k) {
            const model::GgufTensorMap& tm = conv.tensors[members[k]];
            Emit e;
            e.file = file_idx;
            e.name = tm.gguf_name;
            e.encoding = GgmlEncoding{types[members[k]], imats[members[k]]};
            e.transforms = tm.transforms;
            e.offset = lay.offsets[k];
            e.nbytes = lay.nbytes[k];
            add_map_emit(tm, t, p, std::move(e));
        }
    }
    for (const auto& d : conv.dropped) p.notes.push_back(core::cat("GGUF ", type_label, ": not converted: ", d));
    // A vision-language checkpoint's projector beside its text model (--no-mmproj: the text alone)
    if (!mtp && opt.mmproj && model::has_mmproj(cfg)) add_mmproj_output(opt, o, conv, t, p);
}

// convert_hf_to_gguf.py --mmproj --outtype TYPE: mmproj-<name>-<TYPE>.gguf, one file (the converter does not
// split it), from the same items as the text model's tensors. A llama-quantize type (gguf:q4_k_m, ...) gets the
// projector at F16, as llama.cpp's quantized releases ship it (llama-quantize does not take projector files); one
// file per type however many outputs ask for it.
void add_mmproj_output(const Options& opt, const OutputSpec& o, const model::GgufConversion& text, Tables& t,
                       Plan& p) {
    std::vector<model::HfTensor> hf;
    for (const auto& v : t.tensors) {
        if (v.name != v.source.name) continue;  // synthesized tensors (an untied lm_head) are the text model's
        hf.push_back({v.name, v.source.dtype, v.source.shape, fs::path(p.input_files[v.source.file]).filename().string()});
    }
    const model::HfConfig cfg = model::read_hf_config(opt.base);
    const model::GgufConversion conv = model::plan_mmproj_conversion(cfg, opt.base, hf);
    if (conv.tensors.empty()) {
        const std::string note = "mmproj: not written: no vision tower or projector tensor under the names "
                                 "convert_hf_to_gguf.py --mmproj takes (vision_tower.*, multi_modal_projector.*)";
        if (std::find(p.notes.begin(), p.notes.end(), note) == p.notes.end()) p.notes.push_back(note);
        return;
    }
    model::OutType ot = model::OutType::F16;
    const bool converter_type = model::parse_outtype(o.type, ot);
    if (!converter_type) ot = model::OutType::F16;
    quant::FType ftype = model::outtype_ftype(ot, conv);
    if (ot == model::OutType::Auto) ftype = text.auto_ftype;
    const std::string type_label(quant::ftype_info(ftype).name);
    model::GeneralMeta meta;
    meta.name = output_stem(opt);
    meta.size_label = model::size_label(conv);
    std::vector<formats::GgufKV> kvs = model::gguf_model_kvs(conv, meta, ftype);
    add_base_model_kvs(opt, cfg, kvs);
    const std::string name = core::cat("mmproj-", meta.name, "-", type_label, ".gguf");
    for (const auto& other : p.files)
        if (other.name == name) return;  // another output (gguf:f16 and gguf:q4_k_m) already writes it
    std::vector<formats::GgufTensorDecl> decls;
    std::vector<quant::GgmlType> types;
    for (const auto& tm : conv.tensors) {
        types.push_back(model::converter_tensor_type(tm, ftype));
        decls.push_back({tm.gguf_name, ggml_ne(tm.shape), types.back(), true});
    }
    const formats::GgufLayout lay = formats::layout_gguf(kvs, decls);
    FileOut fo;
    fo.name = name;
    fo.kind = FileKind::Tensors;
    fo.header = lay.header;
    fo.size = lay.file_size;
    const auto file_idx = static_cast<std::uint32_t>(p.files.size());
    p.files.push_back(std::move(fo));
    for (std::size_t k = 0; k < conv.tensors.size(); ++k) {
        const model::GgufTensorMap& tm = conv.tensors[k];
        Emit e;
        e.file = file_idx;
        e.name = tm.gguf_name;
        e.encoding = GgmlEncoding{types[k], {}};
        e.transforms = tm.transforms;
        e.offset = lay.offsets[k];
        e.nbytes = lay.nbytes[k];
        add_map_emit(tm, t, p, std::move(e));
    }
    if (!converter_type)
        p.notes.push_back(core::cat(name, ": the projector of the gguf:", o.type, " output, at F16"));
}

}  // namespace shardforge::plan::detail
