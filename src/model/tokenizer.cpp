// Tokenizer keys for GGUF (llama.cpp's gguf-py/gguf/vocab.py): what convert_hf_to_gguf's set_vocab writes for the
// target families, rebuilt from the small tokenizer files of a HF directory. Paths:
//   SentencePiece  tokenizer.model (+ added_tokens.json, tokenizer_config added_tokens_decoder)  model "llama"
//                  _create_vocab_sentencepiece, after Unsloth's fixes (fix_sentencepiece_gguf, unsloth/save.py)
//   byte-level BPE tokenizer.json (vocab, added_tokens, merges or merges.txt)                       model "gpt2"
//                  get_vocab_base + tokenizer.ggml.pre from the pre_tokenizer (tokenizer_pre.cpp)
// followed by gguf.SpecialVocab (special ids, add_* flags, chat template, normalizer flags) and the per-arch
// extras of set_vocab. KVs are kept in the writer's order; writing a key twice replaces it in place, as
// GGUFWriter's dict does.
#include <shardforge/model.hpp>

#include "special_vocab.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <cctype>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

namespace shardforge::model {
namespace {

using core::Error;
using core::ErrorKind;
using formats::GgufKV;
using formats::GgufValue;
using nlohmann::json;
namespace fs = std::filesystem;
using namespace tokenizer_detail;

constexpr std::string_view sp_space = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// ---------------------------------------------------------------- SentencePiece path

std::int64_t json_token_id(const json& v, const std::string& file, const std::string& what) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
        throw Error(ErrorKind::BadInput, file, "", core::cat(what, ": token id must be a non-negative integer"));
    return v.get<std::int64_t>();
}

// tokenizer.json added_tokens entries that are special, by id.
std::map<std::int64_t, std::string> special_added_tokens(const Files& files) {
    std::map<std::int64_t, std::string> out;
    if (!files.tokenizer_json) return out;
    const json at = get(*files.tokenizer_json, "added_tokens");
    if (!at.is_array()) return out;
    for (const json& t : at) {
        if (get(t, "special") != true || !get(t, "content").is_string()) continue;
        out[json_token_id(get(t, "id"), files.tj_name(), "added_tokens")] = t["content"].get<std::string>();
    }
    return out;
}

// Unsloth's fix_sentencepiece_gguf (unsloth/save.py), applied to the parsed model instead of
// rewriting tokenizer.model: (1) special added tokens the SentencePiece model types NORMAL become CONTROL;
// (2) added_tokens.json entries whose ids continue the SentencePiece vocabulary contiguously are appended.
void fix_sentencepiece(SpModel& sp, const Files& files) {
    const auto special = special_added_tokens(files);
    for (const auto& [id, content] : special) {
        if (id < static_cast<std::int64_t>(sp.pieces.size()) && sp.pieces[static_cast<std::size_t>(id)].type == 1)
            sp.pieces[static_cast<std::size_t>(id)].type = static_cast<int>(TokenType::Control);
    }
    const fs::path at_path = files.dir / "added_tokens.json";
    const auto at = read_json_if_exists(at_path);
    if (!at || !at->is_object() || at->empty()) return;
    std::vector<std::pair<std::int64_t, std::string>> entries;
    for (const auto& [key, v] : at->items()) entries.emplace_back(json_token_id(v, at_path.string(), key), key);
    std::sort(entries.begin(), entries.end());
    if (entries.front().first != static_cast<std::int64_t>(sp.pieces.size())) return;
    for (std::size_t i = 1; i < entries.size(); ++i)
        if (entries[i].first != entries[i - 1].first + 1) return;
    std::set<std::string> special_contents;
    for (const auto& [id, content] : special) special_contents.insert(content);
    for (const auto& [id, key] : entries) {
        const int type = special_contents.count(key) ? static_cast<int>(TokenType::Control)
                                                     : static_cast<int>(TokenType::UserDefined);
        sp.pieces.push_back(SpPiece{key, -1000.0f, type});
    }
}

SpModel load_sentencepiece(const Files& files) {
    const fs::path p = files.dir / "tokenizer.model";
    SpModel sp = parse_sentencepiece(read_small_file(p), p.string());
    fix_sentencepiece(sp, files);
    return sp;
}

// base.py _create_vocab_sentencepiece.
Vocab sentencepiece_vocab(const Files& files, std::int64_t n_vocab) {
    const SpModel sp = load_sentencepiece(files);
    const std::int64_t n = n_vocab > 0 ? n_vocab : static_cast<std::int64_t>(sp.pieces.size());
    Vocab v;
    v.tokens.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v.tokens.push_back(core::cat("[PAD", i, "]"));
    v.scores.assign(static_cast<std::size_t>(n), -10000.0f);
    v.types.assign(static_cast<std::size_t>(n), static_cast<std::int32_t>(TokenType::Unused));
    for (std::size_t i = 0; i < sp.pieces.size(); ++i) {
        if (static_cast<std::int64_t>(i) >= n) {
            core::log::warn(core::cat((files.dir / "tokenizer.model").string(), ": ignoring pieces from id ", i,
                                      ": out of range, vocab_size is ", n));
            break;
        }
        const SpPiece& p = sp.pieces[i];
        // IsUnknown / IsControl / IsUnused / IsByte, else NORMAL (USER_DEFINED pieces are written NORMAL).
        const int t = p.type == 2 || p.type == 3 || p.type == 5 || p.type == 6 ? p.type : 1;
        v.tokens[i] = p.piece;
        v.scores[i] = p.score;
        v.types[i] = t;
    }
    const fs::path at_path = files.dir / "added_tokens.json";
    if (auto at = read_json_if_exists(at_path)) {
        if (!at->is_object()) throw Error(ErrorKind::BadInput, at_path.string(), "", "expected an object");
        for (const auto& [key, val] : at->items()) {
            const std::int64_t id = json_token_id(val, at_path.string(), key);
            if (id >= n) {
                core::log::warn(core::cat(at_path.string(), ": ignoring token ", id, ": out of range"));
                continue;
            }
            v.tokens[static_cast<std::size_t>(id)] = key;
            v.scores[static_cast<std::size_t>(id)] = -1000.0f;
            v.types[static_cast<std::size_t>(id)] = static_cast<std::int32_t>(TokenType::UserDefined);
        }
    }
    if (files.tokenizer_config) {
        const json atd = get(*files.tokenizer_config, "added_tokens_decoder");
        if (atd.is_object()) {
            for (const auto& [key, data] : atd.items()) {
                std::int64_t id = -1;
                try {
                    std::size_t used = 0;
                    id = std::stoll(key, &used);
                    if (used != key.size()) id = -1;
                } catch (const std::exception&) {
                    id = -1;
                }
                if (id < 0 || !get(data, "content").is_string())
                    throw Error(ErrorKind::BadInput, files.tc_name(), "",
                                core::cat("added_tokens_decoder: bad entry '", key, "'"));
                if (id >= n) {
                    core::log::warn(core::cat(files.tc_name(), ": ignoring token ", id, ": out of range"));
                    continue;
                }
                std::string token = data["content"].get<std::string>();
                std::int32_t type = static_cast<std::int32_t>(TokenType::Control);
                if (!truthy(get(data, "special")) && !token_looks_special(token)) {
                    token = replace_all(token, sp_space, " ");  // pre-normalize user-defined spaces
                    type = static_cast<std::int32_t>(TokenType::UserDefined);
                }
                v.tokens[static_cast<std::size_t>(id)] = token;
                v.scores[static_cast<std::size_t>(id)] = -1000.0f;
                v.types[static_cast<std::size_t>(id)] = type;
            }
        }
    }
    return v;
}

// phi.py Phi3MiniModel.set_vocab: its own SentencePiece builder (no "looks special", no U+2581 rewrite, and
// tokenizer.json added_tokens applied too).
Vocab phi3_sentencepiece_vocab(const Files& files, std::int64_t n_vocab) {
    const SpModel sp = load_sentencepiece(files);
    const std::int64_t n = n_vocab > 0 ? n_vocab : static_cast<std::int64_t>(sp.pieces.size());
    Vocab v;
    for (std::int64_t i = 0; i < n; ++i) v.tokens.push_back(core::cat("[PAD", i, "]"));
    v.scores.assign(static_cast<std::size_t>(n), -10000.0f);
    v.types.assign(static_cast<std::size_t>(n), static_cast<std::int32_t>(TokenType::Unused));
    if (static_cast<std::int64_t>(sp.pieces.size()) > n)
        throw Error(ErrorKind::BadInput, (files.dir / "tokenizer.model").string(), "",
                    core::cat("tokenizer has ", sp.pieces.size(), " pieces but the model has ", n,
                              " embedding rows (vocab_size)"));
    for (std::size_t i = 0; i < sp.pieces.size(); ++i) {
        const SpPiece& p = sp.pieces[i];
        v.tokens[i] = p.piece;
        v.scores[i] = p.score;
        v.types[i] = p.type == 2 || p.type == 3 || p.type == 5 || p.type == 6 ? p.type : 1;
    }
    auto set_added = [&](std::int64_t id, const std::string& content, bool special, const std::string& file) {
        if (id >= n) {
            core::log::warn(core::cat(file, ": ignoring token ", id, ": out of range"));
            return;
        }
        v.tokens[static_cast<std::size_t>(id)] = content;
        v.scores[static_cast<std::size_t>(id)] = -1000.0f;
        v.types[static_cast<std::size_t>(id)] =
            static_cast<std::int32_t>(special ? TokenType::Control : TokenType::UserDefined);
    };
    const fs::path at_path = files.dir / "added_tokens.json";
    if (auto at = read_json_if_exists(at_path)) {
        if (!at->is_object()) throw Error(ErrorKind::BadInput, at_path.string(), "", "expected an object");
        for (const auto& [key, val] : at->items())
            set_added(json_token_id(val, at_path.string(), key), key, false, at_path.string());
    }
    if (files.tokenizer_config) {
        const json atd = get(*files.tokenizer_config, "added_tokens_decoder");
        if (atd.is_object()) {
            for (const auto& [key, data] : atd.items()) {
                if (key.empty() || key.find_first_not_of("0123456789") != std::string::npos ||
                    !get(data, "content").is_string())
                    throw Error(ErrorKind::BadInput, files.tc_name(), "",
                                core::cat("added_tokens_decoder: bad entry '", key, "'"));
                set_added(std::stoll(key), data["content"].get<std::string>(), truthy(get(data, "special")),
                          files.tc_name());
            }
        }
    }
    if (files.tokenizer_json) {
        const json at = get(*files.tokenizer_json, "added_tokens");
        if (at.is_array()) {
            for (const json& t : at) {
                if (!get(t, "content").is_string())
                    throw Error(ErrorKind::BadInput, files.tj_name(), "", "added_tokens: entry without content");
                set_added(json_token_id(get(t, "id"), files.tj_name(), "added_tokens"), t["content"].get<std::string>(),
                          truthy(get(t, "special")), files.tj_name());
            }
        }
    }
    return v;
}

void add_sentencepiece_kvs(std::vector<GgufKV>& kvs, const Vocab& v) {
    put(kvs, "tokenizer.ggml.model", GgufValue::string("llama"));
    put(kvs, "tokenizer.ggml.pre", GgufValue::string("default"));
    put(kvs, "tokenizer.ggml.tokens", GgufValue::arr_str(v.tokens));
    put(kvs, "tokenizer.ggml.scores", GgufValue::arr_f32(v.scores));
    put(kvs, "tokenizer.ggml.token_type", GgufValue::arr_i32(v.types));
}

// ---------------------------------------------------------------- byte-level BPE path (get_vocab_base)

struct BpeVocab {
    Vocab vocab;
    std::string pre;
    std::int64_t real_size = 0;  // len(model.vocab) + len(added_tokens), Gemma3's n_vocab_real
};

BpeVocab bpe_vocab(const Files& files, const std::string& arch, std::int64_t n_vocab) {
    const std::string file = files.tj_name();
    const json& tj = *files.tokenizer_json;
    const json model = get(tj, "model");
    if (get(model, "type") != "BPE")
        throw Error(ErrorKind::Unsupported, file, "",
                    core::cat("tokenizer model type ", get(model, "type").dump(), " is not supported (expected BPE)"));
    const json vocab = get(model, "vocab");
    if (!vocab.is_object()) throw Error(ErrorKind::BadInput, file, "", "model.vocab is not an object");
    const json added = get(tj, "added_tokens").is_array() ? tj["added_tokens"] : json::array();

    std::map<std::int64_t, std::string> reverse;
    std::int64_t max_id = -1;
    std::string max_token;
    for (const auto& [tok, idv] : vocab.items()) {
        const std::int64_t id = json_token_id(idv, file, core::cat("model.vocab '", tok, "'"));
        reverse[id] = tok;
        if (id > max_id) max_id = id, max_token = tok;
    }
    std::map<std::int64_t, bool> added_special;  // id -> special
    std::set<std::string> added_contents;
    for (const json& t : added) {
        if (!get(t, "content").is_string())
            throw Error(ErrorKind::BadInput, file, "", "added_tokens: entry without content");
        const std::string content = t["content"].get<std::string>();
        const std::int64_t id = json_token_id(get(t, "id"), file, core::cat("added token '", content, "'"));
        reverse[id] = content;
        added_special[id] = truthy(get(t, "special"));
        added_contents.insert(content);
        if (id > max_id) max_id = id, max_token = content;
    }
    const std::int64_t n = n_vocab > 0 ? n_vocab : static_cast<std::int64_t>(reverse.size());
    if (max_id >= n)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("token '", max_token, "' has id ", max_id, " but the model has only ", n,
                              " embedding rows (config vocab_size): tokenizer vocabulary larger than the model"));

