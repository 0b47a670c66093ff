// GGUF metadata of a conversion: "{arch}.*" hparams (TextModel.set_gguf_parameters and the family overrides,
// llama.cpp's gguf-py/gguf/constants.py), general.* keys, the converter's output type rules (convert_hf_to_gguf.py) and
// the size label.
#include "arch_detail.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

namespace shardforge::model {
namespace {

using core::Error;
using core::ErrorKind;
using detail::Family;
using formats::GgufKV;
using formats::GgufValue;

// An ordered dict as gguf_writer's kv_data: setting an existing key replaces the value in place.
class KvList {
public:
    KvList(const HfConfig& cfg, std::string arch) : cfg_(cfg), arch_(std::move(arch)) {}

    void set(const std::string& suffix, GgufValue v) {
        const std::string key = core::cat(arch_, ".", suffix);
        for (GgufKV& kv : kvs_)
            if (kv.key == key) {
                kv.value = std::move(v);
                return;
            }
        kvs_.push_back({key, std::move(v)});
    }
    void u32(const std::string& suffix, std::int64_t v, std::string_view from) {
        if (v < 0 || v > std::numeric_limits<std::uint32_t>::max())
            throw Error(ErrorKind::BadInput, cfg_.file, "",
                        core::cat("'", from, "' = ", v, " does not fit the u32 key ", arch_, ".", suffix));
        set(suffix, GgufValue::u32(static_cast<std::uint32_t>(v)));
    }
    void f32(const std::string& suffix, double v) { set(suffix, GgufValue::f32(static_cast<float>(v))); }

    // find_hparam(keys, optional=True) -> write as u32 when present
    bool opt_u32(const std::string& suffix, std::initializer_list<std::string_view> keys) {
        for (std::string_view k : keys)
            if (auto v = cfg_.find_int({k})) {
                u32(suffix, *v, k);
                return true;
            }
        return false;
    }
    bool opt_f32(const std::string& suffix, std::initializer_list<std::string_view> keys) {
        if (auto v = cfg_.find_float(keys)) {
            f32(suffix, *v);
            return true;
        }
        return false;
    }
    std::int64_t req_int(std::initializer_list<std::string_view> keys) const {
        if (auto v = cfg_.find_int(keys)) return *v;
        throw Error(ErrorKind::BadInput, cfg_.file, "",
                    core::cat("missing '", *keys.begin(), "' (needed for ", arch_, " metadata)"));
    }
    double req_float(std::initializer_list<std::string_view> keys) const {
        if (auto v = cfg_.find_float(keys)) return *v;
        throw Error(ErrorKind::BadInput, cfg_.file, "",
                    core::cat("missing '", *keys.begin(), "' (needed for ", arch_, " metadata)"));
    }
    void req_u32(const std::string& suffix, std::initializer_list<std::string_view> keys) {
        u32(suffix, req_int(keys), *keys.begin());
    }
    void mark_file_type() { file_type_pos_ = kvs_.size(); }

    std::vector<GgufKV> kvs_;
    std::size_t file_type_pos_ = 0;

private:
    const HfConfig& cfg_;
    std::string arch_;
};

double json_number(const nlohmann::json& v, const HfConfig& cfg, std::string_view what) {
    if (!v.is_number())
        throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("'", what, "' must be a number, found ", v.dump()));
    return v.get<double>();
}
std::int64_t json_int(const nlohmann::json& v, const HfConfig& cfg, std::string_view what) {
    const double d = json_number(v, cfg, what);
    if (d != std::floor(d)) throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("'", what, "' must be an integer"));
    return static_cast<std::int64_t>(d);
}
const nlohmann::json* get(const nlohmann::json& o, const char* key) {
    if (!o.is_object()) return nullptr;
    auto it = o.find(key);
    return it == o.end() || it->is_null() ? nullptr : &*it;
}

