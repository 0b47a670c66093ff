// `shardforge demo DIR`: writes a small deterministic Llama checkpoint (DIR/base) and a PEFT LoRA adapter for it
// (DIR/adapter). See model.hpp "demo model" for the file list. The common decoder families live here; the newer
// families' configs, tensors and LoRA targets in demo_<family>.cpp (demo_family.hpp).
#include "demo_family.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <utility>

namespace shardforge::model {

namespace detail {

std::string torch_dtype(core::DType t) {
    switch (t) {
    case core::DType::BF16: return "bfloat16";
    case core::DType::F16: return "float16";
    default: return "float32";
    }
}

constexpr ArchRow arch_rows[] = {
    {DemoArch::Llama, "llama", "llama", "LlamaForCausalLM", 10000.0},
    {DemoArch::Mistral, "mistral", "mistral", "MistralForCausalLM", 10000.0},
    {DemoArch::Qwen2, "qwen2", "qwen2", "Qwen2ForCausalLM", 1000000.0},
    {DemoArch::Qwen3, "qwen3", "qwen3", "Qwen3ForCausalLM", 1000000.0},
    {DemoArch::Llama3, "llama3", "llama", "LlamaForCausalLM", 500000.0},
    {DemoArch::Mixtral, "mixtral", "mixtral", "MixtralForCausalLM", 1000000.0},
    {DemoArch::Qwen2Moe, "qwen2moe", "qwen2_moe", "Qwen2MoeForCausalLM", 1000000.0},
    {DemoArch::Qwen3Moe, "qwen3moe", "qwen3_moe", "Qwen3MoeForCausalLM", 1000000.0},
    {DemoArch::Gemma, "gemma", "gemma", "GemmaForCausalLM", 10000.0},
    {DemoArch::Gemma2, "gemma2", "gemma2", "Gemma2ForCausalLM", 10000.0},
    {DemoArch::Gemma3, "gemma3", "gemma3_text", "Gemma3ForCausalLM", 1000000.0},
    {DemoArch::Phi3, "phi3", "phi3", "Phi3ForCausalLM", 10000.0},
    {DemoArch::Qwen35, "qwen35", "qwen3_5_text", "Qwen3_5ForCausalLM", 10000000.0},
    {DemoArch::Qwen35Moe, "qwen35moe", "qwen3_5_moe_text", "Qwen3_5MoeForCausalLM", 10000000.0},
    // model_type of the text config; the top-level config is "mistral3" (mistral3_config_json)
    {DemoArch::Mistral3, "mistral3", "mistral", "Mistral3ForConditionalGeneration", 1000000000.0},
    {DemoArch::Ministral3, "ministral3", "ministral3", "Ministral3ForCausalLM", 1000000.0},
    {DemoArch::Glm4Moe, "glm4moe", "glm4_moe", "Glm4MoeForCausalLM", 1000000.0},
    {DemoArch::Qwen3Next, "qwen3next", "qwen3_next", "Qwen3NextForCausalLM", 10000000.0},
    {DemoArch::Gemma4, "gemma4", "gemma4_text", "Gemma4ForCausalLM", 1000000.0},
    {DemoArch::Gemma4Moe, "gemma4moe", "gemma4_text", "Gemma4ForCausalLM", 1000000.0},
    {DemoArch::DeepSeek2, "deepseek2", "deepseek_v3", "DeepseekV3ForCausalLM", 10000.0},
    {DemoArch::GptOss, "gpt-oss", "gpt_oss", "GptOssForCausalLM", 150000.0},
    {DemoArch::GptOssMxfp4, "gpt-oss-mxfp4", "gpt_oss", "GptOssForCausalLM", 150000.0},
    {DemoArch::KimiK2Int4, "kimi-k2-int4", "kimi_k2", "DeepseekV3ForCausalLM", 10000.0},
    {DemoArch::MiniMaxM2, "minimax-m2", "minimax_m2", "MiniMaxM2ForCausalLM", 5000000.0},
    // model_type of the text config; the top-level config is "llama4" (llama4_config)
    {DemoArch::Llama4, "llama4", "llama4_text", "Llama4ForConditionalGeneration", 500000.0},
    // model_type of the text config; the top-level config is "gemma3" (gemma3vl_config)
    {DemoArch::Gemma3Vl, "gemma3-vl", "gemma3_text", "Gemma3ForConditionalGeneration", 1000000.0},
    // model_type of the text config; the top-level config is "gemma3n" (gemma3n_config)
    {DemoArch::Gemma3n, "gemma3n", "gemma3n_text", "Gemma3nForConditionalGeneration", 1000000.0},
};

const ArchRow& arch_row(DemoArch a) {
    for (const auto& r : arch_rows) {
        if (r.arch == a) return r;
    }
    core::fail_check("arch in arch_rows", __FILE__, __LINE__, "unknown DemoArch");
}

}  // namespace detail

namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): the demo's private vocabulary
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


