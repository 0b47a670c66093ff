// HF -> GGUF tensor map: emulates convert_hf_to_gguf's tensor pass (llama.cpp's conversion/base.py prepare_tensors and the
// model classes' filter_tensors / modify_tensors / generate_extra_tensors) on names and shapes only.
#include "arch_detail.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <map>
#include <set>

namespace shardforge::model {
namespace detail {
namespace {

struct ArchRow {
    std::string_view hf;
    std::string_view gguf;
    Family family;
};
constexpr std::array<ArchRow, 27> arch_table{{
    {"LlamaForCausalLM", "llama", Family::Llama},
    {"MistralForCausalLM", "llama", Family::Llama},
    {"MixtralForCausalLM", "llama", Family::Llama},
    {"Qwen2ForCausalLM", "qwen2", Family::Qwen2},
    {"Qwen2MoeForCausalLM", "qwen2moe", Family::Qwen2Moe},
    {"Qwen3ForCausalLM", "qwen3", Family::Qwen3},
    {"Qwen3MoeForCausalLM", "qwen3moe", Family::Qwen3Moe},
    {"GemmaForCausalLM", "gemma", Family::Gemma},
    {"Gemma2ForCausalLM", "gemma2", Family::Gemma2},
    {"Gemma3ForCausalLM", "gemma3", Family::Gemma3},
    {"Gemma3ForConditionalGeneration", "gemma3", Family::Gemma3},
    {"Phi3ForCausalLM", "phi3", Family::Phi3},
    {"Qwen3_5ForCausalLM", "qwen35", Family::Qwen35},
    {"Qwen3_5ForConditionalGeneration", "qwen35", Family::Qwen35},
    {"Qwen3_5MoeForCausalLM", "qwen35moe", Family::Qwen35Moe},
    {"Qwen3_5MoeForConditionalGeneration", "qwen35moe", Family::Qwen35Moe},
    // llama.cpp's conversion/mistral3.py: the text model of Mistral Small 3.x / Devstral / Ministral 3 (model_type "mistral4"
    // is refused below: its DeepSeek-V2 conversion is not implemented)
    {"Mistral3ForConditionalGeneration", "mistral3", Family::Mistral3},
    {"Ministral3ForCausalLM", "mistral3", Family::Mistral3},
    // llama.cpp's conversion/glm.py Glm4MoeModel (the vision-language Glm4vMoeForConditionalGeneration is not ours)
    {"Glm4MoeForCausalLM", "glm4moe", Family::Glm4Moe},
    {"Qwen3NextForCausalLM", "qwen3next", Family::Qwen3Next},
    // llama.cpp's conversion/gemma.py Gemma4Model: the text model (the vision and audio towers are skipped)
    {"Gemma4ForCausalLM", "gemma4", Family::Gemma4},
    {"Gemma4ForConditionalGeneration", "gemma4", Family::Gemma4},
    // llama.cpp's conversion/deepseek.py DeepseekV2Model: DeepSeek-V3 / V3.1 / R1 and Kimi-K2 (same architecture)
    {"DeepseekV3ForCausalLM", "deepseek2", Family::DeepSeek2},
    {"GptOssForCausalLM", "gpt-oss", Family::GptOss},
    // llama.cpp's conversion/minimax.py MiniMaxM2Model (MiniMax-M2 / M2.1)
    {"MiniMaxM2ForCausalLM", "minimax-m2", Family::MiniMaxM2},
    // llama.cpp's conversion/llama.py Llama4Model: the text model of Llama 4 Scout / Maverick (the vision tower and the
    // projector go to the converter's separate mmproj output, conversion/llama4.py: skipped here)
    {"Llama4ForConditionalGeneration", "llama4", Family::Llama4},
    {"Llama4ForCausalLM", "llama4", Family::Llama4},
}};

const ArchRow* find_arch(std::string_view hf) {
    for (const ArchRow& r : arch_table)
        if (r.hf == hf) return &r;
    return nullptr;
}

}  // namespace

Family family_of(std::string_view hf_arch, const std::string& file) {
    if (const ArchRow* r = find_arch(hf_arch)) return r->family;
    // llama.cpp's conversion/deepseek.py converts DeepSeek-V3.2 as its own arch "deepseek32" (DeepseekV32Model: the
    // DSA indexer's tensors and hparams, the MTP block kept); not emulated here.
    if (hf_arch == "DeepseekV32ForCausalLM")
        throw core::Error(core::ErrorKind::Unsupported, file, "",
                          "DeepseekV32ForCausalLM (DeepSeek-V3.2, llama.cpp arch 'deepseek32') is not supported: its "
                          "sparse-attention indexer tensors (self_attn.indexer.*) are not converted; supported: "
                          "DeepseekV3ForCausalLM (DeepSeek-V3/V3.1/R1, Kimi-K2)");
    std::string list;
    for (const std::string& s : supported_architectures()) list += (list.empty() ? "" : ", ") + s;
    throw core::Error(core::ErrorKind::Unsupported, file, "",
                      core::cat("architecture '", hf_arch, "' is not supported; supported: ", list));
}

}  // namespace detail

std::vector<std::string> supported_architectures() {
    std::vector<std::string> v;
    for (const auto& r : detail::arch_table) v.emplace_back(r.hf);
    std::sort(v.begin(), v.end());
    return v;
}

bool is_supported_architecture(std::string_view hf_arch) { return detail::find_arch(hf_arch) != nullptr; }

std::string gguf_arch_name(std::string_view hf_arch) {
    (void)detail::family_of(hf_arch);
    return std::string(detail::find_arch(hf_arch)->gguf);
}

namespace {

using core::Error;
using core::ErrorKind;
using detail::Family;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

void replace_all(std::string& s, std::string_view from) {  // str.replace(from, "")
    for (std::size_t p; (p = s.find(from)) != std::string::npos;) s.erase(p, from.size());
}

// ---------------------------------------------------------------- name map (gguf-py tensor_mapping.py, resolved
// against MODEL_TENSORS[arch]; llama.cpp's convert_hf_to_gguf.py table)
using Mask = unsigned;
constexpr Mask bit(Family f) { return 1u << static_cast<unsigned>(f); }
constexpr Mask qwen35 = bit(Family::Qwen35) | bit(Family::Qwen35Moe);  // both Qwen3.5 families
// Qwen3-Next and the Qwen3.5 families: gated delta-net + full attention layers, one tensor list (constants.py)
constexpr Mask hybrid = qwen35 | bit(Family::Qwen3Next);
constexpr Mask llama_like = bit(Family::Llama) | bit(Family::Mistral3);  // same tensor list in constants.py
constexpr Mask glm4moe = bit(Family::Glm4Moe);
constexpr Mask gemma4 = bit(Family::Gemma4);
constexpr Mask ds2 = bit(Family::DeepSeek2);
constexpr Mask minimax = bit(Family::MiniMaxM2);
constexpr Mask llama4 = bit(Family::Llama4);
constexpr Mask all_families = llama_like | bit(Family::Qwen2) | bit(Family::Qwen2Moe) | bit(Family::Qwen3) |
                              bit(Family::Qwen3Moe) | bit(Family::Gemma) | bit(Family::Gemma2) |
                              bit(Family::Gemma3) | bit(Family::Phi3) | hybrid | glm4moe | gemma4 | ds2 | bit(Family::GptOss) |
                              minimax | llama4;
constexpr Mask moe = llama_like | bit(Family::Qwen2Moe) | bit(Family::Qwen3Moe) | bit(Family::Qwen35Moe) |
                     bit(Family::Qwen3Next) | glm4moe | ds2 | bit(Family::GptOss) | minimax;
constexpr Mask shared_experts = bit(Family::Qwen2Moe) | bit(Family::Qwen35Moe) | bit(Family::Qwen3Next);
constexpr Mask gemma23 = bit(Family::Gemma2) | bit(Family::Gemma3) | gemma4;  // Gemma 4 keeps Gemma 2/3's norms
// MiniMax-M2's q/k norms span all heads ([n_head * head_dim], [n_kv_head * head_dim]); same GGUF names
constexpr Mask qk_norm = bit(Family::Qwen3) | bit(Family::Qwen3Moe) | bit(Family::Gemma3) | hybrid | glm4moe | gemma4 | minimax;
constexpr Mask dense_gate = llama_like | bit(Family::Qwen2) | bit(Family::Qwen3) | bit(Family::Gemma) |
                            bit(Family::Gemma2) | bit(Family::Gemma3) | bit(Family::Qwen35) | glm4moe | gemma4 | ds2;
constexpr Mask dense_ffn = dense_gate | bit(Family::Phi3);
// qwen35, qwen3next, glm4moe and gpt-oss list ATTN_POST_NORM, not FFN_NORM (gguf-py constants.py MODEL_TENSORS)
constexpr Mask ffn_norm_families = all_families & ~gemma23 & ~hybrid & ~glm4moe & ~bit(Family::GptOss);
constexpr Mask nextn = hybrid | glm4moe;  // NEXTN_* tensors

struct NameRow {
    std::string_view hf;    // after "model.layers.N." (or the whole name for global tensors)
    std::string_view gguf;  // after "blk.N." (or the whole name)
    Mask families;
};
constexpr NameRow global_names[] = {
    {"model.embed_tokens", "token_embd", all_families},
    {"lm_head", "output", all_families & ~(bit(Family::Gemma) | bit(Family::Gemma2))},
    {"model.norm", "output_norm", all_families},
    // Gemma 4's per-layer embeddings (gguf-py's PER_LAYER_* tensors, first used by gemma3n)
    {"model.embed_tokens_per_layer", "per_layer_token_embd", gemma4},
    {"model.per_layer_model_projection", "per_layer_model_proj", gemma4},
    {"model.per_layer_projection_norm", "per_layer_proj_norm", gemma4},
};
constexpr NameRow layer_names[] = {
    {"input_layernorm", "attn_norm", all_families},
    {"self_attn.q_proj", "attn_q", all_families},
    {"self_attn.k_proj", "attn_k", all_families},
    {"self_attn.v_proj", "attn_v", all_families},
    {"self_attn.o_proj", "attn_output", all_families},
    {"self_attn.qkv_proj", "attn_qkv", all_families & ~ds2},
    {"self_attn.q_norm", "attn_q_norm", qk_norm},
    {"self_attn.k_norm", "attn_k_norm", qk_norm},
    {"post_attention_layernorm", "ffn_norm", ffn_norm_families},
    {"post_attention_layernorm", "post_attention_norm", gemma23 | hybrid | glm4moe | bit(Family::GptOss)},
    {"pre_feedforward_layernorm", "ffn_norm", gemma23},
    {"post_feedforward_layernorm", "post_ffw_norm", gemma23},
    {"mlp.gate_proj", "ffn_gate", dense_gate},
    {"mlp.up_proj", "ffn_up", dense_ffn},
    {"mlp.down_proj", "ffn_down", dense_ffn},
    // Phi-3's fused gate|up stays fused as ffn_up (llama.cpp phi3 splits it at run time). Upstream maps it for
    // other families too, where llama.cpp could not load the result: refused there.
    {"mlp.gate_up_proj", "ffn_up", bit(Family::Phi3)},
    {"block_sparse_moe.gate", "ffn_gate_inp", moe},
    {"mlp.gate", "ffn_gate_inp", moe},
    // stacked experts (names made by the stacking step below)
    {"mlp.experts.gate_proj", "ffn_gate_exps", moe},
    {"mlp.experts.up_proj", "ffn_up_exps", moe},
    {"mlp.experts.down_proj", "ffn_down_exps", moe},
    {"block_sparse_moe.experts.w1", "ffn_gate_exps", moe},
    {"block_sparse_moe.experts.w2", "ffn_down_exps", moe},
    {"block_sparse_moe.experts.w3", "ffn_up_exps", moe},
    {"mlp.shared_expert.gate_proj", "ffn_gate_shexp", shared_experts},
    {"mlp.shared_expert.up_proj", "ffn_up_shexp", shared_experts},
    {"mlp.shared_expert.down_proj", "ffn_down_shexp", shared_experts},
    {"mlp.shared_experts.gate_proj", "ffn_gate_shexp", glm4moe | ds2},
    {"mlp.shared_experts.up_proj", "ffn_up_shexp", glm4moe | ds2},
    {"mlp.shared_experts.down_proj", "ffn_down_shexp", glm4moe | ds2},
    // the router's bias, after filter_tensors renamed e_score_correction_bias to e_score_correction.bias
    {"mlp.gate.e_score_correction", "exp_probs_b", glm4moe | ds2},
    {"block_sparse_moe.e_score_correction", "exp_probs_b", minimax},
    // gated delta-net (linear attention) layers; dt_bias is renamed to dt_proj.bias before the lookup
    {"linear_attn.in_proj_qkv", "attn_qkv", hybrid},
    {"linear_attn.in_proj_z", "attn_gate", hybrid},
    {"linear_attn.in_proj_a", "ssm_alpha", qwen35},
    {"linear_attn.in_proj_b", "ssm_beta", qwen35},
    {"linear_attn.A_log", "ssm_a", hybrid},
    {"linear_attn.dt_proj", "ssm_dt", hybrid},
    {"linear_attn.conv1d", "ssm_conv1d", hybrid},
    {"linear_attn.norm", "ssm_norm", hybrid},
    {"linear_attn.out_proj", "ssm_out", hybrid},
    {"linear_attn.in_proj_ba", "ssm_ba", bit(Family::Qwen3Next)},  // SSM_BETA_ALPHA
    // multi-token-prediction block, renumbered after the decoder layers (llama.cpp's conversion/qwen.py _QwenMtpMixin;
    // glm4moe's checkpoints number it so already)
    {"eh_proj", "nextn.eh_proj", nextn},
    {"enorm", "nextn.enorm", nextn},
    {"hnorm", "nextn.hnorm", nextn},
    {"shared_head.norm", "nextn.shared_head_norm", nextn},
    {"embed_tokens", "nextn.embed_tokens", nextn},
    {"shared_head.head", "nextn.shared_head_head", nextn},
    // Gemma 4 (gguf-py tensor_mapping.py "# gemma4" and "# gemma3n" rows): the MoE block beside the dense MLP,
    // the layer output scalar (renamed to .weight first) and the per-layer input gate and projection
    {"pre_feedforward_layernorm_2", "pre_ffw_norm_2", gemma4},
    {"post_feedforward_layernorm_1", "post_ffw_norm_1", gemma4},
    {"post_feedforward_layernorm_2", "post_ffw_norm_2", gemma4},
    {"router.proj", "ffn_gate_inp", gemma4},
    {"experts.gate_up_proj", "ffn_gate_up_exps", gemma4},
    {"experts.down_proj", "ffn_down_exps", gemma4},
    {"layer_scalar", "layer_output_scale", gemma4},
    {"per_layer_input_gate", "inp_gate", gemma4},
    {"per_layer_projection", "proj", gemma4},
    {"post_per_layer_input_norm", "post_norm", gemma4},
    // DeepSeek-V2/V3 multi-head latent attention, routing bias and shared experts (gguf-py tensor_mapping.py); k_b_proj /
    // v_b_proj are the converter's names for the two halves of kv_b_proj
    {"self_attn.q_a_proj", "attn_q_a", ds2},
    {"self_attn.q_a_layernorm", "attn_q_a_norm", ds2},
    {"self_attn.q_b_proj", "attn_q_b", ds2},
    {"self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa", ds2},
    {"self_attn.kv_a_layernorm", "attn_kv_a_norm", ds2},
    {"self_attn.k_b_proj", "attn_k_b", ds2},
    {"self_attn.v_b_proj", "attn_v_b", ds2},
    // gpt-oss (openai-moe in tensor_mapping.py): the router and the attention sinks ("self_attn.sinks.weight" after
    // GptOssModel.filter_tensors)
    {"mlp.router", "ffn_gate_inp", bit(Family::GptOss)},
    {"self_attn.sinks", "attn_sinks", bit(Family::GptOss)},
    // Llama 4 (gguf-py tensor_mapping.py "# llama4" rows): the dense layers' MLP, the router, the shared expert and the
    // halves of the fused experts (named by Llama4Model.modify_tensors)
    {"feed_forward.gate_proj", "ffn_gate", llama4},
    {"feed_forward.up_proj", "ffn_up", llama4},
    {"feed_forward.down_proj", "ffn_down", llama4},
    {"feed_forward.router", "ffn_gate_inp", llama4},
    {"feed_forward.experts.gate_proj", "ffn_gate_exps", llama4},
    {"feed_forward.experts.up_proj", "ffn_up_exps", llama4},
    {"feed_forward.experts.down_proj", "ffn_down_exps", llama4},
    {"feed_forward.shared_expert.gate_proj", "ffn_gate_shexp", llama4},
    {"feed_forward.shared_expert.up_proj", "ffn_up_shexp", llama4},
    {"feed_forward.shared_expert.down_proj", "ffn_down_shexp", llama4},
};
constexpr NameRow shexp_gate{"mlp.shared_expert_gate", "ffn_gate_inp_shexp", shared_experts};

// TensorNameMap.get_name(name, try_suffixes=(".weight", ".bias")); "" when unmapped. A name without either suffix
// is looked up as is (qwen35's linear_attn.A_log -> blk.N.ssm_a).
std::string map_tensor_name(Family f, const std::string& name) {
    std::string_view base = name, suffix;
    if (ends_with(name, ".weight")) suffix = ".weight";
    else if (ends_with(name, ".bias")) suffix = ".bias";
    base.remove_suffix(suffix.size());
    for (const NameRow& r : global_names)
        if ((r.families & bit(f)) && base == r.hf) return core::cat(r.gguf, suffix);
    constexpr std::string_view layers = "model.layers.";
    if (!starts_with(base, layers)) return {};
    std::string_view rest = base.substr(layers.size());
    std::size_t n_digits = 0;
    while (n_digits < rest.size() && rest[n_digits] >= '0' && rest[n_digits] <= '9') ++n_digits;
    if (n_digits == 0 || n_digits >= rest.size() || rest[n_digits] != '.') return {};
    const std::string_view bid = rest.substr(0, n_digits);
    rest.remove_prefix(n_digits + 1);
    auto hit = [&](const NameRow& r) { return (r.families & bit(f)) && rest == r.hf; };
    for (const NameRow& r : layer_names)
        if (hit(r)) return core::cat("blk.", bid, ".", r.gguf, suffix);
    if (hit(shexp_gate)) return core::cat("blk.", bid, ".", shexp_gate.gguf, suffix);
    return {};
}

// TextModel.filter_tensors: multimodal parts of a checkpoint are not part of the text model.
bool is_multimodal(std::string_view n) {
    for (std::string_view p : {"mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.",
                               "sound_encoder.", "sound_projection.", "speech_embeddings."})
        if (starts_with(n, p)) return true;
    for (std::string_view p : {"visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.",
                               "code2wav.", "projector.", "pre_mm_projector_norm", "image_newline",
                               "view_seperator", "patch_embed", "patch_embedding", "patch_merger.",
                               "patch_merge_mlp.", "model.connector."})
        if (contains(n, p)) return true;
    return false;
}

std::optional<std::int64_t> block_id(std::string_view name) {  // first all-digit dotted component
    while (!name.empty()) {
        const std::size_t dot = name.find('.');
        const std::string_view part = name.substr(0, dot);
        if (!part.empty() && std::all_of(part.begin(), part.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return std::stoll(std::string(part));
        if (dot == std::string_view::npos) break;
        name.remove_prefix(dot + 1);
    }
    return std::nullopt;
}

struct Item {
    std::string name;       // after filter_tensors
    const HfTensor* t;      // original
};

class Planner {
public:
    Planner(const HfConfig& cfg, std::int64_t vocab, bool mtp_only)
        : cfg_(cfg), family_(detail::family_of(cfg.architecture, cfg.file)), vocab_(vocab), mtp_only_(mtp_only) {
        out_.arch = gguf_arch_name(cfg.architecture);
        if (mtp_only_ && family_ != Family::Glm4Moe)
            throw Error(ErrorKind::Unsupported, cfg.file, "",
                        core::cat("an MTP-only GGUF (gguf-mtp) is implemented for glm4moe only, not ", cfg.architecture));
        // llama.cpp's conversion/mistral3.py converts model_type "mistral4" as DeepSeek-V2 (arch "mistral4"): not ours yet.
        if (family_ == Family::Mistral3 && cfg.model_type == "mistral4")
            throw Error(ErrorKind::Unsupported, cfg.file, "",
                        core::cat(cfg.architecture, " with model_type 'mistral4' (Mistral 4, DeepSeek-V2 layers) is not "
                                  "supported; supported: its Mistral 3 text models (model_type 'mistral', 'ministral3')"));
    }

    GgufConversion run(const std::vector<HfTensor>& tensors) {
        // Visiting order: part files sorted by name, tensors in each part sorted by name (SafetensorsLocal sorts).
        std::vector<const HfTensor*> order;
        order.reserve(tensors.size());
        for (const HfTensor& t : tensors) order.push_back(&t);
        std::stable_sort(order.begin(), order.end(), [](const HfTensor* a, const HfTensor* b) {
            if (a->appended != b->appended) return b->appended;
            return a->file != b->file ? a->file < b->file : a->name < b->name;
        });

        std::vector<Item> items;
        std::map<std::string, const HfTensor*> seen;
        for (const HfTensor* t : order) {
            std::string name = t->name;
            if (llama_family()) replace_all(name, "text_model.");
            if (family_ == Family::Gemma4) name = gemma4_filter_name(std::move(name));
            if ((family_ == Family::Gemma || family_ == Family::Gemma2) && name == "lm_head.weight") {
                out_.dropped.push_back(t->name);  // llama.cpp's gemma/gemma2 have no output tensor
                continue;
            }
            if (is_multimodal(name)) {
                out_.dropped.push_back(t->name);
                continue;
            }
            // ModelBase.filter_tensors: the expert-bias rename and the "language_model." strip
            if (ends_with(name, "e_score_correction_bias"))
                name.replace(name.size() - std::string_view("_bias").size(), 1, ".");
            replace_all(name, "language_model.");
            if (hybrid_family()) name = mtp_name(std::move(name));
            if (family_ == Family::GptOss && contains(name, "sinks")) name += ".weight";  // GptOssModel.filter_tensors
            if (auto [it, fresh] = seen.emplace(name, t); !fresh)
                throw Error(ErrorKind::BadInput, t->file, t->name,
                            core::cat("same tensor as '", it->second->name, "' in ", it->second->file,
                                      " after the converter's renaming"));
            items.push_back({std::move(name), t});
        }
        out_.auto_ftype = auto_ftype(items);
        out_.block_count = cfg_.n_layer;
        if (hybrid_family()) {
            // _QwenMtpMixin: mtp_num_hidden_layers, else the MTP layers the checkpoint holds. Deviation: a checkpoint
            // without MTP tensors (transformers' save_pretrained drops them and keeps mtp_num_hidden_layers) is
            // converted without MTP layers, i.e. as the converter's --no-mtp: its default output declares MTP
            // blocks it has no tensors for, which llama.cpp refuses to load ("missing tensor
            // 'blk.N.attn_norm.weight'"), or stops on an assertion when the config does not count them either.
            const std::int64_t n_mtp = cfg_.find_int({"mtp_num_hidden_layers"}).value_or(0);
            if (n_mtp < 0 || n_mtp > max_mtp_layers)
                bad_config(core::cat("'mtp_num_hidden_layers' must be in [0, ", max_mtp_layers, "], got ", n_mtp));
            if (n_mtp_seen_ > 0) out_.block_count += n_mtp > 0 ? n_mtp : n_mtp_seen_;
        }
        if (family_ == Family::Glm4Moe) {
            // Glm4MoeModel.__init__ (the converter's default, MTP kept): block_count += num_nextn_predict_layers,
            // whether or not the checkpoint holds those layers; llama.cpp loads a file without them as trunk only.
            const std::int64_t n_mtp = cfg_.find_int({"num_nextn_predict_layers"}).value_or(0);
            if (n_mtp < 0 || n_mtp > max_mtp_layers)
                bad_config(core::cat("'num_nextn_predict_layers' must be in [0, ", max_mtp_layers, "], got ", n_mtp));
            out_.block_count += n_mtp;
            if (mtp_only_ && n_mtp == 0)
                bad_config("an MTP-only GGUF (gguf-mtp) needs MTP layers: num_nextn_predict_layers is 0 or missing");
            // Glm4MoeModel.filter_tensors with --mtp: the MTP layers and the tensors they share with the trunk
            if (mtp_only_)
                std::erase_if(items, [&](const Item& it) {
                    const std::optional<std::int64_t> bid = block_id(it.name);
                    const bool mtp = starts_with(it.name, "model.layers.") && bid && *bid >= cfg_.n_layer;
                    return !mtp && it.name != "model.embed_tokens.weight" && it.name != "model.norm.weight" &&
                           it.name != "lm_head.weight";
                });
            if (mtp_only_) out_.auto_ftype = auto_ftype(items);  // --outtype auto looks at the kept tensors
        }

        generate_extra();
        if (family_ == Family::GptOss) gpt_oss_mxfp4(items);
        for (const Item& it : items) {
            if (ends_with(it.name, ".attention.masked_bias") || ends_with(it.name, ".attention.bias") ||
                ends_with(it.name, ".rotary_emb.inv_freq")) {
                out_.dropped.push_back(it.t->name);
                continue;
            }
            modify(it);
        }
        for (const auto& [bid, names] : experts_) {
            if (!names.empty()) {
                const Item& first = names.begin()->second;
                throw Error(ErrorKind::BadInput, first.t->file, first.t->name,
                            core::cat("incomplete expert set in layer ", bid, ": ", names.size(),
                                      " expert tensors left unstacked (config says ", n_experts(), " experts)"));
            }
        }
        finish();
        return std::move(out_);
    }

private:
    bool qwen35_family() const { return family_ == Family::Qwen35 || family_ == Family::Qwen35Moe; }
    // _QwenMtpMixin's families (llama.cpp's conversion/qwen.py): Qwen3-Next and Qwen3.5
    bool hybrid_family() const { return qwen35_family() || family_ == Family::Qwen3Next; }

    // Gemma4Model.filter_tensors: buffers stored without a suffix get ".weight" (the layer scalar, the audio
    // tower's per_dim_scale) and so do the fused expert parameters.
    static std::string gemma4_filter_name(std::string name) {
        if (ends_with(name, "per_dim_scale") || ends_with(name, "layer_scalar")) name += ".weight";
        if (contains(name, ".experts.") && !ends_with(name, ".weight") && !ends_with(name, ".weight_scale") &&
            !ends_with(name, ".weight_scale_2") && !ends_with(name, ".input_scale"))
            name += ".weight";
        return name;
    }
    static constexpr std::int64_t max_mtp_layers = 64;  // published models have one

    // _QwenMtpMixin.filter_tensors: "model.mtp.*" -> "mtp.*"; mtp.layers.J.* -> model.layers.{n_layer + J}.*;
    // mtp.{fc, pre_fc_norm_embedding, pre_fc_norm_hidden, norm}.* -> model.layers.{n_layer}.{eh_proj, enorm, hnorm,
    // shared_head.norm}.*
    std::string mtp_name(std::string name) {
        if (starts_with(name, "model.mtp.")) name.erase(0, 6);
        if (!starts_with(name, "mtp.")) return name;
        std::vector<std::string> parts;  // name.split(".", 3)
        std::size_t from = 0;
        while (parts.size() < 3) {
            const std::size_t dot = name.find('.', from);
            if (dot == std::string::npos) break;
            parts.push_back(name.substr(from, dot - from));
            from = dot + 1;
        }
        parts.push_back(name.substr(from));
        auto decimal = [](const std::string& x) {
            return !x.empty() && std::all_of(x.begin(), x.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        };
        if (parts.size() == 4 && parts[1] == "layers" && decimal(parts[2])) {
            // at most 4 digits: std::stoll cannot overflow, and n_layer + j stays small
            const std::int64_t j = parts[2].size() <= 4 ? std::stoll(parts[2]) : max_mtp_layers;
            if (j >= max_mtp_layers)
                throw Error(ErrorKind::BadInput, "", name,
                            core::cat("MTP layer number ", parts[2], " out of range (at most ", max_mtp_layers, " MTP layers)"));
            n_mtp_seen_ = std::max(n_mtp_seen_, j + 1);
            return core::cat("model.layers.", cfg_.n_layer + j, ".", parts[3]);
        }
        if (parts.size() == 3) {
            for (auto [from_name, to_name] : {std::pair{"fc", "eh_proj"}, std::pair{"pre_fc_norm_embedding", "enorm"},
                                              std::pair{"pre_fc_norm_hidden", "hnorm"},
                                              std::pair{"norm", "shared_head.norm"}})
                if (parts[1] == from_name) return core::cat("model.layers.", cfg_.n_layer, ".", to_name, ".", parts[2]);
        }
        return name;
    }

    // `--outtype auto` (ModelBase.__init__): dtype of the first >= 2-D tensor that is bf16 or f16.
    static quant::FType auto_ftype(const std::vector<Item>& items) {
        for (const Item& it : items) {
            if (it.t->shape.size() < 2) continue;
            if (it.t->dtype == core::DType::BF16) return quant::FType::BF16;
            if (it.t->dtype == core::DType::F16) return quant::FType::F16;
        }
        return quant::FType::F16;
    }

    [[noreturn]] void bad_config(const std::string& why) const {
        throw Error(ErrorKind::BadInput, cfg_.file, "", why);
    }

    std::int64_t require_int(std::initializer_list<std::string_view> keys, std::string_view what) const {
        if (auto v = cfg_.find_int(keys)) return *v;
        bad_config(core::cat("missing '", *keys.begin(), "' (", what, ")"));
    }

    // LlamaModel and its subclasses: the "text_model." strip, num_local_experts, the llama3 rope_freqs
    bool llama_family() const {
        return family_ == Family::Llama || family_ == Family::Mistral3 || family_ == Family::Llama4;
    }

    std::int64_t n_experts() const {
        if (llama_family()) return require_int({"num_local_experts"}, "expert count for stacking");
        if (family_ == Family::Glm4Moe || family_ == Family::DeepSeek2)
            return require_int({"n_routed_experts"}, "expert count for stacking");
        return require_int({"num_local_experts", "num_experts"}, "expert count for stacking");
    }

    void emit(std::string gguf_name, std::vector<SourceSlice> sources, core::Shape shape,
              std::vector<Transform> transforms, const Item* origin) {
        if (gguf_name.size() >= 64)
            throw Error(ErrorKind::BadInput, origin ? origin->t->file : cfg_.file, origin ? origin->t->name : "",
                        core::cat("GGUF name '", gguf_name, "' is longer than 63 bytes"));
        GgufTensorMap m;
        m.force_f32 = shape.size() <= 1 || ends_with(gguf_name, "_norm.weight") || !ends_with(gguf_name, ".weight");
        // ffn_gate_inp(_shexp).weight: match_model_tensor_name with the ".weight" suffix
        if (auto bid = block_id(gguf_name)) {
            const std::string stem = core::cat("blk.", *bid, ".");
            if (gguf_name == stem + "ffn_gate_inp.weight" || gguf_name == stem + "ffn_gate_inp_shexp.weight" ||
                (hybrid_family() && gguf_name == stem + "ssm_conv1d.weight"))
                m.force_f32 = true;
        }
        if (gguf_name == "token_embd.weight") out_.n_vocab_embed = shape.empty() ? 0 : shape[0];
        if (!names_.insert(gguf_name).second)
            throw Error(ErrorKind::BadInput, origin ? origin->t->file : cfg_.file, origin ? origin->t->name : "",
                        core::cat("maps to '", gguf_name, "', which another tensor already maps to"));
        m.gguf_name = std::move(gguf_name);
        m.sources = std::move(sources);
        m.shape = std::move(shape);
        m.transforms = std::move(transforms);
        out_.tensors.push_back(std::move(m));
    }

    // TextModel.modify_tensors: the name map; transforms decided by the family's modify_tensors.
    void map_and_emit(const Item& it, const std::string& name, std::vector<SourceSlice> sources, core::Shape shape,
                      std::vector<Transform> transforms) {
        std::string gguf_name = map_tensor_name(family_, name);
        // get_tensor_name_map(arch, block_count) knows blocks [0, block_count) only
        if (const auto bid = block_id(name); bid && *bid >= out_.block_count && starts_with(name, "model.layers."))
            gguf_name.clear();
        if (gguf_name.empty())
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("no GGUF name for this tensor in arch '", out_.arch,
                                  "' (llama.cpp's converter: \"Can not map tensor\")"));
        emit(std::move(gguf_name), std::move(sources), std::move(shape), std::move(transforms), &it);
    }

    void generate_extra() {
        if (llama_family()) {
            std::vector<float> f = llama3_rope_freqs(cfg_);
            if (!f.empty()) {
                core::Shape shape{static_cast<std::int64_t>(f.size())};
                emit("rope_freqs.weight", {}, shape, {}, nullptr);
                out_.tensors.back().generated = std::move(f);
            }
        } else if (family_ == Family::Phi3) {
            phi3_rope_factors();
        } else if (family_ == Family::Gemma4) {
            gemma4_rope_freqs();
        }
    }

    // Gemma4Model.generate_extra_tensors: the full-attention layers' "proportional" rope rotates the first
    // partial_rotary_factor of each half of the head (dims i and i + head_dim/2); llama.cpp's neox rope over the
    // whole head gets frequency factors 1 for the rotated pairs and 1e30 (no rotation) for the others.
    void gemma4_rope_freqs() {
        const nlohmann::json* rp = cfg_.find({"rope_parameters"});
        const nlohmann::json* full = rp && rp->is_object() && rp->contains("full_attention") ? &(*rp)["full_attention"]
                                                                                          : nullptr;
        if (!full || !full->is_object())
            bad_config("gemma4 needs rope_parameters.full_attention (the converter reads it)");
        auto type = full->find("rope_type");
        if (type == full->end() || *type != "proportional")
            bad_config(core::cat("gemma4: rope_parameters.full_attention.rope_type must be 'proportional', found ",
                                 type == full->end() ? std::string("none") : type->dump()));
        auto f = full->find("partial_rotary_factor");
        if (f == full->end() || !f->is_number())
            bad_config("gemma4: rope_parameters.full_attention.partial_rotary_factor must be a number");
        const double factor = f->get<double>();
        const std::int64_t head_dim = detail::gemma4_full_head_dim(cfg_);
        if (!(factor >= 0.0 && factor <= 1.0) || head_dim <= 0 || head_dim > 65536)
            bad_config(core::cat("gemma4: partial_rotary_factor ", factor, " or global head size ", head_dim,
                                 " out of range"));
        const auto n_rot = static_cast<std::int64_t>(static_cast<double>(head_dim) * factor / 2.0);
        std::vector<float> v(static_cast<std::size_t>(head_dim / 2), 1e30f);
        std::fill(v.begin(), v.begin() + std::min<std::int64_t>(n_rot, head_dim / 2), 1.0f);
        emit("rope_freqs.weight", {}, {static_cast<std::int64_t>(v.size())}, {}, nullptr);
        out_.tensors.back().generated = std::move(v);
    }

    // Phi3MiniModel.generate_extra_tensors: LongRoPE factors and rope.scaling.attn_factor.
    void phi3_rope_factors() {
        const nlohmann::json rp = detail::rope_parameters(cfg_);
        auto lf = rp.find("long_factor");
        if (lf == rp.end() || lf->is_null() || (lf->is_array() && lf->empty())) return;
        const std::int64_t n_embd = require_int({"hidden_size", "n_embd"}, "embedding size");
        const std::int64_t n_head = require_int({"num_attention_heads", "n_head"}, "head count");
        const std::int64_t max_pos = require_int({"n_positions", "max_position_embeddings"}, "context length");
        auto orig = rp.find("original_max_position_embeddings");
        if (orig == rp.end() || !orig->is_number()) bad_config("missing 'original_max_position_embeddings' (phi3)");
        const double orig_ctx = orig->get<double>();
        double rot_pct = 1.0;
        if (auto p = rp.find("partial_rotary_factor"); p != rp.end() && p->is_number()) rot_pct = p->get<double>();
        const std::int64_t rope_dims = static_cast<std::int64_t>(rot_pct * static_cast<double>(n_embd)) / n_head;
        const double scale = static_cast<double>(max_pos) / orig_ctx;
        std::string type;
        if (auto t = rp.find("rope_type"); t != rp.end() && t->is_string()) type = t->get<std::string>();
        for (char& ch : type)
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        if (type.empty()) bad_config("missing the required key rope_scaling.type (phi3 long_factor)");
        double attn_factor = 1.0;
        if (type == "su" || type == "longrope") {
            if (scale > 1.0) attn_factor = std::sqrt(1.0 + std::log(scale) / std::log(orig_ctx));
        } else if (type == "yarn") {
            if (scale > 1.0) attn_factor = 0.1 * std::log(scale) + 1.0;
        } else {
            throw Error(ErrorKind::Unsupported, cfg_.file, "",
                        core::cat("phi3 rope scaling type '", type, "' is not supported"));
        }
        out_.early_kvs.push_back(
            {core::cat(out_.arch, ".rope.scaling.attn_factor"), formats::GgufValue::f32(static_cast<float>(attn_factor))});
        auto sf = rp.find("short_factor");
        auto floats = [&](const nlohmann::json& a, const char* what) {
            if (!a.is_array()) bad_config(core::cat("rope_scaling.", what, " must be a list of numbers"));
            std::vector<float> v;
            for (const auto& x : a) {
                if (!x.is_number()) bad_config(core::cat("rope_scaling.", what, " must be a list of numbers"));
                v.push_back(static_cast<float>(x.get<double>()));
            }
            if (static_cast<std::int64_t>(v.size()) * 2 != rope_dims)
                bad_config(core::cat("rope_scaling.", what, " has ", v.size(), " entries, expected ", rope_dims / 2.0));
            return v;
        };
        if (sf == rp.end()) bad_config("missing rope_scaling.short_factor (phi3)");
        std::vector<float> lv = floats(*lf, "long_factor"), sv = floats(*sf, "short_factor");
        emit("rope_factors_long.weight", {}, {static_cast<std::int64_t>(lv.size())}, {}, nullptr);
        out_.tensors.back().generated = std::move(lv);
        emit("rope_factors_short.weight", {}, {static_cast<std::int64_t>(sv.size())}, {}, nullptr);
        out_.tensors.back().generated = std::move(sv);
    }

    void check_rows(const Item& it, const core::Shape& shape, std::int64_t divisor, std::string_view why) const {
        if (shape.empty() || divisor <= 0 || shape[0] % divisor != 0)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("shape ", core::shape_str(shape), ": rows must be a multiple of ", divisor, " (",
                                  why, ")"));
    }

    void modify(const Item& it) {
        const std::optional<std::int64_t> bid = block_id(it.name);
        const core::Shape& shape = it.t->shape;
        std::vector<SourceSlice> one{{it.t->name}};
        switch (family_) {
        case Family::Llama:
        case Family::Mistral3: {
            std::vector<Transform> tr;
            const std::int64_t n_head = require_int({"n_heads", "num_attention_heads"}, "head count");
            const std::int64_t n_kv = cfg_.find_int({"n_kv_heads", "num_key_value_heads"}).value_or(n_head);
            if (ends_with(it.name, "q_proj.weight") || ends_with(it.name, "q_proj.bias")) {
                check_rows(it, shape, 2 * n_head, "llama Q un-permute over num_attention_heads");
                tr.push_back({TransformKind::PermuteLlamaHeads, n_head});
            }
            if (ends_with(it.name, "k_proj.weight") || ends_with(it.name, "k_proj.bias")) {
                check_rows(it, shape, 2 * n_kv, "llama K un-permute over num_key_value_heads");
                tr.push_back({TransformKind::PermuteLlamaHeads, n_kv});
            }
            if (contains(it.name, "block_sparse_moe.experts")) {
                stack_experts(it, require_bid(it, bid), {"w1", "w2", "w3"},
                              "model.layers.{bid}.block_sparse_moe.experts.{x}.{w}.weight",
                              "model.layers.{bid}.block_sparse_moe.experts.{w}.weight");
                return;
            }
            map_and_emit(it, it.name, one, shape, std::move(tr));
            return;
        }
        case Family::Qwen2Moe:
        case Family::Qwen3Moe:
            qwen2moe(it, it.name, std::move(one), shape, {});
            return;
        case Family::Gemma:
        case Family::Gemma2: {
            std::vector<Transform> tr;
            if (ends_with(it.name, "norm.weight")) tr.push_back({TransformKind::AddOne, 0});
            map_and_emit(it, it.name, one, shape, std::move(tr));
            return;
        }
        case Family::Gemma4:
            if (ends_with(it.name, "router.scale")) {  // Gemma4Model.modify_tensors: the router's input scale
                emit(core::cat("blk.", require_bid(it, bid), ".ffn_gate_inp.scale"), one, shape, {}, &it);
                return;
            }
            if (contains(it.name, ".per_expert_scale")) {  // scales each expert's output: ffn_down_exps.scale
                emit(core::cat("blk.", require_bid(it, bid), ".ffn_down_exps.scale"), one, shape, {}, &it);
                return;
            }
            [[fallthrough]];  // Gemma3Model.modify_tensors, whose norm shift Gemma 4 sets to 0
        case Family::Gemma3: {
            core::Shape s = shape;
            if (contains(it.name, "embed_tokens.weight")) {
                if (vocab_ < 0)
                    throw Error(ErrorKind::Internal, it.t->file, it.t->name,
                                "gemma3 needs the tokenizer's vocab size to trim token_embd (this is a bug)");
                if (!s.empty() && vocab_ < s[0]) {
                    one[0].row_end = vocab_;  // data[:n_vocab_real] on dim 0 (= dim -2 of the 2-D embedding)
                    s[0] = vocab_;
                }
            }
            std::vector<Transform> tr;
            if (family_ == Family::Gemma3 && ends_with(it.name, "norm.weight")) tr.push_back({TransformKind::AddOne, 0});
            map_and_emit(it, it.name, one, s, std::move(tr));
            return;
        }
        case Family::Qwen2:
        case Family::Qwen3:
        case Family::Phi3:
            map_and_emit(it, it.name, one, shape, {});
            return;
        case Family::Qwen35:
        case Family::Qwen35Moe: qwen35(it, one); return;
        case Family::Glm4Moe:
            // Glm4MoeModel.modify_tensors: per-expert tensors stacked per layer (the MTP layer's too), the rest mapped
            if (contains(it.name, "mlp.experts")) {
                stack_experts(it, require_bid(it, bid), {"down_proj", "gate_proj", "up_proj"},
                              "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
                return;
            }
            map_and_emit(it, it.name, one, shape, {});
            return;
        case Family::Qwen3Next: qwen3next(it, std::move(one)); return;
        case Family::DeepSeek2: deepseek2(it, std::move(one)); return;
        case Family::GptOss: gpt_oss(it); return;
        case Family::MiniMaxM2:
            // MiniMaxM2Model.modify_tensors: per-expert w1/w2/w3 stacked per layer (emitted w1, w2, w3), the rest mapped
            if (contains(it.name, "block_sparse_moe.experts.")) {
                stack_experts(it, require_bid(it, bid), {"w1", "w2", "w3"},
                              "model.layers.{bid}.block_sparse_moe.experts.{x}.{w}.weight",
                              "model.layers.{bid}.block_sparse_moe.experts.{w}.weight");
                return;
            }
            map_and_emit(it, it.name, one, shape, {});
            return;
        case Family::Llama4: llama4(it); return;
        }
    }

    // DeepseekV2Model.modify_tensors (llama.cpp's conversion/deepseek.py): a tied lm_head and the MTP layers (numbered
    // from num_hidden_layers; skip_mtp) are dropped, per-expert tensors stacked, kv_b_proj split per head into k_b
    // (transposed) and v_b.
    void deepseek2(const Item& it, std::vector<SourceSlice> one) {
        const std::string& name = it.name;
        if (cfg_.tie_word_embeddings && (name == "lm_head.weight" || name == "model.lm_head.weight")) {
            out_.dropped.push_back(it.t->name);
            return;
        }
        const std::optional<std::int64_t> bid = block_id(name);
        if (starts_with(name, "model.layers.") && bid && *bid >= cfg_.n_layer) {
            out_.dropped.push_back(it.t->name);
            return;
        }
        if (contains(name, "mlp.experts")) {
            stack_experts(it, require_bid(it, bid), {"down_proj", "gate_proj", "up_proj"},
                          "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
            return;
        }
        if (ends_with(name, "kv_b_proj.weight")) {
            const std::int64_t n_kv = require_int({"num_key_value_heads"}, "kv_b_proj split");
            const std::int64_t v = require_int({"v_head_dim"}, "kv_b_proj split");
            const std::int64_t nope = require_int({"qk_nope_head_dim"}, "kv_b_proj split");
            const core::Shape& shape = it.t->shape;
            if (n_kv <= 0 || v <= 0 || nope <= 0 || shape.size() != 2 || shape[0] != n_kv * (v + nope))
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("shape ", core::shape_str(shape), ": expected [num_key_value_heads (", n_kv,
                                      ") * (qk_nope_head_dim (", nope, ") + v_head_dim (", v, ")), kv_lora_rank]"));
            const std::int64_t per = v + nope, rank = shape[1];
            std::vector<SourceSlice> k_src, v_src;
            for (std::int64_t h = 0; h < n_kv; ++h) {
                k_src.push_back({it.t->name, h * per, h * per + nope});
                v_src.push_back({it.t->name, h * per + nope, (h + 1) * per});
            }
            std::string base = name.substr(0, name.size() - std::string_view("kv_b_proj.weight").size());
            map_and_emit(it, base + "k_b_proj.weight", std::move(k_src), {n_kv, rank, nope},
                         {{TransformKind::TransposeLastTwo, 0}});
            map_and_emit(it, base + "v_b_proj.weight", std::move(v_src), {n_kv, v, rank}, {});
            return;
        }
        map_and_emit(it, name, std::move(one), it.t->shape, {});
    }

    // Llama4Model.modify_tensors (llama.cpp's conversion/llama.py; undo_permute off): the fused experts as transformers'
    // Llama4TextExperts stores them, gate_up_proj [n_expert, n_embd, 2 * n_ff] (gate = the first n_ff columns, up = the
    // rest) and down_proj [n_expert, n_ff, n_embd], transposed to ggml's [n_expert, out, in]. Each half is a column
    // range of every expert's matrix: a row block reads whole experts, never the whole fused tensor.
    void llama4(const Item& it) {
        const std::string& name = it.name;
        const core::Shape& shape = it.t->shape;
        if (contains(name, "gate_up_proj")) {
            if (shape.size() != 3 || shape[2] % 2 != 0)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("fused gate_up_proj must be [n_expert, n_embd, 2 * n_ff], found ",
                                      core::shape_str(shape)));
            const std::int64_t n_ff = shape[2] / 2;
            const std::size_t at = name.find("gate_up_proj");
            for (std::int64_t half = 0; half < 2; ++half) {
                SourceSlice sl{it.t->name};
                sl.col_begin = half * n_ff;
                sl.col_end = (half + 1) * n_ff;
                sl.transpose = true;
                std::string n = name;
                n.replace(at, std::string_view("gate_up_proj").size(), half == 0 ? "gate_proj.weight" : "up_proj.weight");
                map_and_emit(it, n, {sl}, {shape[0], n_ff, shape[1]}, {});
            }
            return;
        }
        if (ends_with(name, "down_proj")) {
            if (shape.size() != 3)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("fused down_proj must be [n_expert, n_ff, n_embd], found ", core::shape_str(shape)));
            SourceSlice sl{it.t->name};
            sl.transpose = true;
            map_and_emit(it, name + ".weight", {sl}, {shape[0], shape[2], shape[1]}, {});
            return;
        }
        map_and_emit(it, name, {{it.t->name}}, shape, {});
    }

    // GptOssModel.generate_extra_tensors: MXFP4 experts (*_blocks, dequantized by the plan to [E, rows, 32 * n_blocks],
    // rows as ggml's [E, out, in]) are written first, in the order their blocks come, as MXFP4: down_proj whole,
    // gate_up_proj's even rows as ffn_gate_exps and its odd rows as ffn_up_exps.
    void gpt_oss_mxfp4(const std::vector<Item>& items) {
        const nlohmann::json* qc = cfg_.find({"quantization_config"});
        out_.mxfp4 = qc && qc->is_object() && qc->contains("quant_method") && (*qc)["quant_method"] == "mxfp4";
        for (const Item& it : items) {
            const std::string& name = it.name;
            if (!ends_with(name, "_blocks")) continue;
            const core::Shape& shape = it.t->shape;
            if (shape.size() != 3)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("expected MXFP4 expert blocks of [n_expert, rows, n_blocks, 16], found logical "
                                      "shape ", core::shape_str(shape)));
            const std::string stem = name.substr(0, name.size() - 7);
            if (ends_with(stem, "mlp.experts.down_proj")) {
                map_and_emit(it, stem + ".weight", {{it.t->name}}, shape, {});
                out_.tensors.back().mxfp4 = true;
            } else if (ends_with(stem, "mlp.experts.gate_up_proj")) {
                if (shape[1] % 2 != 0)
                    throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                                core::cat("MXFP4 gate_up_proj rows must be even (gate and up interleaved), found ",
                                          shape[1]));
                const std::string base = stem.substr(0, stem.size() - std::string_view("gate_up_proj").size());
                for (std::int64_t half = 0; half < 2; ++half) {
                    SourceSlice sl{it.t->name, half, -1, 2};
                    map_and_emit(it, base + (half == 0 ? "gate_proj.weight" : "up_proj.weight"), {sl},
                                 {shape[0], shape[1] / 2, shape[2]}, {});
                    out_.tensors.back().mxfp4 = true;
                }
            } else {
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            "MXFP4 blocks other than mlp.experts.{gate_up,down}_proj (llama.cpp's converter repacks "
                            "only those)");
            }
        }
    }

    // GptOssModel.modify_tensors (llama.cpp's conversion/gpt_oss.py) for 16/32-bit experts as transformers'
    // GptOssExperts stores them: gate_up_proj [n_expert, n_embd, 2 * n_ff] with gate and up interleaved along the
    // last dim (gate = [..., ::2], up = [..., 1::2]) and down_proj [n_expert, n_ff, n_embd], both transposed to
    // ggml's [n_expert, out, in]; the biases gate_up_proj_bias [n_expert, 2 * n_ff] split the same way and
    // down_proj_bias renamed. Everything else goes through the name map.
    void gpt_oss(const Item& it) {
        const std::string& name = it.name;
        if (ends_with(name, "_blocks")) return;  // emitted by gpt_oss_mxfp4
        const core::Shape& shape = it.t->shape;
        auto fused = [&](std::size_t dims) {
            if (shape.size() != dims)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("expected a ", dims, "-D fused expert tensor, found shape ", core::shape_str(shape)));
        };
        if (contains(name, "down_proj")) {
            if (ends_with(name, "_bias")) {
                std::string n = name;
                n.replace(n.rfind("down_proj_bias"), 14, "down_proj.bias");
                map_and_emit(it, n, {{it.t->name}}, shape, {});
                return;
            }
            fused(3);
            SourceSlice sl{it.t->name};
            sl.transpose = true;
            map_and_emit(it, name + ".weight", {sl}, {shape[0], shape[2], shape[1]}, {});
            return;
        }
        if (contains(name, "gate_up_proj")) {
            const bool bias = ends_with(name, "_bias");
            fused(bias ? 2 : 3);
            if (shape.back() % 2 != 0)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("fused gate_up_proj: the last dim of ", core::shape_str(shape),
                                      " must be even (gate and up interleaved)"));
            const std::int64_t n_ff = shape.back() / 2;
            std::string stem = name.substr(0, name.rfind("gate_up_proj"));
            for (std::int64_t half = 0; half < 2; ++half) {
                SourceSlice sl{it.t->name};
                sl.col_begin = half;
                sl.col_step = 2;
                sl.transpose = !bias;
                const std::string proj = half == 0 ? "gate_proj" : "up_proj";
                if (bias) map_and_emit(it, stem + proj + ".bias", {sl}, {shape[0], n_ff}, {});
                else map_and_emit(it, stem + proj + ".weight", {sl}, {shape[0], n_ff, shape[1]}, {});
            }
            return;
        }
        map_and_emit(it, name, {{it.t->name}}, shape, {});
    }

    // Qwen2MoeModel.modify_tensors: fused 3-D experts (down_proj gets ".weight"; gate_up_proj splits on dim -2),
    // per-expert tensors stacked, anything else mapped. `name` is the tensor's name after the subclass renames.
    void qwen2moe(const Item& it, const std::string& name, std::vector<SourceSlice> one, const core::Shape& shape,
                  std::vector<Transform> tr) {
        if (ends_with(name, "mlp.experts.down_proj") || ends_with(name, "mlp.experts.down_proj.weight")) {
            map_and_emit(it, ends_with(name, ".weight") ? name : name + ".weight", one, shape, std::move(tr));
            return;
        }
        if (ends_with(name, "mlp.experts.gate_up_proj") || ends_with(name, "mlp.experts.gate_up_proj.weight")) {
            if (shape.size() < 3 || shape[shape.size() - 2] % 2 != 0)
                throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                            core::cat("fused gate_up_proj must be [n_expert, 2*n_ff, n_embd], found ",
                                      core::shape_str(shape)));
            const std::int64_t n_ff = shape[shape.size() - 2] / 2;
            std::string base = name;
            if (ends_with(base, ".weight")) base.resize(base.size() - 7);
            base.resize(base.size() - std::string_view(".gate_up_proj").size());
            core::Shape half = shape;
            half[half.size() - 2] = n_ff;
            map_and_emit(it, base + ".gate_proj.weight", {{it.t->name, 0, n_ff}}, half, tr);
            map_and_emit(it, base + ".up_proj.weight", {{it.t->name, n_ff, 2 * n_ff}}, half, std::move(tr));
            return;
        }
        if (contains(name, "experts")) {
            stack_experts(it, require_bid(it, block_id(name)), {"down_proj", "gate_proj", "up_proj"},
                          "model.layers.{bid}.mlp.experts.{x}.{w}.weight", "model.layers.{bid}.mlp.experts.{w}.weight");
            return;
        }
        map_and_emit(it, name, std::move(one), shape, std::move(tr));
    }

    // Qwen3_5TextModel.modify_tensors: _LinearAttentionVReorderBase's V-head tiling, then Qwen3NextModel's A_log,
    // dt_bias, conv1d and norm transforms, then the name map (llama.cpp's conversion/qwen.py).
    void qwen35(const Item& it, std::vector<SourceSlice> one) {
        std::string name = it.name;
        core::Shape shape = it.t->shape;
        std::vector<Transform> tr;
        if (contains(name, "conv1d")) std::erase(shape, 1);  // squeeze()
        const std::int64_t n_k = cfg_.find_int({"linear_num_key_heads"}).value_or(0);
        const std::int64_t n_v = cfg_.find_int({"linear_num_value_heads"}).value_or(0);
        if (n_k > 0 && n_v > 0 && n_k != n_v && contains(name, "linear_attn.")) {
            const std::int64_t head_k = require_int({"linear_key_head_dim"}, "linear attention key head size");
            const std::int64_t head_v = require_int({"linear_value_head_dim"}, "linear attention value head size");
            if (n_v % n_k != 0)
                bad_config(core::cat("linear_num_value_heads (", n_v, ") must be a multiple of linear_num_key_heads (",
                                     n_k, ")"));
            const std::int64_t qk = 2 * head_k * n_k;
            auto rows = [&](std::int64_t head, std::int64_t skip) {
                if (shape.empty() || shape[0] - skip != n_v * head)
                    throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                                core::cat("shape ", core::shape_str(it.t->shape), ": expected ", skip, " + ", n_v,
                                          " x ", head, " rows (linear attention heads)"));
                tr.push_back({TransformKind::TileVHeadRows, n_k, head, skip});
            };
            if (contains(name, ".in_proj_qkv.")) rows(head_v, qk);
            else if (contains(name, ".in_proj_z.")) rows(head_v, 0);
            else if (contains(name, ".in_proj_b.") || contains(name, ".in_proj_a.")) rows(1, 0);
            else if (contains(name, ".A_log") || contains(name, ".dt_bias") || contains(name, ".dt_proj")) {
                if (shape.size() == 1) rows(1, 0);
                else if (!shape.empty() && shape.back() == n_v) tr.push_back({TransformKind::TileVHeadColumns, n_k, 1, 0});
                else
                    throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                                core::cat("shape ", core::shape_str(it.t->shape), ": expected ", n_v, " V heads"));
            } else if (contains(name, ".conv1d")) rows(head_v, qk);
            else if (contains(name, ".out_proj.")) {
                if (shape.size() != 2 || shape[1] != n_v * head_v)
                    throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                                core::cat("shape ", core::shape_str(it.t->shape), ": expected ", n_v * head_v,
                                          " columns (linear attention value size)"));
                tr.push_back({TransformKind::TileVHeadColumns, n_k, head_v, 0});
            }
        }
        if (ends_with(name, ".A_log")) tr.push_back({TransformKind::NegExp, 0});
        else if (ends_with(name, ".dt_bias")) name = name.substr(0, name.size() - 8) + ".dt_proj.bias";
        else if (!contains(name, "conv1d") && ends_with(name, "norm.weight") &&
                 !ends_with(name, "linear_attn.norm.weight"))
            tr.push_back({TransformKind::AddOne, 0});
        if (family_ == Family::Qwen35Moe) qwen2moe(it, name, std::move(one), shape, std::move(tr));
        else map_and_emit(it, name, std::move(one), std::move(shape), std::move(tr));
    }

    // Qwen3NextModel.modify_tensors (llama.cpp's conversion/qwen.py): A_log -> -exp, dt_bias -> dt_proj.bias, conv1d squeezed,
    // zero-centred norms + 1 (not the gated linear_attn.norm); the fused in_proj_qkvz, stored per K head as
    // [q | k | v | z], becomes attn_qkv (every q, then every k, then every v) and attn_gate (every z). Each output
    // row is one input row, so both are written as row slices of in_proj_qkvz: a row block reads only its rows.
    // in_proj_ba goes to ssm_ba unchanged; experts, router and shared expert as Qwen2MoeModel.
    void qwen3next(const Item& it, std::vector<SourceSlice> one) {
        std::string name = it.name;
        core::Shape shape = it.t->shape;
        std::vector<Transform> tr;
        if (ends_with(name, ".A_log")) tr.push_back({TransformKind::NegExp, 0});
        else if (ends_with(name, ".dt_bias")) name = name.substr(0, name.size() - 8) + ".dt_proj.bias";
        else if (contains(name, "conv1d")) std::erase(shape, 1);  // squeeze()
        else if (ends_with(name, "norm.weight") && !ends_with(name, "linear_attn.norm.weight"))
            tr.push_back({TransformKind::AddOne, 0});
        if (!contains(name, "in_proj_qkvz.weight")) {
            qwen2moe(it, name, std::move(one), std::move(shape), std::move(tr));
            return;
        }
        const std::int64_t n_k = require_int({"linear_num_key_heads"}, "linear attention key heads");
        const std::int64_t n_v = require_int({"linear_num_value_heads"}, "linear attention value heads");
        const std::int64_t head_k = require_int({"linear_key_head_dim"}, "linear attention key head size");
        const std::int64_t head_v = require_int({"linear_value_head_dim"}, "linear attention value head size");
        if (n_k <= 0 || n_v <= 0 || head_k <= 0 || head_v <= 0 || n_v % n_k != 0)
            bad_config(core::cat("linear_num_value_heads (", n_v, ") must be a positive multiple of linear_num_key_heads (",
                                 n_k, "), head sizes > 0"));
        const std::int64_t vz = n_v / n_k * head_v;  // v (and z) rows per K head
        const std::int64_t group = 2 * head_k + 2 * vz;
        if (shape.size() != 2 || shape[0] != n_k * group)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("shape ", core::shape_str(shape), ": expected ", n_k, " K heads x ", group,
                                  " rows ([q, k, v, z] per K head) by hidden_size"));
        std::vector<SourceSlice> qkv, z;
        for (std::int64_t part : {std::int64_t{0}, head_k, 2 * head_k})  // offsets of q, k, v in a group
            for (std::int64_t h = 0; h < n_k; ++h) {
                const std::int64_t first = h * group + part;
                qkv.push_back({it.t->name, first, first + (part == 2 * head_k ? vz : head_k)});
            }
        for (std::int64_t h = 0; h < n_k; ++h) z.push_back({it.t->name, h * group + 2 * head_k + vz, (h + 1) * group});
        const std::string stem = name.substr(0, name.size() - std::string_view("in_proj_qkvz.weight").size());
        map_and_emit(it, stem + "in_proj_qkv.weight", std::move(qkv), {n_k * (2 * head_k + vz), shape[1]}, {});
        map_and_emit(it, stem + "in_proj_z.weight", std::move(z), {n_k * vz, shape[1]}, {});
    }

    std::int64_t require_bid(const Item& it, const std::optional<std::int64_t>& bid) const {
        if (!bid) throw Error(ErrorKind::BadInput, it.t->file, it.t->name, "expert tensor without a layer number");
        // Qwen2MoeModel keeps one expert buffer per block (block_count: MTP layers included)
        if (*bid < 0 || *bid >= out_.block_count)
            throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                        core::cat("layer ", *bid, " is out of range (", out_.block_count, " blocks: num_hidden_layers ",
                                  cfg_.n_layer, out_.block_count > cfg_.n_layer ? " + MTP layers" : "", ")"));
        return *bid;
    }

    static std::string fill(std::string pattern, std::int64_t bid, std::int64_t x, std::string_view w) {
        auto put = [&](std::string_view key, const std::string& value) {
            if (auto p = pattern.find(key); p != std::string::npos) pattern.replace(p, key.size(), value);
        };
        put("{bid}", std::to_string(bid));
        put("{x}", std::to_string(x));
        put("{w}", std::string(w));
        return pattern;
    }

    // Buffer per-expert tensors of a layer; once n_experts * 3 have arrived, stack each projection in expert
    // order (torch.stack(dim=0)) and map it. The stacked tensor is emitted when its last expert arrives.
    void stack_experts(const Item& it, std::int64_t bid, std::array<std::string_view, 3> projections,
                       const char* expert_pattern, const char* merged_pattern) {
        const std::int64_t n = n_experts();
        auto& layer = experts_[bid];
        layer.emplace(it.name, it);
        if (static_cast<std::int64_t>(layer.size()) < n * 3) return;
        for (std::string_view w : projections) {
            std::vector<SourceSlice> sources;
            core::Shape block;
            const Item* last = nullptr;
            for (std::int64_t x = 0; x < n; ++x) {
                const std::string ename = fill(expert_pattern, bid, x, w);
                auto e = layer.find(ename);
                if (e == layer.end())
                    throw Error(ErrorKind::BadInput, it.t->file, it.t->name,
                                core::cat("layer ", bid, " has ", layer.size(), " expert tensors but not '", ename, "'"));
                if (x == 0) block = e->second.t->shape;
                else if (e->second.t->shape != block)
                    throw Error(ErrorKind::BadInput, e->second.t->file, e->second.t->name,
                                core::cat("shape ", core::shape_str(e->second.t->shape), " differs from expert 0's ",
                                          core::shape_str(block)));
                sources.push_back({e->second.t->name});
                last = &e->second;
            }
            core::Shape stacked{n};
            stacked.insert(stacked.end(), block.begin(), block.end());
            Item origin = *last;
            map_and_emit(origin, fill(merged_pattern, bid, 0, w), std::move(sources), std::move(stacked), {});
            for (std::int64_t x = 0; x < n; ++x) layer.erase(fill(expert_pattern, bid, x, w));
        }
    }

    void finish() {
        // qwen2moe's loader requires output.weight (src/models/qwen2moe.cpp) and the converter never synthesizes
        // it: a tied checkpoint would give an unloadable file. We write token_embd's data again as output.
        if (family_ == Family::Qwen2Moe && !names_.count("output.weight")) {
            auto te = std::find_if(out_.tensors.begin(), out_.tensors.end(),
                                   [](const GgufTensorMap& t) { return t.gguf_name == "token_embd.weight"; });
            if (te != out_.tensors.end()) {
                GgufTensorMap out = *te;
                out.gguf_name = "output.weight";
                out_.tensors.insert(te + 1, std::move(out));
                names_.insert("output.weight");
            }
        }
    }

    const HfConfig& cfg_;
    Family family_;
    std::int64_t vocab_;
    bool mtp_only_ = false;
    GgufConversion out_;
    std::set<std::string> names_;
    std::map<std::int64_t, std::map<std::string, Item>> experts_;
    std::int64_t n_mtp_seen_ = 0;  // MTP layers found among the tensor names (qwen35)
};

}  // namespace

GgufConversion plan_gguf_conversion(const HfConfig& cfg, const std::vector<HfTensor>& tensors,
                                    std::int64_t tokenizer_vocab_size, bool mtp_only) {
    Planner p(cfg, tokenizer_vocab_size, mtp_only);
    GgufConversion c = p.run(tensors);
    detail::append_arch_kvs(cfg, c);
    return c;
}

}  // namespace shardforge::model
