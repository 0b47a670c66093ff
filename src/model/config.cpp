// config.json reading: text_config merge, architecture name, and the hparams the converter looks up with
// fallbacks (llama.cpp's conversion/base.py TextModel.__init__ / find_hparam).
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

#include <fstream>
#include <iterator>
#include <sstream>

namespace shardforge::model {
namespace {

using core::Error;
using core::ErrorKind;
std::int64_t as_int(const nlohmann::json& v, const std::string& file, std::string_view key) {
    if (v.is_number_integer()) return v.get<std::int64_t>();
    // Some configs write counts as 32.0; accept integral floats, refuse anything else.
    if (v.is_number_float()) {
        const double d = v.get<double>();
        // Range check first: casting a huge or non-finite double to int64 is undefined behaviour.
        if (std::isfinite(d) && d >= -9.2e18 && d <= 9.2e18 && d == std::trunc(d)) return static_cast<std::int64_t>(d);
    }
    throw Error(ErrorKind::BadInput, file, "", core::cat("'", key, "' must be an integer, found ", v.dump()));
}

}  // namespace

const nlohmann::json& HfConfig::json() const {
    static const nlohmann::json null_json;
    return json_ptr ? *json_ptr : null_json;
}

const nlohmann::json* HfConfig::find(std::initializer_list<std::string_view> keys) const {
    const nlohmann::json& j = json();
    if (!j.is_object()) return nullptr;
    for (std::string_view k : keys) {
        auto it = j.find(std::string(k));
        if (it != j.end() && !it->is_null()) return &*it;
    }
    return nullptr;
}

std::optional<std::int64_t> HfConfig::find_int(std::initializer_list<std::string_view> keys) const {
    for (std::string_view k : keys) {
        if (const nlohmann::json* v = find({k})) return as_int(*v, file, k);
    }
    return std::nullopt;
}

std::optional<double> HfConfig::find_float(std::initializer_list<std::string_view> keys) const {
    for (std::string_view k : keys) {
        if (const nlohmann::json* v = find({k})) {
            if (!v->is_number())
                throw Error(ErrorKind::BadInput, file, "",
                            core::cat("'", k, "' must be a number, found ", v->dump()));
            return v->get<double>();
        }
    }
    return std::nullopt;
}

HfConfig parse_hf_config(nlohmann::json j, std::string file) {
    if (!j.is_object()) throw Error(ErrorKind::BadInput, file, "", "config.json must hold a JSON object");
    HfConfig c;
    c.file = std::move(file);

    // Architecture: the text sub-config's own list wins (get_model_architecture).
    auto first_arch = [&](const nlohmann::json& o) -> std::string {
        auto it = o.find("architectures");
        if (it == o.end() || it->is_null()) return {};
        if (!it->is_array() || it->empty() || !(*it)[0].is_string())
            throw Error(ErrorKind::BadInput, c.file, "", "'architectures' must be a non-empty list of strings");
        return (*it)[0].get<std::string>();
    };
    c.architecture = first_arch(j);
    if (auto tc = j.find("text_config"); tc != j.end() && tc->is_object()) {
        if (std::string a = first_arch(*tc); !a.empty()) c.architecture = a;
        // {**hparams, **text_config}: text keys override, text_config itself stays.
        const nlohmann::json text = *tc;
        for (auto it = text.begin(); it != text.end(); ++it) j[it.key()] = it.value();
    }
    if (c.architecture.empty())
        throw Error(ErrorKind::BadInput, c.file, "", "no 'architectures' list: cannot tell the model family");
    c.json_ptr = std::make_shared<const nlohmann::json>(std::move(j));
    if (const nlohmann::json* mt = c.find({"model_type"}); mt && mt->is_string()) c.model_type = mt->get<std::string>();

    auto layers = c.find_int({"n_layers", "num_hidden_layers", "n_layer", "num_layers"});
    if (!layers || *layers <= 0)
        throw Error(ErrorKind::BadInput, c.file, "", "missing or non-positive 'num_hidden_layers'");
    c.n_layer = *layers;
    c.n_embd = c.find_int({"hidden_size", "n_embd", "dim"}).value_or(0);
    c.n_head = c.find_int({"num_attention_heads", "n_head", "n_heads"}).value_or(0);
    c.n_head_kv = c.find_int({"num_key_value_heads", "n_kv_heads"}).value_or(c.n_head);
    c.head_dim = c.find_int({"head_dim"}).value_or(c.n_head > 0 ? c.n_embd / c.n_head : 0);
    // Gemma 3n's intermediate_size is a list (one width per layer): n_ff stays 0 (arch_kv.cpp writes the list)
    const nlohmann::json* ff = c.find({"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size",
                                       "n_inner", "hidden_dim"});
    c.n_ff = ff && ff->is_array() ? 0
                                  : c.find_int({"prefix_dense_intermediate_size", "dense_intermediate_size",
                                                "intermediate_size", "n_inner", "hidden_dim"})
                                        .value_or(0);
    c.n_vocab = c.find_int({"vocab_size"}).value_or(0);
    c.n_expert = c.find_int({"num_local_experts", "num_experts", "n_routed_experts"}).value_or(0);
    c.n_expert_used = c.find_int({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}).value_or(0);
    if (c.n_head < 0 || c.n_head_kv < 0 || c.head_dim < 0 || c.n_embd < 0)
        throw Error(ErrorKind::BadInput, c.file, "", "negative head count or size");

    const bool gemma = c.architecture.rfind("Gemma", 0) == 0;
    c.tie_word_embeddings = gemma;
    if (const nlohmann::json* t = c.find({"tie_word_embeddings"})) {
        if (!t->is_boolean())
            throw Error(ErrorKind::BadInput, c.file, "", "'tie_word_embeddings' must be true or false");
        c.tie_word_embeddings = t->get<bool>();
    }
    return c;
}

HfConfig read_hf_config(const std::filesystem::path& model_dir) {
    const std::filesystem::path p = model_dir / "config.json";
    std::error_code ec;
    if (!std::filesystem::exists(p, ec))
        throw Error(ErrorKind::Io, p.string(), "", "cannot open (a Hugging Face model directory has config.json)");
    const std::string text = core::read_input_file(p.string());
    core::check_json_depth(text, p.string());
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error(ErrorKind::BadInput, p.string(), "", "not valid JSON");
    return parse_hf_config(std::move(j), p.string());
}

}  // namespace shardforge::model