std::vector<float> generate(const DemoTensor& t, std::uint64_t seed) {
    Rng rng = rng_for(seed, t.entry.name);
    std::vector<float> v(static_cast<std::size_t>(core::numel(t.entry.shape)));
    for (float& x : v) {
        switch (t.init) {
        case Init::Normal:
        case Init::LoraB: x = static_cast<float>(t.scale * rng.normal()); break;
        case Init::Norm: x = static_cast<float>(1.0 + t.scale * (2.0 * rng.uniform() - 1.0)); break;
        case Init::LoraA: x = static_cast<float>(t.scale * (2.0 * rng.uniform() - 1.0)); break;
        case Init::Mxfp4Scales:  // E8M0 exponents around 2^-7: values of about 0.01 .. 0.05
            x = static_cast<float>(118 + rng.next() % 4);
            break;
        case Init::Mxfp4Blocks: break;  // below: per 16-byte block
        }
    }
    if (t.init == Init::Mxfp4Blocks) {
        // Two FP4 codes a byte; a third of the 32-value blocks use only magnitudes up to 1.5 (codes 0..3), whose
        // scale ggml's quantizer would choose differently.
        for (std::size_t b = 0; b < v.size() / 16; ++b) {
            const unsigned top = rng.next() % 3 == 0 ? 4 : 8;
            for (std::size_t j = 0; j < 16; ++j) {
                const std::uint64_t r = rng.next();
                const unsigned lo = static_cast<unsigned>(r % top) | ((r >> 8) & 1 ? 8u : 0u);
                const unsigned hi = static_cast<unsigned>((r >> 16) % top) | ((r >> 24) & 1 ? 8u : 0u);
                v[b * 16 + j] = static_cast<float>(lo | (hi << 4));
            }
        }
    }
    return v;
}

// ---------------------------------------------------------------- FP8 (e4m3fn) with 128x128 block scales
// Per block: scale = amax / 448 (e4m3fn's largest finite value), code = the e4m3fn value nearest to w / scale (the
// lower code on a tie). Exact float arithmetic and comparisons only, so the bytes are the same everywhere.
struct Fp8Weight {
    std::vector<std::uint8_t> codes;
    std::vector<float> scales;  // [ceil(rows / 128), ceil(cols / 128)]
};
Fp8Weight fp8_quantize(const std::vector<float>& w, const core::Shape& shape) {
    const std::int64_t rows = shape.at(0), cols = shape.at(1);
    const std::int64_t br = (rows + fp8_block - 1) / fp8_block, bc = (cols + fp8_block - 1) / fp8_block;
    std::vector<std::pair<float, std::uint8_t>> table;  // finite non-negative codes by value
    for (unsigned c = 0; c < 0x7f; ++c) table.emplace_back(core::f8e4m3_to_f32(static_cast<std::uint8_t>(c)), c);
    std::sort(table.begin(), table.end());
    Fp8Weight out;
    out.codes.resize(w.size());
    out.scales.assign(static_cast<std::size_t>(br * bc), 1.0f);
    for (std::int64_t bi = 0; bi < br; ++bi)
        for (std::int64_t bj = 0; bj < bc; ++bj) {
            float amax = 0.0f;
            for (std::int64_t r = bi * fp8_block; r < std::min(rows, (bi + 1) * fp8_block); ++r)
                for (std::int64_t c = bj * fp8_block; c < std::min(cols, (bj + 1) * fp8_block); ++c)
                    amax = std::max(amax, std::fabs(w[static_cast<std::size_t>(r * cols + c)]));
            const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
            out.scales[static_cast<std::size_t>(bi * bc + bj)] = scale;
            for (std::int64_t r = bi * fp8_block; r < std::min(rows, (bi + 1) * fp8_block); ++r)
                for (std::int64_t c = bj * fp8_block; c < std::min(cols, (bj + 1) * fp8_block); ++c) {
                    const float x = w[static_cast<std::size_t>(r * cols + c)] / scale;
                    const float ax = std::min(std::fabs(x), 448.0f);
                    auto hi = std::lower_bound(table.begin(), table.end(), std::pair{ax, std::uint8_t{0}});
                    if (hi == table.end()) --hi;
                    auto pick = hi;
                    if (hi != table.begin()) {
                        const auto lo = hi - 1;
                        if (ax - lo->first <= hi->first - ax) pick = lo;
                    }
                    out.codes[static_cast<std::size_t>(r * cols + c)] =
                        static_cast<std::uint8_t>(pick->second | (x < 0.0f && pick->second != 0 ? 0x80u : 0u));
                }
        }
    return out;
}