// TextModel.set_gguf_parameters (llama.cpp's conversion/base.py)
void base_parameters(const HfConfig& cfg, KvList& kv, std::int64_t block_count) {
    kv.u32("block_count", block_count, "num_hidden_layers");
    kv.opt_u32("context_length", {"max_position_embeddings", "n_ctx", "n_positions", "max_length",
                                  "max_sequence_length", "model_max_length"});
    kv.opt_u32("embedding_length", {"hidden_size", "n_embd", "dim"});
    const nlohmann::json* ff = cfg.find(
        {"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"});
    if (ff && ff->is_array()) {  // one width per layer (Gemma 3n): add_feed_forward_length writes the list as INT32
        std::vector<std::int32_t> v;
        for (const auto& x : *ff) {
            const std::int64_t n = json_int(x, cfg, "intermediate_size");
            if (n < 0 || n > std::numeric_limits<std::int32_t>::max())
                throw Error(ErrorKind::BadInput, cfg.file, "",
                            core::cat("intermediate_size entry ", n, " out of range"));
            v.push_back(static_cast<std::int32_t>(n));
        }
        kv.set("feed_forward_length", GgufValue::arr_i32(v));
    } else {
        kv.opt_u32("feed_forward_length", {"prefix_dense_intermediate_size", "dense_intermediate_size",
                                           "intermediate_size", "n_inner", "hidden_dim"});
    }
    kv.opt_u32("attention.head_count", {"num_attention_heads", "n_head", "n_heads"});
    kv.opt_u32("attention.head_count_kv", {"num_key_value_heads", "n_kv_heads"});
    if (const nlohmann::json* c = get(cfg.json(), "is_causal"); c && c->is_boolean() && !c->get<bool>())
        kv.set("attention.causal", GgufValue::boolean(false));

    const nlohmann::json rp_all = detail::rope_parameters(cfg);
    const nlohmann::json& rp = detail::full_attention(rp_all);
    if (const nlohmann::json* type = get(rp, "rope_type")) {
        const std::string t = type->is_string() ? type->get<std::string>() : type->dump();
        const nlohmann::json* factor = get(rp, "factor");
        if (t == "linear" && factor) {
            kv.set("rope.scaling.type", GgufValue::string("linear"));
            kv.f32("rope.scaling.factor", json_number(*factor, cfg, "rope_scaling.factor"));
        } else if (t == "yarn" && factor) {
            kv.set("rope.scaling.type", GgufValue::string("yarn"));
            kv.f32("rope.scaling.factor", json_number(*factor, cfg, "rope_scaling.factor"));
            const nlohmann::json* orig = get(rp, "original_max_position_embeddings");
            if (!orig) throw Error(ErrorKind::BadInput, cfg.file, "", "yarn rope scaling without original_max_position_embeddings");
            kv.u32("rope.scaling.original_context_length",
                   json_int(*orig, cfg, "original_max_position_embeddings"), "original_max_position_embeddings");
            if (const nlohmann::json* v = get(rp, "extrapolation_factor"))
                kv.f32("rope.scaling.yarn_ext_factor", json_number(*v, cfg, "extrapolation_factor"));
            const nlohmann::json* attn = get(rp, "attention_factor");
            if (!attn) attn = get(rp, "attn_factor");
            if (attn) kv.f32("rope.scaling.yarn_attn_factor", json_number(*attn, cfg, "attention_factor"));
            if (const nlohmann::json* v = get(rp, "beta_fast"))
                kv.f32("rope.scaling.yarn_beta_fast", json_number(*v, cfg, "beta_fast"));
            if (const nlohmann::json* v = get(rp, "beta_slow"))
                kv.f32("rope.scaling.yarn_beta_slow", json_number(*v, cfg, "beta_slow"));
        } else if (t == "su" || t == "longrope") {
            kv.set("rope.scaling.type", GgufValue::string("longrope"));
        }
        // "dynamic", "llama3" (rope_freqs tensor instead), "default" and unknown types: no keys.
    }
    if (const nlohmann::json* sections = get(rp_all, "mrope_section")) {
        // padded with 0 to [time, height, width, extra], written as INT32 (gguf-py's type for Python ints)
        if (!sections->is_array())
            throw Error(ErrorKind::BadInput, cfg.file, "", "'mrope_section' must be a list of integers");
        if (sections->size() > 4)  // llama.cpp reads at most 4 sections
            throw Error(ErrorKind::BadInput, cfg.file, "",
                        core::cat("'mrope_section' has ", sections->size(), " entries, at most 4 are supported"));
        std::vector<std::int32_t> v;
        for (const auto& x : *sections) {
            const std::int64_t n = json_int(x, cfg, "mrope_section");
            if (n < 0 || n > 65536)
                throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("'mrope_section' entry ", n, " out of range"));
            v.push_back(static_cast<std::int32_t>(n));
        }
        v.resize(4, 0);
        kv.set("rope.dimension_sections", GgufValue::arr_i32(v));
    }
    if (const nlohmann::json* theta = get(rp, "rope_theta"))
        kv.f32("rope.freq_base", json_number(*theta, cfg, "rope_theta"));
    if (const nlohmann::json* swa = get(rp_all, "sliding_attention"))
        if (const nlohmann::json* theta = get(*swa, "rope_theta"))
            kv.f32("rope.freq_base_swa", json_number(*theta, cfg, "local rope theta"));
    kv.opt_f32("attention.layer_norm_rms_epsilon", {"rms_norm_eps", "norm_eps"});
    kv.opt_f32("attention.layer_norm_epsilon", {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"});
    kv.opt_u32("expert_count", {"num_local_experts", "num_experts", "n_routed_experts"});
    kv.opt_u32("expert_used_count", {"num_experts_per_tok", "num_experts_per_token", "top_k_experts"});
    kv.opt_u32("expert_group_count", {"n_group"});
    kv.opt_u32("expert_group_used_count", {"topk_group"});
    if (const nlohmann::json* f = cfg.find({"score_function", "scoring_func", "score_func", "moe_router_activation",
                                            "moe_router_activation_func", "expert_selection_fn"})) {
        const std::string s = f->is_string() ? f->get<std::string>() : f->dump();
        std::uint32_t id = 0;
        if (s == "softmax") id = 1;
        else if (s == "sigmoid") id = 2;
        else if (s == "sqrtsoftplus") id = 4;
        else
            throw Error(ErrorKind::Unsupported, cfg.file, "", core::cat("expert gating function '", s, "' is not supported"));
        kv.set("expert_gating_func", GgufValue::u32(id));
    }
    if (auto hd = cfg.find_int({"head_dim"})) {
        kv.u32("attention.key_length", *hd, "head_dim");
        kv.u32("attention.value_length", *hd, "head_dim");
    }
    kv.mark_file_type();
}

// GemmaModel / Gemma2Model.set_gguf_parameters: their own list, not the base one.
void gemma_parameters(const HfConfig& cfg, KvList& kv, bool gemma2) {
    kv.req_u32("context_length", {"max_position_embeddings"});
    kv.req_u32("embedding_length", {"hidden_size"});
    kv.u32("block_count", cfg.n_layer, "num_hidden_layers");
    kv.req_u32("feed_forward_length", {"intermediate_size"});
    kv.req_u32("attention.head_count", {"num_attention_heads"});
    // "num_key_value_heads" in hparams (a null value would fail upstream too)
    kv.u32("attention.head_count_kv",
           cfg.json().contains("num_key_value_heads") ? kv.req_int({"num_key_value_heads"}) : kv.req_int({"num_attention_heads"}),
           "num_key_value_heads");
    kv.f32("attention.layer_norm_rms_epsilon", kv.req_float({"rms_norm_eps"}));
    kv.req_u32("attention.key_length", {"head_dim"});
    kv.req_u32("attention.value_length", {"head_dim"});
    kv.mark_file_type();
    if (gemma2) {
        kv.f32("attn_logit_softcapping", kv.req_float({"attn_logit_softcapping"}));
        kv.f32("final_logit_softcapping", kv.req_float({"final_logit_softcapping"}));
        kv.req_u32("attention.sliding_window", {"sliding_window"});
    }
}

// Gemma3Model.set_gguf_parameters: base keys, then defaults re-set in place.
void gemma3_parameters(const HfConfig& cfg, KvList& kv) {
    base_parameters(cfg, kv, cfg.n_layer);
    kv.u32("context_length", cfg.find_int({"max_position_embeddings"}).value_or(131072), "max_position_embeddings");
    kv.u32("attention.head_count", cfg.find_int({"num_attention_heads"}).value_or(8), "num_attention_heads");
    kv.f32("attention.layer_norm_rms_epsilon", cfg.find_float({"rms_norm_eps"}).value_or(1e-6));
    const std::int64_t head_dim = cfg.find_int({"head_dim"}).value_or(256);
    kv.u32("attention.key_length", head_dim, "head_dim");
    kv.u32("attention.value_length", head_dim, "head_dim");
    const nlohmann::json rp_all = detail::rope_parameters(cfg);
    const nlohmann::json* theta = get(detail::full_attention(rp_all), "rope_theta");
    kv.f32("rope.freq_base", theta ? json_number(*theta, cfg, "rope_theta") : 1'000'000.0);
    if (get(cfg.json(), "attn_logit_softcapping"))
        throw Error(ErrorKind::BadInput, cfg.file, "", "gemma3 has no attn_logit_softcapping (converter asserts)");
    if (auto cap = cfg.find_float({"final_logit_softcapping"}); cap && *cap != 0.0)
        kv.f32("final_logit_softcapping", *cap);
    const nlohmann::json* pattern = get(cfg.json(), "sliding_window_pattern");
    if (!(pattern && pattern->is_number() && pattern->get<double>() == 1.0)) kv.req_u32("attention.sliding_window", {"sliding_window"});
    kv.u32("attention.head_count_kv", cfg.find_int({"num_key_value_heads"}).value_or(4), "num_key_value_heads");
}

// Phi3MiniModel.set_gguf_parameters
void phi3_parameters(const HfConfig& cfg, KvList& kv) {
    const std::int64_t n_embd = kv.req_int({"hidden_size", "n_embd"});
    const std::int64_t n_head = kv.req_int({"num_attention_heads", "n_head"});
    const std::int64_t n_head_kv = kv.req_int({"num_key_value_heads", "n_head_kv"});
    const double rms_eps = kv.req_float({"rms_norm_eps"});
    const std::int64_t max_pos = kv.req_int({"n_positions", "max_position_embeddings"});
    const nlohmann::json rp_all = detail::rope_parameters(cfg);
    const nlohmann::json* orig = get(rp_all, "original_max_position_embeddings");
    if (!orig) throw Error(ErrorKind::BadInput, cfg.file, "", "missing 'original_max_position_embeddings' (phi3)");
    double rot_pct = 1.0;
    if (const nlohmann::json* p = get(rp_all, "partial_rotary_factor")) rot_pct = json_number(*p, cfg, "partial_rotary_factor");
    if (n_head <= 0) throw Error(ErrorKind::BadInput, cfg.file, "", "num_attention_heads must be > 0");
    const std::int64_t rope_dims = static_cast<std::int64_t>(rot_pct * static_cast<double>(n_embd)) / n_head;
    const nlohmann::json* theta = get(detail::full_attention(rp_all), "rope_theta");
    if (!theta) throw Error(ErrorKind::BadInput, cfg.file, "", "missing 'rope_theta' (phi3)");

    kv.u32("context_length", max_pos, "max_position_embeddings");
    kv.u32("rope.scaling.original_context_length", json_int(*orig, cfg, "original_max_position_embeddings"),
           "original_max_position_embeddings");
    kv.u32("embedding_length", n_embd, "hidden_size");
    kv.req_u32("feed_forward_length", {"intermediate_size"});
    kv.u32("block_count", cfg.n_layer, "num_hidden_layers");
    kv.u32("attention.head_count", n_head, "num_attention_heads");
    kv.u32("attention.head_count_kv", n_head_kv, "num_key_value_heads");
    kv.f32("attention.layer_norm_rms_epsilon", rms_eps);
    kv.u32("rope.dimension_count", rope_dims, "partial_rotary_factor * hidden_size / num_attention_heads");
    kv.f32("rope.freq_base", json_number(*theta, cfg, "rope_theta"));
    kv.mark_file_type();
    // 0 distinguishes Phi-4 (no sliding window) from other PHI3 models
    kv.u32("attention.sliding_window", cfg.find_int({"sliding_window"}).value_or(0), "sliding_window");
}

// head_dim, else hidden_size / num_attention_heads (LlamaModel.set_gguf_parameters).
std::int64_t head_dim_of(const HfConfig& cfg, KvList& kv) {
    if (auto hd = cfg.find_int({"head_dim"})) return *hd;
    const std::int64_t heads = kv.req_int({"num_attention_heads"});
    if (heads <= 0) throw Error(ErrorKind::BadInput, cfg.file, "", "num_attention_heads must be > 0");
    return kv.req_int({"hidden_size"}) / heads;
}

// Qwen3NextModel.set_gguf_parameters (llama.cpp's conversion/qwen.py): TextModel's keys, Qwen2MoeModel's expert sizes,
// _QwenMtpMixin's nextn count, then the linear-attention keys, recurrent layers, interval and rope dimensions.
void qwen3next_parameters(const HfConfig& cfg, KvList& kv, std::int64_t block_count) {
    base_parameters(cfg, kv, block_count);
    kv.opt_u32("expert_feed_forward_length", {"moe_intermediate_size"});
    kv.opt_u32("expert_shared_feed_forward_length", {"shared_expert_intermediate_size"});
    if (block_count > cfg.n_layer) kv.u32("nextn_predict_layers", block_count - cfg.n_layer, "mtp_num_hidden_layers");
    kv.req_u32("ssm.conv_kernel", {"linear_conv_kernel_dim"});
    kv.req_u32("ssm.state_size", {"linear_key_head_dim"});
    kv.req_u32("ssm.group_count", {"linear_num_key_heads"});
    const std::int64_t n_v = kv.req_int({"linear_num_value_heads"});
    kv.u32("ssm.time_step_rank", n_v, "linear_num_value_heads");
    kv.u32("ssm.inner_size", kv.req_int({"linear_value_head_dim"}) * n_v, "linear_value_head_dim");
    if (const nlohmann::json* types = get(cfg.json(), "layer_types")) {
        if (!types->is_array())
            throw Error(ErrorKind::BadInput, cfg.file, "", "'layer_types' must be a list of strings");
        if (static_cast<std::int64_t>(types->size()) != cfg.n_layer)
            throw Error(ErrorKind::BadInput, cfg.file, "",
                        core::cat("layer_types has ", types->size(), " entries, expected num_hidden_layers (",
                                  cfg.n_layer, ")"));
        std::vector<bool> recurrent;
        for (const auto& t : *types) recurrent.push_back(t.is_string() && t.get<std::string>() == "linear_attention");
        recurrent.resize(static_cast<std::size_t>(block_count), false);  // MTP layers attend fully
        kv.set("attention.recurrent_layers", GgufValue::arr_bool(recurrent));
    }
    kv.u32("full_attention_interval", cfg.find_int({"full_attention_interval"}).value_or(4), "full_attention_interval");
    const std::int64_t rope_dim = head_dim_of(cfg, kv);
    const nlohmann::json rp = detail::rope_parameters(cfg);
    double factor = 0.25;  // rope_parameters.get("partial_rotary_factor", 0.25)
    if (auto f = rp.find("partial_rotary_factor"); f != rp.end())
        factor = json_number(*f, cfg, "partial_rotary_factor");
    if (!(factor > 0.0 && factor <= 1.0))
        throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("partial_rotary_factor must be in (0, 1], got ", factor));
    kv.u32("rope.dimension_count", static_cast<std::int64_t>(static_cast<double>(rope_dim) * factor),
           "head_dim * partial_rotary_factor");
}