    BpeVocab out;
    out.pre = detect_bpe_pre(tj, files.tokenizer_config ? *files.tokenizer_config : json(), arch, file);
    out.real_size = std::min<std::int64_t>(n, static_cast<std::int64_t>(vocab.size() + added.size()));
    Vocab& v = out.vocab;
    v.tokens.reserve(static_cast<std::size_t>(n));
    v.types.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        auto it = reverse.find(i);
        if (it == reverse.end()) {
            v.tokens.push_back(core::cat("[PAD", i, "]"));
            v.types.push_back(static_cast<std::int32_t>(TokenType::Unused));
            continue;
        }
        std::string token = it->second;
        // Non-normalized added tokens are round-tripped through encode/decode upstream; for the byte-level
        // vocabularies handled here that round trip is the identity, so it is skipped.
        if (added_contents.count(token)) {
            auto sp = added_special.find(i);
            const bool special = sp != added_special.end() && sp->second;
            if (special || token_looks_special(token)) {
                v.types.push_back(static_cast<std::int32_t>(TokenType::Control));
            } else {
                token = replace_all(token, sp_space, " ");  // added for Gemma upstream
                v.types.push_back(static_cast<std::int32_t>(TokenType::UserDefined));
            }
        } else {
            v.types.push_back(static_cast<std::int32_t>(TokenType::Normal));
        }
        v.tokens.push_back(std::move(token));
    }
    return out;
}