// ---------------------------------------------------------------- INT4, compressed-tensors pack-quantized
// Per group of int4_group values of a row: scale = bf16(amax / 7), code = round-half-even(w / scale) clamped to
// [-8, 7], stored + 8 in 4 bits, eight codes a little-endian int32 word, the first in the lowest bits.
struct Int4Weight {
    std::vector<std::byte> words, scales;  // I32 [rows, cols / 8], BF16 [rows, cols / int4_group]
};
Int4Weight int4_quantize(const std::vector<float>& w, const core::Shape& shape) {
    const std::int64_t rows = shape.at(0), cols = shape.at(1), groups = cols / int4_group;
    Int4Weight out;
    std::vector<float> scale(static_cast<std::size_t>(rows * groups));
    for (std::int64_t g = 0; g < rows * groups; ++g) {
        float amax = 0.0f;
        for (std::int64_t j = 0; j < int4_group; ++j)
            amax = std::max(amax, std::fabs(w[static_cast<std::size_t>(g * int4_group + j)]));
        scale[static_cast<std::size_t>(g)] = amax > 0.0f ? amax / 7.0f : 1.0f;
    }
    out.scales.resize(scale.size() * 2);
    formats::from_f32(scale.data(), core::DType::BF16, out.scales.data(), scale.size());
    formats::to_f32(core::DType::BF16, out.scales.data(), scale.data(), scale.size());  // codes for the stored scale
    out.words.resize(static_cast<std::size_t>(rows * cols / 2));
    for (std::int64_t k = 0; k < rows * cols; ++k) {
        const float q = std::nearbyint(w[static_cast<std::size_t>(k)] / scale[static_cast<std::size_t>(k / int4_group)]);
        const auto code = static_cast<unsigned>(std::clamp(q, -8.0f, 7.0f) + 8.0f);
        out.words[static_cast<std::size_t>(k / 2)] |= static_cast<std::byte>(code << (4 * (k % 2)));
    }
    return out;
}

// The stored bytes of one demo tensor.
std::vector<std::byte> tensor_bytes(const DemoTensor& t, std::uint64_t seed) {
    std::vector<std::byte> buf;
    if (t.stored == Stored::Int4Packed || t.stored == Stored::Int4Scales || t.stored == Stored::Int4Shape) {
        if (t.stored == Stored::Int4Shape) {
            const std::int64_t dims[2] = {t.weight_shape.at(0), t.weight_shape.at(1)};
            buf.resize(sizeof dims);
            std::memcpy(buf.data(), dims, sizeof dims);  // little-endian hosts only, as the safetensors writer
            return buf;
        }
        DemoTensor w = t;
        w.entry.name = t.weight;
        w.entry.shape = t.weight_shape;
        Int4Weight q = int4_quantize(generate(w, seed), t.weight_shape);
        return t.stored == Stored::Int4Packed ? std::move(q.words) : std::move(q.scales);
    }
    if (t.stored != Stored::None) {
        DemoTensor w = t;
        if (t.stored == Stored::Fp8Scales) {
            w.entry.name = t.weight;
            w.entry.shape = t.weight_shape;
        }
        const Fp8Weight q = fp8_quantize(generate(w, seed), w.entry.shape);
        if (t.stored == Stored::Fp8Codes) {
            buf.resize(q.codes.size());
            std::memcpy(buf.data(), q.codes.data(), q.codes.size());
        } else {
            buf.resize(q.scales.size() * 4);
            formats::from_f32(q.scales.data(), core::DType::F32, buf.data(), q.scales.size());
        }
        return buf;
    }
    const std::vector<float> v = generate(t, seed);
    buf.resize(v.size() * core::dtype_size(t.entry.dtype));
    if (t.entry.dtype == core::DType::U8)  // MXFP4 blocks and scales: the generated bytes
        for (std::size_t i = 0; i < v.size(); ++i) buf[i] = static_cast<std::byte>(static_cast<unsigned>(v[i]));
    else
        formats::from_f32(v.data(), t.entry.dtype, buf.data(), v.size());
    return buf;
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
        buf = tensor_bytes(t, seed);
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
    const int n_specials = o.arch == DemoArch::Glm4Moe ? detail::demo_glm_n_specials : detail::demo_n_specials;
    need(o.vocab >= 256 + n_specials, core::cat("vocab must be >= ", 256 + n_specials));
    need(o.arch != DemoArch::Glm4Moe || (o.n_head >= 1 && (o.hidden / o.n_head) % 4 == 0),
         "glm4moe: hidden / n_head must be a multiple of 4 (half of it rotates, in pairs)");
    need(o.arch != DemoArch::Glm4Moe || o.n_layer >= 2, "glm4moe: n_layer must be >= 2 (a dense layer, then MoE)");
    need(o.arch != DemoArch::Glm4Moe || o.n_expert >= 2,
         "glm4moe: n_expert must be >= 2 (transformers' router scores its expert group by the two best)");
    need(o.arch != DemoArch::MiniMaxM2 || (o.n_head >= 1 && (o.hidden / o.n_head) % 4 == 0),
         "minimax-m2: hidden / n_head must be a multiple of 4 (half of it rotates, in pairs)");
    need(o.n_shards >= 1, "n_shards must be >= 1");
    need(o.dtype == core::DType::BF16 || o.dtype == core::DType::F16 || o.dtype == core::DType::F32,
         "dtype must be BF16, F16 or F32");
    need(o.lora_rank >= 1 && o.lora_alpha >= 1, "lora_rank and lora_alpha must be >= 1");
    need(o.n_expert >= 1 && o.n_expert_used >= 1 && o.n_expert_used <= o.n_expert,
         "need 1 <= n_expert_used <= n_expert");
    need(!is_hybrid(o.arch) || (o.n_head >= 1 && (o.hidden / o.n_head) % 8 == 0),
         "qwen35/qwen3next: hidden / n_head must be a multiple of 8 (a quarter of it rotates, in pairs)");
    need(!is_gemma4(o.arch) || (o.n_head >= 1 && (o.hidden / o.n_head) % 4 == 0),
         "gemma4: hidden / n_head must be a multiple of 4 (a quarter of the global head rotates, in pairs)");
    need(!is_gemma4(o.arch) || o.n_layer >= 2, "gemma4: n_layer must be >= 2 (a sliding and a full layer)");
    need(o.arch != DemoArch::Llama4 || o.n_layer >= 2, "llama4: n_layer must be >= 2 (a dense layer, then MoE)");
    need(!is_gemma4(o.arch) || o.vocab >= detail::demo_g4_min_vocab,
         core::cat("gemma4: vocab must be >= ", detail::demo_g4_min_vocab));
    need(!is_gpt_oss(o.arch) ||
             (o.hidden % 32 == 0 && (o.intermediate / 2) % 32 == 0),
         "gpt-oss: hidden and intermediate / 2 must be multiples of 32 (MXFP4 blocks)");
    need(o.arch != DemoArch::KimiK2Int4 || (o.hidden % int4_group == 0 && (o.intermediate / 2) % int4_group == 0),
         "kimi-k2-int4: hidden and intermediate / 2 must be multiples of 32 (INT4 groups)");
    if (!bad.empty()) throw core::Error(core::ErrorKind::Usage, "", "", "demo options: " + bad);
}