// Qwen3_5TextModel.set_gguf_parameters: Qwen3NextModel's keys, then _Qwen35MRopeMixin's default sections.
void qwen35_parameters(const HfConfig& cfg, KvList& kv, std::int64_t block_count) {
    qwen3next_parameters(cfg, kv, block_count);
    if (!detail::rope_parameters(cfg).contains("mrope_section"))
        kv.set("rope.dimension_sections", GgufValue::arr_i32({11, 11, 10, 0}));
}

// Mistral3Model.Ministral3Model.set_gguf_parameters (llama.cpp's conversion/mistral3.py), after LlamaModel's keys: the
// converter asserts yarn rope_parameters and reads two of its entries (KeyError when absent).
void ministral3_parameters(const HfConfig& cfg, KvList& kv) {
    const nlohmann::json rp = detail::rope_parameters(cfg);
    if (rp.empty()) throw Error(ErrorKind::BadInput, cfg.file, "", "ministral3 must have 'rope_parameters'");
    const nlohmann::json* type = get(rp, "rope_type");
    if (!type || !type->is_string() || type->get<std::string>() != "yarn")
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat("ministral3 rope_type must be 'yarn', found ", type ? type->dump() : "none"));
    auto need = [&](const char* key) -> double {
        const nlohmann::json* v = get(rp, key);
        if (!v) throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("ministral3 rope_parameters without '", key, "'"));
        return json_number(*v, cfg, core::cat("rope_parameters.", key));
    };
    kv.f32("rope.scaling.yarn_log_multiplier", need("mscale_all_dim"));
    kv.f32("attention.temperature_scale", need("llama_4_scaling_beta"));
}