// vocab.py LlamaHfVocab: a SentencePiece-style BPE saved only as tokenizer.json (model BPE with byte_fallback and a
// Sequence decoder, no tokenizer.model), written as model "llama". Llama-3-style BPE (ignore_merges without
// byte_fallback) is not one.
bool is_llama_hf_bpe(const Files& files) {
    if (!files.tokenizer_json) return false;
    const json model = get(*files.tokenizer_json, "model");
    if (get(model, "type") != "BPE") return false;
    const json bf = get(model, "byte_fallback");
    if (truthy(get(model, "ignore_merges")) && !(bf.is_null() || truthy(bf))) return false;  // Llama 3
    return truthy(bf) && get(get(*files.tokenizer_json, "decoder"), "type") == "Sequence";
}

// The HF tokenizer's all_special_tokens (bos/eos/unk/sep/pad/cls/mask + additional_special_tokens) from
// tokenizer_config.json and special_tokens_map.json.
std::set<std::string> all_special_tokens(const Files& files) {
    std::set<std::string> out;
    auto content = [](const json& v) -> std::optional<std::string> {
        if (v.is_string()) return v.get<std::string>();
        if (get(v, "content").is_string()) return v["content"].get<std::string>();
        return std::nullopt;
    };
    auto collect = [&](const json& j) {
        for (const char* k : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                              "mask_token"})
            if (auto c = content(get(j, k))) out.insert(*c);
        const json extra = get(j, "additional_special_tokens");
        if (extra.is_array())
            for (const json& e : extra)
                if (auto c = content(e)) out.insert(*c);
    };
    if (files.tokenizer_config) collect(*files.tokenizer_config);
    if (auto m = read_json_if_exists(files.dir / "special_tokens_map.json")) collect(*m);
    return out;
}