bool has_qkv_bias(DemoArch a) { return a == DemoArch::Qwen2 || a == DemoArch::Qwen2Moe; }
bool has_qk_norm(DemoArch a) { return a == DemoArch::Qwen3 || a == DemoArch::Qwen3Moe || a == DemoArch::Gemma3; }
// Gemma and Gemma2 need a SentencePiece tokenizer.model in our converter (as upstream).
bool uses_sentencepiece(DemoArch a) { return a == DemoArch::Gemma || a == DemoArch::Gemma2; }
// gemma3-vl's language model: the gemma3 demo's text model
DemoOptions gemma3_text(DemoOptions o) {
    o.arch = DemoArch::Gemma3;
    return o;
}





std::string config_json(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    if (o.arch == DemoArch::Gemma3Vl) return gemma3vl_config(o, config_json(gemma3_text(o), tok));
    if (o.arch == DemoArch::Glm4Moe) return glm4moe_config(o, tok);
    if (is_gpt_oss(o.arch)) return gpt_oss_config(o, tok);
    if (o.arch == DemoArch::MiniMaxM2) return minimax_m2_config(o, tok);
    if (o.arch == DemoArch::Llama4) return llama4_config(o, tok);
    if (o.arch == DemoArch::Gemma3n) return gemma3n_config(o, tok);
    const ArchRow& row = arch_row(o.arch);
    const DemoArch a = o.arch;
    const bool sp = uses_sentencepiece(a);
    const int hd = o.hidden / o.n_head;
    ojson j;
    j["architectures"] = ojson::array({row.class_name});
    j["attention_bias"] = has_qkv_bias(a);
    j["attention_dropout"] = 0.0;
    if (a == DemoArch::Gemma2) j["attn_logit_softcapping"] = 5.0;
    j["bos_token_id"] = sp ? detail::demo_sp_bos_id : tok.bos_id;
    if (is_moe(a) && a != DemoArch::Mixtral) {
        j["decoder_sparse_step"] = 1;
        j["mlp_only_layers"] = ojson::array();
    }
    j["eos_token_id"] = sp ? detail::demo_sp_eos_id : tok.eos_id;
    if (a == DemoArch::Gemma2) j["final_logit_softcapping"] = 3.0;
    j["head_dim"] = hd;
    if (is_gemma(a)) {
        j["hidden_act"] = "gelu_pytorch_tanh";
        j["hidden_activation"] = "gelu_pytorch_tanh";
    } else {
        j["hidden_act"] = "silu";
    }
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["max_position_embeddings"] = a == DemoArch::Llama3 ? 131072 : a == DemoArch::Phi3 ? 4096
                                   : a == DemoArch::Ministral3 ? 262144 : 2048;
    if (a == DemoArch::Qwen2 || a == DemoArch::Qwen3 || a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe)
        j["max_window_layers"] = o.n_layer;
    if (a == DemoArch::Llama || a == DemoArch::Llama3) j["mlp_bias"] = false;
    j["model_type"] = row.model_type;
    if (a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe) j["moe_intermediate_size"] = moe_ff(o);
    if (a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe) j["norm_topk_prob"] = a == DemoArch::Qwen3Moe;
    j["num_attention_heads"] = o.n_head;
    if (a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe) j["num_experts"] = o.n_expert;
    if (is_moe(a)) j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    if (a == DemoArch::Mixtral) j["num_local_experts"] = o.n_expert;
    if (a == DemoArch::Phi3) j["original_max_position_embeddings"] = 4096;
    if (sp) j["pad_token_id"] = detail::demo_sp_pad_id;
    if (a == DemoArch::Llama || a == DemoArch::Llama3) j["pretraining_tp"] = 1;
    // Gemma2/3: llama.cpp scales by 1/sqrt(head_dim) for every size but 27B, so the demo uses that value.
    if (a == DemoArch::Gemma2 || a == DemoArch::Gemma3) j["query_pre_attn_scalar"] = hd;
    j["rms_norm_eps"] = is_gemma(a) ? 1e-06 : 1e-05;
    if (a == DemoArch::Gemma3) j["rope_local_base_freq"] = 10000.0;
    if (a == DemoArch::Ministral3) {
        // Ministral3Config's default (transformers' configuration_ministral3.py): yarn over a 16k original context
        // with Llama 4's attention temperature scaling.
        j["rope_parameters"] = {{"beta_fast", 32.0},
                                {"beta_slow", 1.0},
                                {"factor", 16.0},
                                {"llama_4_scaling_beta", 0.1},
                                {"mscale", 1.0},
                                {"mscale_all_dim", 1.0},
                                {"original_max_position_embeddings", 16384},
                                {"rope_theta", row.rope_theta},
                                {"rope_type", "yarn"},
                                {"type", "yarn"}};
    } else if (a == DemoArch::Llama3) {
        j["rope_scaling"] = {{"factor", 8.0},
                             {"high_freq_factor", 4.0},
                             {"low_freq_factor", 1.0},
                             {"original_max_position_embeddings", 8192},
                             {"rope_type", "llama3"}};
    } else {
        j["rope_scaling"] = nullptr;
    }
    if (a != DemoArch::Ministral3) j["rope_theta"] = row.rope_theta;
    if (a == DemoArch::Qwen2Moe) j["shared_expert_intermediate_size"] = o.intermediate;
    if (a == DemoArch::Gemma2 || a == DemoArch::Gemma3) j["sliding_window"] = demo_sliding_window;
    else if (a == DemoArch::Phi3) j["sliding_window"] = 2047;
    else if (a != DemoArch::Llama && a != DemoArch::Llama3 && a != DemoArch::Gemma) j["sliding_window"] = nullptr;
    if (a == DemoArch::Ministral3) j.erase("rope_scaling");
    if (a == DemoArch::Gemma3) j["sliding_window_pattern"] = 6;
    j["tie_word_embeddings"] = tied(o);
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.44.0";
    j["use_cache"] = true;
    if (a == DemoArch::Qwen2 || a == DemoArch::Qwen3 || a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe)
        j["use_sliding_window"] = false;
    j["vocab_size"] = o.vocab;
    if (is_qwen35(a)) return qwen35_config(o, j);
    if (a == DemoArch::Qwen3Next) return qwen3next_config(o, j);
    if (is_gemma4(a)) return gemma4_config(o);
    if (is_deepseek2(a)) return deepseek2_config(o, tok);
    return j.dump(2) + "\n";
}


