// Rope parameters as the converter sees them, Llama-3 rope_freqs, and the Gemma/Llama tensor transforms.
#include "arch_detail.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

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

// No model has heads wider than this; a config that claims more (hidden_size / heads from a corrupt file) is refused
// before one value per rotary pair is allocated.
constexpr std::int64_t max_head_dim = 65536;

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
    if (dim <= 0 || dim > max_head_dim)
        throw core::Error(core::ErrorKind::BadInput, cfg.file, "rope_freqs.weight",
                          core::cat("head dimension ", dim, " is not in [1, ", max_head_dim, "]"));
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

namespace {

// torch's float32 exp on an AVX2 CPU (ATen's Vectorized<float>::exp is SLEEF's expf_u10: Cody-Waite reduction by
// ln 2, a degree-6 polynomial, fused multiply-adds), so -exp(A_log) has the converter's bits; libm's expf differs in
// the last bit for about one value in ten.
float torch_expf(float d) {
    // SLEEF's range ends first: the reduction below needs d * (1 / ln 2) to fit an int (and not be NaN)
    if (std::isnan(d)) return d;
    if (d < -104.0f) return 0.0f;
    if (d > 100.0f) return HUGE_VALF;
    const float r_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    const float l2u = 0.693145751953125f, l2l = 1.428606765330187045e-06f;
    const int q = static_cast<int>(std::nearbyint(d * r_ln2));
    const auto fq = static_cast<float>(q);
    float s = std::fma(fq, -l2u, d);
    s = std::fma(fq, -l2l, s);
    float u = 0.000198527617612853646278381f;
    u = std::fma(u, s, 0.00139304355252534151077271f);
    u = std::fma(u, s, 0.00833336077630519866943359f);
    u = std::fma(u, s, 0.0416664853692054748535156f);
    u = std::fma(u, s, 0.166666671633720397949219f);
    u = std::fma(u, s, 0.5f);
    u = 1.0f + std::fma(s * s, u, s);
    return std::ldexp(u, q);
}

// Blocks of `n_k` groups x `r` heads x `head` units (of `unit` floats each) -> r x n_k x head, at `base`.
void tile_v_heads(float* base, std::int64_t n_k, std::int64_t r, std::int64_t head, std::int64_t unit,
                  std::vector<float>& tmp) {
    const std::int64_t run = head * unit;
    tmp.assign(base, base + n_k * r * run);
    for (std::int64_t g = 0; g < n_k; ++g)
        for (std::int64_t j = 0; j < r; ++j)
            std::copy(tmp.begin() + (g * r + j) * run, tmp.begin() + (g * r + j + 1) * run,
                      base + (j * n_k + g) * run);
}

}  // namespace

void apply_transform(const Transform& t, float* data, const core::Shape& shape) {
    const std::int64_t n = core::numel(shape);
    switch (t.kind) {
    case TransformKind::AddOne:
        for (std::int64_t i = 0; i < n; ++i) data[i] += 1.0f;
        return;
    case TransformKind::NegExp:
        for (std::int64_t i = 0; i < n; ++i) data[i] = -torch_expf(data[i]);
        return;
    case TransformKind::TileVHeadRows: {
        const std::int64_t rows = shape.empty() ? 1 : shape[0];
        const std::int64_t row_len = rows > 0 ? n / rows : 0;
        const std::int64_t v_rows = rows - t.skip;
        SF_CHECK(t.arg > 0 && t.head > 0 && t.skip >= 0 && v_rows >= 0 && v_rows % (t.arg * t.head) == 0,
                 "TileVHeadRows: V rows not a whole number of heads");
        std::vector<float> tmp;
        tile_v_heads(data + t.skip * row_len, t.arg, v_rows / (t.arg * t.head), t.head, row_len, tmp);
        return;
    }
    case TransformKind::TileVHeadColumns: {
        const std::int64_t cols = shape.empty() ? 1 : shape.back();
        const std::int64_t v_cols = cols - t.skip;
        SF_CHECK(t.arg > 0 && t.head > 0 && t.skip >= 0 && v_cols >= 0 && v_cols % (t.arg * t.head) == 0,
                 "TileVHeadColumns: V columns not a whole number of heads");
        std::vector<float> tmp;
        for (std::int64_t row = 0; cols > 0 && row < n / cols; ++row)
            tile_v_heads(data + row * cols + t.skip, t.arg, v_cols / (t.arg * t.head), t.head, 1, tmp);
        return;
    }
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
    case TransformKind::TransposeLastTwo: {
        SF_CHECK(shape.size() >= 2, "TransposeLastTwo needs at least 2 dims");
        const std::int64_t a = shape[shape.size() - 2], b = shape.back();
        const std::int64_t mat = a * b;
        std::vector<float> tmp(static_cast<std::size_t>(mat));
        for (std::int64_t o = 0; mat > 0 && o < n / mat; ++o) {
            float* base = data + o * mat;
            std::copy(base, base + mat, tmp.begin());  // stored as [b, a]
            for (std::int64_t i = 0; i < a; ++i)
                for (std::int64_t j = 0; j < b; ++j) base[i * b + j] = tmp[static_cast<std::size_t>(j * a + i)];
        }
        return;
    }
    }
    SF_CHECK(false, "unknown TransformKind");
}

}  // namespace shardforge::model