// Glm4MoeModel.set_gguf_parameters (llama.cpp's conversion/glm.py): TextModel's keys (block_count with the MTP
// layers), then the rope dimensions (head_dim * partial_rotary_factor, default 0.5), the MoE keys each written when
// the config has it, sigmoid gating always, and the MTP layer count.
void glm4moe_parameters(const HfConfig& cfg, KvList& kv, std::int64_t block_count) {
    base_parameters(cfg, kv, block_count);
    const std::int64_t rope_dim = head_dim_of(cfg, kv);
    const nlohmann::json rp = detail::rope_parameters(cfg);
    double factor = 0.5;
    if (auto f = rp.find("partial_rotary_factor"); f != rp.end())
        factor = json_number(*f, cfg, "partial_rotary_factor");
    if (!(factor > 0.0 && factor <= 1.0))
        throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("partial_rotary_factor must be in (0, 1], got ", factor));
    kv.u32("rope.dimension_count", static_cast<std::int64_t>(static_cast<double>(rope_dim) * factor),
           "head_dim * partial_rotary_factor");
    kv.opt_u32("expert_count", {"n_routed_experts"});
    kv.opt_u32("expert_feed_forward_length", {"moe_intermediate_size"});
    kv.opt_u32("expert_shared_count", {"n_shared_experts"});
    kv.opt_u32("leading_dense_block_count", {"first_k_dense_replace"});
    kv.set("expert_gating_func", GgufValue::u32(2));  // gguf.ExpertGatingFuncType.SIGMOID
    kv.opt_f32("expert_weights_scale", {"routed_scaling_factor"});
    if (const nlohmann::json* norm = get(cfg.json(), "norm_topk_prob")) {
        if (!norm->is_boolean())
            throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("'norm_topk_prob' must be true or false, found ", norm->dump()));
        kv.set("expert_weights_norm", GgufValue::boolean(norm->get<bool>()));
    }
    if (get(cfg.json(), "num_nextn_predict_layers"))
        kv.u32("nextn_predict_layers", block_count - cfg.n_layer, "num_nextn_predict_layers");
}

// Gemma 4: per-layer settings from per_layer_config ({"<layer index>": {...}}), first full-attention layer that
// has `key`. JSON objects are read sorted, not in file order: all such layers must agree.
std::optional<std::int64_t> gemma4_per_layer_value(const HfConfig& cfg, const char* key) {
    const nlohmann::json* plc = get(cfg.json(), "per_layer_config");
    const nlohmann::json* types = get(cfg.json(), "layer_types");
    if (!plc || !plc->is_object() || !types || !types->is_array()) return std::nullopt;
    std::optional<std::int64_t> found;
    for (const auto& [idx, layer] : plc->items()) {
        std::size_t i = 0;
        try {
            std::size_t used = 0;
            i = std::stoul(idx, &used);
            if (used != idx.size()) throw std::invalid_argument(idx);
        } catch (const std::exception&) {
            throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("per_layer_config key '", idx, "' is not a layer index"));
        }
        if (i >= types->size() || (*types)[i] != "full_attention" || !layer.is_object() || !layer.contains(key)) continue;
        const std::int64_t v = json_int(layer[key], cfg, core::cat("per_layer_config.", idx, ".", key));
        if (found && *found != v)
            throw Error(ErrorKind::BadInput, cfg.file, "",
                        core::cat("per_layer_config: full-attention layers disagree on '", key, "' (", *found, " and ", v, ")"));
        found = v;
    }
    return found;
}