std::string generation_config_json(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    ojson j;
    j["_from_model_config"] = true;
    if (is_gemma4(o.arch)) {
        j["bos_token_id"] = detail::demo_g4_bos_id;
        j["eos_token_id"] = ojson::array({detail::demo_g4_eos_id, 6});  // <eos>, <turn|>
        j["pad_token_id"] = detail::demo_g4_pad_id;
    } else if (uses_sentencepiece(o.arch)) {
        j["bos_token_id"] = detail::demo_sp_bos_id;
        j["eos_token_id"] = detail::demo_sp_eos_id;
        j["pad_token_id"] = detail::demo_sp_pad_id;
    } else if (o.arch == DemoArch::Glm4Moe) {
        // GLM-4.5 has no BOS; [gMASK], which starts every prompt, stands in for the tests' first token
        j["bos_token_id"] = tok.bos_id;
        j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id, tok.eot_id + 2});
        j["pad_token_id"] = tok.eos_id;
    } else {
        j["bos_token_id"] = tok.bos_id;
        j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id});
    }
    j["transformers_version"] = "4.44.0";
    return j.dump(2) + "\n";
}

// layer -1: every target name (adapter_config.json's target_modules); else the targets that layer has.
std::vector<LoraTarget> lora_targets(const DemoOptions& o, int layer = -1) {
    if (is_qwen35(o.arch)) return qwen35_lora_targets(o, layer);
    if (o.arch == DemoArch::Glm4Moe) return glm4moe_lora_targets(o, layer);
    if (o.arch == DemoArch::Qwen3Next) return qwen3next_lora_targets(o, layer);
    if (is_gemma4(o.arch)) return gemma4_lora_targets(o, layer);
    if (is_deepseek2(o.arch)) return deepseek2_lora_targets(o, layer);
    if (o.arch == DemoArch::MiniMaxM2) return minimax_m2_lora_targets(o, layer);
    if (o.arch == DemoArch::Llama4) return llama4_lora_targets(o, layer);
    if (o.arch == DemoArch::Gemma3n) return gemma3n_lora_targets(o, layer);
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    if (o.arch == DemoArch::Phi3) {
        return {{"qkv_proj", "self_attn", h, q + 2 * kv}, {"o_proj", "self_attn", q, h},
                {"gate_up_proj", "mlp", h, 2 * ff}, {"down_proj", "mlp", ff, h}};
    }
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                 {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
    if (!is_moe(o.arch) && !is_gpt_oss(o.arch)) {
        t.push_back({"gate_proj", "mlp", h, ff});
        t.push_back({"up_proj", "mlp", h, ff});
        t.push_back({"down_proj", "mlp", ff, h});
    }
    return t;
}

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
    if (o.arch == DemoArch::Mistral3) {
        // PEFT's full match: the text model's projections, the Pixtral tower's (the same names) and the projector's
        j["target_modules"] = R"(.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|linear_1|linear_2|merging_layer))";
    } else if (o.arch == DemoArch::Llama4) {
        // A regex (PEFT: full match on the module name): the names alone would also wrap the vision tower's
        // projections.
        j["target_modules"] = R"(.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj))";
    } else if (o.arch == DemoArch::Gemma3n) {  // the same for the audio tower's q/k/v_proj
        j["target_modules"] = R"(.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|)"
                              R"(linear_left|linear_right|modality_router|prediction_coefs|correction_coefs|)"
                              R"(per_layer_input_gate|per_layer_projection))";
    } else if (is_deepseek2(o.arch)) {
        // the MLA projections, the dense MLP and the shared experts; not the routed experts (mlp.experts.N.*)
        j["target_modules"] = R"(.*\.(self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)|)"
                              R"(mlp\.(shared_experts\.)?(gate_proj|up_proj|down_proj)))";
    } else {
        j["target_modules"] = ojson::array();
        for (const LoraTarget& t : lora_targets(o)) j["target_modules"].push_back(t.name);
        if (o.arch == DemoArch::Gemma3Vl)  // the tower's own Linear names (its q/k/v_proj are already listed)
            for (const char* n : {"out_proj", "fc1", "fc2"}) j["target_modules"].push_back(n);
    }
    j["task_type"] = "CAUSAL_LM";
    j["use_dora"] = false;
    j["use_rslora"] = false;
    return j.dump(2) + "\n";
}


