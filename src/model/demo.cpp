// `shardforge demo DIR`: writes a small deterministic Llama checkpoint (DIR/base) and a PEFT LoRA adapter for it
// (DIR/adapter). See model.hpp "demo model" for the file list.
#include "demo_internal.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
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

enum class Init { Normal, Norm, LoraA, LoraB, Mxfp4Blocks, Mxfp4Scales };

// FP8 storage of a Normal weight (DeepSeek-V3's quantization_config fp8): the F8_E4M3 codes, or the F32 grid of
// 128x128 block scales (weight_scale_inv) of the weight named `weight`.
enum class Fp8 { None, Codes, Scales };

struct DemoTensor {
    formats::StEntry entry;
    Init init = Init::Normal;
    double scale = 0.0;  // std (Normal, LoraB), half-width (LoraA), spread around 1 (Norm)
    Fp8 fp8 = Fp8::None;
    std::string weight;        // Fp8::Scales: the weight whose blocks these scales are
    core::Shape weight_shape;  // Fp8::Scales: its shape
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
constexpr std::int64_t fp8_block = 128;

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

// The stored bytes of one demo tensor.
std::vector<std::byte> tensor_bytes(const DemoTensor& t, std::uint64_t seed) {
    std::vector<std::byte> buf;
    if (t.fp8 != Fp8::None) {
        DemoTensor w = t;
        if (t.fp8 == Fp8::Scales) {
            w.entry.name = t.weight;
            w.entry.shape = t.weight_shape;
        }
        const Fp8Weight q = fp8_quantize(generate(w, seed), w.entry.shape);
        if (t.fp8 == Fp8::Codes) {
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

bool is_qwen35(DemoArch a) { return a == DemoArch::Qwen35 || a == DemoArch::Qwen35Moe; }
// gated delta-net + full attention layers: Qwen3.5 and Qwen3-Next
bool is_hybrid(DemoArch a) { return is_qwen35(a) || a == DemoArch::Qwen3Next; }
bool is_gemma4(DemoArch a) { return a == DemoArch::Gemma4 || a == DemoArch::Gemma4Moe; }

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
    need(!is_gemma4(o.arch) || o.vocab >= detail::demo_g4_min_vocab,
         core::cat("gemma4: vocab must be >= ", detail::demo_g4_min_vocab));
    need((o.arch != DemoArch::GptOss && o.arch != DemoArch::GptOssMxfp4) ||
             (o.hidden % 32 == 0 && (o.intermediate / 2) % 32 == 0),
         "gpt-oss: hidden and intermediate / 2 must be multiples of 32 (MXFP4 blocks)");
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
    const char* name;  // --arch spelling
    const char* model_type;
    const char* class_name;
    double rope_theta;
};
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
};

bool is_moe(DemoArch a) { return a == DemoArch::Mixtral || a == DemoArch::Qwen2Moe || a == DemoArch::Qwen3Moe; }
bool is_gemma(DemoArch a) { return a == DemoArch::Gemma || a == DemoArch::Gemma2 || a == DemoArch::Gemma3; }
bool has_qkv_bias(DemoArch a) { return a == DemoArch::Qwen2 || a == DemoArch::Qwen2Moe; }
bool has_qk_norm(DemoArch a) { return a == DemoArch::Qwen3 || a == DemoArch::Qwen3Moe || a == DemoArch::Gemma3; }
// Gemma and Gemma2 need a SentencePiece tokenizer.model in our converter (as upstream).
bool uses_sentencepiece(DemoArch a) { return a == DemoArch::Gemma || a == DemoArch::Gemma2; }
// Qwen2Moe's converter requires output.weight, so it is never tied.
// GLM-4.5's and DeepSeek-V3's checkpoints are never tied either.
bool tied(const DemoOptions& o) {
    return o.arch != DemoArch::Qwen2Moe && o.arch != DemoArch::Glm4Moe && o.arch != DemoArch::DeepSeek2 &&
           (o.tie_word_embeddings || is_gemma(o.arch) || is_gemma4(o.arch));
}
std::int64_t moe_ff(const DemoOptions& o) { return o.arch == DemoArch::Mixtral ? o.intermediate : o.intermediate / 2; }
constexpr int demo_sliding_window = 16;
// Mistral3's Pixtral vision tower: one small layer (its tensors are written, and skipped by the GGUF conversion).
constexpr int demo_vision_hidden = 64, demo_vision_intermediate = 128, demo_vision_heads = 4, demo_vision_patch = 4,
              demo_vision_image = 32;

// Qwen3.5: layer kinds and linear-attention sizes of the demo.
bool full_attention_layer(const DemoOptions& o, int l) { return !is_hybrid(o.arch) || (l + 1) % 4 == 0; }
struct LinearDims {
    std::int64_t n_k, n_v, head, key, value, conv;  // heads, head size, key/value/conv channel counts
};
LinearDims linear_dims(const DemoOptions& o) {
    const std::int64_t head = o.hidden / o.n_head, n_k = o.n_kv_head, n_v = 2 * o.n_kv_head;
    return {n_k, n_v, head, n_k * head, n_v * head, 2 * n_k * head + n_v * head};
}

// Gemma 4: layer kinds and sizes of the demo. Sliding and full layers alternate (the last is full); the layers from
// g4_first_shared on reuse the KV of the last unshared layer of their kind, which llama.cpp expects to be the two
// layers just before (src/llama-model.cpp's layer reuse for gemma4), and have the double-wide MLP.
constexpr int g4_sliding_window = 8, g4_per_layer = 32, g4_kv_full = 1;
bool g4_full(const DemoOptions& o, int l) { return l % 2 == 1 || l == o.n_layer - 1; }
// Gemma4Moe (the 26B-A4B layout): no KV sharing and no per-layer embeddings; every layer has the MoE block.
int g4_first_shared(const DemoOptions& o) {
    return o.arch == DemoArch::Gemma4 && o.n_layer >= 4 ? 2 * ((o.n_layer + 2) / 4) : o.n_layer;
}
int g4_per_layer_width(const DemoOptions& o) { return o.arch == DemoArch::Gemma4 ? g4_per_layer : 0; }
bool g4_shared(const DemoOptions& o, int l) { return l >= g4_first_shared(o); }
struct G4Layer {
    std::int64_t hd, kv, ff;  // head size, KV heads, MLP width
};
G4Layer g4_layer(const DemoOptions& o, int l) {
    const std::int64_t hd = o.hidden / o.n_head;
    return {g4_full(o, l) ? 2 * hd : hd, g4_full(o, l) ? g4_kv_full : o.n_kv_head,
            g4_shared(o, l) ? 2 * o.intermediate : o.intermediate};
}

const ArchRow& arch_row(DemoArch a) {
    for (const auto& r : arch_rows) {
        if (r.arch == a) return r;
    }
    core::fail_check("arch in arch_rows", __FILE__, __LINE__, "unknown DemoArch");
}

// Qwen3_5TextConfig's keys (transformers' configuration_qwen3_5.py) as a Hub config.json writes them, from the
// common ones.
std::string qwen35_config(const DemoOptions& o, const ojson& common) {
    const LinearDims d = linear_dims(o);
    const std::int64_t half_rot = o.hidden / o.n_head / 8;  // rotary pairs: a quarter of the head rotates
    ojson j;
    j["architectures"] = common["architectures"];
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = common["bos_token_id"];
    j["eos_token_id"] = common["eos_token_id"];
    j["full_attention_interval"] = 4;
    j["head_dim"] = common["head_dim"];
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l)
        j["layer_types"].push_back(full_attention_layer(o, l) ? "full_attention" : "linear_attention");
    j["linear_conv_kernel_dim"] = 4;
    j["linear_key_head_dim"] = d.head;
    j["linear_num_key_heads"] = d.n_k;
    j["linear_num_value_heads"] = d.n_v;
    j["linear_value_head_dim"] = d.head;
    j["max_position_embeddings"] = 2048;
    j["model_type"] = arch_row(o.arch).model_type;
    const bool moe = o.arch == DemoArch::Qwen35Moe;
    if (moe) j["moe_intermediate_size"] = moe_ff(o);
    j["mtp_num_hidden_layers"] = 1;
    j["mtp_use_dedicated_embeddings"] = false;
    j["num_attention_heads"] = o.n_head;
    if (moe) j["num_experts"] = o.n_expert;
    if (moe) j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["rms_norm_eps"] = 1e-06;
    j["rope_parameters"] = {{"mrope_interleaved", true},
                            {"mrope_section", ojson::array({half_rot - 2 * (half_rot / 3), half_rot / 3, half_rot / 3})},
                            {"partial_rotary_factor", 0.25},
                            {"rope_theta", 10000000},
                            {"rope_type", "default"}};
    if (moe) j["shared_expert_intermediate_size"] = o.intermediate;
    j["tie_word_embeddings"] = common["tie_word_embeddings"];
    j["torch_dtype"] = common["torch_dtype"];
    j["transformers_version"] = "4.57.0.dev0";
    j["use_cache"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// Glm4MoeConfig's keys (transformers' configuration_glm4_moe.py) as GLM-4.5's config.json writes them: GLM-4.5's
// q/k norms and routed scaling 2.5, one dense layer, one shared expert, one MTP layer.
std::string glm4moe_config(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({arch_row(o.arch).class_name});
    j["attention_bias"] = true;
    j["attention_dropout"] = 0.0;
    j["eos_token_id"] = ojson::array({tok.eos_id, tok.eot_id, tok.eot_id + 2});  // <|endoftext|> <|user|> <|observation|>
    j["first_k_dense_replace"] = 1;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["max_position_embeddings"] = 2048;
    j["model_type"] = arch_row(o.arch).model_type;
    j["moe_intermediate_size"] = moe_ff(o);
    j["n_group"] = 1;
    j["n_routed_experts"] = o.n_expert;
    j["n_shared_experts"] = 1;
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_nextn_predict_layers"] = 1;
    j["pad_token_id"] = tok.eos_id;
    j["partial_rotary_factor"] = 0.5;
    j["rms_norm_eps"] = 1e-05;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = arch_row(o.arch).rope_theta;
    j["routed_scaling_factor"] = 2.5;
    j["tie_word_embeddings"] = false;
    j["topk_group"] = 1;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.54.0";
    j["use_cache"] = true;
    j["use_qk_norm"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// DeepSeek-V3 (DeepseekV3ForCausalLM): MLA sizes and routing of the demo (see model.hpp).
struct Ds2Dims {
    std::int64_t q_lora = 192, kv_lora = 160, nope = 32, rope = 16, v = 32;
    std::int64_t n_expert, n_group, topk_group, top_k, moe;
};
Ds2Dims ds2_dims(const DemoOptions& o) {
    Ds2Dims d;
    d.n_expert = 2 * o.n_expert;  // groups of two experts
    d.n_group = o.n_expert;
    d.topk_group = std::max(1, o.n_expert / 2);
    d.top_k = std::min<std::int64_t>(o.n_expert_used + 1, 2 * d.topk_group);
    d.moe = o.intermediate / 2;
    return d;
}

// DeepseekV3Config's keys as DeepSeek-V3's config.json writes them (no auto_map: the converter does not run remote
// code for it).
std::string deepseek2_config(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    const Ds2Dims d = ds2_dims(o);
    ojson j;
    j["architectures"] = ojson::array({"DeepseekV3ForCausalLM"});
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = tok.bos_id;
    j["eos_token_id"] = tok.eos_id;
    j["ep_size"] = 1;
    j["first_k_dense_replace"] = 1;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["kv_lora_rank"] = d.kv_lora;
    j["max_position_embeddings"] = 163840;
    j["model_type"] = "deepseek_v3";
    j["moe_intermediate_size"] = d.moe;
    j["moe_layer_freq"] = 1;
    j["n_group"] = d.n_group;
    j["n_routed_experts"] = d.n_expert;
    j["n_shared_experts"] = 1;
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = d.top_k;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_head;
    j["num_nextn_predict_layers"] = 1;
    j["q_lora_rank"] = d.q_lora;
    j["qk_nope_head_dim"] = d.nope;
    j["qk_rope_head_dim"] = d.rope;
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", ojson::array({fp8_block, fp8_block})}};
    j["rms_norm_eps"] = 1e-06;
    j["rope_scaling"] = {{"beta_fast", 32},
                         {"beta_slow", 1},
                         {"factor", 40},
                         {"mscale", 1.0},
                         {"mscale_all_dim", 1.0},
                         {"original_max_position_embeddings", 4096},
                         {"type", "yarn"}};
    j["rope_theta"] = 10000;
    j["routed_scaling_factor"] = 2.5;
    j["scoring_func"] = "sigmoid";
    j["tie_word_embeddings"] = false;
    j["topk_group"] = d.topk_group;
    j["topk_method"] = "noaux_tc";
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.46.3";
    j["use_cache"] = true;
    j["v_head_dim"] = d.v;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// Qwen3NextConfig's keys (transformers' configuration_qwen3_next.py) as the Hub config.json of Qwen3-Next-80B-A3B writes
// them: rope_theta and partial_rotary_factor at the top level, full_attention_interval without layer_types, no
// mtp_num_hidden_layers (the checkpoint still holds the mtp.* block).
std::string qwen3next_config(const DemoOptions& o, const ojson& common) {
    const LinearDims d = linear_dims(o);
    ojson j;
    j["architectures"] = common["architectures"];
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["bos_token_id"] = common["bos_token_id"];
    j["decoder_sparse_step"] = 1;
    j["eos_token_id"] = common["eos_token_id"];
    j["full_attention_interval"] = 4;
    j["head_dim"] = common["head_dim"];
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["linear_conv_kernel_dim"] = 4;
    j["linear_key_head_dim"] = d.head;
    j["linear_num_key_heads"] = d.n_k;
    j["linear_num_value_heads"] = d.n_v;
    j["linear_value_head_dim"] = d.head;
    j["max_position_embeddings"] = 2048;
    j["mlp_only_layers"] = ojson::array();
    j["model_type"] = arch_row(o.arch).model_type;
    j["moe_intermediate_size"] = moe_ff(o);
    j["norm_topk_prob"] = true;
    j["num_attention_heads"] = o.n_head;
    j["num_experts"] = o.n_expert;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["output_router_logits"] = false;
    j["partial_rotary_factor"] = 0.25;
    j["rms_norm_eps"] = 1e-06;
    j["rope_scaling"] = nullptr;
    j["rope_theta"] = 10000000;
    j["router_aux_loss_coef"] = 0.001;
    j["shared_expert_intermediate_size"] = o.intermediate;
    j["tie_word_embeddings"] = common["tie_word_embeddings"];
    j["torch_dtype"] = common["torch_dtype"];
    j["transformers_version"] = "4.57.0.dev0";
    j["use_cache"] = true;
    j["use_sliding_window"] = false;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// GptOssConfig's keys (transformers' configuration_gpt_oss.py) as openai/gpt-oss-20b's config.json writes them:
// alternating sliding / full attention layers (sliding first), yarn rope over a 4096-token original context,
// experts of size intermediate / 2.
std::string gpt_oss_config(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    ojson j;
    j["architectures"] = ojson::array({"GptOssForCausalLM"});
    j["attention_bias"] = true;
    j["attention_dropout"] = 0.0;
    j["eos_token_id"] = tok.eos_id;
    j["experts_per_token"] = o.n_expert_used;
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_act"] = "silu";
    j["hidden_size"] = o.hidden;
    j["initial_context_length"] = 4096;
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = moe_ff(o);
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["layer_types"].push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
    j["max_position_embeddings"] = 131072;
    j["model_type"] = "gpt_oss";
    j["num_attention_heads"] = o.n_head;
    j["num_experts_per_tok"] = o.n_expert_used;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_local_experts"] = o.n_expert;
    j["output_router_logits"] = false;
    j["pad_token_id"] = tok.eos_id;
    if (o.arch == DemoArch::GptOssMxfp4)
        j["quantization_config"] = {{"modules_to_not_convert", ojson::array({"model.layers.*.self_attn",
                                                                            "model.layers.*.mlp.router",
                                                                            "model.embed_tokens", "lm_head"})},
                                    {"quant_method", "mxfp4"}};
    j["rms_norm_eps"] = 1e-05;
    j["rope_scaling"] = {{"beta_fast", 32.0},
                         {"beta_slow", 1.0},
                         {"factor", 32.0},
                         {"original_max_position_embeddings", 4096},
                         {"rope_type", "yarn"},
                         {"truncate", false}};
    j["rope_theta"] = arch_row(DemoArch::GptOss).rope_theta;
    j["router_aux_loss_coef"] = 0.9;
    j["sliding_window"] = demo_sliding_window;
    j["swiglu_limit"] = 7.0;
    j["tie_word_embeddings"] = false;
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.55.0.dev0";
    j["use_cache"] = true;
    j["vocab_size"] = o.vocab;
    return j.dump(2) + "\n";
}

// Gemma4TextConfig's keys (transformers' configuration_gemma4.py) as save_pretrained writes them.
std::string gemma4_config(const DemoOptions& o) {
    ojson j;
    j["architectures"] = ojson::array({"Gemma4ForCausalLM"});
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["attention_k_eq_v"] = true;
    j["bos_token_id"] = detail::demo_g4_bos_id;
    j["dtype"] = torch_dtype(o.dtype);
    const bool moe = o.arch == DemoArch::Gemma4Moe;
    j["enable_moe_block"] = moe;
    j["eos_token_id"] = detail::demo_g4_eos_id;
    j["final_logit_softcapping"] = 10.0;
    j["global_head_dim"] = 2 * (o.hidden / o.n_head);
    j["head_dim"] = o.hidden / o.n_head;
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["hidden_size"] = o.hidden;
    j["hidden_size_per_layer_input"] = g4_per_layer_width(o);
    j["initializer_range"] = 0.02;
    j["intermediate_size"] = o.intermediate;
    j["layer_types"] = ojson::array();
    for (int l = 0; l < o.n_layer; ++l) j["layer_types"].push_back(g4_full(o, l) ? "full_attention" : "sliding_attention");
    j["max_position_embeddings"] = 131072;
    j["model_type"] = "gemma4_text";
    j["moe_intermediate_size"] = moe ? ojson(moe_ff(o)) : ojson();
    j["num_attention_heads"] = o.n_head;
    j["num_experts"] = moe ? ojson(o.n_expert) : ojson();
    j["num_global_key_value_heads"] = g4_kv_full;
    j["num_hidden_layers"] = o.n_layer;
    j["num_key_value_heads"] = o.n_kv_head;
    j["num_kv_shared_layers"] = o.n_layer - g4_first_shared(o);
    j["pad_token_id"] = detail::demo_g4_pad_id;
    j["rms_norm_eps"] = 1e-06;
    j["rope_parameters"] = {
        {"full_attention", {{"partial_rotary_factor", 0.25}, {"rope_theta", 1000000.0}, {"rope_type", "proportional"}}},
        {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}};
    j["sliding_window"] = g4_sliding_window;
    j["tie_word_embeddings"] = true;
    j["top_k_experts"] = moe ? ojson(o.n_expert_used) : ojson();
    j["transformers_version"] = "5.5.0";
    j["use_bidirectional_attention"] = nullptr;
    j["use_cache"] = true;
    j["use_double_wide_mlp"] = !moe;
    j["vocab_size"] = o.vocab;
    j["vocab_size_per_layer_input"] = o.vocab;
    return j.dump(2) + "\n";
}

// A harmony-format chat template (openai/gpt-oss ships its template as chat_template.jinja): every message as
// <|start|>{role}<|message|>{content}<|end|>, the generation prompt <|start|>assistant.
constexpr const char* harmony_chat_template =
    "{#- harmony format, shortened for the demo -#}\n"
    "{%- for message in messages -%}\n"
    "{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}\n";


std::string config_json(const DemoOptions& o, const detail::DemoTokenizer& tok) {
    if (o.arch == DemoArch::Glm4Moe) return glm4moe_config(o, tok);
    if (o.arch == DemoArch::GptOss || o.arch == DemoArch::GptOssMxfp4) return gpt_oss_config(o, tok);
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
    if (a == DemoArch::DeepSeek2) return deepseek2_config(o, tok);
    return j.dump(2) + "\n";
}

// Mistral3ForConditionalGeneration (Mistral Small 3.1): transformers' Mistral3Config with a Mistral text config
// and a Pixtral vision config, keys as in the published config.json.
std::string mistral3_config_json(const DemoOptions& o) {
    const int hd = o.hidden / o.n_head;
    ojson text;
    text["attention_dropout"] = 0.0;
    text["head_dim"] = hd;
    text["hidden_act"] = "silu";
    text["hidden_size"] = o.hidden;
    text["initializer_range"] = 0.02;
    text["intermediate_size"] = o.intermediate;
    text["max_position_embeddings"] = 2048;
    text["model_type"] = "mistral";
    text["num_attention_heads"] = o.n_head;
    text["num_hidden_layers"] = o.n_layer;
    text["num_key_value_heads"] = o.n_kv_head;
    text["rms_norm_eps"] = 1e-05;
    text["rope_theta"] = arch_row(DemoArch::Mistral3).rope_theta;
    text["sliding_window"] = nullptr;
    text["tie_word_embeddings"] = tied(o);
    text["use_cache"] = true;
    text["vocab_size"] = o.vocab;
    ojson vision;
    vision["attention_dropout"] = 0.0;
    vision["head_dim"] = demo_vision_hidden / demo_vision_heads;
    vision["hidden_act"] = "silu";
    vision["hidden_size"] = demo_vision_hidden;
    vision["image_size"] = demo_vision_image;
    vision["initializer_range"] = 0.02;
    vision["intermediate_size"] = demo_vision_intermediate;
    vision["model_type"] = "pixtral";
    vision["num_attention_heads"] = demo_vision_heads;
    vision["num_channels"] = 3;
    vision["num_hidden_layers"] = 1;
    vision["patch_size"] = demo_vision_patch;
    vision["rope_theta"] = 10000.0;
    ojson j;
    j["architectures"] = ojson::array({"Mistral3ForConditionalGeneration"});
    j["image_token_index"] = 10;
    j["model_type"] = "mistral3";
    j["multimodal_projector_bias"] = false;
    j["projector_hidden_act"] = "gelu";
    j["spatial_merge_size"] = 2;
    j["text_config"] = std::move(text);
    j["torch_dtype"] = torch_dtype(o.dtype);
    j["transformers_version"] = "4.50.0.dev0";
    j["vision_config"] = std::move(vision);
    j["vision_feature_layer"] = -1;
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

// What PEFT targets for each family: the attention and MLP projections (for MoE: the attention).
struct LoraTarget {
    const char* name;
    std::string module;
    std::int64_t in, out;
};
// layer -1: every target name (adapter_config.json's target_modules); else the targets that layer has.
std::vector<LoraTarget> lora_targets(const DemoOptions& o, int layer = -1) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    if (is_qwen35(o.arch)) {
        const LinearDims d = linear_dims(o);
        std::vector<LoraTarget> t;
        if (layer < 0 || full_attention_layer(o, layer)) {
            t.insert(t.end(), {{"q_proj", "self_attn", h, 2 * q}, {"k_proj", "self_attn", h, kv},
                               {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}});
        }
        if (layer < 0 || !full_attention_layer(o, layer)) {
            t.insert(t.end(), {{"in_proj_qkv", "linear_attn", h, d.conv}, {"in_proj_z", "linear_attn", h, d.value},
                               {"in_proj_a", "linear_attn", h, d.n_v}, {"in_proj_b", "linear_attn", h, d.n_v},
                               {"out_proj", "linear_attn", d.value, h}});
        }
        const char* mlp = o.arch == DemoArch::Qwen35Moe ? "mlp.shared_expert" : "mlp";
        t.insert(t.end(), {{"gate_proj", mlp, h, ff}, {"up_proj", mlp, h, ff}, {"down_proj", mlp, ff, h}});
        return t;
    }
    if (o.arch == DemoArch::Glm4Moe) {
        // Every nn.Linear PEFT can wrap (the router is not one): attention; the dense layer's MLP, else the shared
        // expert and each routed expert (moe size). The MTP layer is not built by transformers, so never wrapped.
        std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                     {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
        auto mlp = [&](const std::string& module, std::int64_t n) {
            t.insert(t.end(), {{"gate_proj", module, h, n}, {"up_proj", module, h, n}, {"down_proj", module, n, h}});
        };
        if (layer <= 0) {
            mlp("mlp", ff);
        } else {
            mlp("mlp.shared_experts", moe_ff(o));
            for (int e = 0; e < o.n_expert; ++e) mlp(core::cat("mlp.experts.", e), moe_ff(o));
        }
        return t;
    }
    if (o.arch == DemoArch::Qwen3Next) {
        const LinearDims d = linear_dims(o);
        std::vector<LoraTarget> t;
        if (layer < 0 || full_attention_layer(o, layer)) {
            t.insert(t.end(), {{"q_proj", "self_attn", h, 2 * q}, {"k_proj", "self_attn", h, kv},
                               {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}});
        }
        if (layer < 0 || !full_attention_layer(o, layer)) {
            t.insert(t.end(), {{"in_proj_qkvz", "linear_attn", h, d.conv + d.value},
                               {"in_proj_ba", "linear_attn", h, 2 * d.n_v}, {"out_proj", "linear_attn", d.value, h}});
        }
        // PEFT matches the module names: gate_proj/up_proj/down_proj wrap the shared expert and every expert
        std::vector<std::string> mlps{"mlp.shared_expert"};
        for (int e = 0; layer >= 0 && e < o.n_expert; ++e) mlps.push_back(core::cat("mlp.experts.", e));
        for (const std::string& m : mlps) {
            const std::int64_t n = m == "mlp.shared_expert" ? ff : moe_ff(o);
            t.insert(t.end(), {{"gate_proj", m, h, n}, {"up_proj", m, h, n}, {"down_proj", m, n, h}});
        }
        return t;
    }
    if (is_gemma4(o.arch)) {
        const std::vector<LoraTarget> all = {{"q_proj", "self_attn", 0, 0}, {"k_proj", "self_attn", 0, 0},
                                             {"v_proj", "self_attn", 0, 0}, {"o_proj", "self_attn", 0, 0},
                                             {"gate_proj", "mlp", 0, 0}, {"up_proj", "mlp", 0, 0},
                                             {"down_proj", "mlp", 0, 0}, {"per_layer_input_gate", "", 0, 0},
                                             {"per_layer_projection", "", 0, 0}};
        if (layer < 0) return g4_per_layer_width(o) > 0 ? all : std::vector<LoraTarget>(all.begin(), all.end() - 2);
        const G4Layer g = g4_layer(o, layer);
        const std::int64_t qg = o.n_head * g.hd, kvg = g.kv * g.hd;
        std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, qg}};
        if (!g4_shared(o, layer)) t.push_back({"k_proj", "self_attn", h, kvg});
        if (!g4_shared(o, layer) && !g4_full(o, layer)) t.push_back({"v_proj", "self_attn", h, kvg});
        t.insert(t.end(), {{"o_proj", "self_attn", qg, h}, {"gate_proj", "mlp", h, g.ff}, {"up_proj", "mlp", h, g.ff},
                           {"down_proj", "mlp", g.ff, h}});
        if (g4_per_layer_width(o) > 0)
            t.insert(t.end(), {{"per_layer_input_gate", "", h, g4_per_layer}, {"per_layer_projection", "", g4_per_layer, h}});
        return t;
    }
    if (o.arch == DemoArch::DeepSeek2) {
        const Ds2Dims d = ds2_dims(o);
        const std::int64_t nh = o.n_head;
        std::vector<LoraTarget> t = {{"q_a_proj", "self_attn", h, d.q_lora},
                                     {"q_b_proj", "self_attn", d.q_lora, nh * (d.nope + d.rope)},
                                     {"kv_a_proj_with_mqa", "self_attn", h, d.kv_lora + d.rope},
                                     {"kv_b_proj", "self_attn", d.kv_lora, nh * (d.nope + d.v)},
                                     {"o_proj", "self_attn", nh * d.v, h}};
        // the dense layer's MLP and the MoE layers' shared expert
        const bool dense = layer == 0;
        if (layer < 0 || dense) {
            t.insert(t.end(), {{"gate_proj", "mlp", h, ff}, {"up_proj", "mlp", h, ff}, {"down_proj", "mlp", ff, h}});
        }
        if (layer < 0 || !dense) {
            t.insert(t.end(), {{"gate_proj", "mlp.shared_experts", h, d.moe}, {"up_proj", "mlp.shared_experts", h, d.moe},
                               {"down_proj", "mlp.shared_experts", d.moe, h}});
        }
        return t;
    }
    if (o.arch == DemoArch::Phi3) {
        return {{"qkv_proj", "self_attn", h, q + 2 * kv}, {"o_proj", "self_attn", q, h},
                {"gate_up_proj", "mlp", h, 2 * ff}, {"down_proj", "mlp", ff, h}};
    }
    std::vector<LoraTarget> t = {{"q_proj", "self_attn", h, q}, {"k_proj", "self_attn", h, kv},
                                 {"v_proj", "self_attn", h, kv}, {"o_proj", "self_attn", q, h}};
    if (!is_moe(o.arch) && o.arch != DemoArch::GptOss && o.arch != DemoArch::GptOssMxfp4) {
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
        // A regex (PEFT: full match on the module name): the names alone would also wrap the Pixtral tower's
        // attention and feed-forward projections.
        j["target_modules"] = R"(.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj))";
    } else if (o.arch == DemoArch::DeepSeek2) {
        // the MLA projections, the dense MLP and the shared experts; not the routed experts (mlp.experts.N.*)
        j["target_modules"] = R"(.*\.(self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)|)"
                              R"(mlp\.(shared_experts\.)?(gate_proj|up_proj|down_proj)))";
    } else {
        j["target_modules"] = ojson::array();
        for (const LoraTarget& t : lora_targets(o)) j["target_modules"].push_back(t.name);
    }
    j["task_type"] = "CAUSAL_LM";
    j["use_dora"] = false;
    j["use_rslora"] = false;
    return j.dump(2) + "\n";
}

// Qwen3.5 and Qwen3-Next after the embedding: decoder layers, final norm, lm_head, then the MTP block (mtp.*).
// Zero-centred RMSNorm weights (Qwen3_5RMSNorm: 1 + w) are small values around 0; the gated norm of the linear
// layers (Qwen3_5RMSNormGated: w) is around 1. Qwen3-Next (transformers' modeling_qwen3_next) stores per-expert MoE
// tensors in every layer (the MTP block's too) and the fused in_proj_qkvz / in_proj_ba.
template <class Add>
void qwen35_tensors(const DemoOptions& o, Add&& add) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd, m = moe_ff(o), e = o.n_expert;
    const LinearDims d = linear_dims(o);
    const bool next = o.arch == DemoArch::Qwen3Next;
    auto full_attention = [&](const std::string& p) {
        add(p + "self_attn.k_norm.weight", {hd}, Init::Normal, 0.2);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {hd}, Init::Normal, 0.2);
        add(p + "self_attn.q_proj.weight", {2 * q, h}, Init::Normal, 0.02);  // query | gate per head
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    };
    auto mlp_and_norms = [&](const std::string& p) {
        add(p + "input_layernorm.weight", {h}, Init::Normal, 0.05);
        if (next) {
            for (int x = 0; x < e; ++x) {
                const std::string ep = core::cat(p, "mlp.experts.", x, ".");
                add(ep + "down_proj.weight", {h, m}, Init::Normal, 0.02);
                add(ep + "gate_proj.weight", {m, h}, Init::Normal, 0.02);
                add(ep + "up_proj.weight", {m, h}, Init::Normal, 0.02);
            }
        } else if (o.arch == DemoArch::Qwen35Moe) {
            add(p + "mlp.experts.down_proj", {e, h, m}, Init::Normal, 0.02);
            add(p + "mlp.experts.gate_up_proj", {e, 2 * m, h}, Init::Normal, 0.02);
        }
        if (next || o.arch == DemoArch::Qwen35Moe) {
            add(p + "mlp.gate.weight", {e, h}, Init::Normal, 0.1);  // router: a few units of logit
            add(p + "mlp.shared_expert.down_proj.weight", {h, ff}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert.up_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.shared_expert_gate.weight", {1, h}, Init::Normal, 0.1);
        } else {
            add(p + "mlp.down_proj.weight", {h, ff}, Init::Normal, 0.02);
            add(p + "mlp.gate_proj.weight", {ff, h}, Init::Normal, 0.02);
            add(p + "mlp.up_proj.weight", {ff, h}, Init::Normal, 0.02);
        }
        add(p + "post_attention_layernorm.weight", {h}, Init::Normal, 0.05);
    };
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        mlp_and_norms(p);
        if (full_attention_layer(o, l)) {
            full_attention(p);
            continue;
        }
        const std::string la = p + "linear_attn.";
        add(la + "A_log", {d.n_v}, Init::Normal, 1.0);    // log of the decay rate A
        add(la + "conv1d.weight", {d.conv, 1, 4}, Init::Normal, 0.3);
        add(la + "dt_bias", {d.n_v}, Init::Norm, 0.5);
        // std 0.15 for the q/k projection: with 0.05 some q/k vectors come out of the conv near zero, and their l2
        // norm magnifies f16 rounding of these weights into 0.03 of logit (measured with tests/reference/forward.py)
        if (next) {
            add(la + "in_proj_ba.weight", {2 * d.n_v, h}, Init::Normal, 0.05);           // [b, a] per K head
            add(la + "in_proj_qkvz.weight", {d.conv + d.value, h}, Init::Normal, 0.15);  // [q, k, v, z] per K head
        } else {
            add(la + "in_proj_a.weight", {d.n_v, h}, Init::Normal, 0.05);
            add(la + "in_proj_b.weight", {d.n_v, h}, Init::Normal, 0.05);
            add(la + "in_proj_qkv.weight", {d.conv, h}, Init::Normal, 0.15);
            add(la + "in_proj_z.weight", {d.value, h}, Init::Normal, 0.05);
        }
        add(la + "norm.weight", {d.head}, Init::Norm, 0.2);
        add(la + "out_proj.weight", {h, d.value}, Init::Normal, 0.02);
    }
    add("model.norm.weight", {h}, Init::Normal, 0.05);
    if (!tied(o)) add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    add("mtp.fc.weight", {h, 2 * h}, Init::Normal, 0.02);
    mlp_and_norms("mtp.layers.0.");
    full_attention("mtp.layers.0.");
    add("mtp.norm.weight", {h}, Init::Normal, 0.05);
    add("mtp.pre_fc_norm_embedding.weight", {h}, Init::Normal, 0.05);
    add("mtp.pre_fc_norm_hidden.weight", {h}, Init::Normal, 0.05);
}

// GLM-4.5 (Glm4MoeForCausalLM) after the embedding: decoder layers (layer 0 dense, the others MoE), the final norm,
// lm_head, then the MTP layer model.layers.{n_layer} as the Hub checkpoints ship it (a MoE decoder layer with
// eh_proj, enorm, hnorm, shared_head.norm/head and its own embed_tokens; transformers does not load it).
template <class Add>
void glm4moe_tensors(const DemoOptions& o, Add&& add) {
    const std::int64_t h = o.hidden, ff = o.intermediate, m = moe_ff(o), hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    auto mlp = [&](const std::string& p, std::int64_t n) {
        add(p + "down_proj.weight", {h, n}, Init::Normal, 0.02);
        add(p + "gate_proj.weight", {n, h}, Init::Normal, 0.02);
        add(p + "up_proj.weight", {n, h}, Init::Normal, 0.02);
    };
    auto layer = [&](int l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        if (l == 0) {
            mlp(p + "mlp.", ff);
        } else {
            for (int e = 0; e < o.n_expert; ++e) mlp(core::cat(p, "mlp.experts.", e, "."), m);
            add(p + "mlp.gate.weight", {o.n_expert, h}, Init::Normal, 0.1);  // router: a few units of logit
            // a float32 buffer in transformers (Glm4MoeTopkRouter), stored as F32; 0.1 reorders the sigmoid scores
            add(p + "mlp.gate.e_score_correction_bias", {o.n_expert}, Init::Normal, 0.1);
            mlp(p + "mlp.shared_experts.", m);
        }
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
        // Biases large enough (0.1) that dropping one is visible in the logits.
        add(p + "self_attn.k_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {hd}, Init::Norm, 0.2);
        add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    };
    for (int l = 0; l < o.n_layer; ++l) layer(l);
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
    const std::string p = core::cat("model.layers.", o.n_layer, ".");
    layer(o.n_layer);
    add(p + "eh_proj.weight", {h, 2 * h}, Init::Normal, 0.02);
    add(p + "embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02);
    add(p + "enorm.weight", {h}, Init::Norm, 0.05);
    add(p + "hnorm.weight", {h}, Init::Norm, 0.05);
    add(p + "shared_head.head.weight", {o.vocab, h}, Init::Normal, 0.02);
    add(p + "shared_head.norm.weight", {h}, Init::Norm, 0.05);
}

// DeepSeek-V3 after the embedding: n_layer decoder layers (layer 0 dense), the final norm and lm_head, then the MTP
// layer model.layers.{n_layer} (a MoE decoder layer plus enorm, hnorm, eh_proj, shared_head, embed_tokens). Every
// Linear weight is F8_E4M3 followed by its F32 weight_scale_inv; norms, router and embeddings in o.dtype,
// e_score_correction_bias F32.
void deepseek2_tensors(const DemoOptions& o, std::vector<DemoTensor>& ts) {
    const Ds2Dims d = ds2_dims(o);
    const std::int64_t h = o.hidden, nh = o.n_head;
    auto plain = [&](std::string name, core::Shape shape, Init init, double scale, core::DType dt) {
        ts.push_back({formats::StEntry{std::move(name), dt, std::move(shape)}, init, scale, Fp8::None, {}, {}});
    };
    auto fp8 = [&](const std::string& name, core::Shape shape, double std_) {
        const std::string w = name + ".weight";
        ts.push_back({formats::StEntry{w, core::DType::F8_E4M3, shape}, Init::Normal, std_, Fp8::Codes, {}, {}});
        const core::Shape grid{(shape[0] + fp8_block - 1) / fp8_block, (shape[1] + fp8_block - 1) / fp8_block};
        ts.push_back({formats::StEntry{name + ".weight_scale_inv", core::DType::F32, grid}, Init::Normal, std_,
                      Fp8::Scales, w, shape});
    };
    auto norm = [&](const std::string& name, std::int64_t n) { plain(name, {n}, Init::Norm, 0.05, o.dtype); };
    auto mlp = [&](const std::string& p, std::int64_t n_ff) {
        fp8(p + "gate_proj", {n_ff, h}, 0.05);
        fp8(p + "up_proj", {n_ff, h}, 0.05);
        fp8(p + "down_proj", {h, n_ff}, 0.05);
    };
    auto layer = [&](const std::string& p, bool dense) {
        const std::string a = p + "self_attn.";
        fp8(a + "q_a_proj", {d.q_lora, h}, 0.05);
        norm(a + "q_a_layernorm.weight", d.q_lora);
        fp8(a + "q_b_proj", {nh * (d.nope + d.rope), d.q_lora}, 0.08);
        fp8(a + "kv_a_proj_with_mqa", {d.kv_lora + d.rope, h}, 0.05);
        norm(a + "kv_a_layernorm.weight", d.kv_lora);
        fp8(a + "kv_b_proj", {nh * (d.nope + d.v), d.kv_lora}, 0.08);
        fp8(a + "o_proj", {h, nh * d.v}, 0.05);
        if (dense) {
            mlp(p + "mlp.", o.intermediate);
        } else {
            for (std::int64_t e = 0; e < d.n_expert; ++e) mlp(core::cat(p, "mlp.experts.", e, "."), d.moe);
            // router std 0.1 and a bias of a few hundredths: the group and expert choices are no near ties
            plain(p + "mlp.gate.weight", {d.n_expert, h}, Init::Normal, 0.1, o.dtype);
            plain(p + "mlp.gate.e_score_correction_bias", {d.n_expert}, Init::Normal, 0.05, core::DType::F32);
            mlp(p + "mlp.shared_experts.", d.moe);
        }
        norm(p + "input_layernorm.weight", h);
        norm(p + "post_attention_layernorm.weight", h);
    };
    for (int l = 0; l < o.n_layer; ++l) layer(core::cat("model.layers.", l, "."), l == 0);
    norm("model.norm.weight", h);
    plain("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
    const std::string m = core::cat("model.layers.", o.n_layer, ".");
    layer(m, false);
    plain(m + "embed_tokens.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
    norm(m + "enorm.weight", h);
    norm(m + "hnorm.weight", h);
    fp8(m + "eh_proj", {h, 2 * h}, 0.05);
    norm(m + "shared_head.norm.weight", h);
    plain(m + "shared_head.head.weight", {o.vocab, h}, Init::Normal, 0.02, o.dtype);
}

// GptOssForCausalLM after the embedding, as transformers' modeling_gpt_oss.py names and shapes its parameters (the
// 16-bit layout: GptOssExperts keeps gate_up_proj [E, hidden, 2 * ff] with gate and up interleaved in the last dim,
// down_proj [E, ff, hidden], and their biases); attention with biases and per-head sinks, router with a bias.
template <class Add, class AddU8>
void gpt_oss_tensors(const DemoOptions& o, Add&& add, AddU8&& add_u8) {
    const std::int64_t h = o.hidden, ff = moe_ff(o), hd = o.hidden / o.n_head, e = o.n_expert;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        add(p + "input_layernorm.weight", {h}, Init::Norm, 0.05);
        if (o.arch == DemoArch::GptOssMxfp4) {  // [E, out, in / 32, 16] blocks, [E, out, in / 32] scales
            add_u8(p + "mlp.experts.down_proj_blocks", {e, h, ff / 32, 16}, Init::Mxfp4Blocks);
            add(p + "mlp.experts.down_proj_bias", {e, h}, Init::Normal, 0.1);
            add_u8(p + "mlp.experts.down_proj_scales", {e, h, ff / 32}, Init::Mxfp4Scales);
            add_u8(p + "mlp.experts.gate_up_proj_blocks", {e, 2 * ff, h / 32, 16}, Init::Mxfp4Blocks);
            add(p + "mlp.experts.gate_up_proj_bias", {e, 2 * ff}, Init::Normal, 0.1);
            add_u8(p + "mlp.experts.gate_up_proj_scales", {e, 2 * ff, h / 32}, Init::Mxfp4Scales);
        } else {
            add(p + "mlp.experts.down_proj", {e, ff, h}, Init::Normal, 0.02);
            add(p + "mlp.experts.down_proj_bias", {e, h}, Init::Normal, 0.1);
            add(p + "mlp.experts.gate_up_proj", {e, h, 2 * ff}, Init::Normal, 0.05);
            add(p + "mlp.experts.gate_up_proj_bias", {e, 2 * ff}, Init::Normal, 0.1);
        }
        add(p + "mlp.router.bias", {e}, Init::Normal, 0.1);
        add(p + "mlp.router.weight", {e, h}, Init::Normal, 0.1);  // routing logits of a few units
        add(p + "post_attention_layernorm.weight", {h}, Init::Norm, 0.05);
        // Biases large enough (0.1) that dropping one is visible in the logits; sinks of about one logit.
        add(p + "self_attn.k_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.k_proj.weight", {kv, h}, Init::Normal, 0.02);
        add(p + "self_attn.o_proj.bias", {h}, Init::Normal, 0.1);
        add(p + "self_attn.o_proj.weight", {h, q}, Init::Normal, 0.02);
        add(p + "self_attn.q_proj.bias", {q}, Init::Normal, 0.1);
        add(p + "self_attn.q_proj.weight", {q, h}, Init::Normal, 0.02);
        add(p + "self_attn.sinks", {o.n_head}, Init::Normal, 1.0);
        add(p + "self_attn.v_proj.bias", {kv}, Init::Normal, 0.1);
        add(p + "self_attn.v_proj.weight", {kv, h}, Init::Normal, 0.02);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    add("lm_head.weight", {o.vocab, h}, Init::Normal, 0.02);
}

// Mistral3ForConditionalGeneration as its checkpoints store it (the names before transformers 4.52's
// _checkpoint_conversion_mapping): the Pixtral tower "vision_tower.*", the projector "multi_modal_projector.*", then
// the text model under "language_model.model.*" and "language_model.lm_head.weight"; state-dict order.
std::vector<DemoTensor> mistral3_layout(std::vector<DemoTensor> text, const DemoOptions& o) {
    const std::int64_t vh = demo_vision_hidden, vi = demo_vision_intermediate, p = demo_vision_patch;
    std::vector<DemoTensor> ts;
    auto add = [&](std::string name, core::Shape shape, Init init, double scale) {
        ts.push_back({formats::StEntry{std::move(name), o.dtype, std::move(shape)}, init, scale, Fp8::None, {}, {}});
    };
    add("vision_tower.patch_conv.weight", {vh, 3, p, p}, Init::Normal, 0.02);
    add("vision_tower.ln_pre.weight", {vh}, Init::Norm, 0.05);
    const std::string l = "vision_tower.transformer.layers.0.";
    add(l + "attention_norm.weight", {vh}, Init::Norm, 0.05);
    add(l + "feed_forward.gate_proj.weight", {vi, vh}, Init::Normal, 0.02);
    add(l + "feed_forward.up_proj.weight", {vi, vh}, Init::Normal, 0.02);
    add(l + "feed_forward.down_proj.weight", {vh, vi}, Init::Normal, 0.02);
    for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"})
        add(core::cat(l, "attention.", w, ".weight"), {vh, vh}, Init::Normal, 0.02);
    add(l + "ffn_norm.weight", {vh}, Init::Norm, 0.05);
    add("multi_modal_projector.norm.weight", {vh}, Init::Norm, 0.05);
    add("multi_modal_projector.patch_merger.merging_layer.weight", {vh, vh * 4}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_1.weight", {o.hidden, vh}, Init::Normal, 0.02);
    add("multi_modal_projector.linear_2.weight", {o.hidden, o.hidden}, Init::Normal, 0.02);
    for (DemoTensor& t : text) {
        std::string& n = t.entry.name;
        n = n == "lm_head.weight" ? "language_model.lm_head.weight" : "language_model." + n;
        ts.push_back(std::move(t));
    }
    return ts;
}

// Gemma 4 after the embedding: decoder layers (no k/v projections or k_norm in KV-shared layers, no v_proj in
// full-attention layers: keys are the values), final norm, then the per-layer embedding parts. Gemma4RMSNorm uses
// its weight as is: norms around 1.
template <class Add>
void gemma4_tensors(const DemoOptions& o, Add&& add) {
    const std::int64_t h = o.hidden, ple = g4_per_layer_width(o);
    for (int l = 0; l < o.n_layer; ++l) {
        const std::string p = core::cat("model.layers.", l, ".");
        const G4Layer g = g4_layer(o, l);
        add(p + "layer_scalar", {1}, Init::Norm, 0.3);
        add(p + "self_attn.q_proj.weight", {o.n_head * g.hd, h}, Init::Normal, 0.02);
        add(p + "self_attn.q_norm.weight", {g.hd}, Init::Norm, 0.2);
        if (!g4_shared(o, l)) {
            add(p + "self_attn.k_norm.weight", {g.hd}, Init::Norm, 0.2);
            add(p + "self_attn.k_proj.weight", {g.kv * g.hd, h}, Init::Normal, 0.02);
            if (!g4_full(o, l)) add(p + "self_attn.v_proj.weight", {g.kv * g.hd, h}, Init::Normal, 0.02);
        }
        add(p + "self_attn.o_proj.weight", {h, o.n_head * g.hd}, Init::Normal, 0.02);
        add(p + "mlp.gate_proj.weight", {g.ff, h}, Init::Normal, 0.02);
        add(p + "mlp.up_proj.weight", {g.ff, h}, Init::Normal, 0.02);
        add(p + "mlp.down_proj.weight", {h, g.ff}, Init::Normal, 0.02);
        for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                              "post_feedforward_layernorm"})
            add(core::cat(p, n, ".weight"), {h}, Init::Norm, 0.05);
        if (o.arch == DemoArch::Gemma4Moe) {  // transformers' Gemma4TextRouter and Gemma4TextExperts
            const std::int64_t e = o.n_expert, m = moe_ff(o);
            add(p + "experts.down_proj", {e, h, m}, Init::Normal, 0.02);
            add(p + "experts.gate_up_proj", {e, 2 * m, h}, Init::Normal, 0.02);
            add(p + "post_feedforward_layernorm_1.weight", {h}, Init::Norm, 0.05);
            add(p + "post_feedforward_layernorm_2.weight", {h}, Init::Norm, 0.05);
            add(p + "pre_feedforward_layernorm_2.weight", {h}, Init::Norm, 0.05);
            add(p + "router.per_expert_scale", {e}, Init::Norm, 0.3);
            add(p + "router.proj.weight", {e, h}, Init::Normal, 0.1);  // routing logits of a few units
            add(p + "router.scale", {h}, Init::Norm, 0.05);
        }
        if (ple == 0) continue;
        add(p + "per_layer_input_gate.weight", {ple, h}, Init::Normal, 0.05);
        add(p + "per_layer_projection.weight", {h, ple}, Init::Normal, 0.05);
        add(p + "post_per_layer_input_norm.weight", {h}, Init::Norm, 0.05);
    }
    add("model.norm.weight", {h}, Init::Norm, 0.05);
    if (ple == 0) return;
    add("model.embed_tokens_per_layer.weight", {o.vocab, o.n_layer * ple}, Init::Normal, 0.05);
    add("model.per_layer_model_projection.weight", {o.n_layer * ple, h}, Init::Normal, 0.05);
    add("model.per_layer_projection_norm.weight", {ple}, Init::Norm, 0.05);
}

// Base tensors in transformers' state-dict order (which is also the sharding order).
std::vector<DemoTensor> base_tensors(const DemoOptions& o) {
    const std::int64_t h = o.hidden, ff = o.intermediate, hd = o.hidden / o.n_head;
    const std::int64_t q = o.n_head * hd, kv = o.n_kv_head * hd;
    std::vector<DemoTensor> ts;
    auto add = [&](std::string name, core::Shape shape, Init init, double scale) {
        ts.push_back({formats::StEntry{std::move(name), o.dtype, std::move(shape)}, init, scale, Fp8::None, {}, {}});
    };
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
    if (is_qwen35(a)) {
        qwen35_tensors(o, add);
        return ts;
    }
    if (a == DemoArch::Glm4Moe) {
        glm4moe_tensors(o, [&](std::string name, core::Shape shape, Init init, double scale) {
            const bool f32 = name.ends_with("e_score_correction_bias");
            ts.push_back({formats::StEntry{std::move(name), f32 ? core::DType::F32 : o.dtype, std::move(shape)}, init, scale,
                          Fp8::None, {}, {}});
        });
        return ts;
    }
    if (a == DemoArch::Qwen3Next) {
        qwen35_tensors(o, add);
        return ts;
    }
    if (is_gemma4(a)) {
        gemma4_tensors(o, add);
        return ts;
    }
    if (a == DemoArch::DeepSeek2) {
        deepseek2_tensors(o, ts);
        return ts;
    }
    if (a == DemoArch::GptOss || a == DemoArch::GptOssMxfp4) {
        gpt_oss_tensors(o, add, [&](std::string name, core::Shape shape, Init init) {
            ts.push_back({formats::StEntry{std::move(name), core::DType::U8, std::move(shape)}, init, 0.0, Fp8::None, {}, {}});
        });
        return ts;
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
    if (a == DemoArch::Mistral3) return mistral3_layout(std::move(ts), o);
    return ts;
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
            const std::string p = core::cat("base_model.model.model.", o.arch == DemoArch::Mistral3 ? "language_model." : "",
                                            "layers.", l, ".", module, t.name, ".");
            ts.push_back({formats::StEntry{p + "lora_A.weight", core::DType::F32, {r, t.in}}, Init::LoraA,
                          1.0 / std::sqrt(static_cast<double>(t.in)), Fp8::None, {}, {}});
            ts.push_back({formats::StEntry{p + "lora_B.weight", core::DType::F32, {t.out, r}}, Init::LoraB, 0.02, Fp8::None, {}, {}});
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
        if (opt.arch == DemoArch::GptOss || opt.arch == DemoArch::GptOssMxfp4) {  // its own file, as openai/gpt-oss
            ojson j = ojson::parse(cfg);
            j.erase("chat_template");
            cfg = j.dump(2) + "\n";
            write_text(base_dir / "chat_template.jinja", harmony_chat_template);
        }
        write_text(base_dir / "tokenizer_config.json", cfg);
        write_text(base_dir / "special_tokens_map.json", detail::demo_special_tokens_map_json(tok));
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
