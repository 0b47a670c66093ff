// Quantized bases (docs/formats.md "Quantized bases"): bitsandbytes 4-bit / LLM.int8 / FP8-scaled weights become
// dequantization recipes on their Source, so every output (and the LoRA resolution) sees the logical weight; auxiliary
// tensors (absmax, quant maps, quant_state, SCB, weight_format, FP8 scales) leave the tensor table. Classification is
// per tensor from the auxiliary keys present (as transformers' quantizers/quantizer_bnb_4bit.py reads them), never from
// config.json alone. With --merge-into original the dequantized tensors are replaced by the --original-base
// checkpoint's tensors.
// Every inconsistency is a planning-time BadInput naming the file and tensor.
#include <shardforge/formats.hpp>
#include <shardforge/plan.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <cstring>
#include <set>

namespace fs = std::filesystem;

namespace shardforge::plan::detail {
namespace {

constexpr std::string_view qs_prefix = ".quant_state.bitsandbytes__";

std::string shape_str(const core::Shape& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

struct Ctx {
    const formats::SafetensorsSet& base;
    const Plan& p;
    std::set<std::string> drop;  // auxiliary tensors removed from the table

    const std::string& file_of(std::uint32_t f) const { return p.input_files.at(f); }
    formats::SafetensorsSet::Ref ref(const std::string& name) const { return *base.find(name); }
    std::optional<formats::SafetensorsSet::Ref> find(const std::string& name) const { return base.find(name); }
    AuxTensor aux(const std::string& name) {
        const auto r = ref(name);
        drop.insert(name);
        return {r.file, name, r.tensor->dtype, r.tensor->shape, r.tensor->offset, r.tensor->nbytes};
    }
    [[noreturn]] void bad(const std::string& name, const std::string& why) const {
        const auto r = find(name);
        throw core::Error(core::ErrorKind::BadInput, r ? file_of(r->file) : std::string(), name, why);
    }
};

core::DType config_dtype(const nlohmann::json& config) {
    const nlohmann::json* c = &config;
    if (c->is_object() && !c->contains("torch_dtype") && !c->contains("dtype") && c->contains("text_config"))
        c = &(*c)["text_config"];
    for (const char* k : {"torch_dtype", "dtype"}) {
        if (!c->is_object() || !c->contains(k) || !(*c)[k].is_string()) continue;
        const std::string v = (*c)[k];
        if (v == "float16") return core::DType::F16;
        if (v == "float32") return core::DType::F32;
        if (v == "bfloat16") return core::DType::BF16;
    }
    return core::DType::BF16;
}

const nlohmann::json* quant_config(const nlohmann::json& config) {
    if (config.is_object() && config.contains("quantization_config") && config["quantization_config"].is_object())
        return &config["quantization_config"];
    return nullptr;
}

void expect_f32(Ctx& c, const std::string& name, std::int64_t count, const std::string& what) {
    const auto r = c.ref(name);
    if (r.tensor->dtype != core::DType::F32)
        c.bad(name, core::cat(what, " must be F32, found ", core::dtype_name(r.tensor->dtype)));
    if (core::numel(r.tensor->shape) != count)
        c.bad(name, core::cat(what, " has ", core::numel(r.tensor->shape), " values, expected ", count));
}

void bnb4(Ctx& c, const std::string& qs_name, VTensor& v) {
    const auto qr = c.ref(qs_name);
    if (qr.tensor->dtype != core::DType::U8 || qr.tensor->nbytes > 1'000'000)
        c.bad(qs_name, "bitsandbytes quant_state must be a U8 tensor of packed JSON");
    std::string json(qr.tensor->nbytes, '\0');
    c.base.file(qr.file).read(*qr.tensor, 0, std::as_writable_bytes(std::span(json.data(), json.size())));
    const std::string type = qs_name.substr(qs_name.rfind("__") + 2);
    const formats::BnbQuantState st = formats::parse_bnb_quant_state(json, type, c.file_of(qr.file), qs_name);
    c.drop.insert(qs_name);

    const std::string& w = v.name;
    const std::int64_t n = core::numel(st.shape);
    const std::int64_t nblocks = (n + st.blocksize - 1) / st.blocksize;
    if (v.source.nbytes * 2 < static_cast<std::uint64_t>(n))
        c.bad(w, core::cat("bitsandbytes 4-bit weight has ", v.source.nbytes, " bytes, shape ", shape_str(st.shape),
                           " needs ", (n + 1) / 2));
    for (const char* sfx : {".absmax", ".quant_map"})
        if (!c.find(w + sfx)) c.bad(w, core::cat("bitsandbytes 4-bit weight without its ", w, sfx, " tensor"));
    Dequant d;
    d.kind = DequantKind::Bnb4;
    d.stored = v.source.dtype;
    d.blocksize = st.blocksize;
    expect_f32(c, w + ".quant_map", 16, "quant_map");
    const auto am = c.ref(w + ".absmax");
    if (core::numel(am.tensor->shape) != nblocks)
        c.bad(w + ".absmax", core::cat("absmax has ", core::numel(am.tensor->shape), " values, expected ", nblocks,
                                       " (", n, " elements of shape ", shape_str(st.shape), " in blocks of ",
                                       st.blocksize, ")"));
    if (st.nested) {
        for (const char* sfx : {".nested_absmax", ".nested_quant_map"})
            if (!c.find(w + sfx)) c.bad(w, core::cat("double-quantized weight without its ", w, sfx, " tensor"));
        if (am.tensor->dtype != core::DType::U8)
            c.bad(w + ".absmax", core::cat("double-quantized absmax must be U8, found ",
                                           core::dtype_name(am.tensor->dtype)));
        expect_f32(c, w + ".nested_quant_map", 256, "nested_quant_map");
        expect_f32(c, w + ".nested_absmax", (nblocks + st.nested_blocksize - 1) / st.nested_blocksize,
                   "nested_absmax");
        d.nested = true;
        d.nested_blocksize = st.nested_blocksize;
        d.nested_offset = st.nested_offset;
    } else {
        if (c.find(w + ".nested_absmax")) c.bad(w + ".nested_absmax", "nested_absmax without nested_* quant_state keys");
        expect_f32(c, w + ".absmax", nblocks, "absmax");
    }
    d.aux.push_back(c.aux(w + ".absmax"));
    d.aux.push_back(c.aux(w + ".quant_map"));
    if (st.nested) {
        d.aux.push_back(c.aux(w + ".nested_absmax"));
        d.aux.push_back(c.aux(w + ".nested_quant_map"));
    }
    v.source.dtype = st.dtype;
    v.source.shape = st.shape;
    v.source.dequant = std::move(d);
}

void int8(Ctx& c, const std::string& prefix, VTensor& v, core::DType logical) {
    const std::string scb = prefix + ".SCB";
    const auto& sh = v.source.shape;
    if (v.source.dtype != core::DType::I8 || sh.size() != 2)
        c.bad(v.name, core::cat("LLM.int8 weight must be a 2-D I8 tensor, found ", core::dtype_name(v.source.dtype),
                                shape_str(sh)));
    const auto r = c.ref(scb);
    if (!core::is_float(r.tensor->dtype) || r.tensor->dtype == core::DType::F8_E4M3 ||
        r.tensor->dtype == core::DType::F8_E5M2)
        c.bad(scb, core::cat("SCB must be F32, found ", core::dtype_name(r.tensor->dtype)));
    if (core::numel(r.tensor->shape) != sh[0])
        c.bad(scb, core::cat("SCB has ", core::numel(r.tensor->shape), " values, weight ", v.name, " has ", sh[0],
                             " rows"));
    const std::string fmt = prefix + ".weight_format";
    if (const auto f = c.find(fmt)) {
        if (f->tensor->nbytes >= 1 && f->tensor->nbytes <= 8) {
            std::vector<std::byte> b(f->tensor->nbytes);
            c.base.file(f->file).read(*f->tensor, 0, b);
            for (auto x : b)
                if (x != std::byte{0})
                    throw core::Error(core::ErrorKind::Unsupported, c.file_of(f->file), fmt,
                                      "LLM.int8 weight_format is not 0 (row); other layouts are not loadable");
        }
        c.drop.insert(fmt);
    }
    Dequant d;
    d.kind = DequantKind::Int8;
    d.stored = core::DType::I8;
    d.aux.push_back(c.aux(scb));
    v.source.dtype = logical;
    v.source.dequant = std::move(d);
}

void fp8(Ctx& c, const std::string& prefix, VTensor& v, core::DType logical, const nlohmann::json* qc) {
    const auto& sh = v.source.shape;
    const bool block = c.find(prefix + ".weight_scale_inv").has_value();
    const std::string sname = prefix + (block ? ".weight_scale_inv" : ".weight_scale");
    if (sh.size() != 2)
        throw core::Error(core::ErrorKind::Unsupported, c.file_of(v.source.file), v.name,
                          core::cat("scaled FP8 weights must be 2-D, found ", shape_str(sh)));
    const auto r = c.ref(sname);
    const core::DType sdt = r.tensor->dtype;
    if (sdt != core::DType::F32 && sdt != core::DType::BF16 && sdt != core::DType::F16)
        c.bad(sname, core::cat("FP8 scale must be F32, BF16 or F16, found ", core::dtype_name(sdt)));
    const std::int64_t rows = sh[0], cols = sh[1];
    Dequant d;
    d.kind = DequantKind::Fp8;
    d.stored = v.source.dtype;
    const core::Shape& ss = r.tensor->shape;
    // compressed-tensors "block" strategy: weight_scale is a 2-D grid like weight_scale_inv.
    const bool ct_block = !block && ss.size() == 2 && ss[1] != 1 && core::numel(ss) != 1;
    if (block || ct_block) {
        std::int64_t br = 128, bc = 128;
        const nlohmann::json* b = nullptr;
        if (qc && qc->contains("weight_block_size")) b = &(*qc)["weight_block_size"];
        if (qc && ct_block && qc->contains("config_groups") && (*qc)["config_groups"].is_object())
            for (const auto& [k, g] : (*qc)["config_groups"].items())
                if (g.is_object() && g.contains("weights") && g["weights"].is_object() &&
                    g["weights"].contains("block_structure"))
                    b = &g["weights"]["block_structure"];
        if (b) {
            if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() || !(*b)[1].is_number_integer() ||
                (*b)[0].get<std::int64_t>() <= 0 || (*b)[1].get<std::int64_t>() <= 0)
                throw core::Error(core::ErrorKind::BadInput, "config.json", "",
                                  "quantization_config block size (weight_block_size / block_structure) must be two "
                                  "positive integers");
            br = (*b)[0];
            bc = (*b)[1];
        }
        const core::Shape want{(rows + br - 1) / br, (cols + bc - 1) / bc};
        if (ss != want)
            c.bad(sname, core::cat("scale shape ", shape_str(ss), " does not cover weight ", v.name, " ",
                                   shape_str(sh), " in ", br, "x", bc, " blocks (expected ", shape_str(want), ")"));
        d.block_rows = br;
        d.block_cols = bc;
    } else if (core::numel(ss) == 1) {
        d.block_rows = std::max<std::int64_t>(rows, 1);
        d.block_cols = std::max<std::int64_t>(cols, 1);
    } else if (core::numel(ss) == rows && (ss.size() == 1 || (ss.size() == 2 && ss[1] == 1))) {
        d.block_rows = 1;
        d.block_cols = std::max<std::int64_t>(cols, 1);
    } else {
        c.bad(sname, core::cat("scale shape ", shape_str(ss), " is neither per-tensor [1] nor per-channel [",
                               rows, ", 1] for weight ", v.name, " ", shape_str(sh)));
    }
    d.aux.push_back(c.aux(sname));
    for (const char* extra : {".input_scale", ".input_scale_ub", ".weight_zero_point", ".input_zero_point"})
        if (c.find(prefix + extra)) c.drop.insert(prefix + extra);
    v.source.dtype = logical;
    v.source.dequant = std::move(d);
}

bool ends_with(const std::string& s, std::string_view sfx) { return s.size() >= sfx.size() && s.ends_with(sfx); }

// OpenAI's MXFP4 (gpt-oss, quant_method "mxfp4"): STEM_blocks U8 [..., n_blocks, 16] with STEM_scales U8
// [..., n_blocks]; the logical tensor keeps the *_blocks name with shape [..., n_blocks * 32].
void mxfp4(Ctx& c, const std::string& stem, VTensor& v, core::DType logical) {
    const core::Shape sh = v.source.shape;
    if (v.source.dtype != core::DType::U8 || sh.size() < 3 || sh.back() != 16)
        c.bad(v.name, core::cat("MXFP4 blocks must be U8 [..., n_blocks, 16], found ", core::dtype_name(v.source.dtype),
                                " ", shape_str(sh)));
    const std::string sname = stem + "_scales";
    const auto r = c.ref(sname);
    const core::Shape want(sh.begin(), sh.end() - 1);
    if (r.tensor->dtype != core::DType::U8 || r.tensor->shape != want)
        c.bad(sname, core::cat("MXFP4 scales must be U8 ", shape_str(want), " (one per block of ", v.name, "), found ",
                               core::dtype_name(r.tensor->dtype), " ", shape_str(r.tensor->shape)));
    Dequant d;
    d.kind = DequantKind::Mxfp4;
    d.stored = core::DType::U8;
    d.aux.push_back(c.aux(sname));
    core::Shape logical_shape(sh.begin(), sh.end() - 2);
    logical_shape.push_back(sh[sh.size() - 2] * 32);
    v.source.shape = std::move(logical_shape);
    v.source.dtype = logical;
    v.source.dequant = std::move(d);
}

// compressed-tensors "pack-quantized" (quant_method compressed-tensors, format pack-quantized; Kimi-K2-Thinking's
// INT4 experts): PREFIX.weight_packed I32 [rows, words] with PREFIX.weight_scale [rows, groups] and PREFIX.weight_shape
// (the logical [rows, cols]) becomes PREFIX.weight, as llama.cpp's conversion/base.py dequant_packed reads them: one
// config group of "int" weights in the "group" strategy; symmetric only (a weight_zero_point is refused).
void packed_int(Ctx& c, const std::string& prefix, VTensor& v, core::DType logical, const nlohmann::json* qc) {
    const std::string cfg = "config.json";
    auto refuse = [&](const std::string& why) {
        throw core::Error(core::ErrorKind::Unsupported, cfg, v.name, "compressed-tensors pack-quantized: " + why);
    };
    if (!qc || qc->value("quant_method", "") != "compressed-tensors" || qc->value("format", "") != "pack-quantized")
        refuse("weight_packed tensors need quantization_config quant_method compressed-tensors, format pack-quantized");
    const nlohmann::json* groups = qc->contains("config_groups") ? &(*qc)["config_groups"] : nullptr;
    if (!groups || !groups->is_object() || groups->size() != 1)
        refuse("exactly one config group is supported (as the converter)");
    const nlohmann::json& g = groups->begin().value();
    if (!g.is_object() || !g.contains("weights") || !g["weights"].is_object()) refuse("the config group has no weights");
    const nlohmann::json& w = g["weights"];
    const auto num = [&](const char* k) -> std::int64_t {
        if (!w.contains(k) || !w[k].is_number_integer()) refuse(core::cat("weights.", k, " must be an integer"));
        return w[k].get<std::int64_t>();
    };
    const std::int64_t bits = num("num_bits"), group = num("group_size");
    if (w.value("strategy", "") != "group") refuse("only the \"group\" strategy is supported");
    if (w.value("type", "int") != "int") refuse("only \"int\" weights are supported");
    if (bits != 2 && bits != 4 && bits != 8) refuse(core::cat("num_bits ", bits, " (2, 4 or 8 are supported)"));
    if (group <= 0 || group > (std::int64_t{1} << 30)) refuse(core::cat("group_size ", group, " must be positive"));
    if (c.find(prefix + ".weight_zero_point")) refuse("asymmetric weights (weight_zero_point) are not supported");

    const core::Shape& sh = v.source.shape;
    if (v.source.dtype != core::DType::I32 || sh.size() != 2)
        c.bad(v.name, core::cat("weight_packed must be a 2-D I32 tensor, found ", core::dtype_name(v.source.dtype), " ",
                                shape_str(sh)));
    const std::string shape_name = prefix + ".weight_shape";
    const auto sr = c.find(shape_name);
    if (!sr) c.bad(v.name, "weight_packed without its " + shape_name);
    const core::DType sdt = sr->tensor->dtype;
    if ((sdt != core::DType::I64 && sdt != core::DType::I32) || core::numel(sr->tensor->shape) != 2)
        c.bad(shape_name, "weight_shape must hold two integers (I64 or I32)");
    std::vector<std::byte> b(sr->tensor->nbytes);
    c.base.file(sr->file).read(*sr->tensor, 0, b);
    std::int64_t dims[2];
    for (int i = 0; i < 2; ++i) {
        if (sdt == core::DType::I64) {
            std::memcpy(&dims[i], b.data() + 8 * i, 8);
        } else {
            std::int32_t x;
            std::memcpy(&x, b.data() + 4 * i, 4);
            dims[i] = x;
        }
    }
    const std::int64_t rows = dims[0], cols = dims[1], per_word = 32 / bits;
    if (rows != sh[0] || cols <= 0 || (cols + per_word - 1) / per_word != sh[1])
        c.bad(shape_name, core::cat("weight_shape [", rows, ", ", cols, "] does not match weight_packed ", shape_str(sh),
                                    " at ", bits, " bits"));
    const std::string sname = prefix + ".weight_scale";
    const auto r = c.ref(sname);
    const core::Shape want{rows, (cols + group - 1) / group};
    const core::DType scdt = r.tensor->dtype;
    if ((scdt != core::DType::F32 && scdt != core::DType::BF16 && scdt != core::DType::F16) || r.tensor->shape != want)
        c.bad(sname, core::cat("weight_scale must be F32, BF16 or F16 ", shape_str(want), " (one per group of ", group,
                               "), found ", core::dtype_name(scdt), " ", shape_str(r.tensor->shape)));
    Dequant d;
    d.kind = DequantKind::PackedInt;
    d.stored = core::DType::I32;
    d.aux.push_back(c.aux(sname));
    d.blocksize = group;
    d.bits = static_cast<int>(bits);
    c.drop.insert(shape_name);
    v.name = prefix + ".weight";
    v.source.name = v.name;  // the logical tensor from here on (LoRA targets, outputs, errors)
    v.source.shape = {rows, cols};
    v.source.dtype = logical;
    v.source.dequant = std::move(d);
}

}  // namespace

void resolve_quantized_inputs(const Options& opt, const formats::SafetensorsSet& base, const nlohmann::json& config,
                              Tables& t, std::vector<lora::BaseTensor>& base_list, Plan& p) {
    Ctx c{base, p, {}};
    const core::DType logical = config_dtype(config);
    const nlohmann::json* qc = quant_config(config);
    const std::string method = qc && qc->contains("quant_method") && (*qc)["quant_method"].is_string()
                                   ? (*qc)["quant_method"].get<std::string>()
                                   : "";
    const bool cfg_int8 = qc && qc->value("load_in_8bit", false);
    const bool cfg_fp8 = method == "fp8" || method == "fbgemm_fp8" || method == "compressed-tensors";
    std::size_t n_quant = 0;

    // 4-bit: keyed by the quant_state tensor.
    std::set<std::string> bnb_weights;
    for (const auto& v : t.tensors) {
        const auto pos = v.name.find(qs_prefix);
        if (pos == std::string::npos || pos + qs_prefix.size() == v.name.size()) continue;
        const std::string w = v.name.substr(0, pos);
        if (!t.index.count(w)) c.bad(v.name, core::cat("bitsandbytes quant_state without its weight ", w));
        bnb_weights.insert(w);
    }
    for (const auto& w : bnb_weights) {
        const std::string qs_nf4 = w + std::string(qs_prefix) + "nf4", qs_fp4 = w + std::string(qs_prefix) + "fp4";
        if (t.index.count(qs_nf4) && t.index.count(qs_fp4)) c.bad(w, "both nf4 and fp4 quant_state tensors");
        const std::string qs = t.index.count(qs_nf4) ? qs_nf4 : qs_fp4;
        if (!t.index.count(qs)) c.bad(w, "unknown bitsandbytes quant_state type");
        bnb4(c, qs, t.tensors[t.index.at(w)]);
        ++n_quant;
    }
    for (auto& v : t.tensors) {
        if (c.drop.count(v.name) || v.source.dequant) continue;
        // A 4-bit auxiliary tensor whose weight has no quant_state.
        for (const char* sfx : {".weight.absmax", ".weight.quant_map", ".weight.nested_absmax",
                                ".weight.nested_quant_map"})
            if (ends_with(v.name, sfx)) {
                const std::string w = v.name.substr(0, v.name.size() - std::string_view(sfx).size()) + ".weight";
                c.bad(v.name, core::cat("bitsandbytes auxiliary tensor but ", w,
                                        " has no quant_state.bitsandbytes__nf4/fp4 tensor"));
            }
        if (ends_with(v.name, "_blocks")) {
            const std::string stem = v.name.substr(0, v.name.size() - 7);
            if (c.find(stem + "_scales")) {
                mxfp4(c, stem, v, logical);
                ++n_quant;
            } else if (method == "mxfp4") {
                c.bad(v.name, core::cat("MXFP4 blocks without their scales ", stem, "_scales"));
            }
            continue;
        }
        if (ends_with(v.name, ".weight_packed")) {
            packed_int(c, v.name.substr(0, v.name.size() - 14), v, logical, qc);
            ++n_quant;
            continue;
        }
        if (!ends_with(v.name, ".weight")) continue;
        const std::string prefix = v.name.substr(0, v.name.size() - 7);
        if (c.find(prefix + ".SCB")) {
            int8(c, prefix, v, logical);
            ++n_quant;
        } else if (v.source.dtype == core::DType::F8_E4M3 || v.source.dtype == core::DType::F8_E5M2) {
            if (c.find(prefix + ".weight_scale_inv") || c.find(prefix + ".weight_scale")) {
                fp8(c, prefix, v, logical, qc);
                ++n_quant;
            } else if (cfg_fp8) {
                c.bad(v.name, core::cat("FP8 weight without its scale tensor (", prefix, ".weight_scale_inv or ",
                                        prefix, ".weight_scale); config.json quant_method is '", method, "'"));
            }
        } else if (v.source.dtype == core::DType::I8 && cfg_int8 && v.source.shape.size() == 2) {
            c.bad(v.name, core::cat("LLM.int8 weight without its ", prefix, ".SCB tensor"));
        }
    }
    for (const auto& v : t.tensors)  // MXFP4 scales without their blocks
        if (method == "mxfp4" && ends_with(v.name, "_scales") && !c.drop.count(v.name))
            c.bad(v.name, core::cat("MXFP4 scales without their blocks ", v.name.substr(0, v.name.size() - 7), "_blocks"));
    for (const auto& v : t.tensors)  // scales whose weight is not FP8, SCB without a weight
        if ((ends_with(v.name, ".weight_scale_inv") || ends_with(v.name, ".SCB")) && !c.drop.count(v.name)) {
            const std::string w = v.name.substr(0, v.name.rfind('.')) + ".weight";
            c.bad(v.name, core::cat("quantization scale without a matching quantized weight ", w));
        }

    if (opt.merge_into != "dequantized" && opt.merge_into != "original")
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("--merge-into must be dequantized or original, not '", opt.merge_into, "'"));
    if (opt.merge_into == "original" && opt.original_base.empty())
        throw core::Error(core::ErrorKind::Usage, "", "", "--merge-into original needs --original-base DIR");
    if (opt.merge_into != "original" && !opt.original_base.empty())
        throw core::Error(core::ErrorKind::Usage, "", "", "--original-base is only used with --merge-into original");