Vocab llama_hf_vocab(const Files& files, std::int64_t n_vocab) {
    const std::string file = files.tj_name();
    const json& tj = *files.tokenizer_json;
    const json vocab = get(get(tj, "model"), "vocab");
    if (!vocab.is_object()) throw Error(ErrorKind::BadInput, file, "", "model.vocab is not an object");
    std::map<std::int64_t, std::string> reverse;       // get_vocab(): base vocab plus added tokens
    std::map<std::string, std::int64_t> ids;
    for (const auto& [tok, idv] : vocab.items()) {
        const std::int64_t id = json_token_id(idv, file, core::cat("model.vocab '", tok, "'"));
        reverse[id] = tok;
        ids[tok] = id;
    }
    const auto base = static_cast<std::int64_t>(vocab.size());
    std::map<std::int64_t, std::string> added;  // added tokens beyond the base vocabulary, by id
    const json at = get(tj, "added_tokens");
    if (at.is_array()) {
        for (const json& t : at) {
            if (!get(t, "content").is_string())
                throw Error(ErrorKind::BadInput, file, "", "added_tokens: entry without content");
            const std::string c = t["content"].get<std::string>();
            const std::int64_t id = json_token_id(get(t, "id"), file, core::cat("added token '", c, "'"));
            reverse[id] = c;
            ids[c] = id;
            if (id >= base) added[id] = c;
        }
    }
    std::set<std::int64_t> special_ids;
    for (const std::string& s : all_special_tokens(files)) {
        auto it = ids.find(s);
        if (it != ids.end()) special_ids.insert(it->second);
    }
    auto is_byte = [](const std::string& t) {
        return t.size() == 6 && t.starts_with("<0x") && t.back() == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
               std::isxdigit(static_cast<unsigned char>(t[4]));
    };
    Vocab v;
    for (std::int64_t i = 0; i < base; ++i) {
        auto it = reverse.find(i);
        if (it == reverse.end()) {
            v.tokens.push_back(core::cat("[PAD", i, "]"));
            v.scores.push_back(-10000.0f);
            v.types.push_back(static_cast<std::int32_t>(TokenType::Unused));
            continue;
        }
        v.tokens.push_back(it->second);
        v.scores.push_back(-1000.0f);
        v.types.push_back(static_cast<std::int32_t>(is_byte(it->second)   ? TokenType::Byte
                                                    : special_ids.count(i) ? TokenType::Control
                                                                           : TokenType::Normal));
    }
    for (const auto& [id, text] : added) {  // appended in id order, as upstream (ids are not re-checked there)
        v.tokens.push_back(text);
        v.scores.push_back(-1000.0f);
        v.types.push_back(static_cast<std::int32_t>(special_ids.count(id) ? TokenType::Control
                                                                           : TokenType::UserDefined));
    }
    const auto total = static_cast<std::int64_t>(v.tokens.size());
    if (n_vocab > 0 && total > n_vocab)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("tokenizer has ", total, " tokens but the model has only ", n_vocab,
                              " embedding rows (config vocab_size): tokenizer vocabulary larger than the model"));
    // Upstream writes exactly base + added tokens; llama.cpp needs one token per embedding row, so pad.
    for (std::int64_t i = total; i < n_vocab; ++i) {
        v.tokens.push_back(core::cat("[PAD", i, "]"));
        v.scores.push_back(-10000.0f);
        v.types.push_back(static_cast<std::int32_t>(TokenType::Unused));
    }
    return v;
}

