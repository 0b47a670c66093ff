// Chat template and special tokens from a Hugging Face tokenizer_config.json (input to make_modelfile).
#include <shardforge/ollama.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace shardforge::ollama {
namespace {

// false when absent; size-capped and depth-checked like every other input file (core::read_input_file).
bool read_text(const std::filesystem::path& p, std::string& out) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) return false;
    out = core::read_input_file(p.string());
    if (p.extension() == ".json") core::check_json_depth(out, p.string());
    return true;
}

// Special tokens are either "<s>" or an AddedToken dict {"content": "<s>", ...}.
std::string token_of(const nlohmann::json& cfg, const char* key) {
    if (!cfg.contains(key)) return {};
    const auto& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return {};
}

}  // namespace

ModelfileInput read_hf_chat_config(const std::filesystem::path& dir) {
    ModelfileInput in;
    const auto path = dir / "tokenizer_config.json";
    std::string text;
    if (read_text(path, text)) {
        const auto cfg = nlohmann::json::parse(text, nullptr, false);
        if (cfg.is_discarded() || !cfg.is_object())
            throw core::Error(core::ErrorKind::BadInput, path.string(), "", "not a JSON object");
        in.tokens.bos = token_of(cfg, "bos_token");
        in.tokens.eos = token_of(cfg, "eos_token");
        if (cfg.contains("chat_template")) {
            const auto& t = cfg["chat_template"];
            if (t.is_string()) {
                in.chat_template = t.get<std::string>();
            } else if (t.is_array()) {   // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
                for (const auto& e : t)
                    if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
                        e["template"].is_string())
                        in.chat_template = e["template"].get<std::string>();
                if (in.chat_template.empty() && !t.empty() && t[0].is_object() && t[0].contains("template") &&
                    t[0]["template"].is_string())
                    in.chat_template = t[0]["template"].get<std::string>();
            }
        }
    }
    if (in.chat_template.empty()) {   // newer transformers keep it in its own file
        std::string jinja;
        if (read_text(dir / "chat_template.jinja", jinja)) in.chat_template = jinja;
    }
    return in;
}

}  // namespace shardforge::ollama