    if (n_quant == 0 && c.drop.empty()) {
        if (opt.merge_into == "original")
            p.notes.push_back("--merge-into original: the base has no quantized tensors; nothing replaced");
        return;
    }
    // Drop the auxiliary tensors and rebuild the indices.
    std::vector<VTensor> kept;
    for (auto& v : t.tensors)
        if (!c.drop.count(v.name)) kept.push_back(std::move(v));
    t.tensors = std::move(kept);
    t.index.clear();
    for (std::size_t i = 0; i < t.tensors.size(); ++i) t.index[t.tensors[i].name] = i;
    std::vector<lora::BaseTensor> bl;
    for (const auto& v : t.tensors) {
        bl.push_back({v.name, v.source.shape});
        // A LoRA on gpt-oss's experts (PEFT target_parameters) was trained on transformers' dequantized parameter:
        // "<stem>" [E, in, out], the logical "<stem>_blocks" [E, out, in] with its last two dims swapped.
        if (v.source.dequant && v.source.dequant->kind == DequantKind::Mxfp4) {
            bl.back().peft_name = v.name.substr(0, v.name.size() - std::string_view("_blocks").size());
            bl.back().peft_swapped = true;
        }
    }
    base_list = std::move(bl);
    p.notes.push_back(core::cat("quantized base: ", n_quant, " tensors dequantized, ", c.drop.size(),
                                " auxiliary tensors not written"));

