// Chat-template family detection and Modelfile generation (ollama's docs/modelfile.mdx; ollama's docs/template.mdx).
// The family is read from the turn markers of the Jinja template, not from a model-name table, so any
// fine-tune that keeps its base's template gets the right TEMPLATE and stop list.
#include <shardforge/ollama.hpp>

#include <array>
#include <regex>

namespace shardforge::ollama {
namespace {

bool has(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

// Parses the Jinja string literal starting at s[i] (a quote); returns false if s[i] is not a quote.
bool parse_literal(std::string_view s, std::size_t i, std::string& out) {
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return false;
    const char q = s[i];
    out.clear();
    for (++i; i < s.size(); ++i) {
        const char c = s[i];
        if (c == q) return true;
        if (c == '\\' && i + 1 < s.size()) {
            const char e = s[++i];
            out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
            out += c;
        }
    }
    return false;
}

std::string rtrim(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.pop_back();
    return s;
}

// Default system prompt written inside a turn marker: '<|im_start|>system\nYou are ...<|im_end|>\n'.
// `open` is how the marker is spelled in the Jinja source (escapes not yet decoded).
std::string system_after_marker(std::string_view jinja, std::string_view open, std::string_view close) {
    for (std::size_t p = jinja.find(open); p != std::string_view::npos; p = jinja.find(open, p + 1)) {
        const std::size_t start = p + open.size();
        const std::size_t end = jinja.find(close, start);
        if (end == std::string_view::npos) continue;
        const std::string_view body = jinja.substr(start, end - start);
        if (body.empty() || body.find_first_of("'\"{}") != std::string_view::npos) continue;
        std::string lit;
        const std::string quoted = core::cat('\'', body, '\'');
        if (parse_literal(quoted, 0, lit) && !lit.empty()) return lit;
    }
    return {};
}

// Plain-text families: `{% if messages[0]['role'] == 'system' %}...{% else %}{{ 'Default prompt' ... }}`.
std::string system_in_else_branch(std::string_view jinja) {
    static const std::regex test(R"(==\s*['"]system['"])");
    std::match_results<std::string_view::const_iterator> m;
    if (!std::regex_search(jinja.begin(), jinja.end(), m, test)) return {};
    std::size_t p = static_cast<std::size_t>(m.position(0));
    static const std::regex else_tag(R"(\{%-?\s*else\s*-?%\}\s*\{\{-?\s*)");
    if (!std::regex_search(jinja.begin() + static_cast<std::ptrdiff_t>(p), jinja.end(), m, else_tag)) return {};
    p += static_cast<std::size_t>(m.position(0) + m.length(0));
    std::string lit;
    if (!parse_literal(jinja, p, lit)) return {};
    return rtrim(lit);
}

// `{% set system_message = 'Default prompt' %}` (any variable whose name contains "system").
std::string system_in_set(std::string_view jinja) {
    static const std::regex set(R"(set\s+\w*system\w*\s*=\s*)");
    std::match_results<std::string_view::const_iterator> m;
    auto it = jinja.begin();
    while (std::regex_search(it, jinja.end(), m, set)) {
        const std::size_t p = static_cast<std::size_t>((it - jinja.begin()) + m.position(0) + m.length(0));
        std::string lit;
        if (parse_literal(jinja, p, lit) && !rtrim(lit).empty()) return lit;
        it = jinja.begin() + static_cast<std::ptrdiff_t>(p);
    }
    return {};
}

// Go templates (Ollama's data: .System, .Messages[].Role/.Content; see docs/template.mdx). Each one renders
// exactly what the family's Jinja template renders with add_generation_prompt=true, minus the BOS token that
// Ollama's tokenizer adds (checked by tests/conformance/ollama against @huggingface/jinja). "EOS" is replaced
// by the model's eos token.
constexpr std::string_view tmpl_llama3 =
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n";

constexpr std::string_view tmpl_chatml =
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n";

// Mistral v0.3: the system prompt goes before the LAST user message.
constexpr std::string_view tmpl_mistral =
    "{{- range $i, $_ := .Messages }}\n"
    "{{- if eq .Role \"user\" }}\n"
    "{{- if and $.System (eq (len (slice $.Messages $i)) 1) }}[INST] {{ $.System }}\n\n"
    "{{ .Content }}[/INST]\n"
    "{{- else }}[INST] {{ .Content }}[/INST]\n"
    "{{- end }}\n"
    "{{- else if eq .Role \"assistant\" }} {{ .Content }}EOS\n"
    "{{- end }}\n"
    "{{- end }}";

// Gemma has no system role: the system text opens the first user turn.
constexpr std::string_view tmpl_gemma =
    "{{- $first := true }}\n"
    "{{- range .Messages }}\n"
    "{{- if ne .Role \"system\" }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
    "{{ if and $first $.System }}{{ $.System }}\n\n"
    "{{ end }}{{ .Content }}<end_of_turn>\n"
    "{{ $first = false }}\n"
    "{{- end }}\n"
    "{{- end }}<start_of_turn>model\n";

constexpr std::string_view tmpl_phi3 =
    "{{- range .Messages }}<|{{ .Role }}|>\n"
    "{{ .Content }}<|end|>\n"
    "{{ end }}<|assistant|>\n";

constexpr std::string_view tmpl_alpaca =
    "{{- if .System }}{{ .System }}\n\n"
    "{{ end }}\n"
    "{{- range .Messages }}\n"
    "{{- if eq .Role \"user\" }}### Instruction:\n"
    "{{ .Content }}\n\n"
    "{{ else if eq .Role \"assistant\" }}### Response:\n"
    "{{ .Content }}EOS\n\n"
    "{{ end }}\n"
    "{{- end }}### Response:\n";

constexpr std::string_view tmpl_vicuna =
    "{{- if .System }}{{ .System }} {{ end }}\n"
    "{{- range .Messages }}\n"
    "{{- if eq .Role \"user\" }}USER: {{ .Content }} {{ else if eq .Role \"assistant\" }}ASSISTANT: {{ .Content }}EOS{{ end }}\n"
    "{{- end }}ASSISTANT:";

// Gemma 4: a system turn of its own, "model" for the assistant, and the empty thought channel its template opens
// the reply with when thinking is off (google/gemma-4 chat_template, add_generation_prompt without enable_thinking).
constexpr std::string_view tmpl_gemma4 =
    "{{- range .Messages }}<|turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
    "{{ .Content }}<turn|>\n"
    "{{ end }}<|turn>model\n<|channel>thought\n<channel|>";

// Llama 4: Llama 3's turns with other markers and no newline after <|eot|> (transformers' Llama4Processor
// chat_template, which meta-llama/Llama-4-* ship in tokenizer_config.json).
constexpr std::string_view tmpl_llama4 =
    "{{- range .Messages }}<|header_start|>{{ .Role }}<|header_end|>\n\n"
    "{{ .Content }}<|eot|>\n"
    "{{- end }}<|header_start|>assistant<|header_end|>\n\n";

struct FamilyRow {
    Family family;
    std::string_view name;
    std::string_view go_template;
    std::array<std::string_view, 4> stops;   // kept when present in the Jinja template
    bool uses_eos;                           // the template writes eos_token after assistant turns
};

constexpr std::array<FamilyRow, 9> family_table{{
    {Family::Llama3, "llama3", tmpl_llama3, {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", ""}, false},
    {Family::ChatML, "chatml", tmpl_chatml, {"<|im_start|>", "<|im_end|>", "", ""}, false},
    {Family::Mistral, "mistral", tmpl_mistral, {"[INST]", "[/INST]", "", ""}, true},
    {Family::Gemma, "gemma", tmpl_gemma, {"<start_of_turn>", "<end_of_turn>", "", ""}, false},
    {Family::Phi3, "phi3", tmpl_phi3, {"<|end|>", "<|system|>", "<|user|>", "<|assistant|>"}, false},
    {Family::Alpaca, "alpaca", tmpl_alpaca, {"### Instruction:", "### Response:", "", ""}, true},
    {Family::Vicuna, "vicuna", tmpl_vicuna, {"USER:", "ASSISTANT:", "", ""}, true},
    {Family::Gemma4, "gemma4", tmpl_gemma4, {"<turn|>", "<|turn>", "", ""}, false},
    {Family::Llama4, "llama4", tmpl_llama4, {"<|header_start|>", "<|header_end|>", "<|eot|>", ""}, false},
}};

const FamilyRow* row_of(Family f) {
    for (const auto& r : family_table)
        if (r.family == f) return &r;
    return nullptr;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

}  // namespace

std::string_view family_name(Family f) noexcept {
    const FamilyRow* r = row_of(f);
    return r ? r->name : std::string_view("unknown");
}

FamilyInfo detect_family(std::string_view j) {
    FamilyInfo fi;
    auto found = [&](Family f, std::string why) {
        fi.family = f;
        fi.why = std::move(why);
    };
    if (j.empty()) {
        fi.why = "the model has no chat_template";
    } else if (has(j, "<|start_header_id|>") && has(j, "<|end_header_id|>") && has(j, "<|eot_id|>")) {
        found(Family::Llama3, "<|start_header_id|>/<|end_header_id|>/<|eot_id|> turns");
        fi.default_system = system_after_marker(j, "<|start_header_id|>system<|end_header_id|>\\n\\n", "<|eot_id|>");
    } else if (has(j, "<|header_start|>") && has(j, "<|header_end|>") && has(j, "<|eot|>")) {
        found(Family::Llama4, "<|header_start|>/<|header_end|>/<|eot|> turns");
    } else if (has(j, "<|im_start|>") && has(j, "<|im_end|>")) {
        found(Family::ChatML, "<|im_start|>/<|im_end|> turns");
        fi.default_system = system_after_marker(j, "<|im_start|>system\\n", "<|im_end|>");
    } else if (has(j, "<start_of_turn>") && has(j, "<end_of_turn>")) {
        found(Family::Gemma, "<start_of_turn>/<end_of_turn> turns");
    } else if (has(j, "<|turn>") && has(j, "<turn|>")) {
        found(Family::Gemma4, "<|turn>/<turn|> turns");
    } else if (has(j, "<|end|>") && (has(j, "<|user|>") || has(j, "<|assistant|>"))) {
        found(Family::Phi3, "<|user|>/<|assistant|> turns closed by <|end|>");
    } else if (has(j, "[INST]") && has(j, "[/INST]")) {
        if (has(j, "<<SYS>>")) {
            fi.why = "Llama 2 style [INST] <<SYS>> template is not supported";
        } else if (has(j, " [/INST]")) {
            fi.why = "Mistral v0.1 style '[INST] ... [/INST]' spacing is not supported (only v0.3 '[INST] ...[/INST]')";
        } else {
            found(Family::Mistral, "[INST]/[/INST] turns");
        }
    } else if (has(j, "### Instruction:") && has(j, "### Response:")) {
        found(Family::Alpaca, "'### Instruction:'/'### Response:' sections");
        fi.default_system = system_in_else_branch(j);
    } else if (has(j, "USER:") && has(j, "ASSISTANT:")) {
        found(Family::Vicuna, "'USER:'/'ASSISTANT:' turns");
        fi.default_system = system_in_else_branch(j);
    } else {
        fi.why = "no known turn markers (<|start_header_id|>, <|header_start|>, <|im_start|>, [INST], <start_of_turn>, "
                 "<|turn>, <|user|>, ### Instruction:, USER:)";
    }
    if (fi.family != Family::Unknown && fi.default_system.empty()) fi.default_system = system_in_set(j);
    return fi;
}

Modelfile make_modelfile(const ModelfileInput& in) {
    if (in.from.empty())
        throw core::Error(core::ErrorKind::BadInput, "Modelfile", "", "FROM needs the GGUF file name");
    for (const std::string* p : {&in.from, &in.adapter, &in.projector})
        if (!p->empty() && std::filesystem::path(*p).is_absolute())
            throw core::Error(core::ErrorKind::BadInput, *p, "",
                              "Modelfile paths must be relative to the Modelfile's directory");

    Modelfile mf;
    mf.from = in.from;
    mf.adapter = in.adapter;

    // Split GGUF (llama.cpp naming): Ollama needs every part (ollama's server/create.go).
    static const std::regex split(R"(^(.*)-(\d{5})-of-(\d{5})\.gguf$)");
    std::smatch m;
    if (std::regex_match(in.from, m, split)) {
        const int n = std::stoi(m[3].str());
        for (int i = 1; i <= n; ++i) {
            std::string num = std::to_string(i);
            num.insert(0, 5 - num.size(), '0');
            mf.parts.push_back(core::cat(m[1].str(), '-', num, "-of-", m[3].str(), ".gguf"));
        }
        if (m[2].str() != "00001")
            mf.warnings.push_back(core::cat("FROM ", in.from, " is not the first part of its split GGUF"));
    } else {
        mf.parts.push_back(in.from);
    }
    if (!in.projector.empty()) mf.parts.push_back(in.projector);

    const FamilyInfo fi = detect_family(in.chat_template);
    mf.family = fi.family;
    mf.system = in.system.empty() ? fi.default_system : in.system;
    const std::string_view j = in.chat_template;
    if (const FamilyRow* r = row_of(fi.family)) {
        if (r->uses_eos && in.tokens.eos.empty())
            mf.warnings.push_back(core::cat("chat template family ", r->name,
                                            " writes eos_token after replies but no eos token is known"));
        mf.go_template = replace_all(std::string(r->go_template), "EOS", in.tokens.eos);
        auto add_stop = [&](std::string_view s) {
            if (s.empty()) return;
            for (const auto& x : mf.stop)
                if (x == s) return;
            mf.stop.emplace_back(s);
        };
        for (std::string_view s : r->stops)
            if (!s.empty() && has(j, s)) add_stop(s);
        if (r->uses_eos) add_stop(in.tokens.eos);
        add_stop(in.tokens.eot);
        if (has(j, "Cutting Knowledge Date"))
            mf.warnings.push_back("chat template writes a 'Cutting Knowledge Date' header into the system turn; "
                                  "the Ollama TEMPLATE leaves it out");
        if (has(j, "tools") || has(j, "tool_calls"))
            mf.warnings.push_back(core::cat("chat template (", r->name, ") supports tool calls; the Ollama "
                                            "TEMPLATE covers plain chat only (Ollama >= 0.30 can also render "
                                            "the GGUF's own tokenizer.chat_template)"));
    } else {
        mf.warnings.push_back(core::cat("unknown chat template family (", fi.why, "): the Modelfile has no TEMPLATE "
                                        "or stop parameters, so Ollama relies on the GGUF's "
                                        "tokenizer.chat_template"));
    }
    for (const auto& s : mf.stop)
        if (has(s, "\""))
            mf.warnings.push_back(core::cat("stop string ", s, " contains a double quote"));
    if (has(mf.go_template, "\"\"\"") || has(mf.system, "\"\"\""))
        throw core::Error(core::ErrorKind::Unsupported, "Modelfile", "",
                          "TEMPLATE or SYSTEM contains \"\"\", which a Modelfile cannot quote");

    auto rel = [](const std::string& p) { return p.find('/') == std::string::npos ? "./" + p : p; };
    std::string& t = mf.text;
    t = core::cat("# Ollama Modelfile written by shardforge ", SHARDFORGE_VERSION_STRING, "\n# chat template family: ",
                  family_name(fi.family), " (", fi.why, ")\n");
    for (const auto& w : mf.warnings) t += core::cat("# warning: ", w, '\n');
    t += core::cat("FROM ", rel(in.from), '\n');
    if (!in.projector.empty()) t += core::cat("FROM ", rel(in.projector), '\n');
    if (!in.adapter.empty()) t += core::cat("ADAPTER ", rel(in.adapter), '\n');
    if (!mf.go_template.empty()) t += core::cat("TEMPLATE \"\"\"", mf.go_template, "\"\"\"\n");
    for (const auto& s : mf.stop) t += core::cat("PARAMETER stop \"", s, "\"\n");
    if (!mf.system.empty()) t += core::cat("SYSTEM \"\"\"", mf.system, "\"\"\"\n");
    return mf;
}

}  // namespace shardforge::ollama
