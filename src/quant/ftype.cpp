// llama-quantize's ftypes and per-tensor type choice (llama.cpp's src/llama-quant.cpp). Facts are computed once, in
// llama-quantize's tensor order (tensor_facts); the rule itself (choose_type) is pure. Behaviour follows
// src/llama-quant.cpp and tools/quantize/quantize.cpp of the reference release (de3ff81); written from those facts.
#include <shardforge/quant.hpp>

#include <algorithm>
#include <cctype>
#include <regex>
#include <utility>

namespace shardforge::quant {
namespace {

using core::cat;

// The table: QUANT_OPTIONS order (Q1_0/Q2_0 left out: we have no such ggml types), then our extra presets.
// Descriptions are llama-quantize's (sizes and ppl for Llama-3-8B / Mistral-7B).
const std::vector<FTypeInfo> ftype_rows = {
    {"Q4_0", FType::Q4_0, GgmlType::Q4_0, false, "4.34G, +0.4685 ppl @ Llama-3-8B"},
    {"Q4_1", FType::Q4_1, GgmlType::Q4_1, false, "4.78G, +0.4511 ppl @ Llama-3-8B"},
    {"MXFP4_MOE", FType::MXFP4_MOE, GgmlType::MXFP4, false, "MXFP4 MoE"},
    {"Q5_0", FType::Q5_0, GgmlType::Q5_0, false, "5.21G, +0.1316 ppl @ Llama-3-8B"},
    {"Q5_1", FType::Q5_1, GgmlType::Q5_1, false, "5.65G, +0.1062 ppl @ Llama-3-8B"},
    {"IQ2_XXS", FType::IQ2_XXS, GgmlType::IQ2_XXS, true, "2.06 bpw quantization"},
    {"IQ2_XS", FType::IQ2_XS, GgmlType::IQ2_XS, true, "2.31 bpw quantization"},
    {"IQ2_S", FType::IQ2_S, GgmlType::IQ2_XS, true, "2.5  bpw quantization"},
    {"IQ2_M", FType::IQ2_M, GgmlType::IQ2_S, true, "2.7  bpw quantization"},
    {"IQ1_S", FType::IQ1_S, GgmlType::IQ1_S, true, "1.56 bpw quantization"},
    {"IQ1_M", FType::IQ1_M, GgmlType::IQ1_M, true, "1.75 bpw quantization"},
    {"TQ1_0", FType::TQ1_0, GgmlType::TQ1_0, false, "1.69 bpw ternarization"},
    {"TQ2_0", FType::TQ2_0, GgmlType::TQ2_0, false, "2.06 bpw ternarization"},
    {"Q2_K", FType::Q2_K, GgmlType::Q2_K, false, "2.96G, +3.5199 ppl @ Llama-3-8B"},
    {"Q2_K_S", FType::Q2_K_S, GgmlType::Q2_K, true, "2.96G, +3.1836 ppl @ Llama-3-8B"},
    {"IQ3_XXS", FType::IQ3_XXS, GgmlType::IQ3_XXS, true, "3.06 bpw quantization"},
    {"IQ3_S", FType::IQ3_S, GgmlType::IQ3_S, false, "3.44 bpw quantization"},
    {"IQ3_M", FType::IQ3_M, GgmlType::IQ3_S, false, "3.66 bpw quantization mix"},
    {"Q3_K", FType::Q3_K_M, GgmlType::Q3_K, false, "alias for Q3_K_M", false, true},
    {"IQ3_XS", FType::IQ3_XS, GgmlType::IQ3_S, true, "3.3 bpw quantization"},
    {"Q3_K_S", FType::Q3_K_S, GgmlType::Q3_K, false, "3.41G, +1.6321 ppl @ Llama-3-8B"},
    {"Q3_K_M", FType::Q3_K_M, GgmlType::Q3_K, false, "3.74G, +0.6569 ppl @ Llama-3-8B"},
    {"Q3_K_L", FType::Q3_K_L, GgmlType::Q3_K, false, "4.03G, +0.5562 ppl @ Llama-3-8B"},
    {"IQ4_NL", FType::IQ4_NL, GgmlType::IQ4_NL, false, "4.50 bpw non-linear quantization"},
    {"IQ4_XS", FType::IQ4_XS, GgmlType::IQ4_XS, false, "4.25 bpw non-linear quantization"},
    {"Q4_K", FType::Q4_K_M, GgmlType::Q4_K, false, "alias for Q4_K_M", false, true},
    {"Q4_K_S", FType::Q4_K_S, GgmlType::Q4_K, false, "4.37G, +0.2689 ppl @ Llama-3-8B"},
    {"Q4_K_M", FType::Q4_K_M, GgmlType::Q4_K, false, "4.58G, +0.1754 ppl @ Llama-3-8B"},
    {"Q5_K", FType::Q5_K_M, GgmlType::Q5_K, false, "alias for Q5_K_M", false, true},
    {"Q5_K_S", FType::Q5_K_S, GgmlType::Q5_K, false, "5.21G, +0.1049 ppl @ Llama-3-8B"},
    {"Q5_K_M", FType::Q5_K_M, GgmlType::Q5_K, false, "5.33G, +0.0569 ppl @ Llama-3-8B"},
    {"Q6_K", FType::Q6_K, GgmlType::Q6_K, false, "6.14G, +0.0217 ppl @ Llama-3-8B"},
    {"Q8_0", FType::Q8_0, GgmlType::Q8_0, false, "7.96G, +0.0026 ppl @ Llama-3-8B"},
    {"F16", FType::F16, GgmlType::F16, false, "14.00G, +0.0020 ppl @ Mistral-7B"},
    {"BF16", FType::BF16, GgmlType::BF16, false, "14.00G, -0.0050 ppl @ Mistral-7B"},
    {"F32", FType::F32, GgmlType::F32, false, "26.00G @ 7B"},
    // after F32, so that "0" means F32 (as in llama-quantize)
    {"COPY", FType::F32, GgmlType::F32, false, "only copy tensors, no quantizing", true, true},
    // Unsloth's preset: a Q2_K file with q8_0 output and token embeddings.
    {"Q2_K_L", FType::Q2_K, GgmlType::Q2_K, false, "Q2_K with Q8_0 output and token embeddings (Unsloth)", false,
     true, GgmlType::Q8_0, GgmlType::Q8_0},
};

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

bool contains(std::string_view s, std::string_view sub) noexcept { return s.find(sub) != std::string_view::npos; }

bool is_quantized(GgmlType t) noexcept { return traits(t).block_elems > 1; }

std::int64_t block_elems(GgmlType t) noexcept { return traits(t).block_elems; }

std::string tname(GgmlType t) { return std::string(traits(t).name); }

std::int64_t dim(const QuantTensor& t, std::size_t i) noexcept { return i < t.ne.size() ? t.ne[i] : 1; }

// ggml_n_dims: 1 + the highest dimension (of 4) larger than 1.
int n_dims(const QuantTensor& t) noexcept {
    for (int i = 3; i >= 1; --i)
        if (dim(t, static_cast<std::size_t>(i)) > 1) return i + 1;
    return 1;
}

// sscanf(name, "blk.%d.", &i) == 1: "blk." then an optionally signed decimal (leading blanks allowed).
bool parse_blk(std::string_view name, int& out) noexcept {
    if (name.substr(0, 4) != "blk.") return false;
    std::size_t p = 4;
    while (p < name.size() && std::isspace(static_cast<unsigned char>(name[p]))) ++p;
    bool neg = false;
    if (p < name.size() && (name[p] == '+' || name[p] == '-')) neg = name[p++] == '-';
    if (p >= name.size() || !std::isdigit(static_cast<unsigned char>(name[p]))) return false;
    long long v = 0;
    for (; p < name.size() && std::isdigit(static_cast<unsigned char>(name[p])); ++p) {
        v = v * 10 + (name[p] - '0');
        if (v > 0x7fffffffLL) v = 0x7fffffffLL;
    }
    out = static_cast<int>(neg ? -v : v);
    return true;
}

bool is_iq2_family(FType f) noexcept {
    return f == FType::IQ2_XXS || f == FType::IQ2_XS || f == FType::IQ1_S || f == FType::IQ2_S ||
           f == FType::IQ2_M || f == FType::IQ1_M;
}

bool is_attn_v_like(TensorCategory c) noexcept {
    return c == TensorCategory::AttnV || c == TensorCategory::AttnQkv || c == TensorCategory::AttnKvB;
}

bool is_token_embd_name(std::string_view n) noexcept {
    return n == "token_embd.weight" || n == "per_layer_token_embd.weight";
}

// Why a tensor is not quantized (empty when it is), tensor_allows_quantization's checks in its order.
std::string not_quantized_reason(const QuantTensor& t, const Overrides& ov, bool only_copy) {
    if (only_copy) return "COPY";
    if (n_dims(t) < 2) return "1-D";
    const std::string& name = t.name;
    // llama's exact test, including its size_t arithmetic for names shorter than "weight"
    if (name.rfind("weight") != name.size() - 6) return "name does not end in 'weight'";
    if (contains(name, "_norm.weight")) return "norm";
    if (ov.leave_output && name == "output.weight") return "--leave-output-tensor";
    static constexpr std::string_view kept_substrings[] = {
        "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
        ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    if (name == "position_embd.weight" || name == "token_types.weight") return "position/token-type embedding";
    for (auto s : kept_substrings)
        if (contains(name, s)) return cat("name contains '", s, "'");
    return {};
}

// tensor_type_fallback: the rule's type does not divide the row length ne[0].
GgmlType fallback_type(const QuantTensor& t, GgmlType target) {
    const std::int64_t ncols = dim(t, 0);
    const std::int64_t qk = block_elems(target);
    if (ncols % qk == 0) return target;
    GgmlType r = target;
    switch (target) {
        case GgmlType::IQ1_S: case GgmlType::IQ1_M: case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: case GgmlType::IQ3_XXS: case GgmlType::IQ3_S: case GgmlType::IQ4_XS:
            r = GgmlType::IQ4_NL;
            break;
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::TQ1_0: case GgmlType::TQ2_0:
            r = GgmlType::Q4_0;
            break;
        case GgmlType::Q4_K: r = GgmlType::Q5_0; break;
        case GgmlType::Q5_K: r = GgmlType::Q5_1; break;
        case GgmlType::Q6_K: r = GgmlType::Q8_0; break;
        default:
            if (qk > 32)
                throw core::Error(core::ErrorKind::Unsupported, "", t.name,
                                  cat("row length ", ncols, " is not a multiple of ", qk, " (", tname(target),
                                      ") and llama-quantize defines no fallback for ", tname(target)));
            break;  // a 32-block type: no smaller block, the check below makes it F16
    }
    if (ncols % block_elems(r) != 0) r = GgmlType::F16;
    return r;
}

bool requires_imatrix(const std::string& name, GgmlType t, FType ftype) noexcept {
    if (is_token_embd_name(name) || name == "output.weight") return false;
    switch (t) {
        case GgmlType::IQ3_XXS: case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S:
        case GgmlType::IQ1_M: case GgmlType::IQ1_S:
            return true;
        case GgmlType::Q2_K: return ftype == FType::Q2_K_S;
        default: return false;
    }
}

bool use_more_bits(int i, int n) noexcept { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int n_gqa(const ModelFacts& m) noexcept { return m.n_head_kv == 0 ? 0 : m.n_head / m.n_head_kv; }

struct Mix {
    GgmlType type;
    std::string why;
};

// The ffn rules' (i, n): counter for dense models, blk.N for MoE (llama-quant's layer_info).
std::pair<int, int> layer_info(const TensorFacts& t, const ModelFacts& m) {
    if (std::max(1, m.n_expert) > 1) {
        int i = 0;
        if (!parse_blk(t.tensor->name, i))
            throw core::Error(core::ErrorKind::BadInput, "", t.tensor->name, "failed to determine the layer (blk.N)");
        if (i < 0 || i >= m.n_layer)
            throw core::Error(core::ErrorKind::BadInput, "", t.tensor->name,
                              cat("layer ", i, " is outside [0, ", m.n_layer, ")"));
        return {i, m.n_layer};
    }
    return {t.i_counter, t.n_counter};
}

// llama_tensor_get_type_impl: the mixture rules. `nt` is the ftype's default type.
Mix mixture(const TensorFacts& t, const ModelFacts& m, FType f, const Overrides& ov, GgmlType nt) {
    const QuantTensor& q = *t.tensor;
    const TensorCategory c = t.category;
    const bool falcon = m.arch == "falcon";
    const int gqa = n_gqa(m);
    using G = GgmlType;

    if (t.output_like) {
        const char* what = c == TensorCategory::Output ? "output" : "tied token_embd";
        if (ov.output_type != unset_type) return {ov.output_type, cat(what, ": --output-tensor-type")};
        if (f == FType::MXFP4_MOE) return {G::Q8_0, cat(what, ": MXFP4_MOE")};
        if (falcon) return {G::Q8_0, cat(what, ": falcon")};
        if (dim(q, 0) % block_elems(nt) != 0) return {G::Q8_0, cat(what, ": ne[0] not a multiple of the block")};
        if (f == FType::IQ2_XXS || f == FType::IQ2_XS || f == FType::IQ3_XXS || f == FType::IQ1_S ||
            f == FType::IQ2_S || f == FType::IQ2_M || f == FType::IQ1_M)
            return {G::Q5_K, cat(what, ": low-bit IQ ftype")};
        if (nt != G::Q8_0) return {G::Q6_K, cat(what, ": q6_K")};
        return {nt, cat(what, ": default")};
    }
    if (f == FType::MXFP4_MOE) {
        const bool bailing3_expert = c == TensorCategory::FfnUp || c == TensorCategory::FfnGate ||
                                     c == TensorCategory::FfnDown;
        if (dim(q, 2) > 1 && (m.arch != "bailingmoe3" || bailing3_expert)) return {G::MXFP4, "MXFP4_MOE: expert stack"};
        return {G::Q8_0, "MXFP4_MOE: not an expert stack"};
    }
    if (c == TensorCategory::TokenEmbd) {
        if (ov.token_embd_type != unset_type) return {ov.token_embd_type, "token_embd: --token-embedding-type"};
        if (f == FType::IQ2_XXS || f == FType::IQ2_XS || f == FType::IQ1_S || f == FType::IQ1_M)
            return {G::Q2_K, "token_embd: low-bit IQ ftype"};
        if (f == FType::IQ2_S || f == FType::IQ2_M || f == FType::IQ3_XXS) return {G::IQ3_S, "token_embd: IQ ftype"};
        if (f == FType::TQ1_0 || f == FType::TQ2_0) return {G::Q4_K, "token_embd: ternary ftype"};
        return {nt, "token_embd: default"};
    }
    if (is_iq2_family(f)) {
        const bool s_or_m = f == FType::IQ2_S || f == FType::IQ2_M;
        if (is_attn_v_like(c)) {
            if (gqa >= 4 || m.n_expert >= 4) return {G::Q4_K, "attn_v: low-bit IQ, GQA>=4 or MoE"};
            return {s_or_m ? G::IQ3_S : G::Q2_K, "attn_v: low-bit IQ"};
        }
        if (m.n_expert == 8 && c == TensorCategory::AttnK) return {G::Q4_K, "attn_k: low-bit IQ, 8 experts"};
        if (c == TensorCategory::FfnDown) {
            if (t.i_counter < t.n_counter / 8) return {s_or_m ? G::IQ3_S : G::Q2_K, "ffn_down: low-bit IQ, first 1/8"};
            return {nt, "ffn_down: default"};
        }
        if (c == TensorCategory::AttnOutput) {
            if (m.n_expert == 8) return {G::Q5_K, "attn_output: low-bit IQ, 8 experts"};
            if (f == FType::IQ1_S || f == FType::IQ1_M) return {G::IQ2_XXS, "attn_output: IQ1"};
            if (s_or_m) return {G::IQ3_S, "attn_output: IQ2_S/IQ2_M"};
        }
        return {nt, "default"};
    }
    if (is_attn_v_like(c)) {
        const int i = t.i_counter, n = t.n_counter;
        G r = nt;
        std::string why = "attn_v: default";
        if (f == FType::Q2_K) {
            r = gqa >= 4 ? G::Q4_K : G::Q3_K;
            why = "attn_v: Q2_K";
        } else if (f == FType::Q2_K_S && gqa >= 4) {
            r = G::Q4_K;
            why = "attn_v: Q2_K_S, GQA>=4";
        } else if (f == FType::IQ3_XXS) {
            r = gqa >= 4 ? G::Q4_K : !ov.has_imatrix ? G::IQ3_S : G::IQ3_XXS;
            why = "attn_v: IQ3_XXS";
        } else if ((f == FType::IQ3_XS || f == FType::IQ3_S) && gqa >= 4) {
            r = G::Q4_K;
            why = "attn_v: IQ3, GQA>=4";
        } else if (f == FType::IQ3_M) {
            r = G::Q4_K;
            why = "attn_v: IQ3_M";
        } else if (f == FType::Q3_K_M) {
            r = i < 2 ? G::Q5_K : G::Q4_K;
            why = i < 2 ? "attn_v: Q3_K_M, first 2" : "attn_v: Q3_K_M";
        } else if (f == FType::Q3_K_L) {
            r = G::Q5_K;
            why = "attn_v: Q3_K_L";
        } else if ((f == FType::IQ4_NL || f == FType::IQ4_XS) && gqa >= 4) {
            r = G::Q5_K;
            why = "attn_v: IQ4, GQA>=4";
        } else if ((f == FType::Q4_K_M || f == FType::Q5_K_M) && use_more_bits(i, n)) {
            r = G::Q6_K;
            why = "attn_v: use_more_bits";
        } else if (f == FType::Q4_K_S && i < 4) {
            r = G::Q5_K;
            why = "attn_v: Q4_K_S, first 4";
        }
        if (is_type_70b(m) && (r == G::Q3_K || r == G::Q4_K)) {
            r = G::Q5_K;
            why += ", 70B";
        }
        if (m.n_expert == 8) {
            r = G::Q8_0;
            why += ", 8 experts -> q8_0";
        }
        return {r, why};
    }
    if (c == TensorCategory::AttnK) {
        if (m.n_expert == 8) return {G::Q8_0, "attn_k: 8 experts"};
        if (f == FType::IQ3_XS) return {G::IQ3_XXS, "attn_k: IQ3_XS"};
        if (f == FType::IQ3_XXS) return {G::IQ2_S, "attn_k: IQ3_XXS"};
        return {nt, "attn_k: default"};
    }
    if (c == TensorCategory::AttnQ) {
        if (f == FType::IQ3_XS) return {G::IQ3_XXS, "attn_q: IQ3_XS"};
        if (f == FType::IQ3_XXS) return {G::IQ2_S, "attn_q: IQ3_XXS"};
        return {nt, "attn_q: default"};
    }
    if (c == TensorCategory::FfnDown) {
        const auto [i, n] = layer_info(t, m);
        if (f == FType::Q2_K) return {G::Q3_K, "ffn_down: Q2_K"};
        if (f == FType::Q2_K_S) {
            if (i < n / 8) return {G::Q4_K, "ffn_down: Q2_K_S, first 1/8"};
        } else if (f == FType::IQ3_XXS && !ov.has_imatrix) {
            return i < n / 8 ? Mix{G::Q4_K, "ffn_down: IQ3_XXS, first 1/8"} : Mix{G::Q3_K, "ffn_down: IQ3_XXS"};
        } else if (f == FType::Q3_K_M) {
            if (i < n / 16) return {G::Q5_K, "ffn_down: Q3_K_M, first 1/16"};
            if (!falcon || use_more_bits(i, n)) return {G::Q4_K, "ffn_down: Q3_K_M"};
            return {G::Q3_K, "ffn_down: Q3_K_M, falcon"};
        } else if (f == FType::IQ3_M && (i < n / 8 || (m.n_expert == 8 && use_more_bits(i, n)))) {
            return {G::Q4_K, "ffn_down: IQ3_M"};
        } else if (f == FType::Q3_K_L) {
            return {falcon ? G::Q4_K : G::Q5_K, "ffn_down: Q3_K_L"};
        } else if (f == FType::Q4_K_M) {
            if (falcon) {
                if (i < n / 16) return {G::Q6_K, "ffn_down: Q4_K_M falcon, first 1/16"};
                if (use_more_bits(i, n)) return {G::Q5_K, "ffn_down: Q4_K_M falcon, use_more_bits"};
                return {G::Q4_K, "ffn_down: Q4_K_M falcon"};
            }
            if (use_more_bits(i, n)) return {G::Q6_K, "ffn_down: use_more_bits"};
        } else if (i < n / 8 && (f == FType::IQ4_NL || f == FType::IQ4_XS) && !ov.has_imatrix) {
            return {G::Q5_K, "ffn_down: IQ4 without imatrix, first 1/8"};
        } else if (f == FType::Q5_K_M && use_more_bits(i, n)) {
            return {G::Q6_K, "ffn_down: use_more_bits"};
        } else if (f == FType::Q4_K_S && !falcon && i < n / 8) {
            return {G::Q5_K, "ffn_down: Q4_K_S, first 1/8"};
        } else if ((f == FType::Q4_0 || f == FType::Q5_0) && ov.has_imatrix && i < n / 8) {
            return {f == FType::Q4_0 ? G::Q4_1 : G::Q5_1, "ffn_down: imatrix, first 1/8"};
        }
        return {nt, "ffn_down: default"};
    }
    if (c == TensorCategory::AttnOutput) {
        if (!falcon) {
            if (m.n_expert == 8) {
                switch (f) {
                    case FType::Q2_K: case FType::IQ3_XS: case FType::IQ3_XXS: case FType::Q3_K_S:
                    case FType::Q3_K_M: case FType::IQ4_NL: case FType::Q4_K_S: case FType::Q4_K_M:
                    case FType::IQ3_S: case FType::IQ3_M: case FType::IQ4_XS:
                        return {G::Q5_K, "attn_output: 8 experts"};
                    default: break;
                }
            } else {
                if (f == FType::Q2_K) return {G::Q3_K, "attn_output: Q2_K"};
                if (f == FType::IQ3_XXS) return {G::IQ3_S, "attn_output: IQ3_XXS"};
                if (f == FType::Q3_K_M) return {G::Q4_K, "attn_output: Q3_K_M"};
                if (f == FType::Q3_K_L) return {G::Q5_K, "attn_output: Q3_K_L"};
                if (f == FType::IQ3_M) return {G::Q4_K, "attn_output: IQ3_M"};
            }
        } else if (f == FType::Q3_K_L) {
            return {G::Q4_K, "attn_output: Q3_K_L falcon"};
        }
        return {nt, "attn_output: default"};
    }
    // (llama-quant's separate attn_qkv branch is unreachable: attn_qkv is attn_v-like and handled above)
    if (c == TensorCategory::FfnGate || c == TensorCategory::FfnUp) {
        const auto [i, n] = layer_info(t, m);
        if (f == FType::IQ3_XS && i >= n / 8 && i < 7 * n / 8) return {G::IQ3_XXS, "ffn_gate/up: IQ3_XS middle"};
        return {nt, "ffn_gate/up: default"};
    }
    return {nt, "default"};
}

}  // namespace

// ---------------------------------------------------------------- ftype table

const std::vector<FTypeInfo>& ftype_table() { return ftype_rows; }

const FTypeInfo* find_ftype(std::string_view s) noexcept {
    for (const auto& r : ftype_rows)
        if (iequals(r.name, s)) return &r;
    if (s.empty() || s.size() > 9) return nullptr;
    std::uint32_t v = 0;
    for (char ch : s) {
        if (!std::isdigit(static_cast<unsigned char>(ch))) return nullptr;
        v = v * 10 + static_cast<std::uint32_t>(ch - '0');
    }
    for (const auto& r : ftype_rows)
        if (static_cast<std::uint32_t>(r.ftype) == v) return &r;
    return nullptr;
}

bool parse_ftype(std::string_view s, FType& out) noexcept {
    const FTypeInfo* r = find_ftype(s);
    if (r == nullptr) return false;
    out = r->ftype;
    return true;
}

const FTypeInfo& ftype_info(FType f) noexcept {
    for (const auto& r : ftype_rows)
        if (r.ftype == f && !r.alias) return r;
    return ftype_rows.front();  // unreachable for valid enum values
}

std::string_view ftype_long_name(FType f) noexcept {
    switch (f) {
        case FType::F32: return "all F32";
        case FType::F16: return "F16";
        case FType::BF16: return "BF16";
        case FType::Q4_0: return "Q4_0";
        case FType::Q4_1: return "Q4_1";
        case FType::Q5_0: return "Q5_0";
        case FType::Q5_1: return "Q5_1";
        case FType::Q8_0: return "Q8_0";
        case FType::MXFP4_MOE: return "MXFP4 MoE";
        case FType::Q2_K: return "Q2_K - Medium";
        case FType::Q2_K_S: return "Q2_K - Small";
        case FType::Q3_K_S: return "Q3_K - Small";
        case FType::Q3_K_M: return "Q3_K - Medium";
        case FType::Q3_K_L: return "Q3_K - Large";
        case FType::Q4_K_S: return "Q4_K - Small";
        case FType::Q4_K_M: return "Q4_K - Medium";
        case FType::Q5_K_S: return "Q5_K - Small";
        case FType::Q5_K_M: return "Q5_K - Medium";
        case FType::Q6_K: return "Q6_K";
        case FType::TQ1_0: return "TQ1_0 - 1.69 bpw ternary";
        case FType::TQ2_0: return "TQ2_0 - 2.06 bpw ternary";
        case FType::IQ2_XXS: return "IQ2_XXS - 2.0625 bpw";
        case FType::IQ2_XS: return "IQ2_XS - 2.3125 bpw";
        case FType::IQ2_S: return "IQ2_S - 2.5 bpw";
        case FType::IQ2_M: return "IQ2_M - 2.7 bpw";
        case FType::IQ3_XS: return "IQ3_XS - 3.3 bpw";
        case FType::IQ3_XXS: return "IQ3_XXS - 3.0625 bpw";
        case FType::IQ1_S: return "IQ1_S - 1.5625 bpw";
        case FType::IQ1_M: return "IQ1_M - 1.75 bpw";
        case FType::IQ4_NL: return "IQ4_NL - 4.5 bpw";
        case FType::IQ4_XS: return "IQ4_XS - 4.25 bpw";
        case FType::IQ3_S: return "IQ3_S - 3.4375 bpw";
        case FType::IQ3_M: return "IQ3_S mix - 3.66 bpw";
    }
    return "unknown, may not work";
}

bool is_type_70b(const ModelFacts& m) noexcept {
    if (m.arch == "llama") return m.n_expert != 8 && m.n_layer == 80 && m.n_head != m.n_head_kv;
    if (m.arch == "qwen2" || m.arch == "deci" || m.arch == "olmo") return m.n_layer == 80;
    if (m.arch == "jais2") return m.n_layer == 68;
    return false;
}

bool parse_tensor_type_override(std::string_view arg, TensorTypeOverride& out) {
    const std::size_t eq = arg.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == arg.size()) return false;
    std::string name(arg.substr(0, eq));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    GgmlType t{};
    if (!parse_type(arg.substr(eq + 1), t)) return false;
    out = {std::move(name), t};
    return true;
}

void apply_preset(const FTypeInfo& info, Overrides& ov) noexcept {
    if (ov.output_type == unset_type) ov.output_type = info.preset_output_type;
    if (ov.token_embd_type == unset_type) ov.token_embd_type = info.preset_token_embd_type;
}

// ---------------------------------------------------------------- facts

TensorCategory tensor_category(std::string_view n) noexcept {
    using C = TensorCategory;
    if (n == "output.weight") return C::Output;
    if (is_token_embd_name(n)) return C::TokenEmbd;
    if (contains(n, "attn_qkv.weight")) return C::AttnQkv;
    if (contains(n, "attn_kv_b.weight")) return C::AttnKvB;
    if (contains(n, "attn_v.weight")) return C::AttnV;
    if (contains(n, "attn_k.weight")) return C::AttnK;
    if (contains(n, "attn_q.weight")) return C::AttnQ;
    if (contains(n, "attn_output.weight")) return C::AttnOutput;
    if (contains(n, "ffn_up")) return C::FfnUp;
    if (contains(n, "ffn_gate")) return C::FfnGate;
    if (contains(n, "ffn_down")) return C::FfnDown;
    return C::Other;
}

bool tensor_allows_quantization(const QuantTensor& t, const Overrides& ov, bool only_copy) {
    return not_quantized_reason(t, ov, only_copy).empty();
}

std::vector<std::size_t> quantize_order(const std::vector<QuantTensor>& tensors) {
    std::vector<int> layer(tensors.size(), -1);
    for (std::size_t i = 0; i < tensors.size(); ++i)
        if (!parse_blk(tensors[i].name, layer[i])) layer[i] = -1;
    std::vector<std::size_t> idx(tensors.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
        if (layer[a] != layer[b]) return layer[a] < layer[b];
        return tensors[a].name < tensors[b].name;
    });
    return idx;
}

std::vector<TensorFacts> tensor_facts(const std::vector<QuantTensor>& tensors, const ModelFacts& m, FType ftype,
                                      const Overrides& ov, bool only_copy) {
    std::vector<std::pair<std::regex, GgmlType>> patterns;
    for (const auto& p : ov.tensor_types) {
        try {
            patterns.emplace_back(std::regex(p.pattern), p.type);
        } catch (const std::regex_error& e) {
            throw core::Error(core::ErrorKind::Usage, "", "", cat("--tensor-type '", p.pattern, "': ", e.what()));
        }
    }
    const GgmlType def = ftype_info(ftype).default_type;

    // model-wide counts (init_quantize_state_counters): over every tensor, quantizable or not
    bool tied = true;
    int n_attention_wv = 0;
    for (const auto& t : tensors) {
        const TensorCategory c = tensor_category(t.name);
        if (is_attn_v_like(c)) ++n_attention_wv;
        if (c == TensorCategory::Output) tied = false;
    }

    std::vector<TensorFacts> facts(tensors.size());
    int i_attention_wv = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
    for (std::size_t k : quantize_order(tensors)) {
        const QuantTensor& t = tensors[k];
        TensorFacts& f = facts[k];
        f.tensor = &t;
        f.category = tensor_category(t.name);
        f.kept_reason = not_quantized_reason(t, ov, only_copy);
        f.quantizable = f.kept_reason.empty();
        f.output_like = f.category == TensorCategory::Output || (tied && f.category == TensorCategory::TokenEmbd);
        if (!parse_blk(t.name, f.blk)) f.blk = -1;
        for (std::size_t p = 0; p < patterns.size(); ++p) {
            if (std::regex_search(t.name, patterns[p].first)) {
                f.manual_type = patterns[p].second;
                f.manual_index = static_cast<int>(p);
                break;
            }
        }
        // Does llama_tensor_get_type_impl run for this tensor (and so advance a counter)?
        bool runs = f.quantizable && is_quantized(def) && f.manual_index < 0 && !ov.pure;
        if (ov.token_embd_type != unset_type && f.category == TensorCategory::TokenEmbd) runs = false;  // early return
        if (ov.output_type != unset_type && f.category == TensorCategory::Output) runs = false;
        if (!runs || f.output_like || ftype == FType::MXFP4_MOE || f.category == TensorCategory::TokenEmbd) continue;
        const bool iq2 = is_iq2_family(ftype);
        if (is_attn_v_like(f.category)) {
            f.i_counter = i_attention_wv++;
            f.n_counter = n_attention_wv;
        } else if (f.category == TensorCategory::FfnDown) {
            f.i_counter = i_ffn_down++;
            f.n_counter = m.n_layer;
        } else if (!iq2 && f.category == TensorCategory::FfnGate) {
            f.i_counter = i_ffn_gate++;
            f.n_counter = m.n_layer;
        } else if (!iq2 && f.category == TensorCategory::FfnUp) {
            f.i_counter = i_ffn_up++;
            f.n_counter = m.n_layer;
        }
    }
    return facts;
}

// ---------------------------------------------------------------- the rule

Choice choose_type(const TensorFacts& t, const ModelFacts& m, FType ftype, const Overrides& ov) {
    const QuantTensor& q = *t.tensor;
    if (!t.quantizable) return {q.type, cat("kept ", tname(q.type), ": ", t.kept_reason), false, false};
    Choice ch{q.type, {}, false, false};
    const bool named_ple = q.name == "per_layer_token_embd.weight" && t.manual_index >= 0;
    if (ov.token_embd_type != unset_type && t.category == TensorCategory::TokenEmbd && !named_ple) {
        ch.type = ov.token_embd_type;
        ch.rule = "--token-embedding-type";
    } else if (ov.output_type != unset_type && t.category == TensorCategory::Output) {
        ch.type = ov.output_type;
        ch.rule = "--output-tensor-type";
    } else {
        const GgmlType def = ftype_info(ftype).default_type;
        ch.type = def;
        if (!is_quantized(def)) {
            ch.rule = cat(ftype_info(ftype).name, " default");
        } else {
            if (t.manual_index >= 0) {
                ch.type = t.manual_type;
                ch.rule = cat("--tensor-type ", ov.tensor_types[static_cast<std::size_t>(t.manual_index)].pattern);
            } else if (ov.pure) {
                ch.rule = "--pure";
            } else {
                Mix mx = mixture(t, m, ftype, ov, def);
                ch.type = mx.type;
                ch.rule = std::move(mx.why);
            }
            const GgmlType fb = fallback_type(q, ch.type);
            if (fb != ch.type) {
                ch.rule += cat(", ne[0]=", dim(q, 0), " not a multiple of ", block_elems(ch.type), " (",
                               tname(ch.type), ") -> fallback");
                ch.fallback = true;
                ch.type = fb;
            }
        }
    }
    ch.rule += cat(" -> ", tname(ch.type));
    ch.requires_imatrix = requires_imatrix(q.name, ch.type, ftype);
    return ch;
}

std::vector<Choice> choose_types(const std::vector<QuantTensor>& tensors, const ModelFacts& m, FType ftype,
                                 const Overrides& ov, bool only_copy) {
    const auto facts = tensor_facts(tensors, m, ftype, ov, only_copy);
    std::vector<Choice> out;
    out.reserve(tensors.size());
    for (const auto& f : facts) out.push_back(choose_type(f, m, ftype, ov));
    return out;
}

}  // namespace shardforge::quant