std::vector<std::string> gemma4_layer_types(const HfConfig& cfg) {
    const nlohmann::json* types = get(cfg.json(), "layer_types");
    if (!types || !types->is_array())
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat(cfg.architecture, " needs 'layer_types' (a list of strings)"));
    if (static_cast<std::int64_t>(types->size()) != cfg.n_layer)
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat("layer_types has ", types->size(), " entries, expected num_hidden_layers (", cfg.n_layer, ")"));
    std::vector<std::string> out;
    for (const auto& t : *types) {
        if (!t.is_string() || (t != "sliding_attention" && t != "full_attention"))
            throw Error(ErrorKind::BadInput, cfg.file, "",
                        core::cat("layer_types: expected 'sliding_attention' or 'full_attention', found ", t.dump()));
        out.push_back(t.get<std::string>());
    }
    return out;
}

// Gemma4Model.set_gguf_parameters (llama.cpp's conversion/gemma.py), after Gemma3Model's keys: KV sharing, per-layer
// embedding width, the sliding pattern, head sizes and rope dimensions per layer type, the expert width, the
// double-wide MLP of KV-shared layers and per-layer KV head counts.
void gemma4_parameters(const HfConfig& cfg, KvList& kv) {
    gemma3_parameters(cfg, kv);
    const nlohmann::json* shared = get(cfg.json(), "num_kv_shared_layers");
    if (!shared) throw Error(ErrorKind::BadInput, cfg.file, "", "gemma4 needs 'num_kv_shared_layers'");
    const std::int64_t n_shared = json_int(*shared, cfg, "num_kv_shared_layers");
    if (n_shared < 0 || n_shared > cfg.n_layer)
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat("num_kv_shared_layers = ", n_shared, " is outside [0, num_hidden_layers]"));
    kv.u32("attention.shared_kv_layers", n_shared, "num_kv_shared_layers");
    kv.u32("embedding_length_per_layer_input", cfg.find_int({"hidden_size_per_layer_input"}).value_or(0),
           "hidden_size_per_layer_input");
    const std::vector<std::string> types = gemma4_layer_types(cfg);
    std::vector<bool> swa;
    for (const std::string& t : types) swa.push_back(t == "sliding_attention");
    kv.set("attention.sliding_window_pattern", GgufValue::arr_bool(swa));
    const std::int64_t hd_full = detail::gemma4_full_head_dim(cfg);
    const std::int64_t hd_swa = kv.req_int({"head_dim"});
    kv.u32("attention.key_length", hd_full, "global_head_dim");
    kv.u32("attention.value_length", hd_full, "global_head_dim");
    kv.u32("attention.key_length_swa", hd_swa, "head_dim");
    kv.u32("attention.value_length_swa", hd_swa, "head_dim");
    kv.opt_u32("expert_feed_forward_length", {"expert_intermediate_size", "moe_intermediate_size"});
    const nlohmann::json* wide = get(cfg.json(), "use_double_wide_mlp");
    if (wide && wide->is_boolean() && wide->get<bool>()) {
        const std::int64_t n_ff = kv.req_int({"intermediate_size"});
        if (n_ff < 0 || 2 * n_ff > std::numeric_limits<std::int32_t>::max())
            throw Error(ErrorKind::BadInput, cfg.file, "", core::cat("intermediate_size ", n_ff, " out of range"));
        std::vector<std::int32_t> ff;
        for (std::int64_t il = 0; il < cfg.n_layer; ++il)
            ff.push_back(static_cast<std::int32_t>(il < cfg.n_layer - n_shared ? n_ff : 2 * n_ff));
        kv.set("feed_forward_length", GgufValue::arr_i32(ff));
    }
    const std::optional<std::int64_t> kv_full = detail::gemma4_full_kv_heads(cfg);
    const std::optional<std::int64_t> kv_swa = cfg.find_int({"num_key_value_heads"});
    if (kv_full && kv_swa) {
        if (*kv_full < 0 || *kv_full > 65536 || *kv_swa < 0 || *kv_swa > 65536)
            throw Error(ErrorKind::BadInput, cfg.file, "", "key/value head counts out of range");
        std::vector<std::int32_t> heads;
        for (const bool s : swa) heads.push_back(static_cast<std::int32_t>(s ? *kv_swa : *kv_full));
        kv.set("attention.head_count_kv", GgufValue::arr_i32(heads));
    }
    // the sliding layers' rotary share is read from the top level of rope_parameters (1.0 unless given there)
    double factor_swa = 1.0;
    if (const nlohmann::json* f = get(detail::rope_parameters(cfg), "partial_rotary_factor"))
        factor_swa = json_number(*f, cfg, "partial_rotary_factor");
    kv.u32("rope.dimension_count", hd_full, "global_head_dim");
    kv.u32("rope.dimension_count_swa", static_cast<std::int64_t>(static_cast<double>(hd_swa) * factor_swa),
           "head_dim * partial_rotary_factor");
}

