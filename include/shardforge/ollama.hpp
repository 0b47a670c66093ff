// shardforge ollama: Modelfile generation from a Hugging Face chat template, and the Ollama REST client
// (blob upload + /api/create, /api/push). API: ollama's docs/api.md. Never sees MPI.
#pragma once
#include <shardforge/core.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::ollama {

// ---------------------------------------------------------------- chat template families
// Detected from the STRUCTURE of the Jinja chat template (its turn markers), never from a model name.
enum class Family { Unknown, Llama3, ChatML, Mistral, Gemma, Phi3, Alpaca, Vicuna, Gemma4, Llama4 };

[[nodiscard]] std::string_view family_name(Family f) noexcept;   // "llama3", "chatml", ... "unknown"

struct FamilyInfo {
    Family family = Family::Unknown;
    std::string why;              // which markers decided it, or why nothing matched (shown in warnings)
    std::string default_system;   // system prompt the template uses when the chat has none ("" = none)
};

// Pure. `jinja` is tokenizer_config.json's chat_template (the "default" one when it is a list).
[[nodiscard]] FamilyInfo detect_family(std::string_view jinja);

// ---------------------------------------------------------------- Modelfile
struct SpecialTokens {
    std::string bos;   // e.g. "<|begin_of_text|>" (Ollama's tokenizer adds it: never written into TEMPLATE)
    std::string eos;   // e.g. "</s>": written literally where the template emits eos_token
    std::string eot;   // end-of-turn token if distinct from eos, e.g. "<|eot_id|>"; added to the stop list
};

struct ModelfileInput {
    std::string from;            // GGUF file name relative to the Modelfile's directory; first part if split
    std::string adapter;         // optional LoRA GGUF, relative as well
    // optional multimodal projector GGUF (mmproj-*.gguf, general.architecture clip) of a vision model: a second FROM
    // line, which Ollama stores as the model's projector layer (application/vnd.ollama.image.projector)
    std::string projector;
    std::string chat_template;   // Jinja, from tokenizer_config.json ("" = none)
    SpecialTokens tokens;
    std::string system;          // overrides the template's default system prompt when non-empty
};

struct Modelfile {
    std::string text;                   // the Modelfile itself
    Family family = Family::Unknown;
    std::string from, adapter;          // as given
    std::vector<std::string> parts;     // every GGUF file FROM refers to (all parts of a split GGUF, then the projector)
    std::string go_template;            // "" for unknown families (Ollama then uses the GGUF's own template)
    std::vector<std::string> stop;      // PARAMETER stop values
    std::string system;                 // SYSTEM ("" = none)
    std::vector<std::string> warnings;  // one line each, for the log
};

// Reads chat_template (a string, or the "default" entry of a list; else chat_template.jinja), bos_token and
// eos_token (strings or {"content": ...}) from a Hugging Face model directory's tokenizer_config.json.
// `from`/`adapter`/`system` are left empty. Throws core::Error(Io/BadInput) naming the file.
[[nodiscard]] ModelfileInput read_hf_chat_config(const std::filesystem::path& model_dir);

// Pure. Throws core::Error(BadInput) for an empty or absolute `from`.
[[nodiscard]] Modelfile make_modelfile(const ModelfileInput& in);

// ---------------------------------------------------------------- REST client (libcurl)
// `host`: "" = $OLLAMA_HOST or http://127.0.0.1:11434; "host", "host:port", "http(s)://host[:port]" accepted.
[[nodiscard]] std::string normalize_host(std::string_view host);

// "sha256:<64 lower-case hex>" of a file's bytes (OpenSSL EVP). Throws core::Error(Io).
[[nodiscard]] std::string sha256_file(const std::filesystem::path& file);

// One NDJSON status line from Ollama ("parsing GGUF", "success", "pushing manifest", ...).
using StatusFn = std::function<void(const std::string& status)>;

// Uploads every file of `mf` (parts + adapter, relative to `dir`) that the server lacks (HEAD then POST
// /api/blobs/sha256:<hex>), then POST /api/create {model, files, adapters, template, parameters, system}.
// Throws core::Error(Network) naming host and model, with Ollama's own error text; (Io) for unreadable files.
void create_model(const std::string& host, const std::string& name, const std::filesystem::path& dir,
                  const Modelfile& mf, const StatusFn& on_status = {});

// POST /api/push {model: name}. `name` must be "<namespace>/<model>[:tag]" (ollama's docs/api.md).
void push_model(const std::string& host, const std::string& name, const StatusFn& on_status = {});

}  // namespace shardforge::ollama