void set_vocab_llama_hf(TokenizerInfo& info, const Files& files, const json& config, std::int64_t n_vocab) {
    const Vocab v = llama_hf_vocab(files, n_vocab);
    add_sentencepiece_kvs(info.kvs, v);
    SpecialVocab(files, config, static_cast<std::int64_t>(v.tokens.size()), false).add_to(info.kvs);
    info.model = "llama";
    info.pre = "default";
    info.vocab_size = static_cast<std::int64_t>(v.tokens.size());
}

// gemma.py Gemma4Model.set_vocab: LlamaHfVocab's tokens under tokenizer model "gemma4" (llama.cpp splits on newlines
// only and runs the BPE merges on the U+2581-normalized text), the chat parser's markers forced USER_DEFINED so they
// are always rendered, SpecialVocab with merges (no vocab-size check upstream), no pre-tokenizer key.
void set_vocab_gemma4(TokenizerInfo& info, const Files& files, const json& config, std::int64_t n_vocab) {
    if (!is_llama_hf_bpe(files))
        throw Error(ErrorKind::Unsupported, files.tokenizer_json ? files.tj_name() : (files.dir / "tokenizer.json").string(),
                    "", "gemma4 needs a SentencePiece-style BPE tokenizer.json (model BPE with byte_fallback and a "
                        "Sequence decoder), as llama.cpp's converter reads it");
    Vocab v = llama_hf_vocab(files, n_vocab);
    static const std::set<std::string> visible = {"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>",
                                                  "<|tool_response>", "<tool_response|>", "<|\"|>"};
    for (std::size_t i = 0; i < v.tokens.size(); ++i)
        if (visible.count(v.tokens[i])) v.types[i] = static_cast<std::int32_t>(TokenType::UserDefined);
    put(info.kvs, "tokenizer.ggml.model", GgufValue::string("gemma4"));
    put(info.kvs, "tokenizer.ggml.tokens", GgufValue::arr_str(v.tokens));
    put(info.kvs, "tokenizer.ggml.scores", GgufValue::arr_f32(v.scores));
    put(info.kvs, "tokenizer.ggml.token_type", GgufValue::arr_i32(v.types));
    const SpecialVocab sv(files, config, std::nullopt, true);
    if (!sv.has_merges())
        throw Error(ErrorKind::BadInput, files.tj_name(), "",
                    "gemma4 tokenizer without merges: llama.cpp cannot load it (\"cannot find tokenizer merges\")");
    sv.add_to(info.kvs);
    put(info.kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
    put(info.kvs, "tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
    info.model = "gemma4";
    info.pre = "";
    // Gemma3Model.modify_tensors keeps the first len(model.vocab) + len(added_tokens) rows of token_embd (all of
    // them when a tokenizer.model is there: its vocabulary is padded to vocab_size)
    const json& tj = *files.tokenizer_json;
    const json at = get(tj, "added_tokens");
    info.vocab_size = std::filesystem::is_regular_file(files.dir / "tokenizer.model")
                          ? n_vocab
                          : static_cast<std::int64_t>(get(get(tj, "model"), "vocab").size() +
                                                      (at.is_array() ? at.size() : 0));
}

void set_vocab_sentencepiece(TokenizerInfo& info, const Files& files, const json& config, std::int64_t n_vocab,
                             bool phi3) {
    const Vocab v = phi3 ? phi3_sentencepiece_vocab(files, n_vocab) : sentencepiece_vocab(files, n_vocab);
    add_sentencepiece_kvs(info.kvs, v);
    SpecialVocab(files, config, static_cast<std::int64_t>(v.tokens.size()), false).add_to(info.kvs);
    info.model = "llama";
    info.pre = "default";
    info.vocab_size = static_cast<std::int64_t>(v.tokens.size());
}

// extra_specials: (type, added token) pairs set after the files' own ids, as a model's set_vocab does with
// SpecialVocab._set_special_token (a missing token is the converter's KeyError).
void set_vocab_gpt2(TokenizerInfo& info, const Files& files, const json& config, const std::string& arch,
                    std::int64_t n_vocab,
                    std::initializer_list<std::pair<const char*, const char*>> extra_specials = {}) {
    if (!files.tokenizer_json)
        throw Error(ErrorKind::Unsupported, files.dir.string(), "",
                    "no tokenizer.model or tokenizer.json: cannot embed a tokenizer");
    const BpeVocab b = bpe_vocab(files, arch, n_vocab);
    put(info.kvs, "tokenizer.ggml.model", GgufValue::string("gpt2"));
    put(info.kvs, "tokenizer.ggml.pre", GgufValue::string(b.pre));
    put(info.kvs, "tokenizer.ggml.tokens", GgufValue::arr_str(b.vocab.tokens));
    put(info.kvs, "tokenizer.ggml.token_type", GgufValue::arr_i32(b.vocab.types));
    // Upstream passes no n_vocab here; llama.cpp ignores out-of-range ids at load, so skipping them is equivalent.
    SpecialVocab sv(files, config, static_cast<std::int64_t>(b.vocab.tokens.size()), true);
    for (const auto& [typ, content] : extra_specials) {
        std::int64_t id = -1;
        for (const json& t : get(*files.tokenizer_json, "added_tokens"))
            if (t.is_object() && get(t, "content") == content) id = get(t, "id").get<std::int64_t>();
        if (id < 0)
            throw Error(ErrorKind::BadInput, files.tj_name(), "",
                        core::cat("added token '", content, "' (the ", arch, " ", typ, " token) is missing"));
        sv.set_id(typ, id, files.tj_name());
    }
    if (!sv.has_merges())
        throw Error(ErrorKind::BadInput, files.tj_name(), "",
                    "BPE tokenizer without merges (no model.merges and no merges.txt): llama.cpp cannot load it");
    sv.add_to(info.kvs);
    info.model = "gpt2";
    info.pre = b.pre;
    info.vocab_size = b.real_size;
}

bool file_exists(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

}  // namespace

bool token_looks_special(std::string_view t) {
    if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
    if (t.starts_with("<|") && t.ends_with("|>")) return true;
    // "<｜" and "｜>": U+FF5C FULLWIDTH VERTICAL LINE (deepseek-coder)
    if (t.starts_with("<\xef\xbd\x9c") && t.ends_with("\xef\xbd\x9c>")) return true;
    if (t.starts_with("<unused") && t.ends_with(">")) return true;
    return false;
}

TokenizerInfo read_tokenizer(const fs::path& model_dir, const json& config, const std::string& arch,
                             std::int64_t n_vocab) {
    Files files;
    files.dir = model_dir;
    files.tokenizer_json = read_json_if_exists(model_dir / "tokenizer.json");
    files.tokenizer_config = read_json_if_exists(model_dir / "tokenizer_config.json");
    const bool has_sp = file_exists(model_dir / "tokenizer.model");

    TokenizerInfo info;
    // llama.cpp's conversion/deepseek.py builds Kimi-K2's vocabulary by running its tiktoken tokenizer
    // (tokenization_kimi.py, remote code): not emulated.
    if (arch == "deepseek2" && !files.tokenizer_json && file_exists(model_dir / "tiktoken.model"))
        throw Error(ErrorKind::Unsupported, (model_dir / "tiktoken.model").string(), "",
                    "tiktoken tokenizer (Kimi-K2) is not supported; only a tokenizer.json (DeepSeek-V3/R1) is");
    if (arch == "llama" || arch == "mistral3") {
        // llama.py LlamaModel.set_vocab (mistral3's Ministral3Model inherits it). Mistral's own tekken.json without
        // a tokenizer.json goes to _set_vocab_mistral (mistral-common's Tekkenizer), which we do not emulate.
        if (file_exists(model_dir / "tekken.json") && !file_exists(model_dir / "tokenizer.json"))
            throw Error(ErrorKind::Unsupported, (model_dir / "tekken.json").string(), "",
                        "Mistral tekken tokenizer without tokenizer.json is not supported (add the model's HF "
                        "tokenizer.json)");
        // add_space_prefix comes first, then SentencePiece, else BPE.
        if (files.tokenizer_config) {
            const json aps = get(*files.tokenizer_config, "add_prefix_space");
            if (aps.is_boolean()) put(info.kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(aps.get<bool>()));
        }
        if (has_sp)
            set_vocab_sentencepiece(info, files, config, n_vocab, false);
        else if (is_llama_hf_bpe(files))
            set_vocab_llama_hf(info, files, config, n_vocab);
        else
            set_vocab_gpt2(info, files, config, arch, n_vocab);
        const json vs = get(config, "vocab_size");
        const std::int64_t hp_vocab = vs.is_number_integer() ? vs.get<std::int64_t>() : 32000;
        if (hp_vocab == 32016) put(info.kvs, "tokenizer.ggml.eot_token_id", GgufValue::u32(32010));  // CodeLlama
        if (hp_vocab == 49152) put(info.kvs, "tokenizer.ggml.add_bos_token", GgufValue::boolean(false));  // granite
    } else if (arch == "gemma" || arch == "gemma2") {
        if (!has_sp)
            throw Error(ErrorKind::BadInput, (model_dir / "tokenizer.model").string(), "",
                        core::cat("missing: ", arch, " needs a SentencePiece tokenizer.model"));
        set_vocab_sentencepiece(info, files, config, n_vocab, false);
        if (arch == "gemma") {
            // Second SpecialVocab in GemmaModel.set_vocab: only its eot (107) has a GGUF key.
            bool have_eot = false;
            for (const GgufKV& kv : info.kvs) have_eot = have_eot || kv.key == "tokenizer.ggml.eot_token_id";
            if (!have_eot) put(info.kvs, "tokenizer.ggml.eot_token_id", GgufValue::u32(107));
        }
        put(info.kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
    } else if (arch == "gemma3" || arch == "gemma3n") {  // Gemma3NModel.set_vocab: Gemma3Model's, at vocab_size
        if (has_sp) {
            set_vocab_sentencepiece(info, files, config, n_vocab, false);
            put(info.kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
        } else {
            set_vocab_gpt2(info, files, config, arch, n_vocab);
        }
    } else if (arch == "gemma4") {
        set_vocab_gemma4(info, files, config, n_vocab);
    } else if (arch == "qwen2" || arch == "qwen3") {
        if (has_sp)
            set_vocab_sentencepiece(info, files, config, n_vocab, false);
        else
            set_vocab_gpt2(info, files, config, arch, n_vocab);
    } else if (arch == "phi3") {
        const json cls = files.tokenizer_config ? get(*files.tokenizer_config, "tokenizer_class") : json();
        if (cls == "GPT2Tokenizer") {
            set_vocab_gpt2(info, files, config, arch, n_vocab);
        } else {
            if (!has_sp)
                throw Error(ErrorKind::BadInput, (model_dir / "tokenizer.model").string(), "",
                            "missing: phi3 needs a SentencePiece tokenizer.model");
            set_vocab_sentencepiece(info, files, config, n_vocab, true);
        }
    } else if (arch == "glm4moe") {
        // _set_vocab_glm (llama.cpp's conversion/base.py): [gMASK] as BOS, <|user|> as EOT, <|endoftext|> as UNK,
        // <|observation|> as EOM, each unless the tokenizer files set that type already.
        set_vocab_gpt2(info, files, config, arch, n_vocab,
                       {{"bos", "[gMASK]"}, {"eot", "<|user|>"}, {"unk", "<|endoftext|>"}, {"eom", "<|observation|>"}});
    } else {
        set_vocab_gpt2(info, files, config, arch, n_vocab);
    }
    return info;
}

}  // namespace shardforge::model
