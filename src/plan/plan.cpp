// make_plan: reads configs and tensor headers (never tensor data) and lays out every output file and tensor.
// The safetensors output and the shared "virtual tensor table" live here; GGUF outputs in plan_gguf.cpp.
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/ollama.hpp>
#include <shardforge/plan.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace shardforge::plan {

std::int64_t Source::kept_elems() const noexcept {
    if (!sliced()) return core::numel(shape);
    const std::size_t nd = shape.size();
    const std::int64_t cols = nd >= 1 ? shape[nd - 1] : 1;
    const std::int64_t rows = nd >= 2 ? shape[nd - 2] : 1;
    const std::int64_t outer = rows * cols == 0 ? 0 : core::numel(shape) / (rows * cols);
    const std::int64_t n_rows = slice_end() <= row_begin ? 0 : (slice_end() - row_begin + row_step - 1) / row_step;
    const std::int64_t n_cols = kept_cols(cols);
    return outer * n_rows * n_cols;
}

std::vector<OutputSpec> parse_formats(std::string_view csv) {
    std::vector<OutputSpec> out;
    std::string s(csv);
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
        tok.erase(0, tok.find_first_not_of(" \t"));
        tok.erase(tok.find_last_not_of(" \t") + 1);
        if (tok.empty()) continue;
        std::string lower = tok;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower == "safetensors") {
            out.push_back({Format::Safetensors, ""});
        } else if (lower == "gguf-lora") {
            out.push_back({Format::GgufLora, "f32"});
        } else if (lower.rfind("gguf-lora:", 0) == 0 && lower.size() > 10) {
            out.push_back({Format::GgufLora, lower.substr(10)});
        } else if (lower == "gguf-mtp") {
            out.push_back({Format::GgufMtp, "auto"});
        } else if (lower.rfind("gguf-mtp:", 0) == 0 && lower.size() > 9) {
            out.push_back({Format::GgufMtp, lower.substr(9)});
        } else if (lower == "bnb-nf4" || lower == "bnb-fp4") {
            out.push_back({Format::Bnb4, lower.substr(4)});
        } else if (lower == "gguf") {
            out.push_back({Format::Gguf, "auto"});
        } else if (lower.rfind("gguf:", 0) == 0 && lower.size() > 5) {
            out.push_back({Format::Gguf, lower.substr(5)});
        } else {
            throw core::Error(core::ErrorKind::Usage, "", "",
                              core::cat("unknown output format '", tok,
                                        "' (expected safetensors, gguf:TYPE such as gguf:q8_0 or gguf:q4_k_m, or gguf-lora[:f32|f16|bf16|q8_0], bnb-nf4, bnb-fp4, gguf-mtp:TYPE)"));
        }
    }
    if (out.empty()) throw core::Error(core::ErrorKind::Usage, "", "", "--format: no output format given");
    for (std::size_t i = 0; i < out.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (out[i].format == out[j].format && out[i].type == out[j].type)
                throw core::Error(core::ErrorKind::Usage, "", "", "--format: output listed twice");
    int hf_dirs = 0;  // safetensors and bnb-* both write model*.safetensors + config.json into --out
    for (const auto& o : out) hf_dirs += o.format == Format::Safetensors || o.format == Format::Bnb4;
    if (hf_dirs > 1)
        throw core::Error(core::ErrorKind::Usage, "", "",
                          "--format: safetensors, bnb-nf4 and bnb-fp4 write the same file names; export them to "
                          "separate --out directories");
    return out;
}

namespace {
// Files copied verbatim next to a merged safetensors model (tokenizer and generation settings).
constexpr const char* copied_files[] = {
    "generation_config.json", "tokenizer.json",  "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",  "chat_template.json",
    "vocab.json",              "merges.txt",       "preprocessor_config.json",
    // the rest of a vision-language model's processor (transformers' ProcessorMixin / video processors)
    "processor_config.json",   "video_preprocessor_config.json",
};

}  // namespace

