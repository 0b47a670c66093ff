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

constexpr std::string_view sp_space = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// ---------------------------------------------------------------- small helpers

std::string read_small_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw Error(ErrorKind::Io, p.string(), "", "cannot open");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw Error(ErrorKind::Io, p.string(), "", "read failed");
    return s;
}

std::optional<json> read_json_if_exists(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    const std::string text = read_small_file(p);
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::BadInput, p.string(), "", core::cat("invalid JSON: ", e.what()));
    }
}

// Python truthiness of a JSON value.
bool truthy(const json& v) {
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number_integer()) return v.get<std::int64_t>() != 0;
    if (v.is_number()) return v.get<double>() != 0.0;
    if (v.is_string()) return !v.get_ref<const std::string&>().empty();
    return !v.empty();
}

// dict.get(key) for a JSON object (null when absent or not an object).
json get(const json& obj, const std::string& key) {
    if (obj.is_object()) {
        auto it = obj.find(key);
        if (it != obj.end()) return *it;
    }
    return json();
}

void put(std::vector<GgufKV>& kvs, const std::string& key, GgufValue v) {
    for (GgufKV& kv : kvs) {
        if (kv.key == key) {
            kv.value = std::move(v);
            return;
        }
    }
    kvs.push_back(GgufKV{key, std::move(v)});
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
        s.replace(pos, from.size(), to);
    return s;
}

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;                // SentencePiece only
    std::vector<std::int32_t> types;
};

// The directory's tokenizer files, each read at most once.
struct Files {
    fs::path dir;
    std::optional<json> tokenizer_json;    // tokenizer.json
    std::optional<json> tokenizer_config;  // tokenizer_config.json
    std::string tj_name() const { return (dir / "tokenizer.json").string(); }
    std::string tc_name() const { return (dir / "tokenizer_config.json").string(); }
};

// ---------------------------------------------------------------- gguf.SpecialVocab (vocab.py)