// Base tensors in transformers' state-dict order (which is also the sharding order).
std::vector<DemoTensor> base_tensors(const DemoOptions& o) {
    if (o.arch == DemoArch::Gemma3Vl) return gemma3vl_layout(base_tensors(gemma3_text(o)), o);
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    TensorList add{o.dtype, {}};
    const DemoArch a = o.arch;
    // Gemma stores norm weights as w and uses 1 + w: small values around 0 (others: around 1).
    auto norm = [&](const std::string& name, std::int64_t n, double spread) {
        if (is_gemma(a)) add(name, {n}, Init::Normal, spread);
        else add(name, {n}, Init::Norm, spread);
    };
    auto mlp = [&](const std::string& p, std::int64_t n_ff) {
        add(p + "down_proj.weight", {h, n_ff}, Init::Normal, 0.02);
        add(p + "gate_proj.weight", {n_ff, h}, Init::Normal, 0.02);
        add(p + "up_proj.weight", {n_ff, h}, Init::Normal, 0.02);
    };
    add("model.embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02);
    if (is_hybrid(a) || a == DemoArch::Glm4Moe || is_gemma4(a) || is_deepseek2(a) || is_gpt_oss(a) ||
        a == DemoArch::MiniMaxM2 || a == DemoArch::Llama4 || a == DemoArch::Gemma3n) {
        if (is_hybrid(a)) qwen35_tensors(o, add);
        if (a == DemoArch::Glm4Moe) glm4moe_tensors(o, add);
        if (is_gemma4(a)) gemma4_tensors(o, add);
        if (is_deepseek2(a)) deepseek2_tensors(o, add);
        if (is_gpt_oss(a)) gpt_oss_tensors(o, add);
        if (a == DemoArch::MiniMaxM2) minimax_m2_tensors(o, add);
        if (a == DemoArch::Llama4) llama4_tensors(o, add);
        if (a == DemoArch::Gemma3n) gemma3n_tensors(o, add);
        return std::move(add.ts);
    }
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        norm(p + "input_layernorm.weight", h, 0.05);
        if (a == DemoArch::Mixtral) {
            // Router std 0.1: routing logits of a few units, so the top-k choice is not a near tie.
            add(p + "block_sparse_moe.gate.weight", {o.n_expert, h}, Init::Normal, 0.1);
            for (int e = 0; e < o.n_expert; ++e) {
                const std::string ep = core::cat(p, "block_sparse_moe.experts.", e, ".");
                add(ep + "w1.weight", {ff, h}, Init::Normal, 0.02);
                add(ep + "w2.weight", {h, ff}, Init::Normal, 0.02);
                add(ep + "w3.weight", {ff, h}, Init::Normal, 0.02);
            }
        } else if (is_moe(a)) {
            for (int e = 0; e < o.n_expert; ++e) mlp(core::cat(p, "mlp.experts.", e, "."), moe_ff(o));
            add(p + "mlp.gate.weight", {o.n_expert, h}, Init::Normal, 0.1);
            if (a == DemoArch::Qwen2Moe) {
                mlp(p + "mlp.shared_expert.", ff);
                add(p + "mlp.shared_expert_gate.weight", {1, h}, Init::Normal, 0.1);
            }
        } else if (a == DemoArch::Phi3) {
            add(p + "mlp.down_proj.weight", {h, ff}, Init::Normal, 0.02);
            add(p + "mlp.gate_up_proj.weight", {2 * ff, h}, Init::Normal, 0.02);
        } else {
            mlp(p + "mlp.", ff);
        }
        norm(p + "post_attention_layernorm.weight", h, 0.05);
        if (a == DemoArch::Gemma2 || a == DemoArch::Gemma3) {
            norm(p + "post_feedforward_layernorm.weight", h, 0.05);
            norm(p + "pre_feedforward_layernorm.weight", h, 0.05);
        }
        const bool bias = has_qkv_bias(a), qk_norm = has_qk_norm(a);
        // Biases large enough (0.1) that dropping one is visible in the logits.
        if (bias) add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        if (a != DemoArch::Phi3) add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        if (qk_norm) norm(p + "self_attn.k_norm.weight", hd, 0.2);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        if (bias) add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        if (a == DemoArch::Phi3) add(p + "self_attn.qkv_proj.weight", {q + 2 * kv, h}, Init::Normal, 0.02);
        else add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        if (qk_norm) norm(p + "self_attn.q_norm.weight", hd, 0.2);
        if (bias) add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        if (a != DemoArch::Phi3) add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    }
    norm("model.norm.weight", h, 0.05);
    if (!tied(o)) add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    if (a == DemoArch::Mistral3) return mistral3_layout(std::move(add.ts), o);
    return std::move(add.ts);
}