namespace detail {

std::string read_text(const fs::path& p) { return core::read_input_file(p.string()); }

void validate_base_config(const nlohmann::json& config, const fs::path& path,
                          const std::vector<lora::BaseTensor>& base) {
    // Without an architecture there is nothing to check a config against (a safetensors merge of a bare
    // checkpoint); GGUF planning refuses such a config itself.
    auto has_arch = [](const nlohmann::json& o) { return o.is_object() && o.contains("architectures"); };
    if (!has_arch(config) && !(config.is_object() && config.contains("text_config") && has_arch(config["text_config"])))
        return;
    std::vector<std::pair<std::string, core::Shape>> tensors;
    tensors.reserve(base.size());
    for (const auto& b : base) tensors.emplace_back(b.name, b.shape);
    model::validate_config(model::parse_hf_config(config, path.string()), tensors);
}

nlohmann::json read_json(const fs::path& p) {
    const std::string text = read_text(p);
    core::check_json_depth(text, p.string());
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw core::Error(core::ErrorKind::BadInput, p.string(), "", core::cat("invalid JSON: ", e.what()));
    }
}

void add_copied_files(const Options& opt, Plan& p) {
    for (const char* name : copied_files) {
        const fs::path src = opt.base / name;
        std::error_code ec;
        if (!fs::is_regular_file(src, ec)) continue;
        // The same caps as when these files are parsed (GGUF outputs): an implausibly large tokenizer or config
        // is refused for every format, not copied for one and refused for another.
        const std::uint64_t size = fs::file_size(src, ec);
        if (size > core::input_file_cap(name))
            throw core::Error(core::ErrorKind::BadInput, src.string(), "",
                              core::cat("file is ", core::human_size(size), ", larger than the ",
                                        core::human_size(core::input_file_cap(name)),
                                        " accepted for it (docs/formats.md, \"Hostile inputs\")"));
        p.files.push_back({name, FileKind::Copy, "", fs::absolute(src).string(), size});
    }
}

std::vector<HfPlaced> add_hf_shards(const std::vector<std::vector<HfEntry>>& groups, std::uint64_t max_shard_size,
                                    Plan& p) {
    std::vector<std::uint64_t> sizes;
    for (const auto& g : groups) {
        std::uint64_t bytes = 0;
        for (const auto& en : g) bytes += en.bytes;
        sizes.push_back(bytes);
    }
    const std::vector<std::uint32_t> shard = formats::assign_hf_shards(sizes, max_shard_size);
    const std::uint32_t n_shards = shard.empty() ? 1 : *std::max_element(shard.begin(), shard.end()) + 1;
    std::vector<std::vector<std::size_t>> members(n_shards);
    for (std::size_t i = 0; i < groups.size(); ++i) members[shard[i]].push_back(i);

    std::vector<HfPlaced> placed;
    std::vector<std::pair<std::string, std::string>> weight_map;
    std::uint64_t total = 0;
    for (std::uint32_t s = 0; s < n_shards; ++s) {
        std::vector<formats::StEntry> es;
        for (auto gi : members[s])
            for (const auto& en : groups[gi]) es.push_back({en.name, en.dtype, en.shape});
        const formats::StLayout lay = formats::layout_safetensors(es, {{"format", "pt"}});
        FileOut f;
        f.name = formats::hf_shard_name(s, n_shards);
        f.kind = FileKind::Tensors;
        f.header = lay.header_bytes;
        f.size = lay.file_size;
        const auto file_idx = static_cast<std::uint32_t>(p.files.size());
        p.files.push_back(f);
        std::size_t k = 0;
        for (auto gi : members[s]) {
            HfPlaced pl{gi, file_idx, {}};
            for (const auto& en : groups[gi]) {
                pl.offsets.push_back(lay.offsets[k++]);
                weight_map.emplace_back(en.name, f.name);
                total += en.bytes;
            }
            placed.push_back(std::move(pl));
        }
    }
    if (n_shards > 1)
        p.files.push_back({"model.safetensors.index.json", FileKind::Text,
                           formats::make_hf_index_json(total, weight_map), "", 0});
    return placed;
}

void check_hf_output_dtype(const Options& opt, const Plan& p, const VTensor& v, core::DType dt) {
    if (v.source.merge && !core::is_float(dt))
        throw core::Error(core::ErrorKind::Unsupported, p.input_files[v.source.file], v.name,
                          "LoRA targets a non-float tensor");
    if (dt == core::DType::F8_E4M3 || dt == core::DType::F8_E5M2 || dt == core::DType::F64)
        if (v.source.merge || (opt.dtype && core::is_float(v.source.dtype)))
            throw core::Error(core::ErrorKind::Unsupported, p.input_files[v.source.file], v.name,
                              core::cat("cannot write merged values as ", core::dtype_name(dt),
                                        "; pass --dtype bf16|f16|f32"));
}