// torch.distributions.Normal(0, 1).icdf(p) on a float32 tensor, as the converter computes Gemma 3n's activation
// sparsity scales: loc + scale * erfinv(2p - 1) * sqrt(2), every step in float32. erfinv is ATen's calc_erfinv
// (aten/src/ATen/native/Math.h: a rational first guess, then two Newton steps), whose polynomials its AVX2 build
// evaluates with fused multiply-adds; with std::fma here the result equals torch's for every p we compared.
float normal_icdf_f32(float p) {
    const float y = 2.0f * p - 1.0f;
    const float ya = std::fabs(y);
    if (!(ya <= 1.0f)) return std::numeric_limits<float>::quiet_NaN();
    if (ya == 1.0f) return std::copysign(std::numeric_limits<float>::infinity(), y);
    float x = 0.0f;
    if (ya <= 0.7f) {
        const float z = y * y;
        const float num =
            std::fma(std::fma(std::fma(-0.140543331f, z, 0.914624893f), z, -1.645349621f), z, 0.886226899f);
        const float dem =
            std::fma(std::fma(std::fma(std::fma(0.012229801f, z, -0.329097515f), z, 1.442710462f), z, -2.118377725f), z,
                     1.0f);
        x = y * num / dem;
    } else {
        const float z = std::sqrt(-std::log((1.0f - ya) / 2.0f));
        const float num =
            std::fma(std::fma(std::fma(1.641345311f, z, 3.429567803f), z, -1.624906493f), z, -1.970840454f);
        const float dem = std::fma(std::fma(1.637067800f, z, 3.543889200f), z, 1.0f);
        x = std::copysign(num, y) / dem;
    }
    const auto two_over_sqrt_pi = static_cast<float>(2.0 / std::sqrt(3.14159265358979323846));
    for (int i = 0; i < 2; ++i) x = x - (std::erf(x) - y) / (two_over_sqrt_pi * std::exp(-x * x));
    return x * static_cast<float>(1.41421356237309504880);
}

// Gemma3NModel.set_gguf_parameters (llama.cpp's conversion/gemma.py), after Gemma3Model's keys: AltUp, the per-layer
// embedding width, KV sharing, the activation sparsity scales and the sliding pattern.
void gemma3n_parameters(const HfConfig& cfg, KvList& kv) {
    gemma3_parameters(cfg, kv);
    const std::int64_t n_altup = kv.req_int({"altup_num_inputs"});
    if (n_altup != 4)
        throw Error(ErrorKind::Unsupported, cfg.file, "",
                    core::cat("gemma3n: altup_num_inputs = ", n_altup, "; the converter supports 4 only"));
    const std::int64_t active = kv.req_int({"altup_active_idx"});
    if (active < 0 || active >= n_altup)
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat("gemma3n: altup_active_idx = ", active, " is outside [0, altup_num_inputs)"));
    kv.u32("altup.active_idx", active, "altup_active_idx");
    kv.u32("altup.num_inputs", n_altup, "altup_num_inputs");
    kv.req_u32("embedding_length_per_layer_input", {"hidden_size_per_layer_input"});
    const std::int64_t n_shared = kv.req_int({"num_kv_shared_layers"});
    if (n_shared < 0 || n_shared > cfg.n_layer)
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    core::cat("num_kv_shared_layers = ", n_shared, " is outside [0, num_hidden_layers]"));
    kv.u32("attention.shared_kv_layers", n_shared, "num_kv_shared_layers");
    const nlohmann::json* pattern = get(cfg.json(), "activation_sparsity_pattern");
    if (!pattern || !pattern->is_array())
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    "gemma3n needs 'activation_sparsity_pattern' (a list of numbers)");
    std::vector<float> scales;
    for (const auto& p : *pattern) {
        const double v = json_number(p, cfg, "activation_sparsity_pattern");
        if (!(v >= 0.0 && v <= 1.0))
            throw Error(ErrorKind::BadInput, cfg.file, "",
                        core::cat("activation_sparsity_pattern entry ", v, " is not a probability in [0, 1]"));
        scales.push_back(normal_icdf_f32(static_cast<float>(v)));
    }
    kv.set("activation_sparsity_scale", GgufValue::arr_f32(scales));
    std::vector<bool> swa;
    for (const std::string& t : gemma4_layer_types(cfg)) swa.push_back(t == "sliding_attention");
    kv.set("attention.sliding_window_pattern", GgufValue::arr_bool(swa));
}

// DeepseekV2Model.set_gguf_parameters (llama.cpp's conversion/deepseek.py), after TextModel's keys, which it computes
// with num_key_value_heads forced to 1 (MLA converts into MQA) and rms_norm_eps defaulted to 1e-6.
void deepseek2_parameters(const HfConfig& cfg, KvList& kv) {
    kv.u32("leading_dense_block_count",
           cfg.find_int({"first_k_dense_replace"}).value_or(cfg.find({"n_routed_experts"}) ? 0 : cfg.n_layer),
           "first_k_dense_replace");
    kv.req_u32("vocab_size", {"vocab_size"});
    if (auto q = cfg.find_int({"q_lora_rank"})) kv.u32("attention.q_lora_rank", *q, "q_lora_rank");
    const std::int64_t kv_lora = cfg.find_int({"kv_lora_rank"}).value_or(512);
    const std::int64_t rope = kv.req_int({"qk_rope_head_dim"});
    kv.u32("attention.kv_lora_rank", kv_lora, "kv_lora_rank");
    kv.u32("attention.key_length", kv_lora + rope, "kv_lora_rank + qk_rope_head_dim");
    kv.u32("attention.value_length", kv_lora, "kv_lora_rank");
    kv.u32("attention.key_length_mla", kv.req_int({"qk_nope_head_dim"}) + rope, "qk_nope_head_dim + qk_rope_head_dim");
    kv.req_u32("attention.value_length_mla", {"v_head_dim"});
    kv.u32("expert_feed_forward_length", kv.req_int({"moe_intermediate_size", "intermediate_size"}),
           "moe_intermediate_size");
    kv.opt_u32("expert_count", {"n_routed_experts"});
    kv.u32("expert_shared_count", cfg.find_int({"n_shared_experts"}).value_or(0), "n_shared_experts");
    kv.opt_f32("expert_weights_scale", {"routed_scaling_factor"});
    if (const nlohmann::json* n = cfg.find({"norm_topk_prob"}); n && n->is_boolean() && n->get<bool>())
        kv.set("expert_weights_norm", GgufValue::boolean(true));
    kv.u32("rope.dimension_count", rope, "qk_rope_head_dim");
    // 0.1 * mscale_all_dim: llama.cpp's loader divides it back out (src/models/deepseek2.cpp)
    const nlohmann::json rp = detail::rope_parameters(cfg);
    if (const nlohmann::json* m = get(rp, "mscale_all_dim"))
        kv.f32("rope.scaling.yarn_log_multiplier", 0.1 * json_number(*m, cfg, "mscale_all_dim"));
}

}  // namespace

