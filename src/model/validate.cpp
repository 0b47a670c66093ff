// config.json against the checkpoint's tensors (docs/formats.md, "Config validation"): the keys an architecture's
// transformers class reads to build its modules must exist, have the right type and agree with the tensor shapes,
// or the merged checkpoint we write would not load (transformers' from_pretrained refuses a size mismatch).
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <tuple>

namespace shardforge::model {
namespace {
using core::Error;
using core::ErrorKind;
using nlohmann::json;

struct Checker {
    const json& j;  // the merged view (text_config keys over the top level), as parse_hf_config builds it
    const std::string& file;

    // "text_config.vocab_size" when the key came from text_config, else the key itself.
    std::string spelled(std::string_view k) const {
        const auto tc = j.find("text_config");
        if (tc != j.end() && tc->is_object() && tc->contains(std::string(k))) return core::cat("text_config.", k);
        return std::string(k);
    }
    [[noreturn]] void fail(const std::string& why) const { throw Error(ErrorKind::BadInput, file, "", why); }

    // The first present (non-null) alias and its value.
    std::optional<std::pair<std::string, std::int64_t>> integer(std::initializer_list<std::string_view> keys) const {
        for (std::string_view k : keys) {
            const auto it = j.find(std::string(k));
            if (it == j.end() || it->is_null()) continue;
            const json& v = *it;
            if (v.is_number_integer()) return std::pair{std::string(k), v.get<std::int64_t>()};
            if (v.is_number_float()) {
                const double d = v.get<double>();
                if (std::isfinite(d) && std::fabs(d) < 9.0e18 && d == std::trunc(d))
                    return std::pair{std::string(k), static_cast<std::int64_t>(d)};
            }
            fail(core::cat("'", spelled(k), "' must be an integer, found ", v.dump()));
        }
        return std::nullopt;
    }
    std::int64_t positive(std::initializer_list<std::string_view> keys, bool required) const {
        const auto v = integer(keys);
        if (!v) {
            if (required) fail(core::cat("missing '", *keys.begin(), "' (needed to build this architecture)"));
            return 0;
        }
        if (v->second <= 0) fail(core::cat("'", spelled(v->first), "' must be positive, found ", v->second));
        return v->second;
    }
    void number(std::string_view k, bool positive_only) const {
        const auto it = j.find(std::string(k));
        if (it == j.end() || it->is_null()) return;
        if (!it->is_number()) fail(core::cat("'", spelled(k), "' must be a number, found ", it->dump()));
        const double d = it->get<double>();
        if (!std::isfinite(d) || (positive_only && d <= 0))
            fail(core::cat("'", spelled(k), "' must be a finite", positive_only ? " positive" : "", " number, found ",
                           it->dump()));
    }
    // rope_scaling / rope_parameters: null or an object whose factor-like entries are positive finite numbers.
    void rope_object(std::string_view k) const {
        const auto it = j.find(std::string(k));
        if (it == j.end() || it->is_null()) return;
        if (!it->is_object()) fail(core::cat("'", spelled(k), "' must be an object or null, found ", it->type_name()));
        for (const auto& [name, v] : it->items()) {
            if (name == "rope_type" || name == "type") {
                if (!v.is_string()) fail(core::cat("'", spelled(k), ".", name, "' must be a string"));
            } else if (name == "factor" || name == "rope_theta" || name == "original_max_position_embeddings" ||
                       name == "beta_fast" || name == "beta_slow" || name == "low_freq_factor" ||
                       name == "high_freq_factor") {
                if (v.is_null()) continue;
                if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
                    fail(core::cat("'", spelled(k), ".", name, "' must be a finite positive number, found ", v.dump()));
            }
        }
    }
};

const core::Shape* shape_of(const std::map<std::string, const core::Shape*>& by_name,
                            std::initializer_list<const char*> names, std::string* found = nullptr) {
    for (const char* n : names)
        if (const auto it = by_name.find(n); it != by_name.end()) {
            if (found) *found = n;
            return it->second;
        }
    return nullptr;
}

}  // namespace

void validate_config(const HfConfig& c, const std::vector<std::pair<std::string, core::Shape>>& tensors) {
    const json& j = c.json();
    if (!j.is_object()) return;
    const Checker ck{j, c.file};
    // Architectures we convert have known requirements; for any other class (a safetensors merge of a model we do
    // not know) only the keys that are present are checked.
    const bool known = is_supported_architecture(c.architecture);

    const std::int64_t n_layer = ck.positive({"num_hidden_layers", "n_layers", "n_layer", "num_layers"}, true);
    const std::int64_t n_embd = ck.positive({"hidden_size", "n_embd", "dim"}, known);
    const std::int64_t n_head = ck.positive({"num_attention_heads", "n_head", "n_heads"}, known);
    const auto kv = ck.integer({"num_key_value_heads", "n_kv_heads"});
    if (kv && kv->second <= 0) ck.fail(core::cat("'", ck.spelled(kv->first), "' must be positive, found ", kv->second));
    const std::int64_t n_kv = kv ? kv->second : n_head;
    const std::string kv_key = kv ? ck.spelled(kv->first) : std::string("num_attention_heads");
    const std::int64_t head_dim_cfg = ck.positive({"head_dim"}, false);
    const std::int64_t head_dim = head_dim_cfg ? head_dim_cfg : (n_head > 0 ? n_embd / n_head : 0);
    const std::int64_t n_vocab = ck.positive({"vocab_size"}, known);
    // Gemma 3n: one width per layer (arch_kv.cpp checks the entries)
    if (const json* ff = c.find({"intermediate_size"}); !(ff && ff->is_array()))
        (void)ck.positive({"intermediate_size"}, false);
    (void)ck.positive({"moe_intermediate_size"}, false);
    const auto experts = ck.integer({"num_local_experts", "num_experts", "n_routed_experts"});
    if (experts && experts->second < 0) ck.fail(core::cat("'", ck.spelled(experts->first), "' must not be negative"));
    const std::int64_t n_expert = experts ? experts->second : 0;
    const auto used = ck.integer({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"});
    if (used && n_expert > 0 && (used->second <= 0 || used->second > n_expert))
        ck.fail(core::cat("'", ck.spelled(used->first), "' is ", used->second, ", expected 1 to ", ck.spelled(experts->first),
                          " = ", n_expert));
    const auto nextn = ck.integer({"num_nextn_predict_layers"});
    if (nextn && nextn->second < 0) ck.fail(core::cat("'", ck.spelled(nextn->first), "' must not be negative"));
    ck.number("rope_theta", true);
    ck.number("partial_rotary_factor", true);
    ck.number("rms_norm_eps", true);
    ck.rope_object("rope_scaling");
    ck.rope_object("rope_parameters");
    if (n_head > 0 && n_kv > 0 && n_head % n_kv != 0)
        ck.fail(core::cat("'", kv_key, "' = ", n_kv, " does not divide num_attention_heads = ", n_head));

    std::map<std::string, const core::Shape*> by_name;
    for (const auto& [name, shape] : tensors) by_name.emplace(name, &shape);

    // Embeddings and output head: [vocab_size, hidden_size].
    std::string emb_name;
    if (const core::Shape* e = shape_of(by_name,
                                        {"model.embed_tokens.weight", "model.language_model.embed_tokens.weight",
                                         "language_model.model.embed_tokens.weight", "transformer.wte.weight"},
                                        &emb_name);
        e && e->size() == 2) {
        if (n_vocab > 0 && (*e)[0] != n_vocab)
            ck.fail(core::cat("'", ck.spelled("vocab_size"), "' = ", n_vocab, " does not match the tensors: ", emb_name,
                              " has ", (*e)[0], " rows"));
        if (n_embd > 0 && (*e)[1] != n_embd)
            ck.fail(core::cat("'", ck.spelled("hidden_size"), "' = ", n_embd, " does not match the tensors: ", emb_name,
                              " has ", (*e)[1], " columns"));
    }
    std::string head_name;
    if (const core::Shape* h = shape_of(by_name, {"lm_head.weight", "language_model.lm_head.weight"}, &head_name);
        h && h->size() == 2 && n_vocab > 0 && (*h)[0] != n_vocab)
        ck.fail(core::cat("'", ck.spelled("vocab_size"), "' = ", n_vocab, " does not match the tensors: ", head_name,
                          " has ", (*h)[0], " rows"));

    // Layers of the language model: indices 0 .. n_layer-1 each have tensors; beyond them only the
    // num_nextn_predict_layers MTP layers (DeepSeek-V3, GLM-4.5) may follow.
    static const std::regex layer_re(R"(^(?:model\.|model\.language_model\.|language_model\.model\.)layers\.(\d+)\.(.*)$)");
    std::set<std::int64_t> layers;
    const std::int64_t max_layers = n_layer + (nextn ? nextn->second : 0);
    const std::string layers_key = ck.spelled(ck.integer({"num_hidden_layers", "n_layers", "n_layer", "num_layers"})->first);
    // layer_types (transformers checks it too): one entry per layer.
    const json* layer_types = nullptr;
    if (const auto lt = j.find("layer_types"); lt != j.end() && !lt->is_null()) {
        if (!lt->is_array()) ck.fail(core::cat("'", ck.spelled("layer_types"), "' must be a list"));
        if (static_cast<std::int64_t>(lt->size()) != n_layer)
            ck.fail(core::cat("'", ck.spelled("layer_types"), "' has ", lt->size(), " entries, expected '", layers_key,
                              "' = ", n_layer));
        layer_types = &*lt;
    }
    // K/V widths and query heights: n_kv x head_dim; Gemma 4's full-attention layers use num_global_key_value_heads
    // x global_head_dim (per layer_types); Qwen3-Next / Qwen3.5 queries carry an output gate of the same size.
    const std::int64_t g_hd = ck.positive({"global_head_dim"}, false);
    const auto g_kv = ck.integer({"num_global_key_value_heads"});
    const bool global_dims = g_hd || g_kv;
    const std::int64_t gh = g_hd ? g_hd : head_dim, gk = g_kv ? g_kv->second : n_kv;
    const auto gate_it = j.find("attn_output_gate");
    const bool q_gate = (gate_it != j.end() && gate_it->is_boolean()) ? gate_it->get<bool>()
                                                                       : c.architecture.rfind("Qwen3Next", 0) == 0 ||
                                                                             c.architecture.rfind("Qwen3_5", 0) == 0;
    auto attn_dims = [&](std::int64_t layer) {  // {kv rows, q rows, head dim} of this layer
        bool global = false;
        if (global_dims) {
            if (layer_types && (*layer_types)[static_cast<std::size_t>(layer)].is_string())
                global = (*layer_types)[static_cast<std::size_t>(layer)].get<std::string>() == "full_attention";
        }
        const std::int64_t hd = global ? gh : head_dim, kvh = global ? gk : n_kv;
        return std::tuple{kvh * hd, (q_gate ? 2 : 1) * n_head * hd, hd, global};
    };
    static const std::regex expert_re(R"(\.experts\.(\d+)\.)");
    static const std::regex router_re(R"(\.(?:mlp\.gate|block_sparse_moe\.gate|mlp\.router|router\.proj)\.weight$)");
    static const std::regex fused_re(R"(\.experts\.(?:gate_up_proj|down_proj)(?:_blocks)?$)");
    std::int64_t max_expert = -1;
    std::smatch m;
    for (const auto& [name, shape] : tensors) {
        if (std::regex_match(name, m, layer_re)) {
            const std::string idx = m[1].str();
            if (idx.size() > 9) ck.fail(core::cat("tensor ", name, " has an implausible layer index"));
            const std::int64_t i = std::stoll(idx);
            if (i >= max_layers)
                ck.fail(core::cat("'", layers_key, "' = ", n_layer, " does not match the tensors: ", name, " is layer ", i,
                                  nextn ? core::cat(" (num_nextn_predict_layers = ", nextn->second, ")") : std::string()));
            layers.insert(i);
            const std::string rest = m[2].str();
            if (known && shape.size() == 2 && head_dim > 0 && i < n_layer) {
                const auto [kv_rows, q_rows, hd, global] = attn_dims(i);
                if ((rest == "self_attn.k_proj.weight" || rest == "self_attn.v_proj.weight") && shape[0] != kv_rows)
                    ck.fail(core::cat("'", global ? ck.spelled("num_global_key_value_heads") : kv_key, "' = ",
                                      global ? gk : n_kv, " and ", global ? "global_head_dim" : "head_dim", " = ", hd,
                                      " do not match the tensors: ", name, " has ", shape[0], " rows, expected ",
                                      kv_rows));
                if (rest == "self_attn.qkv_proj.weight" && shape[0] != (n_head + 2 * n_kv) * head_dim)
                    ck.fail(core::cat("'", ck.spelled("num_attention_heads"), "' = ", n_head, ", '", kv_key, "' = ", n_kv,
                                      " and head_dim = ", head_dim, " do not match the tensors: ", name, " has ",
                                      shape[0], " rows"));
                if (rest == "self_attn.q_proj.weight" && shape[0] != q_rows)
                    ck.fail(core::cat("'", ck.spelled("num_attention_heads"), "' = ", n_head, " and head_dim = ", hd,
                                      " do not match the tensors: ", name, " has ", shape[0], " rows, expected ", q_rows));
                if ((rest == "self_attn.k_proj.weight" || rest == "self_attn.q_proj.weight") && n_embd > 0 &&
                    shape[1] != n_embd)
                    ck.fail(core::cat("'", ck.spelled("hidden_size"), "' = ", n_embd, " does not match the tensors: ",
                                      name, " has ", shape[1], " columns"));
            }
        }
        if (!known) continue;
        if (std::regex_search(name, m, expert_re)) {
            const std::string idx = m[1].str();
            max_expert = std::max<std::int64_t>(max_expert, idx.size() > 9 ? 1000000000 : std::stoll(idx));
        }
        const bool router = std::regex_search(name, router_re) && shape.size() == 2;
        const bool fused = std::regex_search(name, fused_re) && shape.size() >= 3;
        if ((router || fused) && shape[0] != n_expert)
            ck.fail(core::cat(n_expert ? core::cat("'", ck.spelled(experts->first), "' = ", n_expert)
                                       : std::string("no expert count (num_local_experts / num_experts / n_routed_experts)"),
                              " does not match the tensors: ", name, " has ", shape[0], router ? " rows" : " experts"));
    }
    if (known && max_expert >= 0 && max_expert + 1 != n_expert)
        ck.fail(core::cat(n_expert ? core::cat("'", ck.spelled(experts->first), "' = ", n_expert)
                                   : std::string("no expert count (num_local_experts / num_experts / n_routed_experts)"),
                          " does not match the tensors: experts are numbered 0 to ", max_expert));
    if (known || !layers.empty())
        for (std::int64_t i = 0; i < n_layer; ++i)
            if (!layers.count(i))
                ck.fail(core::cat("'", layers_key, "' = ", n_layer, " does not match the tensors: layer ", i,
                                  " has no tensors", layers.empty() ? "" : core::cat(" (layers 0 to ", *layers.rbegin(), " found)")));
}

}  // namespace shardforge::model
