// Private to src/model/arch*.cpp: the emulation of convert_hf_to_gguf's tensor pass (llama.cpp's conversion/base.py
// prepare_tensors and the model classes' filter_tensors / modify_tensors / generate_extra_tensors) on names and shapes.
// One Planner per conversion; its common steps live in arch.cpp, each family's modify_tensors in arch_<family>.cpp.
#pragma once
#include "arch_detail.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::model::detail {

using core::Error;
using core::ErrorKind;

inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

inline void replace_all(std::string& s, std::string_view from) {  // str.replace(from, "")
    for (std::size_t p; (p = s.find(from)) != std::string::npos;) s.erase(p, from.size());
}

// First all-digit dotted component of a tensor name (the block number), if any.
[[nodiscard]] std::optional<std::int64_t> block_id(std::string_view name);
// TensorNameMap.get_name(name, try_suffixes=(".weight", ".bias")) for the family (arch_names.cpp); "" when unmapped.
[[nodiscard]] std::string map_tensor_name(Family f, const std::string& name);
// TextModel.filter_tensors: multimodal parts of a checkpoint are not part of the text model (arch_names.cpp).
[[nodiscard]] bool is_multimodal(std::string_view n);

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

    GgufConversion run(const std::vector<HfTensor>& tensors);

private:
    bool qwen35_family() const { return family_ == Family::Qwen35 || family_ == Family::Qwen35Moe; }
    // _QwenMtpMixin's families (llama.cpp's conversion/qwen.py): Qwen3-Next and Qwen3.5
    bool hybrid_family() const { return qwen35_family() || family_ == Family::Qwen3Next; }

    static constexpr std::int64_t max_mtp_layers = 64;  // published models have one

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

    // arch.cpp: the converter's common steps
    static quant::FType auto_ftype(const std::vector<Item>& items);
    void emit(std::string gguf_name, std::vector<SourceSlice> sources, core::Shape shape,
              std::vector<Transform> transforms, const Item* origin);
    void map_and_emit(const Item& it, const std::string& name, std::vector<SourceSlice> sources, core::Shape shape,
                      std::vector<Transform> transforms);
    void generate_extra();
    void check_rows(const Item& it, const core::Shape& shape, std::int64_t divisor, std::string_view why) const;
    void modify(const Item& it);
    std::int64_t require_bid(const Item& it, const std::optional<std::int64_t>& bid) const;
    static std::string fill(std::string pattern, std::int64_t bid, std::int64_t x, std::string_view w);
    void stack_experts(const Item& it, std::int64_t bid, std::array<std::string_view, 3> projections,
                       const char* expert_pattern, const char* merged_pattern);
    void finish();

    // arch_qwen.cpp
    std::string mtp_name(std::string name);
    void qwen2moe(const Item& it, const std::string& name, std::vector<SourceSlice> one, const core::Shape& shape,
                  std::vector<Transform> tr);
    void qwen35(const Item& it, std::vector<SourceSlice> one);
    void qwen3next(const Item& it, std::vector<SourceSlice> one);

    // arch_gemma.cpp
    static std::string gemma4_filter_name(std::string name);
    void gemma4_rope_freqs();

    // arch_gemma3n.cpp
    void gemma3n(const Item& it);
    void gemma3n_check_altup() const;

    // arch_phi3.cpp
    void phi3_rope_factors();

    // arch_deepseek.cpp
    void deepseek2(const Item& it, std::vector<SourceSlice> one);

    // arch_llama4.cpp
    void llama4(const Item& it);

    // arch_gpt_oss.cpp
    void gpt_oss_mxfp4(const std::vector<Item>& items);
    void gpt_oss(const Item& it);

    const HfConfig& cfg_;
    Family family_;
    std::int64_t vocab_;
    bool mtp_only_ = false;
    GgufConversion out_;
    std::set<std::string> names_;
    std::map<std::int64_t, std::map<std::string, Item>> experts_;
    std::int64_t n_mtp_seen_ = 0;  // MTP layers found among the tensor names (qwen35)
    std::map<std::string, std::map<std::int64_t, Item>> altup_;  // gemma3n: stacked name -> index -> projection
};

}  // namespace shardforge::model::detail
