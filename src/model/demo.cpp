// `shardforge demo DIR`: writes a small deterministic Llama checkpoint (DIR/base) and a PEFT LoRA adapter for it
// (DIR/adapter). See model.hpp "demo model" for the file list.
#include "demo_internal.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <utility>

namespace shardforge::model {

namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- deterministic numbers
// splitmix64 over a per-tensor seed (FNV-1a of the name mixed with the user seed). Only integer arithmetic and
// correctly rounded double +,*,sqrt are used, so every machine produces the same bits (no libm log/cos).
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    // Irwin-Hall(4), centred and scaled to unit variance: close enough to N(0, 1) for weights, and exact.
    double normal() {
        const double u = uniform() + uniform() + uniform() + uniform() - 2.0;
        return u * 1.7320508075688772;  // sqrt(3): Var(sum of 4 U(0,1)) = 1/3
    }
};

Rng rng_for(std::uint64_t seed, std::string_view name) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : name) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return Rng{h ^ (seed * 0x9e3779b97f4a7c15ull)};
}

enum class Init { Normal, Norm, LoraA, LoraB };

struct DemoTensor {
    formats::StEntry entry;
    Init init = Init::Normal;
    double scale = 0.0;  // std (Normal, LoraB), half-width (LoraA), spread around 1 (Norm)
};

std::vector<float> generate(const DemoTensor& t, std::uint64_t seed) {
    Rng rng = rng_for(seed, t.entry.name);
    std::vector<float> v(static_cast<std::size_t>(core::numel(t.entry.shape)));
    for (float& x : v) {
        switch (t.init) {
        case Init::Normal:
        case Init::LoraB: x = static_cast<float>(t.scale * rng.normal()); break;
        case Init::Norm: x = static_cast<float>(1.0 + t.scale * (2.0 * rng.uniform() - 1.0)); break;
        case Init::LoraA: x = static_cast<float>(t.scale * (2.0 * rng.uniform() - 1.0)); break;
        }
    }
    return v;
}

// ---------------------------------------------------------------- files
void write_text(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) throw core::Error(core::ErrorKind::Io, p.string(), "", "cannot write file");
}

// One safetensors file: entries in the reference serializer's order, data generated tensor by tensor.
std::uint64_t write_safetensors(const fs::path& p, const std::vector<DemoTensor>& tensors, std::uint64_t seed) {
    std::vector<formats::StEntry> entries;
    for (const auto& t : tensors) entries.push_back(t.entry);
    const std::vector<std::size_t> order = formats::st_reference_order(entries);
    std::vector<formats::StEntry> sorted;
    for (const std::size_t i : order) sorted.push_back(entries[i]);
    const formats::StLayout lay = formats::layout_safetensors(sorted, {{"format", "pt"}});

    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(lay.header_bytes.data(), static_cast<std::streamsize>(lay.header_bytes.size()));
    std::uint64_t pos = lay.header_bytes.size(), data_bytes = 0;
    std::vector<std::byte> buf;
    for (std::size_t k = 0; k < order.size(); ++k) {
        const DemoTensor& t = tensors[order[k]];
        SF_CHECK(lay.offsets[k] == pos, core::cat("demo tensor ", t.entry.name, " laid out at ", lay.offsets[k],
                                                  ", stream at ", pos));
        const std::vector<float> v = generate(t, seed);
        buf.resize(v.size() * core::dtype_size(t.entry.dtype));
        formats::from_f32(v.data(), t.entry.dtype, buf.data(), v.size());
        f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
        pos += buf.size();
        data_bytes += buf.size();
    }
    f.close();
    if (!f) throw core::Error(core::ErrorKind::Io, p.string(), "", "cannot write file");
    SF_CHECK(pos == lay.file_size, core::cat("demo file size ", pos, " != planned ", lay.file_size));
    return data_bytes;
}