// PEFT's factors: lora_A [r, in] like its kaiming-uniform init (bound 1/sqrt(in)), lora_B [out, r] random
// instead of PEFT's zeros so that merging visibly changes every target weight.
std::vector<DemoTensor> adapter_tensors(const DemoOptions& o) {
    const std::int64_t r = o.lora_rank;
    std::vector<DemoTensor> ts;
    for (int l = 0; l < o.n_layer; ++l) {
        for (const LoraTarget& t : lora_targets(o, l)) {
            // Mistral3: PEFT names the modules of the model it wraps (transformers >= 4.52: "model.language_model")
            const std::string module = t.module.empty() ? std::string() : core::cat(t.module, ".");
            const bool vl = o.arch == DemoArch::Mistral3 || o.arch == DemoArch::Llama4 ||
                            o.arch == DemoArch::Gemma3Vl || o.arch == DemoArch::Gemma3n;
            const std::string p = core::cat("base_model.model.model.", vl ? "language_model." : "",
                                            "layers.", l, ".", module, t.name, ".");
            ts.push_back({formats::StEntry{p + "lora_A.weight", core::DType::F32, {r, t.in}}, Init::LoraA,
                          1.0 / std::sqrt(static_cast<double>(t.in)), Stored::None, {}, {}});
            ts.push_back({formats::StEntry{p + "lora_B.weight", core::DType::F32, {t.out, r}}, Init::LoraB, 0.02, Stored::None, {}, {}});
        }
    }
    if (o.arch == DemoArch::Gemma3Vl) gemma3vl_vision_adapter_tensors(o, ts);
    if (o.arch == DemoArch::Mistral3) mistral3_vision_adapter_tensors(o, ts);
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
        if (r.arch == a) return r.name;
    }
    return "?";
}