    if (opt.merge_into != "original") return;
    const formats::SafetensorsSet orig = formats::SafetensorsSet::open_dir(opt.original_base);
    const auto first = static_cast<std::uint32_t>(p.input_files.size());
    for (std::size_t i = 0; i < orig.n_files(); ++i) {
        p.input_files.push_back(fs::absolute(orig.file(i).path()).string());
        p.input_bytes += orig.file(i).file_size();
    }
    std::size_t n = 0;
    for (auto& v : t.tensors) {
        if (!v.source.dequant) continue;
        const auto r = orig.find(v.name);
        if (!r)
            throw core::Error(core::ErrorKind::BadInput, opt.original_base.string(), v.name,
                              "--original-base has no such tensor (the quantized base has it)");
        if (r->tensor->shape != v.source.shape)
            throw core::Error(core::ErrorKind::BadInput, orig.file(r->file).path().string(), v.name,
                              core::cat("--original-base shape ", shape_str(r->tensor->shape),
                                        " differs from the quantized base's ", shape_str(v.source.shape)));
        if (!core::is_float(r->tensor->dtype))
            throw core::Error(core::ErrorKind::BadInput, orig.file(r->file).path().string(), v.name,
                              "--original-base tensor is not a float tensor");
        Source s;
        s.file = first + r->file;
        s.name = v.name;
        s.dtype = r->tensor->dtype;
        s.shape = r->tensor->shape;
        s.offset = r->tensor->offset;
        s.nbytes = r->tensor->nbytes;
        v.source = std::move(s);
        ++n;
    }
    p.notes.push_back(core::cat("--merge-into original: ", n, " quantized tensors taken from ",
                                opt.original_base.string()));
}

}  // namespace shardforge::plan::detail