void check_options(const DemoOptions& o) {
    std::string bad;
    auto need = [&](bool ok, const std::string& what) {
        if (!ok) bad += (bad.empty() ? "" : "; ") + what;
    };
    need(o.n_layer >= 1, "n_layer must be >= 1");
    need(o.hidden >= 1 && o.intermediate >= 1, "hidden and intermediate must be >= 1");
    need(o.n_head >= 1 && o.n_kv_head >= 1 && o.n_head % o.n_kv_head == 0, "n_head must be a multiple of n_kv_head");
    need(o.n_head >= 1 && o.hidden % o.n_head == 0 && (o.hidden / o.n_head) % 2 == 0,
         "hidden / n_head must be an even integer (rotary pairs)");
    need(o.vocab >= 256 + detail::demo_n_specials, core::cat("vocab must be >= ", 256 + detail::demo_n_specials));
    need(o.n_shards >= 1, "n_shards must be >= 1");
    need(o.dtype == core::DType::BF16 || o.dtype == core::DType::F16 || o.dtype == core::DType::F32,
         "dtype must be BF16, F16 or F32");
    need(o.lora_rank >= 1 && o.lora_alpha >= 1, "lora_rank and lora_alpha must be >= 1");
    if (!bad.empty()) throw core::Error(core::ErrorKind::Usage, "", "", "demo options: " + bad);
}

std::string torch_dtype(core::DType t) {
    switch (t) {
    case core::DType::BF16: return "bfloat16";
    case core::DType::F16: return "float16";
    default: return "float32";
    }
}

struct ArchRow {
    DemoArch arch;
    const char* model_type;
    const char* class_name;
    double rope_theta;
};
constexpr ArchRow arch_rows[] = {
    {DemoArch::Llama, "llama", "LlamaForCausalLM", 10000.0},
    {DemoArch::Mistral, "mistral", "MistralForCausalLM", 10000.0},
    {DemoArch::Qwen2, "qwen2", "Qwen2ForCausalLM", 1000000.0},
    {DemoArch::Qwen3, "qwen3", "Qwen3ForCausalLM", 1000000.0},
};

const ArchRow& arch_row(DemoArch a) {
    for (const auto& r : arch_rows) {
        if (r.arch == a) return r;
    }
    core::fail_check("arch in arch_rows", __FILE__, __LINE__, "unknown DemoArch");
}

std::string config_json(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    const ArchRow& row = arch_row(o.arch);
    ojson j;
    j["architectures"] = ojson::array({row.class_name});
    j["attention_bias"] = o.arch == DemoArch::Qwen2;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = tok.eos_id;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["max_position_embeddings"] = 2048;
    if (o.arch == DemoArch::Qwen2 || o.arch == DemoArch::Qwen3) j["max_window_layers"] = o.n_layer;
    if (o.arch == DemoArch::Llama) j["mlp_bias"] = false;
    j["model_type"] = row.model_type;
    j["num_attention_heads"] = o.n_head;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    if (o.arch == DemoArch::Llama) j["pretraining_tp"] = 1;
    j["rms_norm_eps"] = 1e-05;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = row.rope_theta;
    if (o.arch != DemoArch::Llama) j["sliding_window"] = nullptr;
    j["tie_word_embeddings"] = o.tie_word_embeddings;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.44.0";
    j["use_cache"] = true;
    if (o.arch == DemoArch::Qwen2 || o.arch == DemoArch::Qwen3) j["use_sliding_window"] = false;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

std::string generation_config_json(const detail::DemoTokenizer& tok) {
    ojson j;
    j["_from_model_config"] = true;
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id});
    j["transformers_version"] = "4.44.0";
    return j.dump(2) + "\n";
}

