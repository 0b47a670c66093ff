// --format bnb-nf4 | bnb-fp4 [--double-quant]: the merged model as the bitsandbytes 4-bit checkpoint transformers loads
// (bitsandbytes' QuantState in functional.py; transformers' utils/quantization_config.py). Every Linear weight
// transformers would quantize becomes a group of tensors (packed codes, absmax, quant_map, [nested_absmax,
// nested_quant_map,] packed quant_state JSON) written by one Bnb4 emit; embeddings, norms, lm_head and modules covered
// by llm_int8_skip_modules stay 16-bit. A group never spans two shards (transformers collects a weight's quant state
// from the shard that holds the weight).
#include <shardforge/formats.hpp>
#include <shardforge/plan.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <map>

namespace shardforge::plan::detail {
namespace {

// transformers' skip-list covering rules, old and new (transformers' utils/quantization_config.py): the module is left
// unquantized if any entry covers it under either rule (k == n, "k." inside n, n starting with k, n ending with k).
bool covered(const std::string& module, const std::vector<std::string>& skip) {
    for (const auto& k : skip) {
        if (k.empty()) continue;
        if (module == k || module.starts_with(k) || module.ends_with(k) ||
            (module + ".").find(k + ".") != std::string::npos)
            return true;
    }
    return false;
}

// A Linear weight as transformers sees it: 2-D float "<module>.weight" that is not an embedding, a norm or the
// output head.
bool linear_like(const std::string& name, const Source& s) {
    if (s.shape.size() != 2 || !name.ends_with(".weight") || !core::is_float(s.dtype)) return false;
    if (core::numel(s.shape) == 0) return false;
    const std::string module = name.substr(0, name.size() - 7);
    const std::string leaf = module.substr(module.rfind('.') == std::string::npos ? 0 : module.rfind('.') + 1);
    if (leaf.find("embed") != std::string::npos || leaf.find("norm") != std::string::npos) return false;
    if (leaf == "lm_head" || leaf == "wte" || leaf == "wpe") return false;
    return true;
}

}  // namespace

void add_bnb_output(const Options& opt, const OutputSpec& o, Tables& t, const nlohmann::json& config, bool untie,
                    Plan& p) {
    quant::Bnb4Spec spec;
    spec.type = o.type == "fp4" ? quant::Bnb4Type::FP4 : quant::Bnb4Type::NF4;
    spec.double_quant = opt.bnb_double_quant;
    const std::string qtype = o.type == "fp4" ? "fp4" : "nf4";

    // Skip list: the base's own (a -bnb-4bit or dynamic-quant base), else transformers' default (the output head).
    std::vector<std::string> skip;
    if (config.is_object() && config.contains("quantization_config") && config["quantization_config"].is_object()) {
        const auto& qc = config["quantization_config"];
        if (qc.contains("llm_int8_skip_modules") && qc["llm_int8_skip_modules"].is_array())
            for (const auto& k : qc["llm_int8_skip_modules"])
                if (k.is_string()) skip.push_back(k.get<std::string>());
    }
    if (skip.empty()) skip.push_back("lm_head");

    // One group per virtual tensor, in base order: one entry (16-bit), or the packed codes and then one entry per
    // bnb part (`bnb`, same order).
    struct Group {
        std::size_t tensor;
        bool quantized;
        core::DType dtype;   // 16-bit output dtype, or the quant_state dtype
        std::vector<HfEntry> parts;
        std::vector<formats::Bnb4PartSpec> bnb;
    };
    std::vector<Group> groups;
    std::size_t n_quantized = 0;
    for (std::size_t i = 0; i < t.tensors.size(); ++i) {
        const auto& v = t.tensors[i];
        Group g{i, false, v.source.dtype, {}, {}};
        if (opt.dtype && core::is_float(g.dtype)) g.dtype = *opt.dtype;
        const std::string module = v.name.size() > 7 ? v.name.substr(0, v.name.size() - 7) : v.name;
        g.quantized = linear_like(v.name, v.source) && !covered(module, skip);
        if (g.quantized) {
            if (g.dtype != core::DType::BF16 && g.dtype != core::DType::F16) g.dtype = core::DType::F32;
            const quant::Bnb4Layout l = quant::bnb4_layout(spec, core::numel(v.source.shape));
            g.parts.push_back({v.name, core::DType::U8, {l.packed_bytes, 1}, static_cast<std::uint64_t>(l.packed_bytes)});
            formats::BnbQuantState qs;
            qs.nf4 = spec.type == quant::Bnb4Type::NF4;
            qs.blocksize = spec.blocksize;
            qs.dtype = g.dtype;
            qs.shape = v.source.shape;
            qs.nested = spec.double_quant;
            g.bnb = formats::bnb4_part_specs(spec, qs);
            for (const auto& part : g.bnb) g.parts.push_back({v.name + part.suffix, part.dtype, {part.n}, part.nbytes});
            ++n_quantized;
        } else {
            check_hf_output_dtype(opt, p, v, g.dtype);
            g.parts.push_back({v.name, g.dtype, v.source.shape,
                               static_cast<std::uint64_t>(core::numel(v.source.shape)) * core::dtype_size(g.dtype)});
        }
        groups.push_back(std::move(g));
    }
    if (n_quantized == 0)
        throw core::Error(core::ErrorKind::Unsupported, opt.base.string(), "",
                          "no Linear weight to quantize for the bnb output (all skipped or not 2-D float)");

    std::vector<std::vector<HfEntry>> layout_groups;
    for (const auto& g : groups) layout_groups.push_back(g.parts);
    for (const HfPlaced& pl : add_hf_shards(layout_groups, opt.max_shard_size, p)) {
        const Group& g = groups[pl.group];
        Emit e;
        e.file = pl.file;
        e.name = g.parts[0].name;
        e.offset = pl.offsets[0];
        e.nbytes = g.parts[0].bytes;
        if (g.quantized) {
            Bnb4Encoding b{g.dtype, spec, {}};
            for (std::size_t j = 0; j < g.bnb.size(); ++j)  // entry j + 1 is part g.bnb[j] (entry 0: the codes)
                b.parts.at(g.bnb[j].part) = {pl.offsets[j + 1], g.parts[j + 1].bytes};
            e.encoding = std::move(b);
        } else {
            e.encoding = RawEncoding{g.dtype};
        }
        t.add_emit(g.tensor, std::move(e), p);
    }

    // config.json: the 16-bit dtype and BitsAndBytesConfig.to_dict() (every key, transformers'
    // utils/quantization_config.py).
    core::DType model_dtype = opt.dtype.value_or(core::DType::F32);
    if (!opt.dtype) {
        std::map<core::DType, std::uint64_t> bytes_by;
        for (const auto& g : groups) bytes_by[g.dtype] += static_cast<std::uint64_t>(core::numel(t.tensors[g.tensor].source.shape));
        model_dtype = std::max_element(bytes_by.begin(), bytes_by.end(),
                                       [](auto& a, auto& b) { return a.second < b.second; })->first;
    }
    nlohmann::json cfg = config.is_object() ? config : nlohmann::json::object();
    const char* dname = torch_dtype_name(model_dtype);
    set_hf_config_dtype(cfg, model_dtype, untie);
    cfg["quantization_config"] = {
        {"quant_method", "bitsandbytes"},
        {"load_in_4bit", true},
        {"load_in_8bit", false},
        {"_load_in_4bit", true},
        {"_load_in_8bit", false},
        {"bnb_4bit_quant_type", qtype},
        {"bnb_4bit_use_double_quant", spec.double_quant},
        {"bnb_4bit_compute_dtype", dname},
        {"bnb_4bit_quant_storage", "uint8"},
        {"llm_int8_skip_modules", skip},
        {"llm_int8_threshold", 6.0},
        {"llm_int8_has_fp16_weight", false},
        {"llm_int8_enable_fp32_cpu_offload", false},
    };
    p.files.push_back({"config.json", FileKind::Text, cfg.dump(2) + "\n", "", 0});
    add_copied_files(opt, p);
    p.notes.push_back(core::cat("warning: bnb-", qtype, " re-quantizes ", n_quantized,
                                " merged Linear weights to 4 bits: this loses accuracy and can erase small LoRA "
                                "deltas; the run reports per tensor how many 4-bit codes the adapter changed "
                                "(bnb_requant.tsv). Prefer the 16-bit safetensors output and quantize at load time."));
}

}  // namespace shardforge::plan::detail