const char* torch_dtype_name(core::DType d) {
    return d == core::DType::BF16 ? "bfloat16" : d == core::DType::F16 ? "float16" : "float32";
}

void set_hf_config_dtype(nlohmann::json& cfg, std::optional<core::DType> dtype, bool untie) {
    if (dtype) {
        const char* name = torch_dtype_name(*dtype);
        if (cfg.contains("dtype")) cfg["dtype"] = name;
        cfg["torch_dtype"] = name;
    }
    if (untie) {
        cfg["tie_word_embeddings"] = false;
        if (cfg.contains("text_config") && cfg["text_config"].is_object())
            cfg["text_config"]["tie_word_embeddings"] = false;
    }
}

}  // namespace detail

namespace {

// The output lock of a run that is gone (exec.hpp, OutputLock: ".shardforge.lock" and its temporaries) does not
// make a directory non-empty; a live run's lock is refused before planning.
bool dir_nonempty(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) return false;
    for (const auto& e : fs::directory_iterator(p, ec))
        if (e.path().filename().string().rfind(".shardforge.lock", 0) != 0) return true;
    return false;
}

void add_safetensors_output(const Options& opt, detail::Tables& t, const nlohmann::json& config, bool untie,
                            Plan& p) {
    // One group per tensor in base order (+ untied lm_head). Float tensors take --dtype, else keep their own dtype.
    std::vector<std::vector<detail::HfEntry>> groups;
    const std::optional<core::DType> out_dtype = opt.dtype;
    for (const auto& v : t.tensors) {
        // transformers loads gpt-oss's dequantized experts as gate_up_proj / down_proj in its own transposed
        // layout; writing that layout is not implemented, and the dequantized *_blocks would not load.
        if (v.source.dequant && v.source.dequant->kind == DequantKind::Mxfp4)
            throw core::Error(core::ErrorKind::Unsupported, p.input_files.at(v.source.file), v.name,
                              "safetensors output of MXFP4 experts is not supported (GGUF outputs are)");
        core::DType dt = v.source.dtype;
        if (out_dtype && core::is_float(dt)) dt = *out_dtype;
        detail::check_hf_output_dtype(opt, p, v, dt);
        groups.push_back({{v.name, dt, v.source.shape,
                           static_cast<std::uint64_t>(core::numel(v.source.shape)) * core::dtype_size(dt)}});
    }
    for (const detail::HfPlaced& pl : detail::add_hf_shards(groups, opt.max_shard_size, p)) {
        const detail::HfEntry& en = groups[pl.group][0];
        Emit e;
        e.file = pl.file;
        e.name = en.name;
        e.encoding = RawEncoding{en.dtype};
        e.offset = pl.offsets[0];
        e.nbytes = en.bytes;
        t.add_emit(pl.group, std::move(e), p);
    }

    // config.json: dtype updated, quantization_config removed, untied embeddings recorded.
    nlohmann::json cfg = config;
    if (cfg.is_object()) {
        cfg.erase("quantization_config");
        std::optional<core::DType> dominant = out_dtype;
        if (!dominant) {
            std::map<core::DType, std::uint64_t> bytes_by;
            for (const auto& g : groups) bytes_by[g[0].dtype] += g[0].bytes;
            if (!bytes_by.empty())
                dominant = std::max_element(bytes_by.begin(), bytes_by.end(),
                                            [](auto& a, auto& b) { return a.second < b.second; })
                               ->first;
        }
        detail::set_hf_config_dtype(cfg, dominant, untie);
        p.files.push_back({"config.json", FileKind::Text, cfg.dump(2) + "\n", "", 0});
    }
    detail::add_copied_files(opt, p);
}

void add_lora_resave(const Options& opt, const std::vector<lora::Adapter>& adapters, Plan& p) {
    if (adapters.size() != 1)
        throw core::Error(core::ErrorKind::Usage, "", "", "--save-method lora takes exactly one --adapter");
    for (const auto& entry : fs::directory_iterator(adapters[0].dir)) {
        if (!entry.is_regular_file()) continue;
        const std::string name = entry.path().filename().string();
        p.files.push_back({name, FileKind::Copy, "", fs::absolute(entry.path()).string(), entry.file_size()});
    }
    (void)opt;
}

