// Model card README.md (docs/hub.md): front matter the Hub reads (base_model, base_model_relation,
// library_name, license, pipeline_tag, tags), the files with quant types and sizes, how to run them.
#include <shardforge/hub.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

namespace shardforge::hub {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// YAML scalar: plain when safe, else double-quoted JSON (valid YAML).
std::string yaml_scalar(const std::string& s) {
    const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
    });
    return plain ? s : json(s).dump();
}

const char* const quant_names[] = {
    "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS",
    "TQ1_0", "TQ2_0", "Q2_K_S", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q3_K", "Q4_K_S", "Q4_K_M", "Q4_K", "Q4_0",
    "Q4_1", "Q5_K_S", "Q5_K_M", "Q5_K", "Q5_0", "Q5_1", "Q6_K", "Q8_0", "BF16", "F16", "F32", "MXFP4"};

bool is_unquantized(const std::string& q) { return q == "BF16" || q == "F16" || q == "F32"; }

}  // namespace

std::string gguf_quant_from_name(std::string_view file_name) {
    std::string up(file_name);
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!ends_with(up, ".GGUF")) return "";
    up.resize(up.size() - 5);
    // Longest name that appears delimited by '-', '.', '_' (or the start) on the left and '-', '.' or the end on
    // the right: "model-Q4_K_M-00001-of-00002" -> Q4_K_M, "x.q8_0" -> Q8_0.
    std::string best;
    for (const char* q : quant_names) {
        const std::string n = q;
        for (std::size_t p = up.find(n); p != std::string::npos; p = up.find(n, p + 1)) {
            const bool left = p == 0 || up[p - 1] == '-' || up[p - 1] == '.' || up[p - 1] == '_';
            const std::size_t e = p + n.size();
            const bool right = e == up.size() || up[e] == '-' || up[e] == '.';
            if (left && right && n.size() > best.size()) best = n;
        }
    }
    return best;
}

std::string license_from_readme(std::string_view readme) {
    if (readme.rfind("---", 0) != 0) return "";
    const auto end = readme.find("\n---", 3);
    if (end == std::string_view::npos) return "";
    const std::string_view fm = readme.substr(0, end + 1);
    for (std::size_t i = 0; i < fm.size();) {
        const std::size_t e = std::min(fm.find('\n', i), fm.size());
        std::string_view line = fm.substr(i, e - i);
        if (line.rfind("license:", 0) == 0) {
            line.remove_prefix(8);
            std::string v(line);
            v.erase(0, v.find_first_not_of(" \t"));
            while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
            if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
            return v;
        }
        i = e + 1;
    }
    return "";
}

CardInfo card_info_from_dir(const fs::path& dir, const std::string& repo_id, const std::vector<std::string>& base_models,
                            const std::string& license) {
    CardInfo c;
    c.repo_id = repo_id;
    c.base_models = base_models;
    c.license = license;
    bool gguf = false, quantized = false, safetensors = false, adapter = false, gguf_lora = false;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
        if (it->is_directory() && it->path().filename().string().front() == '.') {
            it.disable_recursion_pending();
            continue;
        }
        if (!it->is_regular_file()) continue;
        const std::string rel = fs::relative(it->path(), dir).generic_string();
        if (ends_with(rel, ".partial") || rel == "README.md") continue;
        if (it->path().filename().string().rfind(".shardforge.lock", 0) == 0) continue;  // the export's output lock
        c.files.push_back({rel, it->file_size()});
        const std::string name = it->path().filename().string();
        if (ends_with(name, ".gguf")) {
            gguf = true;
            std::string lname = name;
            for (auto& ch : lname) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (lname.find("lora") != std::string::npos) gguf_lora = true;
            const std::string q = gguf_quant_from_name(name);
            if (!q.empty() && !is_unquantized(q)) quantized = true;
        }
        if (ends_with(name, ".safetensors") && name.rfind("adapter_model", 0) != 0) safetensors = true;
        if (name == "adapter_config.json") adapter = true;
        if (name == "Modelfile") c.has_modelfile = true;
    }
    std::sort(c.files.begin(), c.files.end(), [](const CardInfo::File& a, const CardInfo::File& b) { return a.path < b.path; });
    if (c.base_models.empty()) {   // config.json's _name_or_path when it is a Hub id
        std::ifstream in(dir / "config.json");
        const json j = json::parse(in, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("_name_or_path") && j["_name_or_path"].is_string()) {
            const auto ref = parse_repo_ref(j["_name_or_path"].get<std::string>());
            if (ref && ref->revision.empty()) c.base_models.push_back(ref->id());
        }
    }
    std::set<std::string> tags{"shardforge"};
    if (adapter && !safetensors && !gguf) {
        c.relation = "adapter";
        c.library_name = "peft";
        tags.insert({"lora", "peft"});
    } else if (gguf && !safetensors) {
        c.relation = quantized ? "quantized" : (gguf_lora ? "adapter" : "");
        c.library_name = "gguf";
        tags.insert({"gguf", "llama-cpp"});
        if (quantized) tags.insert("quantized");
        if (gguf_lora) tags.insert("lora");
    } else {
        c.library_name = "transformers";
        if (gguf) tags.insert({"gguf", "llama-cpp"});
        if (quantized) tags.insert("quantized");
        c.relation = c.base_models.size() >= 2 ? "merge" : (quantized && !safetensors ? "quantized" : "finetune");
    }
    if (c.base_models.size() >= 2) c.relation = "merge";
    if (c.base_models.empty()) c.relation.clear();   // a relation needs a base_model
    c.tags.assign(tags.begin(), tags.end());
    return c;
}