class SpecialVocab {
public:
    SpecialVocab(const Files& files, const json& config, std::optional<std::int64_t> n_vocab, bool load_merges,
                 std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"})
        : files_(files), n_vocab_(n_vocab), load_merges_(load_merges), types_(std::move(types)) {
        load_from_tokenizer_json();
        load_from_config(config);
        if (load_merges_ && merges_.empty()) load_merges_txt();
    }

    // Sets an id unless one is already set (first source wins); out-of-range ids are skipped.
    void set_id(const std::string& typ, const json& tid, const std::string& source) {
        if (!tid.is_number_integer()) return;
        const std::int64_t id = tid.get<std::int64_t>();
        if (id < 0)
            throw Error(ErrorKind::BadInput, source, "", core::cat("invalid id ", id, " for special token type ", typ));
        if (!n_vocab_ || id < *n_vocab_) {
            for (const auto& [t, v] : ids_)
                if (t == typ) return;
            ids_.emplace_back(typ, static_cast<std::uint32_t>(id));
            return;
        }
        core::log::warn(core::cat("special token type ", typ, ", id ", id, " out of range, must be under ", *n_vocab_,
                                  " - skipping"));
    }

    void disable_chat_template() { chat_template_.reset(); }
    [[nodiscard]] bool has_merges() const { return !merges_.empty(); }

    void add_to(std::vector<GgufKV>& kvs) const {
        if (!merges_.empty()) put(kvs, "tokenizer.ggml.merges", GgufValue::arr_str(merges_));
        static const std::map<std::string, std::string> id_keys = {
            {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
            {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
            {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"},
            {"eot", "tokenizer.ggml.eot_token_id"},     {"eom", "tokenizer.ggml.eom_token_id"},
        };
        for (const auto& [typ, id] : ids_) {
            auto it = id_keys.find(typ);
            if (it == id_keys.end()) {
                core::log::debug(core::cat("no GGUF key for special token type ", typ, " (id ", id, ") - skipping"));
                continue;
            }
            put(kvs, it->second, GgufValue::u32(id));
        }
        for (const auto& [typ, v] : add_) {
            if (typ != "bos" && typ != "eos" && typ != "sep") continue;  // the writer has no other add_* handler
            put(kvs, core::cat("tokenizer.ggml.add_", typ, "_token"), GgufValue::boolean(v));
        }
        if (chat_template_) add_chat_template(kvs, *chat_template_);
        if (lowercase_) put(kvs, "tokenizer.ggml.normalizer.lowercase", GgufValue::boolean(*lowercase_));
        if (strip_accents_) put(kvs, "tokenizer.ggml.normalizer.strip_accents", GgufValue::boolean(*strip_accents_));
    }

private:
    void set_add(const std::string& typ, bool v) {
        for (auto& [t, old] : add_) {
            if (t == typ) {
                old = v;
                return;
            }
        }
        add_.emplace_back(typ, v);
    }
    bool has_type(const std::string& t) const { return std::find(types_.begin(), types_.end(), t) != types_.end(); }

    void parse_normalizer(const json& n) {
        const json type = get(n, "type");
        if (type == "Lowercase") {
            lowercase_ = true;
        } else if (type == "StripAccents") {
            strip_accents_ = true;
        } else if (type == "BertNormalizer") {
            if (get(n, "lowercase").is_boolean()) lowercase_ = n["lowercase"].get<bool>();
            if (get(n, "strip_accents").is_boolean()) strip_accents_ = n["strip_accents"].get<bool>();
        } else if (type == "Sequence") {
            const json seq = get(n, "normalizers");
            if (seq.is_array())
                for (const json& m : seq) parse_normalizer(m);
        }
    }

    void load_tokenizer_json_merges(const json& tokenizer) {
        const json merges = get(get(tokenizer, "model"), "merges");
        if (!merges.is_array() || merges.empty()) return;
        const std::string& file = files_.tj_name();
        if (merges[0].is_string()) {
            for (const json& m : merges) {
                if (!m.is_string()) throw Error(ErrorKind::BadInput, file, "", "model.merges mixes strings and pairs");
                merges_.push_back(m.get<std::string>());
            }
            return;
        }
        if (!(merges[0].is_array() && merges[0].size() == 2 && merges[0][0].is_string()))
            throw Error(ErrorKind::BadInput, file, "", "unknown tokenizer merges format");
        // Pair form (transformers >= 4.45): spaces inside a part are written as U+0120, as vocab.py does.
        for (const json& m : merges) {
            if (!(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()))
                throw Error(ErrorKind::BadInput, file, "", "model.merges: expected pairs of strings");
            merges_.push_back(replace_all(m[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                              replace_all(m[1].get<std::string>(), " ", "\xc4\xa0"));
        }
    }

    void load_merges_txt() {
        const fs::path p = files_.dir / "merges.txt";
        std::error_code ec;
        if (!fs::is_regular_file(p, ec)) return;
        const std::string text = read_small_file(p);
        std::vector<std::string> lines;
        for (std::size_t pos = 0; pos <= text.size();) {
            std::size_t nl = text.find('\n', pos);
            if (nl == std::string::npos) nl = text.size();
            lines.push_back(text.substr(pos, nl - pos));
            pos = nl + 1;
        }
        auto strip = [](const std::string& s) {
            const char* ws = " \t\r\n\f\v";
            const std::size_t b = s.find_first_not_of(ws);
            if (b == std::string::npos) return std::string();
            return s.substr(b, s.find_last_not_of(ws) - b + 1);
        };
        std::size_t first = 0;
        if (!lines.empty() && strip(lines[0]).starts_with("#")) first = 1;
        std::vector<std::string> merges;
        for (std::size_t i = first; i < lines.size(); ++i) {
            const std::string line = strip(lines[i]);
            if (line.empty()) continue;
            std::vector<std::string> parts;
            std::size_t pos = 0;
            while (pos < line.size()) {
                const std::size_t b = line.find_first_not_of(" \t", pos);
                if (b == std::string::npos) break;
                std::size_t e = line.find_first_of(" \t", b);
                if (e == std::string::npos) e = line.size();
                parts.push_back(line.substr(b, e - b));
                pos = e;
            }
            if (parts.size() != 2) {
                core::log::warn(core::cat(p.string(), ": line ", i + 1, ": entry malformed, ignoring"));
                continue;
            }
            merges.push_back(parts[0] + " " + parts[1]);
        }
        merges_ = std::move(merges);
    }

    // tokenizer_config.json as vocab.py's _try_load_from_tokenizer_json sees it while it walks the post-processor:
    // the special-token entries it reads, and the ones it fills in (tc is only written when the file exists).
    struct SpecialEntries {
        json tc;
        bool have_tc = false;
        json bos, eos, sep, cls;
        void fill(const char* key, json& slot, const json& value) {
            slot = value;
            if (have_tc) tc[key] = value;
        }
    };

    // vocab.py _try_load_from_tokenizer_json, as phases: tokenizer.json's merges, normalizer and post-processor, then
    // tokenizer_config.json's chat template and special tokens.
    void load_from_tokenizer_json() {
        const json tokenizer = files_.tokenizer_json ? *files_.tokenizer_json : json();
        json added_tokens = json::array();
        if (files_.tokenizer_json) {
            if (load_merges_) load_tokenizer_json_merges(tokenizer);
            const json norm = get(tokenizer, "normalizer");
            if (truthy(norm)) parse_normalizer(norm);
            added_tokens = get(tokenizer, "added_tokens");
        }
        SpecialEntries sp;
        sp.tc = files_.tokenizer_config ? *files_.tokenizer_config : json();
        sp.have_tc = truthy(sp.tc);
        if (truthy(tokenizer)) parse_post_processor(get(tokenizer, "post_processor"), sp);
        if (!sp.have_tc) return;
        load_chat_template(sp.tc);
        load_special_tokens(sp.tc, added_tokens);
    }

    // The post-processor decides add_bos/add_eos/add_sep and may name special tokens tokenizer_config.json lacks.
    void parse_post_processor(const json& post, SpecialEntries& sp) {
        sp.bos = get(sp.tc, "bos_token");
        sp.cls = get(sp.tc, "cls_token");
        sp.eos = get(sp.tc, "eos_token");
        sp.sep = get(sp.tc, "sep_token");
        if (!truthy(sp.bos) && truthy(sp.cls) && sp.have_tc) sp.fill("bos_token", sp.bos, sp.cls);
        if (!truthy(sp.eos) && truthy(sp.sep) && sp.have_tc) sp.fill("eos_token", sp.eos, sp.sep);
        if (!truthy(post)) return;
        json processors = get(post, "processors");
        if (processors.is_null()) processors = json::array({post});
        if (!processors.is_array()) processors = json::array();
        for (const json& proc : processors) {
            const json ptype = get(proc, "type");
            if (ptype == "RobertaProcessing") {
                roberta_processing(proc, sp);
            } else if (ptype == "TemplateProcessing") {
                json single = get(proc, "single"), pair = get(proc, "pair");
                if (!single.is_array()) single = json::array();
                if (!pair.is_array()) pair = json::array();
                json first, last;
                if (single.size() > 1) template_single(single, sp, first, last);
                if (!pair.empty()) template_pair(pair, sp, first, last);
            }
        }
    }

    static json special_id(const json& item) { return get(get(item, "SpecialToken"), "id"); }

    void roberta_processing(const json& proc, SpecialEntries& sp) {
        set_add("bos", true);
        set_add("eos", true);
        set_add("sep", true);
        if (!truthy(sp.cls) && sp.have_tc) {
            const json cls = get(proc, "cls");
            sp.fill("cls_token", sp.cls, cls.is_array() && !cls.empty() ? cls[0] : sp.bos);
        }
        if (!truthy(sp.sep) && sp.have_tc) {
            const json sep = get(proc, "sep");
            sp.fill("sep_token", sp.sep, sep.is_array() && !sep.empty() ? sep[0] : sp.eos);
        }
    }

    // TemplateProcessing "single": its first special token is the BOS (or CLS), its last the EOS. An EOS that
    // differs from tokenizer_config.json's makes the configured one the EOT (or EOM) token.
    void template_single(const json& single, SpecialEntries& sp, json& first, json& last) {
        first = special_id(single.front());
        if (truthy(first)) {
            if (!sp.have_tc) {
                sp.bos = first;
            } else if (first != sp.bos && first != sp.cls) {
                if (!truthy(sp.bos)) sp.fill("bos_token", sp.bos, first);
                if (!truthy(sp.cls)) sp.fill("cls_token", sp.cls, first);
            }
            set_add("bos", first == sp.bos || first == sp.cls);
        }
        last = special_id(single.back());
        if (!truthy(last)) return;
        if (!sp.have_tc) {
            sp.eos = last;
        } else if (last != sp.eos) {
            if (!has_type("eot")) {
                types_.push_back("eot");
                sp.tc["eot_token"] = sp.eos;
            } else if (!has_type("eom")) {
                types_.push_back("eom");
                sp.tc["eom_token"] = sp.eos;
            }
            sp.fill("eos_token", sp.eos, last);
        }
        set_add("eos", last == sp.eos);
    }

    // TemplateProcessing "pair": A [sep] [eos] B between the single template's first and last tokens sets add_sep.
    void template_pair(const json& pair, SpecialEntries& sp, const json& first, const json& last) {
        const std::size_t seq_start = truthy(first) && special_id(pair.front()) == first ? 1 : 0;
        const bool drop_last = truthy(last) && special_id(pair.back()) == last;
        const std::size_t stop = drop_last ? pair.size() - 1 : pair.size();
        json mid = json::array();
        for (std::size_t i = seq_start; i < stop; ++i) mid.push_back(pair[i]);
        if (mid.empty()) return;
        const json a = get(get(mid.front(), "Sequence"), "id");
        const json b = get(get(mid.back(), "Sequence"), "id");
        if (!(a == "A" && b == "B" && mid.size() > 2)) return;
        json inner = json::array();
        for (std::size_t i = 1; i + 1 < mid.size(); ++i) inner.push_back(mid[i]);
        bool add_sep = false;
        const json e0 = special_id(inner[0]);
        if (truthy(e0) && (e0 == sp.sep || e0 == sp.eos) && !truthy(last)) add_sep = true;
        if (inner.size() == 2) {
            const json e1 = special_id(inner[1]);
            if (truthy(e1) && (e1 == sp.sep || e1 == sp.eos)) add_sep = true;
        }
        set_add("sep", add_sep);
        if (add_sep && !truthy(sp.sep) && sp.have_tc) sp.tc["sep_token"] = sp.eos;
    }

    // Chat template: tokenizer_config.json, else chat_template.jinja (+ additional_chat_templates/*.jinja),
    // else chat_template.json.
    void load_chat_template(const json& tc) {
        json alt;
        const fs::path jinja = files_.dir / "chat_template.jinja";
        const fs::path jsonf = files_.dir / "chat_template.json";
        std::error_code ec;
        if (fs::is_regular_file(jinja, ec)) {
            alt = read_small_file(jinja);
            const fs::path extra_dir = files_.dir / "additional_chat_templates";
            std::vector<fs::path> extra;
            if (fs::is_directory(extra_dir, ec)) {
                for (const auto& e : fs::directory_iterator(extra_dir, ec))
                    if (e.is_regular_file() && e.path().extension() == ".jinja") extra.push_back(e.path());
            }
            std::sort(extra.begin(), extra.end());  // glob order is the OS's; sorted is reproducible
            if (!extra.empty()) {
                json list = json::array({json{{"name", "default"}, {"template", alt}}});
                for (const fs::path& p : extra)
                    list.push_back(json{{"name", p.stem().string()}, {"template", read_small_file(p)}});
                alt = std::move(list);
            }
        } else if (auto j = read_json_if_exists(jsonf)) {
            alt = get(*j, "chat_template");
        }
        const json ct = tc.contains("chat_template") ? tc["chat_template"] : alt;
        if (ct.is_string() || ct.is_array())
            chat_template_ = ct;
        else if (!ct.is_null())
            core::log::warn(core::cat(files_.tc_name(), ": bad type for chat_template - ignoring"));
    }

    // add_<type>_token flags, and each <type>_token's id looked up by content among tokenizer.json's added tokens.
    void load_special_tokens(const json& tc, const json& added_tokens) {
        for (const std::string& typ : std::vector<std::string>(types_)) {
            const json add_entry = get(tc, core::cat("add_", typ, "_token"));
            if (add_entry.is_boolean()) set_add(typ, add_entry.get<bool>());
            const json entry = get(tc, typ + "_token");
            std::string content;
            if (entry.is_string()) {
                content = entry.get<std::string>();
            } else if (entry.is_object() && get(entry, "content").is_string()) {
                content = entry["content"].get<std::string>();
            } else {
                continue;
            }
            json id;
            if (added_tokens.is_array()) {
                for (const json& at : added_tokens) {
                    if (get(at, "content") == content) {
                        id = get(at, "id");
                        break;
                    }
                }
            }
            set_id(typ, id, files_.tc_name());
        }
    }

    void load_from_config(const json& config) {
        for (const std::string& typ : types_) {
            json id = get(config, typ + "_token_id");
            if (id.is_null() && config.is_object() && config.contains("text_config"))
                id = get(config["text_config"], typ + "_token_id");
            set_id(typ, id, (files_.dir / "config.json").string());
        }
    }

    // gguf_writer.add_chat_template: a list becomes tokenizer.chat_template.<name> per named entry, the
    // tokenizer.chat_templates name list, and the "default" entry as tokenizer.chat_template.
    static void add_chat_template(std::vector<GgufKV>& kvs, const json& value) {
        if (value.is_string()) {
            put(kvs, "tokenizer.chat_template", GgufValue::string(value.get<std::string>()));
            return;
        }
        std::optional<std::string> default_template;
        std::vector<std::string> names;
        for (const json& choice : value) {
            const json n = get(choice, "name"), t = get(choice, "template");
            if (!n.is_string() || !t.is_string()) continue;
            // Non-alphanumeric code points become '_' (one per code point, as Python iterates a str).
            std::string name;
            for (unsigned char c : n.get<std::string>()) {
                if ((c & 0xc0u) == 0x80u) continue;  // UTF-8 continuation byte
                name += std::isalnum(c) && c < 0x80 ? static_cast<char>(c) : '_';
            }
            if (name.empty()) continue;
            if (name == "default") {
                default_template = t.get<std::string>();
            } else {
                if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
                put(kvs, "tokenizer.chat_template." + name, GgufValue::string(t.get<std::string>()));
            }
        }
        if (!names.empty()) put(kvs, "tokenizer.chat_templates", GgufValue::arr_str(names));
        if (default_template) put(kvs, "tokenizer.chat_template", GgufValue::string(*default_template));
    }

    const Files& files_;
    std::optional<std::int64_t> n_vocab_;
    bool load_merges_;
    std::vector<std::string> types_;
    std::vector<std::pair<std::string, std::uint32_t>> ids_;  // insertion order, as the Python dict
    std::vector<std::pair<std::string, bool>> add_;
    std::optional<json> chat_template_;
    std::optional<bool> lowercase_, strip_accents_;
    std::vector<std::string> merges_;
};

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

void set_vocab_sentencepiece(TokenizerInfo& info, const Files& files, const json& config, std::int64_t n_vocab,
                             bool phi3) {
    const Vocab v = phi3 ? phi3_sentencepiece_vocab(files, n_vocab) : sentencepiece_vocab(files, n_vocab);
    add_sentencepiece_kvs(info.kvs, v);
    SpecialVocab(files, config, static_cast<std::int64_t>(v.tokens.size()), false).add_to(info.kvs);
    info.model = "llama";
    info.pre = "default";
    info.vocab_size = static_cast<std::int64_t>(v.tokens.size());
}

void set_vocab_gpt2(TokenizerInfo& info, const Files& files, const json& config, const std::string& arch,
                    std::int64_t n_vocab) {
    if (!files.tokenizer_json)
        throw Error(ErrorKind::Unsupported, files.dir.string(), "",
                    "no tokenizer.model or tokenizer.json: cannot embed a tokenizer");
    const BpeVocab b = bpe_vocab(files, arch, n_vocab);
    put(info.kvs, "tokenizer.ggml.model", GgufValue::string("gpt2"));
    put(info.kvs, "tokenizer.ggml.pre", GgufValue::string(b.pre));
    put(info.kvs, "tokenizer.ggml.tokens", GgufValue::arr_str(b.vocab.tokens));
    put(info.kvs, "tokenizer.ggml.token_type", GgufValue::arr_i32(b.vocab.types));
    // Upstream passes no n_vocab here; llama.cpp ignores out-of-range ids at load, so skipping them is equivalent.
    const SpecialVocab sv(files, config, static_cast<std::int64_t>(b.vocab.tokens.size()), true);
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
    } else if (arch == "gemma3") {
        if (has_sp) {
            set_vocab_sentencepiece(info, files, config, n_vocab, false);
            put(info.kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
        } else {
            set_vocab_gpt2(info, files, config, arch, n_vocab);
        }
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
    } else {
        set_vocab_gpt2(info, files, config, arch, n_vocab);
    }
    return info;
}

}  // namespace shardforge::model
