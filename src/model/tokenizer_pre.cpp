// tokenizer.ggml.pre for byte-level BPE vocabularies (llama.cpp's convert_hf_to_gguf.py get_vocab_base_pre).
// The reference converter hashes an HF tokenization of a fixed text (get_vocab_base_pre); without an HF tokenizer
// we identify the family from the tokenizer.json pre_tokenizer instead: the Split regexes (verbatim, as HF
// serialises them), the ByteLevel use_regex flag and a Digits splitter. The regexes below are the "original
// regex from tokenizer.json" strings llama.cpp's llama-vocab.cpp quotes next to each pre type.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

namespace shardforge::model {
namespace {

using nlohmann::json;

// Llama 3 / 3.1 / 3.2 (llama-bpe): digit runs of 1-3.
constexpr std::string_view re_llama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 / 2.5 / 3, DeepSeek-R1-Distill-Qwen: single digits.
constexpr std::string_view re_qwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: letters with combining marks.
constexpr std::string_view re_qwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral Nemo (tekken).
constexpr std::string_view re_tekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// o200k style (gpt-4o, Llama 4).
constexpr std::string_view re_gpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM / Coder / V3: several Split steps; identified by their first ones.
constexpr std::string_view re_newline = "[\r\n]";
constexpr std::string_view re_deepseek_llm_letters_prefix = R"(\s?[A-Za-zµÀ-ÖØ-öø-ƺ)";
constexpr std::string_view re_deepseek_coder_letters = R"(\s?\p{L}+)";
constexpr std::string_view re_digits_1_3 = R"(\p{N}{1,3})";
constexpr std::string_view re_cjk_kana = "[一-龥぀-ゟ゠-ヿ]+";

// DeepSeek-R1-Distill-Qwen keeps Qwen2's pre-tokenizer but adds this BOS (its own chkhsh, name
// deepseek-r1-qwen; llama.cpp treats both names alike).
constexpr std::string_view deepseek_bos = "<｜begin▁of▁sentence｜>";

struct PreSteps {
    std::vector<std::string> splits;  // Split regexes in order ("String:" prefix for literal patterns)
    bool has_byte_level = false;
    bool byte_level_use_regex = true;  // HF default when the field is absent
    bool has_digits = false;
    bool digits_individual = false;
    std::vector<std::string> others;  // any other step type
};

PreSteps collect(const json& pre) {
    PreSteps s;
    std::vector<const json*> steps;
    if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
        pre["pretokenizers"].is_array()) {
        for (const json& p : pre["pretokenizers"]) steps.push_back(&p);
    } else if (pre.is_object()) {
        steps.push_back(&pre);
    }
    for (const json* p : steps) {
        const std::string type = p->is_object() && (*p).contains("type") && (*p)["type"].is_string()
                                     ? (*p)["type"].get<std::string>()
                                     : std::string("?");
        if (type == "Split") {
            const json* pat = p->contains("pattern") ? &(*p)["pattern"] : nullptr;
            if (pat && pat->is_object() && pat->contains("Regex") && (*pat)["Regex"].is_string())
                s.splits.push_back((*pat)["Regex"].get<std::string>());
            else if (pat && pat->is_object() && pat->contains("String") && (*pat)["String"].is_string())
                s.splits.push_back("String:" + (*pat)["String"].get<std::string>());
            else
                s.splits.push_back("?");
        } else if (type == "ByteLevel") {
            s.has_byte_level = true;
            if (p->contains("use_regex") && (*p)["use_regex"].is_boolean())
                s.byte_level_use_regex = (*p)["use_regex"].get<bool>();
        } else if (type == "Digits") {
            s.has_digits = true;
            if (p->contains("individual_digits") && (*p)["individual_digits"].is_boolean())
                s.digits_individual = (*p)["individual_digits"].get<bool>();
        } else {
            s.others.push_back(type);
        }
    }
    return s;
}

bool token_content_is(const json& tc, const char* key, std::string_view want) {
    if (!tc.is_object() || !tc.contains(key)) return false;
    const json& v = tc[key];
    if (v.is_string()) return v.get<std::string>() == want;
    if (v.is_object() && v.contains("content") && v["content"].is_string())
        return v["content"].get<std::string>() == want;
    return false;
}

std::string describe(const PreSteps& s) {
    std::string d;
    for (const std::string& r : s.splits) d += core::cat(d.empty() ? "" : ", ", "Split '", r, "'");
    if (s.has_digits) d += core::cat(d.empty() ? "" : ", ", "Digits(individual_digits=", s.digits_individual, ")");
    if (s.has_byte_level)
        d += core::cat(d.empty() ? "" : ", ", "ByteLevel(use_regex=", s.byte_level_use_regex ? "true" : "false", ")");
    for (const std::string& o : s.others) d += core::cat(d.empty() ? "" : ", ", o);
    return d.empty() ? "none" : d;
}

}  // namespace

