// The tokenizer pass's shared pieces (tokenizer.cpp): the tokenizer files of a model directory, small JSON
// helpers, and gguf.SpecialVocab (llama.cpp's gguf-py/gguf/vocab.py: special ids, add_* flags, chat template,
// normalizer flags, merges) as named phases. Private to the model module.
#pragma once
#include <shardforge/model.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardforge::model::tokenizer_detail {

using core::Error;
using core::ErrorKind;
using formats::GgufKV;
using formats::GgufValue;
using nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- small helpers

// Size-capped (core::read_input_file): a tokenizer file of hundreds of MB is refused before it is allocated.
inline std::string read_small_file(const fs::path& p) { return core::read_input_file(p.string()); }

inline std::optional<json> read_json_if_exists(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    const std::string text = read_small_file(p);
    core::check_json_depth(text, p.string());
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::BadInput, p.string(), "", core::cat("invalid JSON: ", e.what()));
    }
}

// Python truthiness of a JSON value.
inline bool truthy(const json& v) {
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number_integer()) return v.get<std::int64_t>() != 0;
    if (v.is_number()) return v.get<double>() != 0.0;
    if (v.is_string()) return !v.get_ref<const std::string&>().empty();
    return !v.empty();
}

// dict.get(key) for a JSON object (null when absent or not an object).
inline json get(const json& obj, const std::string& key) {
    if (obj.is_object()) {
        auto it = obj.find(key);
        if (it != obj.end()) return *it;
    }
    return json();
}

inline void put(std::vector<GgufKV>& kvs, const std::string& key, GgufValue v) {
    for (GgufKV& kv : kvs) {
        if (kv.key == key) {
            kv.value = std::move(v);
            return;
        }
    }
    kvs.push_back(GgufKV{key, std::move(v)});
}

inline std::string replace_all(std::string s, std::string_view from, std::string_view to) {
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

}  // namespace shardforge::model::tokenizer_detail