namespace detail {

std::int64_t gemma4_full_head_dim(const HfConfig& cfg) {
    if (auto v = cfg.find_int({"global_head_dim"})) return *v;
    if (auto v = gemma4_per_layer_value(cfg, "head_dim")) return *v;
    throw Error(ErrorKind::BadInput, cfg.file, "",
                "gemma4 needs 'global_head_dim' (or a per_layer_config head_dim for a full-attention layer)");
}

std::optional<std::int64_t> gemma4_full_kv_heads(const HfConfig& cfg) {
    if (auto v = cfg.find_int({"num_global_key_value_heads"})) return v;
    return gemma4_per_layer_value(cfg, "num_key_value_heads");
}

// Llama4Model (llama.cpp's conversion/llama.py): __init__ swaps the sizes (intermediate_size, the experts' size, becomes
// intermediate_size_moe; intermediate_size_mlp, the dense layers', becomes intermediate_size), then LlamaModel's keys,
// interleave_moe_layer_step, the experts' size, and sliding_window 0 when layer_types are all full attention.
// llama.cpp's llama4 takes the chunk size (8192), the NoPE layers (every 4th), the attention temperature and the QK
// L2 norm (off for 128 experts only) from its own constants, not from the file (src/models/llama4.cpp).
void llama4_parameters(const HfConfig& cfg, GgufConversion& c, KvList& out) {
    nlohmann::json j = cfg.json();  // text_config already merged in: drop it, or parsing would merge it over the swap
    j.erase("text_config");
    const nlohmann::json* moe = get(j, "intermediate_size");
    const nlohmann::json* mlp = get(j, "intermediate_size_mlp");
    if (!moe || !mlp)
        throw Error(ErrorKind::BadInput, cfg.file, "",
                    "llama4 needs 'intermediate_size' (experts) and 'intermediate_size_mlp' (dense layers)");
    j["intermediate_size_moe"] = *moe;
    j["intermediate_size"] = *mlp;
    const HfConfig swapped = parse_hf_config(std::move(j), cfg.file);
    KvList kv(swapped, c.arch);
    base_parameters(swapped, kv, c.block_count);
    kv.req_u32("vocab_size", {"vocab_size"});
    kv.u32("rope.dimension_count", head_dim_of(swapped, kv), "head_dim");
    kv.req_u32("interleave_moe_layer_step", {"interleave_moe_layer_step"});
    kv.req_u32("expert_feed_forward_length", {"intermediate_size_moe"});
    if (const nlohmann::json* lt = get(swapped.json(), "layer_types"); lt && lt->is_array()) {
        bool all_full = true;
        for (const auto& t : *lt) all_full = all_full && t == "full_attention";
        if (all_full) kv.u32("attention.sliding_window", 0, "layer_types");
    }
    out.kvs_ = std::move(kv.kvs_);
    out.file_type_pos_ = kv.file_type_pos_;
}

void append_arch_kvs(const HfConfig& cfg, GgufConversion& c) {
    KvList kv(cfg, c.arch);
    const Family family = family_of(cfg.architecture, cfg.file);
    switch (family) {
    case Family::Llama:
    case Family::Mistral3: {
        base_parameters(cfg, kv, c.block_count);
        kv.req_u32("vocab_size", {"vocab_size"});
        kv.u32("rope.dimension_count", head_dim_of(cfg, kv), "head_dim");
        if (family == Family::Mistral3 && cfg.model_type == "ministral3") ministral3_parameters(cfg, kv);
        break;
    }
    case Family::Qwen2:
    case Family::Qwen3:
        base_parameters(cfg, kv, c.block_count);  // pooling_type only for sentence-transformers repos: not handled
        break;
    case Family::Qwen2Moe:
    case Family::Qwen3Moe:
        base_parameters(cfg, kv, c.block_count);
        kv.opt_u32("expert_feed_forward_length", {"moe_intermediate_size"});
        kv.opt_u32("expert_shared_feed_forward_length", {"shared_expert_intermediate_size"});
        break;
    case Family::Gemma: gemma_parameters(cfg, kv, false); break;
    case Family::Gemma2: gemma_parameters(cfg, kv, true); break;
    case Family::Gemma3: gemma3_parameters(cfg, kv); break;
    case Family::Phi3: phi3_parameters(cfg, kv); break;
    case Family::Qwen35:
    case Family::Qwen35Moe: qwen35_parameters(cfg, kv, c.block_count); break;
    case Family::Glm4Moe: glm4moe_parameters(cfg, kv, c.block_count); break;
    case Family::Qwen3Next: qwen3next_parameters(cfg, kv, c.block_count); break;
    case Family::Gemma4: gemma4_parameters(cfg, kv); break;
    case Family::DeepSeek2: {
        nlohmann::json j = cfg.json();
        j["num_key_value_heads"] = 1;
        if (!j.contains("rms_norm_eps")) j["rms_norm_eps"] = 1e-6;
        const HfConfig mla = parse_hf_config(std::move(j), cfg.file);
        KvList kv2(mla, c.arch);
        base_parameters(mla, kv2, c.block_count);
        deepseek2_parameters(mla, kv2);
        kv.kvs_ = std::move(kv2.kvs_);
        kv.file_type_pos_ = kv2.file_type_pos_;
        break;
    }
    case Family::GptOss:
        // GptOssModel.set_gguf_parameters (llama.cpp's conversion/gpt_oss.py): TextModel's keys, then these two
        base_parameters(cfg, kv, c.block_count);
        kv.req_u32("attention.sliding_window", {"sliding_window"});
        kv.req_u32("expert_feed_forward_length", {"intermediate_size"});
        break;
    case Family::MiniMaxM2:
        // MiniMaxM2Model.set_gguf_parameters (llama.cpp's conversion/minimax.py): TextModel's keys (intermediate_size is
        // the expert size, so feed_forward_length equals it), then these two
        base_parameters(cfg, kv, c.block_count);
        kv.req_u32("expert_feed_forward_length", {"intermediate_size"});
        kv.req_u32("rope.dimension_count", {"rotary_dim"});
        break;
    case Family::Llama4: llama4_parameters(cfg, c, kv); break;
    case Family::Gemma3n: gemma3n_parameters(cfg, kv); break;
    }
    c.arch_kvs = std::move(kv.kvs_);
    c.file_type_pos = kv.file_type_pos_;
}

}  // namespace detail