bool parse_demo_arch(std::string_view s, DemoArch& out) noexcept {
    for (const auto& r : arch_rows) {
        if (s == r.name) {
            out = r.arch;
            return true;
        }
    }
    return false;
}

void write_demo(const fs::path& dir, const DemoOptions& opt) {
    check_options(opt);
    const detail::DemoTokenizer tok = detail::train_demo_tokenizer(opt.vocab, opt.arch == DemoArch::Glm4Moe);
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

    write_text(base_dir / "config.json", opt.arch == DemoArch::Mistral3 ? mistral3_config_json(opt) : config_json(opt, tok));
    write_text(base_dir / "generation_config.json", generation_config_json(opt, tok));
    if (is_gemma4(opt.arch)) {
        std::error_code ignored;
        fs::remove(base_dir / "tokenizer.model", ignored);
        const detail::Gemma4TokenizerFiles g4 = detail::demo_gemma4_tokenizer(tok, opt.vocab);
        write_text(base_dir / "tokenizer.json", g4.tokenizer_json);
        write_text(base_dir / "tokenizer_config.json", g4.tokenizer_config_json);
        write_text(base_dir / "special_tokens_map.json", g4.special_tokens_map_json);
    } else if (uses_sentencepiece(opt.arch)) {
        std::error_code ignored;
        fs::remove(base_dir / "tokenizer.json", ignored);  // a previous BPE variant's file would be preferred
        write_text(base_dir / "tokenizer.model", detail::demo_sentencepiece_model(tok, opt.vocab));
        ojson cfg, map;
        for (const auto& [key, piece] : {std::pair{"bos_token", "<bos>"}, std::pair{"eos_token", "<eos>"},
                                         std::pair{"pad_token", "<pad>"}, std::pair{"unk_token", "<unk>"}}) {
            cfg[key] = piece;
            map[key] = piece;
        }
        cfg["add_bos_token"] = true;
        cfg["add_eos_token"] = false;
        cfg["model_max_length"] = 2048;
        cfg["tokenizer_class"] = "GemmaTokenizer";
        write_text(base_dir / "tokenizer_config.json", cfg.dump(2) + "\n");
        write_text(base_dir / "special_tokens_map.json", map.dump(2) + "\n");
    } else {
        std::error_code ignored;
        fs::remove(base_dir / "tokenizer.model", ignored);
        write_text(base_dir / "tokenizer.json", detail::demo_tokenizer_json(tok));
        std::string cfg = detail::demo_tokenizer_config_json(tok);
        if (opt.arch == DemoArch::Phi3) {  // Phi-4 style: the converter then reads tokenizer.json
            ojson j = ojson::parse(cfg);
            j["tokenizer_class"] = "GPT2Tokenizer";
            cfg = j.dump(2) + "\n";
        }
        fs::remove(base_dir / "chat_template.jinja", ignored);
        if (is_gpt_oss(opt.arch)) {  // its own file, as openai/gpt-oss
            ojson j = ojson::parse(cfg);
            j.erase("chat_template");
            cfg = j.dump(2) + "\n";
            write_text(base_dir / "chat_template.jinja", harmony_chat_template);
        }
        if (opt.arch == DemoArch::Mistral3) cfg = mistral3_tokenizer_config(cfg);
        write_text(base_dir / "tokenizer_config.json", cfg);
        write_text(base_dir / "special_tokens_map.json", detail::demo_special_tokens_map_json(tok));
        fs::remove(base_dir / "chat_template.json", ignored);
        fs::remove(base_dir / "preprocessor_config.json", ignored);
        fs::remove(base_dir / "processor_config.json", ignored);
        if (opt.arch == DemoArch::Gemma3Vl) {  // the processor files of google/gemma-3-4b-it, and its chat_template.json
            write_text(base_dir / "preprocessor_config.json", gemma3vl_preprocessor_config());
            write_text(base_dir / "processor_config.json", gemma3vl_processor_config());
            ojson ct;
            ct["chat_template"] = ojson::parse(cfg).value("chat_template", std::string());
            write_text(base_dir / "chat_template.json", ct.dump(2) + "\n");
        }
        if (opt.arch == DemoArch::Mistral3) {  // Mistral Small 3.1's processor files
            write_text(base_dir / "preprocessor_config.json", mistral3_preprocessor_config());
            write_text(base_dir / "processor_config.json", mistral3_processor_config());
        }
    }

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