const char* const lora_targets[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::string adapter_config_json(const DemoOptions& o, const std::string& base) {
    ojson j;
    j["alpha_pattern"] = ojson::object();
    j["auto_mapping"] = nullptr;
    j["base_model_name_or_path"] = base;
    j["bias"] = "none";
    j["fan_in_fan_out"] = false;
    j["inference_mode"] = true;
    j["init_lora_weights"] = true;
    j["layer_replication"] = nullptr;
    j["layers_pattern"] = nullptr;
    j["layers_to_transform"] = nullptr;
    j["loftq_config"] = ojson::object();
    j["lora_alpha"] = o.lora_alpha;
    j["lora_dropout"] = 0.0;
    j["megatron_config"] = nullptr;
    j["megatron_core"] = "megatron.core";
    j["modules_to_save"] = nullptr;
    j["peft_type"] = "LORA";
    j["r"] = o.lora_rank;
    j["rank_pattern"] = ojson::object();
    j["revision"] = nullptr;
    j["target_modules"] = ojson::array();
    for (const char* t : lora_targets) j["target_modules"].push_back(t);
    j["task_type"] = "CAUSAL_LM";
    j["use_dora"] = false;
    j["use_rslora"] = false;
    return j.dump(2) + "\n";
}

// Base tensors in transformers' state-dict order (which is also the sharding order).
std::vector<DemoTensor> base_tensors(const DemoOptions& o) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    std::vector<DemoTensor> ts;
    auto add = [&](std::string name, core::Shape shape, Init init, double scale) {
        ts.push_back({formats::StEntry{std::move(name), o.dtype, std::move(shape)}, init, scale});
    };
    add("model.embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02);
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        add(p + "mlp.down_proj.weight", {h, ff}, Init::Normal, 0.02);
        add(p + "mlp.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
        add(p + "mlp.up_proj.weight", {ff, h}, Init::Normal, 0.02);
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
        const bool bias = o.arch == DemoArch::Qwen2, qk_norm = o.arch == DemoArch::Qwen3;
        // Biases large enough (0.1) that dropping one is visible in the logits.
        if (bias) add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        if (qk_norm) add(p + "self_attn.k_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        if (bias) add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        if (qk_norm) add(p + "self_attn.q_norm.weight", {hd}, Init::Norm, 0.2);
        if (bias) add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    if (!o.tie_word_embeddings) add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    return ts;
}

// PEFT's factors: lora_A [r, in] like its kaiming-uniform init (bound 1/sqrt(in)), lora_B [out, r] random
// instead of PEFT's zeros so that merging visibly changes every target weight.
std::vector<DemoTensor> adapter_tensors(const DemoOptions& o) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd, r = o.lora_rank;
    struct Target {
        const char* module;
        std::int64_t in, out;
    };
    const std::map<std::string, Target> targets = {
        {"q_proj", {"self_attn", h, q}},  {"k_proj", {"self_attn", h, kv}}, {"v_proj", {"self_attn", h, kv}},
        {"o_proj", {"self_attn", q, h}},  {"gate_proj", {"mlp", h, ff}},   {"up_proj", {"mlp", h, ff}},
        {"down_proj", {"mlp", ff, h}}};
    std::vector<DemoTensor> ts;
    for (int l = 0; l < o.n_layer; ++l) {
        for (const char* name : lora_targets) {
            const Target& t = targets.at(name);
            const std::string p = core::cat("base_model.model.model.layers.", l, ".", t.module, ".", name, ".");
            ts.push_back({formats::StEntry{p + "lora_A.weight", core::DType::F32, {r, t.in}}, Init::LoraA,
                          1.0 / std::sqrt(static_cast<double>(t.in))});
            ts.push_back({formats::StEntry{p + "lora_B.weight", core::DType::F32, {t.out, r}}, Init::LoraB, 0.02});
        }
    }
    return ts;
}

// Contiguous shards in state-dict order, balanced by bytes: tensor i goes to the shard its byte midpoint falls
// in. Falls back to equal tensor counts if that leaves a shard empty (a few huge tensors).
std::vector<std::uint32_t> shard_of(const std::vector<DemoTensor>& ts, int n_shards) {
    std::vector<std::uint64_t> nb;
    std::uint64_t total = 0;
    for (const auto& t : ts) {
        nb.push_back(static_cast<std::uint64_t>(core::numel(t.entry.shape)) * core::dtype_size(t.entry.dtype));
        total += nb.back();
    }
    const auto n = static_cast<std::uint64_t>(n_shards);
    std::vector<std::uint32_t> s(ts.size());
    std::vector<bool> used(n, false);
    std::uint64_t cum = 0;
    for (std::size_t i = 0; i < ts.size(); ++i) {
        const std::uint64_t mid2 = 2 * cum + nb[i];  // twice the midpoint, to stay in integers
        s[i] = static_cast<std::uint32_t>(std::min<std::uint64_t>(n - 1, mid2 * n / (2 * total)));
        used[s[i]] = true;
        cum += nb[i];
    }
    if (std::find(used.begin(), used.end(), false) != used.end()) {
        for (std::size_t i = 0; i < ts.size(); ++i) s[i] = static_cast<std::uint32_t>(i * n / ts.size());
    }
    return s;
}

}  // namespace

std::string_view to_string(DemoArch a) noexcept {
    for (const auto& r : arch_rows) {
        if (r.arch == a) return r.model_type;
    }
    return "?";
}

bool parse_demo_arch(std::string_view s, DemoArch& out) noexcept {
    for (const auto& r : arch_rows) {
        if (s == r.model_type) {
            out = r.arch;
            return true;
        }
    }
    return false;
}

void write_demo(const fs::path& dir, const DemoOptions& opt) {
    check_options(opt);
    const detail::DemoTokenizer tok = detail::train_demo_tokenizer(opt.vocab);
    const std::vector<DemoTensor> base = base_tensors(opt);
    if (static_cast<std::size_t>(opt.n_shards) > base.size()) {
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("demo options: n_shards ", opt.n_shards, " exceeds the ", base.size(),
                                    " base tensors"));
    }
    const fs::path base_dir = dir / "base", adapter_dir = dir / "adapter";
    std::error_code ec;
    fs::create_directories(base_dir, ec);
    if (!ec) fs::create_directories(adapter_dir, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, dir.string(), "", "cannot create directory: " + ec.message());

    write_text(base_dir / "config.json", config_json(opt, tok));
    write_text(base_dir / "generation_config.json", generation_config_json(tok));
    write_text(base_dir / "tokenizer.json", detail::demo_tokenizer_json(tok));
    write_text(base_dir / "tokenizer_config.json", detail::demo_tokenizer_config_json(tok));
    write_text(base_dir / "special_tokens_map.json", detail::demo_special_tokens_map_json(tok));

    const std::vector<std::uint32_t> shard = shard_of(base, opt.n_shards);
    std::uint64_t total_size = 0;
    std::vector<std::pair<std::string, std::string>> weight_map;
    for (int k = 0; k < opt.n_shards; ++k) {
        std::vector<DemoTensor> part;
        for (std::size_t i = 0; i < base.size(); ++i) {
            if (shard[i] == static_cast<std::uint32_t>(k)) part.push_back(base[i]);
        }
        const std::string file = formats::hf_shard_name(static_cast<std::size_t>(k),
                                                        static_cast<std::size_t>(opt.n_shards));
        total_size += write_safetensors(base_dir / file, part, opt.seed);
        for (const auto& t : part) weight_map.emplace_back(t.entry.name, file);
    }
    if (opt.n_shards > 1) {
        write_text(base_dir / "model.safetensors.index.json", formats::make_hf_index_json(total_size, weight_map));
    }

    const std::string base_name =
        opt.base_model_name_or_path.empty() ? fs::absolute(base_dir).lexically_normal().string()
                                            : opt.base_model_name_or_path;
    write_text(adapter_dir / "adapter_config.json", adapter_config_json(opt, base_name));
    write_safetensors(adapter_dir / "adapter_model.safetensors", adapter_tensors(opt), opt.seed);
    core::log::info(core::cat("wrote demo ", to_string(opt.arch), " model (", opt.n_layer, " layers, hidden ",
                              opt.hidden, ", vocab ", opt.vocab, ", ", opt.n_shards, " shards) to ", base_dir.string(),
                              " and a LoRA adapter (r ", opt.lora_rank, ") to ", adapter_dir.string()));
}

}  // namespace shardforge::model