std::string make_model_card(const CardInfo& c) {
    std::string s = "---\n";
    if (c.base_models.size() == 1) s += "base_model: " + yaml_scalar(c.base_models[0]) + "\n";
    else if (c.base_models.size() > 1) {
        s += "base_model:\n";
        for (const auto& b : c.base_models) s += "- " + yaml_scalar(b) + "\n";
    }
    if (!c.relation.empty()) s += "base_model_relation: " + c.relation + "\n";
    if (!c.library_name.empty()) s += "library_name: " + c.library_name + "\n";
    if (!c.license.empty()) s += "license: " + yaml_scalar(c.license) + "\n";
    if (!c.pipeline_tag.empty()) s += "pipeline_tag: " + c.pipeline_tag + "\n";
    if (!c.tags.empty()) {
        s += "tags:\n";
        for (const auto& t : c.tags) s += "- " + yaml_scalar(t) + "\n";
    }
    s += "---\n\n";
    const std::string name = c.repo_id.empty() ? std::string("Model") : c.repo_id.substr(c.repo_id.find('/') + 1);
    s += "# " + name + "\n\n";
    if (!c.base_models.empty()) {
        s += "Exported with shardforge from ";
        for (std::size_t i = 0; i < c.base_models.size(); ++i)
            s += (i ? ", " : "") + std::string("[") + c.base_models[i] + "](https://huggingface.co/" + c.base_models[i] + ")";
        s += c.relation == "adapter" ? " (LoRA adapter).\n\n" : c.relation == "quantized" ? " (quantized).\n\n"
                                                                                          : " (LoRA merged into the base weights).\n\n";
    } else {
        s += "Exported with shardforge.\n\n";
    }
    s += "## Files\n\n| File | Type | Size |\n|---|---|---|\n";
    std::string first_gguf, q4km, mmproj;
    bool has_st = false;
    for (const auto& f : c.files) {
        std::string type = "";
        if (ends_with(f.path, ".gguf") && f.path.rfind("mmproj-", 0) == 0) {
            // a vision model's multimodal projector (convert_hf_to_gguf.py --mmproj), run beside the text model
            const std::string q = gguf_quant_from_name(f.path);
            type = "GGUF vision projector (mmproj" + (q.empty() ? std::string() : " " + q) + ")";
            if (mmproj.empty() || ends_with(f.path, "-F16.gguf")) mmproj = f.path;
        } else if (ends_with(f.path, ".gguf")) {
            type = gguf_quant_from_name(f.path);
            if (type.empty()) type = "GGUF";
            else type = "GGUF " + type;
            if (first_gguf.empty()) first_gguf = f.path;
            if (type == "GGUF Q4_K_M" && q4km.empty()) q4km = f.path;
        } else if (ends_with(f.path, ".safetensors")) {
            type = "safetensors";
            has_st = true;
        } else if (ends_with(f.path, ".json")) {
            type = "JSON";
        } else if (f.path == "Modelfile") {
            type = "Ollama Modelfile";
        }
        s += "| `" + f.path + "` | " + type + " | " + core::human_size(f.size) + " |\n";
    }
    s += "\n## How to run\n\n";
    const std::string repo = c.repo_id.empty() ? std::string("ORG/NAME") : c.repo_id;
    if (!first_gguf.empty()) {
        const std::string pick = q4km.empty() ? first_gguf : q4km;
        std::string tag = gguf_quant_from_name(pick);
        s += "### llama.cpp\n\n```sh\nllama-cli -hf " + repo + (tag.empty() ? "" : ":" + tag) + " -p \"Hello\"\n";
        s += "# or with a downloaded file:\nllama-cli -m " + pick + " -p \"Hello\"\n";
        if (!mmproj.empty())  // llama.cpp's multimodal CLI takes the projector beside the model
            s += "# with images:\nllama-mtmd-cli -m " + pick + " --mmproj " + mmproj + " --image IMAGE -p \"Describe\"\n";
        s += "```\n\n";
        s += "### Ollama\n\n```sh\nollama run hf.co/" + repo + (tag.empty() ? "" : ":" + tag) + "\n";
        if (c.has_modelfile) s += "# or locally, with the included Modelfile:\nollama create " + name + " -f Modelfile\n";
        s += "```\n\n";
    }
    if (has_st) {
        if (c.relation == "adapter") {
            s += "### PEFT\n\n```python\nfrom peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"" +
                 repo + "\")\n```\n";
        } else {
            s += "### transformers\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
                 "tok = AutoTokenizer.from_pretrained(\"" + repo + "\")\nmodel = AutoModelForCausalLM.from_pretrained(\"" +
                 repo + "\", torch_dtype=\"auto\")\n```\n";
        }
    } else if (c.relation == "adapter") {
        s += "### PEFT\n\n```python\nfrom peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"" +
             repo + "\")\n```\n";
    }
    return s;
}

}  // namespace shardforge::hub