std::string detect_bpe_pre(const json& tokenizer_json, const json& tokenizer_config, const std::string& arch,
                           const std::string& file_for_errors) {
    const json* pre = tokenizer_json.is_object() && tokenizer_json.contains("pre_tokenizer")
                          ? &tokenizer_json["pre_tokenizer"]
                          : nullptr;
    const PreSteps s = pre ? collect(*pre) : PreSteps{};
    const bool only_split_then_bytes =
        s.splits.size() == 1 && s.has_byte_level && !s.byte_level_use_regex && !s.has_digits && s.others.empty();

    if (only_split_then_bytes) {
        const std::string& re = s.splits[0];
        // GLM-4.5 / 4.6 / 4.7 split as Llama 3 does; the converter names their published fingerprints "glm4"
        // (get_vocab_base_pre), and llama.cpp's llama-vocab.cpp gives "glm4" the same regex.
        if (re == re_llama3) return arch == "glm4moe" ? "glm4" : "llama-bpe";
        if (re == re_qwen2) {
            return token_content_is(tokenizer_config, "bos_token", deepseek_bos) ? "deepseek-r1-qwen" : "qwen2";
        }
        if (re == re_qwen35) return "qwen35";
        if (re == re_tekken) return "tekken";
        // MiniMax-M2 / M2.1 split as o200k does; the converter names their published fingerprint "minimax-m2", and
        // llama.cpp's llama-vocab.cpp gives "minimax-m2" the gpt-4o regex.
        if (re == re_gpt4o) return arch == "llama4" ? "llama4" : arch == "minimax-m2" ? "minimax-m2" : "gpt-4o";
    }
    if (s.splits.empty() && s.others.empty() && s.has_byte_level && s.byte_level_use_regex) {
        if (!s.has_digits) return arch == "phi2" ? "phi-2" : "gpt-2";
        if (s.digits_individual) return arch == "starcoder2" ? "starcoder" : "smollm";
    }
    if (s.has_byte_level && s.others.empty() && s.splits.size() >= 2) {
        if (s.splits[0] == re_newline && s.splits[1].starts_with(re_deepseek_llm_letters_prefix))
            return "deepseek-llm";
        if (s.splits[0] == re_newline && s.splits[1] == re_deepseek_coder_letters) return "deepseek-coder";
        if (s.splits[0] == re_digits_1_3 && s.splits[1] == re_cjk_kana) return "deepseek-v3";
    }
    throw core::Error(core::ErrorKind::Unsupported, file_for_errors, "",
                      core::cat("BPE pre-tokenizer not recognized (", describe(s),
                                "); supported: llama-bpe, qwen2, deepseek-r1-qwen, qwen35, tekken, gpt-4o, llama4, "
                                "gpt-2, smollm, deepseek-llm, deepseek-coder, deepseek-v3"));
}

}  // namespace shardforge::model
