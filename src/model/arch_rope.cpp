// Rope parameters as the converter sees them, Llama-3 rope_freqs, and the Gemma/Llama tensor transforms.
#include "arch_detail.hpp"

#include <cmath>
#include <utility>

namespace shardforge::model {
namespace detail {

nlohmann::json rope_parameters(const HfConfig& cfg) {
    nlohmann::json rp = nlohmann::json::object();
    const nlohmann::json& j = cfg.json();
    // hparams.get("rope_parameters", hparams.get("rope_scaling")) or {}
    if (auto it = j.find("rope_parameters"); it != j.end()) {
        if (it->is_object()) rp = *it;
    } else if (auto rs = j.find("rope_scaling"); rs != j.end() && rs->is_object()) {
        rp = *rs;
    }
    if (rp.contains("full_attention") || rp.contains("sliding_attention")) return rp;

    if (const nlohmann::json* local = cfg.find({"local_rope_theta", "rope_local_theta", "rope_theta_local",
                                                "swa_rope_theta", "rope_local_base_freq"}))
        rp["sliding_attention"] = nlohmann::json{{"rope_theta", *local}};
    if (!rp.contains("rope_theta")) {
        if (const nlohmann::json* theta = cfg.find({"global_rope_theta", "rope_global_theta", "rope_theta_global",
                                                    "rope_theta", "rotary_emb_base"}))
            rp["rope_theta"] = *theta;
    }
    if (!rp.contains("rope_type")) {
        if (auto t = rp.find("type"); t != rp.end() && !t->is_null()) rp["rope_type"] = *t;
    }
    if (!rp.contains("partial_rotary_factor")) {
        if (const nlohmann::json* p = cfg.find({"partial_rotary_factor", "rope_pct", "rope_percent"}))
            rp["partial_rotary_factor"] = *p;
    }
    if (!rp.contains("original_max_position_embeddings")) {
        if (const nlohmann::json* o = cfg.find({"original_max_position_embeddings"}))
            rp["original_max_position_embeddings"] = *o;
    }
    return rp;
}

const nlohmann::json& full_attention(const nlohmann::json& rope_params) {
    if (auto it = rope_params.find("full_attention"); it != rope_params.end()) return *it;
    return rope_params;
}

}  // namespace detail

namespace {

double number_or(const nlohmann::json& o, const char* key, double dflt, const std::string& file) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return dflt;
    if (!it->is_number())
        throw core::Error(core::ErrorKind::BadInput, file, "",
                          core::cat("rope scaling '", key, "' must be a number, found ", it->dump()));
    return it->get<double>();
}

std::string lower(std::string s) {
    for (char& ch : s)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return s;
}

}  // namespace

std::vector<float> llama3_rope_freqs(const HfConfig& cfg) {
    const nlohmann::json rp_all = detail::rope_parameters(cfg);
    const nlohmann::json& rp = detail::full_attention(rp_all);
    if (!rp.is_object() || rp.empty()) return {};
    auto type = rp.find("rope_type");
    if (type == rp.end() || !type->is_string() || lower(type->get<std::string>()) != "llama3") return {};

    const double base = number_or(rp, "rope_theta", 10000.0, cfg.file);
    std::int64_t dim = 0;
    if (auto hd = cfg.find_int({"head_dim"})) {
        dim = *hd;
    } else {
        const auto hidden = cfg.find_int({"hidden_size"});
        const auto heads = cfg.find_int({"num_attention_heads"});
        if (!hidden || !heads || *heads <= 0)
            throw core::Error(core::ErrorKind::BadInput, cfg.file, "rope_freqs.weight",
                              "llama3 rope scaling needs head_dim or hidden_size and num_attention_heads");
        dim = *hidden / *heads;
    }
    if (dim <= 0)
        throw core::Error(core::ErrorKind::BadInput, cfg.file, "rope_freqs.weight", "head dimension must be > 0");
    const double factor = number_or(rp, "factor", 8.0, cfg.file);
    const double low_freq_factor = number_or(rp, "low_freq_factor", 1.0, cfg.file);
    const double high_freq_factor = number_or(rp, "high_freq_factor", 4.0, cfg.file);
    const double old_context_len = number_or(rp, "original_max_position_embeddings", 8192.0, cfg.file);

    // Python floats (double) where the converter has Python numbers; every torch op is float32, with the
    // Python scalar operand rounded to float32 first (torch does not promote a float32 tensor for a scalar).
    // Scalar / tensor is torch's __rtruediv__: reciprocal(tensor) * scalar.
    const float low_freq_wavelen = static_cast<float>(old_context_len / low_freq_factor);
    const float high_freq_wavelen = static_cast<float>(old_context_len / high_freq_factor);
    const float two_pi = static_cast<float>(2.0 * M_PI);
    const float f_base = static_cast<float>(base);
    const float f_dim = static_cast<float>(dim);
    const float f_old_ctx = static_cast<float>(old_context_len);
    const float f_low = static_cast<float>(low_freq_factor);
    const float f_high_minus_low = static_cast<float>(high_freq_factor - low_freq_factor);
    const float f_factor = static_cast<float>(factor);

    std::vector<float> out;
    out.reserve(static_cast<std::size_t>((dim + 1) / 2));
    for (std::int64_t k = 0; k < dim; k += 2) {
        const float exponent = static_cast<float>(k) / f_dim;          // arange(0, dim, 2, f32) / dim
        const float freq = 1.0f / std::pow(f_base, exponent);          // 1.0 / (base ** t)
        const float wavelen = (1.0f / freq) * two_pi;                  // 2 * math.pi / freq
        if (wavelen < high_freq_wavelen) {
            out.push_back(1.0f);
        } else if (wavelen > low_freq_wavelen) {
            out.push_back(f_factor);
        } else {
            const float smooth = ((1.0f / wavelen) * f_old_ctx - f_low) / f_high_minus_low;
            out.push_back(1.0f / ((1.0f - smooth) / f_factor + smooth));
        }
    }
    return out;
}

void apply_transform(const Transform& t, float* data, const core::Shape& shape) {
    const std::int64_t n = core::numel(shape);
    switch (t.kind) {
    case TransformKind::AddOne:
        for (std::int64_t i = 0; i < n; ++i) data[i] += 1.0f;
        return;
    case TransformKind::PermuteLlamaHeads: {
        SF_CHECK(!shape.empty() && t.arg > 0, "PermuteLlamaHeads needs a shape and a head count");
        const std::int64_t rows = shape[0];
        const std::int64_t row_len = rows > 0 ? n / rows : 0;
        SF_CHECK(rows % (2 * t.arg) == 0, "PermuteLlamaHeads: rows not divisible by 2 * heads");
        const std::int64_t d = rows / t.arg;  // rows per head
        const std::int64_t half = d / 2;
        std::vector<float> head(static_cast<std::size_t>(d * row_len));
        for (std::int64_t h = 0; h < t.arg; ++h) {
            float* base = data + h * d * row_len;
            std::copy(base, base + d * row_len, head.begin());
            // new row 2i + j = old row j * D/2 + i (LlamaModel.permute: reshape(H, 2, D/2).swapaxes(1, 2))
            for (std::int64_t i = 0; i < half; ++i)
                for (std::int64_t j = 0; j < 2; ++j)
                    std::copy(head.begin() + (j * half + i) * row_len, head.begin() + (j * half + i + 1) * row_len,
                              base + (2 * i + j) * row_len);
        }
        return;
    }
    }
    SF_CHECK(false, "unknown TransformKind");
}

}  // namespace shardforge::model