// An Ollama Modelfile beside GGUF outputs.
void add_modelfile(const Options& opt, Plan& p) {
    const std::string from = preferred_gguf(p);
    if (const std::string lora = lora_gguf(p); !lora.empty())
        // Ollama applies a LoRA on top of the model FROM names, which must be the unmerged base (a merged GGUF
        // here already contains the adapter). A batch job with a variant exporting the base writes that Modelfile.
        p.notes.push_back(core::cat("Modelfile for ", lora, ": Ollama needs FROM = the base model's GGUF exported "
                                    "without --adapter (e.g. shardforge export --base ", opt.base.string(),
                                    " --format gguf:q4_k_m) and ADAPTER ./", lora,
                                    "; a batch job with a variant without adapters writes it"));
    if (from.empty()) return;  // an adapter alone needs its base GGUF; Ollama's ADAPTER cannot stand alone
    ollama::ModelfileInput in = ollama::read_hf_chat_config(opt.base);
    in.from = from;
    // a vision model's projector: the F16 one when written (what llama.cpp's releases pair with quantized text
    // models), else the first
    for (const auto& f : p.files)
        if (f.name.starts_with("mmproj-") && f.name.ends_with(".gguf") &&
            (in.projector.empty() || f.name.ends_with("-F16.gguf")))
            in.projector = f.name;
    const ollama::Modelfile mf = ollama::make_modelfile(in);
    for (const auto& w : mf.warnings) p.notes.push_back("Modelfile: " + w);
    p.files.push_back({"Modelfile", FileKind::Text, mf.text, "", 0});
}

}  // namespace

Item& detail::Tables::item_for(std::size_t i, Plan& p) {
    if (item_of[i] < 0) {
        item_of[i] = static_cast<std::int64_t>(p.items.size());
        Item it;
        it.sources.push_back(tensors[i].source);
        it.shape = tensors[i].source.shape;
        p.items.push_back(std::move(it));
    }
    return p.items[static_cast<std::size_t>(item_of[i])];
}

void detail::Tables::add_emit(std::size_t i, Emit e, Plan& p) {
    Item& it = item_for(i, p);
    if (window_of[i].second >= 0) {
        e.row_begin = window_of[i].first;
        e.row_end = window_of[i].second;
        e.shape = tensors[i].source.shape;
    }
    it.emits.push_back(std::move(e));
}

void detail::drop_empty_items(Plan& p) {
    std::erase_if(p.items, [](const Item& it) { return it.emits.empty() && it.variants.empty(); });
}

std::string lora_gguf(const Plan& p) {
    for (const auto& f : p.files)
        if (f.name.ends_with(".gguf") && f.name.find("-lora-") != std::string::npos) return f.name;
    return "";
}

std::string preferred_gguf(const Plan& p) {
    std::string from;
    for (const auto& f : p.files) {
        if (!f.name.ends_with(".gguf")) continue;
        if (f.name.find("-of-") != std::string::npos && f.name.find("-00001-of-") == std::string::npos) continue;
        // GGUF outputs are merged with the adapters, so a GGUF LoRA beside them must not be applied again.
        if (f.name.find("-lora-") != std::string::npos) continue;
        if (f.name.starts_with("mtp-")) continue;  // a draft model (gguf-mtp), not a model Ollama can run
        if (f.name.starts_with("mmproj-")) continue;  // a vision projector, beside the model
        if (from.empty() || f.name.find(".Q4_K_M") != std::string::npos) from = f.name;
    }
    return from;
}