// ---------------------------------------------------------------- output types (convert_hf_to_gguf.py)

bool parse_outtype(std::string_view s, OutType& out) noexcept {
    if (s == "f32") out = OutType::F32;
    else if (s == "f16") out = OutType::F16;
    else if (s == "bf16") out = OutType::BF16;
    else if (s == "q8_0") out = OutType::Q8_0;
    else if (s == "auto") out = OutType::Auto;
    else return false;
    return true;
}

quant::FType outtype_file_type(OutType t, const GgufConversion& c) {
    // ModelBase.prepare_metadata, after the tensors are written: an MXFP4 checkpoint's f32/f16/bf16 outputs are
    // labelled MOSTLY_MXFP4_MOE
    if (c.mxfp4 && t != OutType::Q8_0) return quant::FType::MXFP4_MOE;
    return outtype_ftype(t, c);
}

quant::FType outtype_ftype(OutType t, const GgufConversion& c) {
    switch (t) {
    case OutType::F32: return quant::FType::F32;
    case OutType::F16: return quant::FType::F16;
    case OutType::BF16: return quant::FType::BF16;
    case OutType::Q8_0: return quant::FType::Q8_0;
    case OutType::Auto: return c.auto_ftype;
    }
    SF_CHECK(false, "unknown OutType");
}

quant::GgmlType converter_tensor_type(const GgufTensorMap& t, quant::FType ftype) {
    if (t.force_f32) return quant::GgmlType::F32;
    if (t.force_f16) return quant::GgmlType::F16;
    if (t.f16_only_at_f16) return ftype == quant::FType::F16 ? quant::GgmlType::F16 : quant::GgmlType::F32;
    if (t.mxfp4) return quant::GgmlType::MXFP4;
    switch (ftype) {
    case quant::FType::F32: return quant::GgmlType::F32;
    case quant::FType::F16: return quant::GgmlType::F16;
    case quant::FType::BF16: return quant::GgmlType::BF16;
    case quant::FType::Q8_0:
        // gguf.quants raises QuantError when the row is not whole blocks; the converter then writes F16.
        return !t.shape.empty() && t.shape.back() % 32 == 0 ? quant::GgmlType::Q8_0 : quant::GgmlType::F16;
    default:
        throw Error(ErrorKind::Unsupported, "", t.gguf_name,
                    core::cat("the HF -> GGUF converter writes only f32, f16, bf16 or q8_0, not file type ",
                              static_cast<std::uint32_t>(ftype)));
    }
}

// ---------------------------------------------------------------- general.* and the whole KV list

namespace {

// gguf.utility.model_weight_count_rounded_notation(n, min_digits=2)
std::string rounded_notation(std::int64_t n) {
    const double x = static_cast<double>(n);
    double scaled;
    const char* suffix;
    if (x > 1e12) { scaled = x * 1e-12; suffix = "T"; }
    else if (x > 1e9) { scaled = x * 1e-9; suffix = "B"; }
    else if (x > 1e6) { scaled = x * 1e-6; suffix = "M"; }
    else { scaled = x * 1e-3; suffix = "K"; }
    // len(str(round(scaled)).lstrip('0')); Python's round() is half-to-even, as nearbyint in the default mode
    std::string digits = std::to_string(static_cast<long long>(std::nearbyint(scaled)));
    digits.erase(0, digits.find_first_not_of('0') == std::string::npos ? digits.size() : digits.find_first_not_of('0'));
    const int fix = std::max(2 - static_cast<int>(digits.size()), 0);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f%s", fix, scaled, suffix);
    return buf;
}

}  // namespace

std::string size_label(const GgufConversion& c) {
    // GGUFWriter.get_total_parameter_count over every tensor written (generated ones included)
    std::int64_t total = 0, shared = 0, expert = 0, expert_sum = 0, n_expert_tensors = 0;
    for (const GgufTensorMap& t : c.tensors) {
        const std::int64_t size = core::numel(t.shape);
        if (t.gguf_name.find("_exps.") != std::string::npos && t.shape.size() >= 3) {
            const bool bias = t.gguf_name.find(".bias") != std::string::npos;
            const std::int64_t count = t.shape[t.shape.size() - (bias ? 2 : 3)];
            expert += count > 0 ? size / count : 0;
            expert_sum += count;
            ++n_expert_tensors;
        } else {
            shared += size;
        }
        total += size;
    }
    const std::int64_t expert_count = n_expert_tensors > 0 ? expert_sum / n_expert_tensors : 0;
    if (total <= 0) return {};
    if (expert_count > 0) return core::cat(expert_count, "x", rounded_notation(shared + expert));
    return rounded_notation(total);
}

std::vector<formats::GgufKV> gguf_model_kvs(const GgufConversion& c, const GeneralMeta& meta,
                                            quant::FType file_type) {
    std::vector<GgufKV> kvs;
    kvs.push_back({"general.architecture", GgufValue::string(c.arch)});
    kvs.insert(kvs.end(), c.early_kvs.begin(), c.early_kvs.end());
    kvs.push_back({"general.type", GgufValue::string(c.gguf_type)});
    // Metadata.set_gguf_meta_model order; gguf_writer skips empty strings
    if (!meta.name.empty()) kvs.push_back({"general.name", GgufValue::string(meta.name)});
    if (!meta.version.empty()) kvs.push_back({"general.version", GgufValue::string(meta.version)});
    if (!meta.finetune.empty()) kvs.push_back({"general.finetune", GgufValue::string(meta.finetune)});
    if (!meta.basename.empty()) kvs.push_back({"general.basename", GgufValue::string(meta.basename)});
    if (!meta.size_label.empty()) kvs.push_back({"general.size_label", GgufValue::string(meta.size_label)});
    for (std::size_t i = 0; i <= c.arch_kvs.size(); ++i) {
        if (i == c.file_type_pos)
            kvs.push_back({"general.file_type", GgufValue::u32(static_cast<std::uint32_t>(file_type))});
        if (i < c.arch_kvs.size()) kvs.push_back(c.arch_kvs[i]);
    }
    kvs.push_back({"general.quantization_version", GgufValue::u32(2)});
    return kvs;
}

}  // namespace shardforge::model