Plan make_plan(const Options& opt) {
    Plan p;
    std::error_code ec;
    if (!fs::is_directory(opt.base, ec))
        throw core::Error(core::ErrorKind::BadInput, opt.base.string(), "", "base model directory does not exist");
    if (opt.out.empty()) throw core::Error(core::ErrorKind::Usage, "", "", "--out is required");
    if (dir_nonempty(opt.out) && !opt.overwrite)
        throw core::Error(core::ErrorKind::Usage, opt.out.string(), "",
                          "output directory exists and is not empty (use --overwrite to replace its files)");
    p.out_dir = fs::absolute(opt.out).string();

    const fs::path config_path = opt.base / "config.json";
    const nlohmann::json config =
        fs::exists(config_path) ? detail::read_json(config_path) : nlohmann::json::object();

    // Adapters (config + header) first: a bad adapter fails before anything else is touched.
    std::vector<lora::Adapter> adapters;
    for (const auto& [dir, w] : opt.adapters) adapters.push_back(lora::open_adapter(dir, w));
    for (const auto& a : adapters) p.adapter_files.push_back(fs::absolute(a.file).string());

    const formats::SafetensorsSet base = formats::SafetensorsSet::open_dir(opt.base);
    for (std::size_t i = 0; i < base.n_files(); ++i) {
        p.input_files.push_back(fs::absolute(base.file(i).path()).string());
        p.input_bytes += base.file(i).file_size();
    }
    std::vector<lora::BaseTensor> base_list;
    detail::Tables t;
    for (const std::string& name : base.names()) {
        const auto ref = *base.find(name);
        base_list.push_back({name, ref.tensor->shape});
        Source s;
        s.file = ref.file;
        s.name = name;
        s.dtype = ref.tensor->dtype;
        s.shape = ref.tensor->shape;
        s.offset = ref.tensor->offset;
        s.nbytes = ref.tensor->nbytes;
        t.index[name] = t.tensors.size();
        t.tensors.push_back({name, s});
    }

    detail::resolve_quantized_inputs(opt, base, config, t, base_list, p);

    if (opt.save_method == "lora") {
        for (const auto& a : adapters) lora::validate_adapter(a, base_list, config);
        add_lora_resave(opt, adapters, p);
        return p;
    }
    if (opt.save_method != "merged")
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("unknown --save-method '", opt.save_method, "' (merged or lora)"));
    detail::validate_base_config(config, config_path, base_list);

    bool untie = false;
    if (!adapters.empty()) {
        const lora::Resolution res = lora::resolve(adapters, base_list, config);
        untie = res.untie_embeddings;
        for (const auto& w : res.warnings) p.notes.push_back("warning: " + w);
        for (const auto& mt : res.targets) {
            if (mt.out_name == mt.base_name) {
                t.tensors[t.index.at(mt.base_name)].source.merge = mt;
            } else {
                // A new output built from a base tensor (the untied lm_head of a tied model).
                detail::VTensor v{mt.out_name, t.tensors[t.index.at(mt.base_name)].source};
                v.source.name = mt.base_name;
                v.source.merge = mt;
                t.index[mt.out_name] = t.tensors.size();
                t.tensors.push_back(v);
                p.notes.push_back(core::cat("untied embeddings: ", mt.out_name, " written from ", mt.base_name,
                                            " plus its own LoRA terms; tie_word_embeddings=false"));
            }
        }
    }
    t.item_of.assign(t.tensors.size(), -1);
    t.window_of.assign(t.tensors.size(), {0, -1});

    for (const auto& o : opt.outputs) {
        if (o.format == Format::Safetensors) add_safetensors_output(opt, t, config, untie, p);
        if (o.format == Format::Bnb4) detail::add_bnb_output(opt, o, t, config, untie, p);
    }
    for (const auto& o : opt.outputs) {
        if (o.format == Format::Gguf || o.format == Format::GgufMtp) detail::add_gguf_output(opt, o, t, config, p);
    }
    for (const auto& o : opt.outputs) {
        if (o.format == Format::GgufLora) detail::add_gguf_lora_output(opt, o, adapters, t, config, p);
    }
    if (opt.bnb_double_quant &&
        std::none_of(opt.outputs.begin(), opt.outputs.end(), [](const OutputSpec& o) { return o.format == Format::Bnb4; }))
        throw core::Error(core::ErrorKind::Usage, "", "", "--double-quant needs a bnb-nf4 or bnb-fp4 output");
    add_modelfile(opt, p);
    // Tensors nothing consumes (e.g. a GGUF-only export dropping lm_head for gemma) get no item; nor do those now
    // written from a stacked item.
    detail::drop_empty_items(p);
    detail::schedule(opt, p);
    for (const auto& f : p.files) p.output_bytes += f.size + (f.kind == FileKind::Text ? f.header.size() : 0);
    return p;
}

}  // namespace shardforge::plan
