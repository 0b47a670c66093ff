// The demo model's tokenizer: a byte-level BPE (GPT-2 alphabet, Llama 3 pre-tokenizer) whose merges are learned
// by a tiny deterministic trainer over an embedded English corpus, written as a Llama-3-shaped tokenizer.json.
#include "demo_internal.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <utility>

namespace shardforge::model {

namespace {

// ASCII only, so the trainer's pre-tokenizer below needs no Unicode tables. Contractions, digit runs, newlines
// and punctuation are all here so that the learned merges exercise every branch of the Llama 3 split regex.
constexpr std::string_view corpus_text =
    "The river town woke early. Before the sun was over the hills, the bakers had lit their ovens and the "
    "fishermen were already out on the water, calling to one another across the mist. It was the kind of place "
    "where everyone knew the weather before the radio did, and where a stranger's boat was noticed long before "
    "it reached the harbor.\n\n"
    "In 1887 the town built a stone bridge with 12 arches. It cost 4500 pounds, which was a great deal of money "
    "then, and the council argued about it for three years. Some said the ferry was good enough; others said "
    "the town would never grow without a bridge. When it finally opened on the 21st of May, the whole town "
    "walked across it twice, once in each direction, just to be sure it would hold.\n\n"
    "\"We'll see,\" said the old ferryman, who didn't believe in bridges. \"I've carried people over this river "
    "for forty years, and I'm not done yet.\" He kept his boat tied at the landing for the rest of his life. "
    "On foggy mornings, when the bridge was hard to see, people still knocked on his door and asked to be taken "
    "across. They're still telling that story in the town today.\n\n"
    "The school stands at the top of the hill. Children learn to read and write there, and to count: one, two, "
    "three, up to 100 and then 1000. They learn the names of the rivers and the mountains, the stars and the "
    "planets, and the long history of the people who lived in the valley before them. The teacher says that a "
    "question is worth more than an answer, because a good question can lead to many answers.\n\n"
    "In the evening, the lights come on one by one. The market closes, the bakers sleep, and the fishermen mend "
    "their nets by the fire. Somebody plays a song on an old piano, and the music drifts out over the water. "
    "It's a quiet town, but it has its own rhythm, and those who live there wouldn't trade it for anything.\n\n"
    "Weather report: wind from the west at 15 to 20 kilometers per hour; light rain after 6 pm; temperature "
    "between 9 and 14 degrees. Tomorrow will be cooler, with clear skies in the morning and clouds later in the "
    "day. Fishing boats should return before dark.\n";

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_nl(unsigned char c) { return c == '\n' || c == '\r'; }
bool is_other(unsigned char c) { return !is_alpha(c) && !is_digit(c) && !is_space(c); }

// Length of the Llama 3 split-regex match at s[i] for ASCII text, alternatives tried in the regex's order:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} | ?[^\s\p{L}\p{N}]+[\r\n]* |
//   \s*[\r\n]+ | \s+(?!\S) | \s+
std::size_t match_at(std::string_view s, std::size_t i) {
    const std::size_t n = s.size();
    auto at = [&](std::size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(s[k]) : 0; };
    auto lower = [&](std::size_t k) -> unsigned char {
        const unsigned char c = at(k);
        return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c;
    };
    if (at(i) == '\'') {
        const unsigned char a = lower(i + 1), b = lower(i + 2);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    {
        std::size_t k = i;
        if (i < n && !is_nl(at(i)) && !is_alpha(at(i)) && !is_digit(at(i)) && is_alpha(at(i + 1))) ++k;
        if (k < n && is_alpha(at(k))) {
            while (k < n && is_alpha(at(k))) ++k;
            return k - i;
        }
    }
    if (is_digit(at(i))) {
        std::size_t k = i;
        while (k < n && k - i < 3 && is_digit(at(k))) ++k;
        return k - i;
    }
    {
        std::size_t k = i;
        if (at(k) == ' ' && k + 1 < n && is_other(at(k + 1))) ++k;
        if (k < n && is_other(at(k))) {
            while (k < n && is_other(at(k))) ++k;
            while (k < n && is_nl(at(k))) ++k;
            return k - i;
        }
    }
    std::size_t k = i;
    while (k < n && is_space(at(k))) ++k;  // the whitespace run [i, k)
    if (k > i) {
        for (std::size_t p = k; p > i; --p) {
            if (is_nl(at(p - 1))) return p - i;  // \s*[\r\n]+ ends at the run's last newline
        }
        if (k == n || k - 1 == i) return k - i;  // \s+(?!\S) at the end, or a lone space before a word: \s+
        return k - 1 - i;                          // \s+(?!\S): leave the last space to prefix the next word
    }
    return 1;  // unreachable for ASCII: every byte is a letter, digit, space or "other"
}

using Word = std::vector<std::string>;  // symbols (token strings)

}  // namespace

std::string_view demo_corpus() noexcept { return corpus_text; }

namespace detail {

char32_t gpt2_byte_to_cp(unsigned char b) noexcept {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) return b;
    // The remaining 68 bytes get 256, 257, ... in byte order.
    char32_t k = 0;
    for (unsigned c = 0; c < b; ++c) {
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174))) ++k;
    }
    return 256 + k;
}

std::string utf8(char32_t cp) {
    std::string o;
    if (cp < 0x80) {
        o += static_cast<char>(cp);
    } else if (cp < 0x800) {
        o += static_cast<char>(0xC0 | (cp >> 6));
        o += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o += static_cast<char>(0xE0 | (cp >> 12));
        o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        o += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        o += static_cast<char>(0xF0 | (cp >> 18));
        o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        o += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return o;
}

DemoTokenizer train_demo_tokenizer(int vocab, bool glm) {
    const int n_specials = glm ? demo_glm_n_specials : demo_n_specials;
    if (vocab < 256 + n_specials) {
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("demo vocab must be >= ", 256 + n_specials, ", got ", vocab));
    }
    DemoTokenizer t;
    t.glm = glm;
    std::set<std::string> known;
    for (int b = 0; b < 256; ++b) {
        t.tokens.push_back(utf8(gpt2_byte_to_cp(static_cast<unsigned char>(b))));
        known.insert(t.tokens.back());
    }
    // Pre-tokenize and count words (std::map: iteration order, hence everything below, is deterministic).
    std::map<std::string, int> word_count;
    const std::string_view text = corpus_text;
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t len = match_at(text, i);
        ++word_count[std::string(text.substr(i, len))];
        i += len;
    }
    std::vector<std::pair<Word, int>> words;
    for (const auto& [w, c] : word_count) {
        Word syms;
        for (const char ch : w) syms.push_back(t.tokens[static_cast<unsigned char>(ch)]);
        words.emplace_back(std::move(syms), c);
    }
    const int n_bpe_max = vocab - n_specials;
    while (static_cast<int>(t.tokens.size()) < n_bpe_max) {
        std::map<std::pair<std::string, std::string>, long> pairs;
        for (const auto& [syms, c] : words) {
            for (std::size_t k = 0; k + 1 < syms.size(); ++k) pairs[{syms[k], syms[k + 1]}] += c;
        }
        if (pairs.empty()) break;
        // Most frequent pair; ties go to the smallest (left, right) in byte order (std::map order, first max).
        auto best = pairs.begin();
        for (auto it = pairs.begin(); it != pairs.end(); ++it) {
            if (it->second > best->second) best = it;
        }
        const auto [left, right] = best->first;
        const std::string merged = left + right;
        t.merges.push_back(left + " " + right);
        if (known.insert(merged).second) t.tokens.push_back(merged);
        for (auto& [syms, c] : words) {
            Word out;
            for (std::size_t k = 0; k < syms.size(); ++k) {
                if (k + 1 < syms.size() && syms[k] == left && syms[k + 1] == right) {
                    out.push_back(merged);
                    ++k;
                } else {
                    out.push_back(syms[k]);
                }
            }
            syms = std::move(out);
        }
    }
    t.n_bpe = static_cast<int>(t.tokens.size());
    if (glm) {
        for (const char* s : demo_glm_specials) t.tokens.emplace_back(s);
        for (int k = 0; static_cast<int>(t.tokens.size()) < vocab; ++k) t.tokens.push_back(core::cat("<|reserved_", k, "|>"));
        t.bos_id = t.n_bpe + 2;  // [gMASK]
        t.eos_id = t.n_bpe;      // <|endoftext|>
        t.eot_id = t.n_bpe + 7;  // <|user|>
        return t;
    }
    for (const char* s : demo_specials) t.tokens.emplace_back(s);
    for (int k = 0; static_cast<int>(t.tokens.size()) < vocab; ++k) {
        t.tokens.push_back(core::cat("<|reserved_special_token_", k, "|>"));
    }
    t.bos_id = t.n_bpe;
    t.eos_id = t.n_bpe + 1;
    t.eot_id = t.n_bpe + 4;
    return t;
}

namespace {

using ojson = nlohmann::ordered_json;

// The pre-tokenizer split of Meta-Llama-3's tokenizer.json.
constexpr const char* llama3_split_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The Meta-Llama-3-8B-Instruct chat template.
constexpr const char* llama3_chat_template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}";

// A shortened GLM-4.5 chat template (its prompt format without the tool and thinking branches).
constexpr const char* glm_chat_template =
    "[gMASK]<sop>{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

ojson added_token(int id, const std::string& content) {
    ojson a;
    a["id"] = id;
    a["content"] = content;
    a["single_word"] = false;
    a["lstrip"] = false;
    a["rstrip"] = false;
    a["normalized"] = false;
    a["special"] = true;
    return a;
}

ojson byte_level(bool add_prefix_space, bool trim_offsets, bool use_regex) {
    ojson b;
    b["type"] = "ByteLevel";
    b["add_prefix_space"] = add_prefix_space;
    b["trim_offsets"] = trim_offsets;
    b["use_regex"] = use_regex;
    return b;
}

ojson special_entry(const std::string& content) {
    ojson e;
    e["content"] = content;
    e["lstrip"] = false;
    e["normalized"] = false;
    e["rstrip"] = false;
    e["single_word"] = false;
    return e;
}

}  // namespace

std::string demo_tokenizer_json(const DemoTokenizer& t) {
    ojson j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    ojson added = ojson::array();
    for (int id = t.n_bpe; id < static_cast<int>(t.tokens.size()); ++id) added.push_back(added_token(id, t.tokens[id]));
    j["added_tokens"] = added;
    j["normalizer"] = nullptr;

    ojson split;
    split["type"] = "Split";
    split["pattern"]["Regex"] = llama3_split_regex;
    split["behavior"] = "Isolated";
    split["invert"] = false;
    j["pre_tokenizer"]["type"] = "Sequence";
    j["pre_tokenizer"]["pretokenizers"] = ojson::array({split, byte_level(false, true, false)});

    const std::string& bos = t.tokens[t.bos_id];
    ojson tp;
    tp["type"] = "TemplateProcessing";
    ojson bos_item, seq_a, seq_b;
    bos_item["SpecialToken"]["id"] = bos;
    bos_item["SpecialToken"]["type_id"] = 0;
    seq_a["Sequence"]["id"] = "A";
    seq_a["Sequence"]["type_id"] = 0;
    seq_b["Sequence"]["id"] = "B";
    seq_b["Sequence"]["type_id"] = 1;
    ojson bos_item1 = bos_item;
    bos_item1["SpecialToken"]["type_id"] = 1;
    tp["single"] = ojson::array({bos_item, seq_a});
    tp["pair"] = ojson::array({bos_item, seq_a, bos_item1, seq_b});
    tp["special_tokens"][bos]["id"] = bos;
    tp["special_tokens"][bos]["ids"] = ojson::array({t.bos_id});
    tp["special_tokens"][bos]["tokens"] = ojson::array({bos});
    if (t.glm) {
        j["post_processor"] = byte_level(true, false, false);
    } else {
        j["post_processor"]["type"] = "Sequence";
        j["post_processor"]["processors"] = ojson::array({byte_level(true, false, true), tp});
    }
    j["decoder"] = byte_level(true, true, true);

    ojson m;
    m["type"] = "BPE";
    m["dropout"] = nullptr;
    m["unk_token"] = nullptr;
    m["continuing_subword_prefix"] = nullptr;
    m["end_of_word_suffix"] = nullptr;
    m["fuse_unk"] = false;
    m["byte_fallback"] = false;
    m["ignore_merges"] = true;  // as Llama 3: a pre-token that is itself in the vocab is one token
    ojson v = ojson::object();
    for (int id = 0; id < t.n_bpe; ++id) v[t.tokens[id]] = id;
    m["vocab"] = v;
    m["merges"] = t.merges;
    j["model"] = m;
    return j.dump(2) + "\n";
}

std::string demo_tokenizer_config_json(const DemoTokenizer& t) {
    ojson j;
    if (t.glm) {  // GLM-4.5's keys: no BOS token, EOS and padding <|endoftext|>
        ojson dec = ojson::object();
        for (int id = t.n_bpe; id < static_cast<int>(t.tokens.size()); ++id) {
            ojson e = special_entry(t.tokens[id]);
            e["special"] = true;
            dec[std::to_string(id)] = e;
        }
        j["added_tokens_decoder"] = dec;
        j["chat_template"] = glm_chat_template;
        j["clean_up_tokenization_spaces"] = false;
        j["do_lower_case"] = false;
        j["eos_token"] = t.tokens[t.eos_id];
        j["model_max_length"] = 2048;
        j["pad_token"] = t.tokens[t.eos_id];
        j["padding_side"] = "left";
        j["remove_space"] = false;
        j["tokenizer_class"] = "PreTrainedTokenizerFast";
        return j.dump(2) + "\n";
    }
    j["add_bos_token"] = true;
    j["add_eos_token"] = false;
    ojson dec = ojson::object();
    for (int id = t.n_bpe; id < static_cast<int>(t.tokens.size()); ++id) {
        ojson e = special_entry(t.tokens[id]);
        e["special"] = true;
        dec[std::to_string(id)] = e;
    }
    j["added_tokens_decoder"] = dec;
    j["bos_token"] = t.tokens[t.bos_id];
    j["chat_template"] = llama3_chat_template;
    j["clean_up_tokenization_spaces"] = true;
    j["eos_token"] = t.tokens[t.eos_id];
    j["model_input_names"] = ojson::array({"input_ids", "attention_mask"});
    j["model_max_length"] = 2048;
    j["tokenizer_class"] = "PreTrainedTokenizerFast";
    return j.dump(2) + "\n";
}

std::string demo_special_tokens_map_json(const DemoTokenizer& t) {
    ojson j;
    if (t.glm) {
        j["eos_token"] = special_entry(t.tokens[t.eos_id]);
        j["pad_token"] = special_entry(t.tokens[t.eos_id]);
        return j.dump(2) + "\n";
    }
    j["bos_token"] = special_entry(t.tokens[t.bos_id]);
    j["eos_token"] = special_entry(t.tokens[t.eos_id]);
    return j.dump(2) + "\n";
}

}  // namespace detail
}  // namespace shardforge::model

namespace shardforge::model::detail {
namespace {

// Protobuf wire format, the few pieces a ModelProto needs.
void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, std::uint32_t field, std::uint32_t wire) { put_varint(out, (field << 3) | wire); }
void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
    put_tag(out, field, 2);
    put_varint(out, bytes.size());
    out.append(bytes);
}
void put_bool(std::string& out, std::uint32_t field, bool v) {
    put_tag(out, field, 0);
    put_varint(out, v ? 1 : 0);
}

std::string sp_piece(std::string_view piece, float score, int type) {
    std::string m;
    put_bytes(m, 1, piece);
    put_tag(m, 2, 5);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &score, sizeof bits);
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));  // fixed32, little endian
    put_tag(m, 3, 0);
    put_varint(m, static_cast<std::uint64_t>(type));
    return m;
}

}  // namespace

std::string demo_sentencepiece_model(const DemoTokenizer& t, int vocab) {
    constexpr int normal = 1, unknown = 2, control = 3, byte = 6;
    const std::string space = "\xe2\x96\x81";  // U+2581
    std::vector<std::pair<std::string, int>> pieces = {
        {"<pad>", control}, {"<eos>", control}, {"<bos>", control}, {"<unk>", unknown}};
    char hex[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        pieces.emplace_back(hex, byte);
    }
    std::set<std::string> seen;
    for (const auto& p : pieces) seen.insert(p.first);
    auto add = [&](const std::string& s) {
        if (static_cast<int>(pieces.size()) < vocab && seen.insert(s).second) pieces.emplace_back(s, normal);
    };
    add(space);
    for (int c = 0x21; c < 0x7f; ++c) add(std::string(1, static_cast<char>(c)));
    // byte-level symbol (UTF-8 of a code point) -> byte
    std::map<std::string, unsigned char> to_byte;
    for (int b = 0; b < 256; ++b) to_byte[utf8(gpt2_byte_to_cp(static_cast<unsigned char>(b)))] = static_cast<unsigned char>(b);
    for (int id = 256; id < t.n_bpe; ++id) {
        const std::string& tok = t.tokens[static_cast<std::size_t>(id)];
        std::string text;
        bool ok = true;
        for (std::size_t i = 0; i < tok.size() && ok;) {
            const auto lead = static_cast<unsigned char>(tok[i]);
            const std::size_t n = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
            const auto it = to_byte.find(tok.substr(i, n));
            if (it == to_byte.end()) {
                ok = false;
                break;
            }
            if (it->second == ' ') text += space;
            else if (it->second < 0x20 || it->second >= 0x7f) ok = false;  // keep the pieces printable ASCII
            else text.push_back(static_cast<char>(it->second));
            i += n;
        }
        if (ok && !text.empty()) add(text);
    }
    for (int k = 0; static_cast<int>(pieces.size()) < vocab; ++k) add(core::cat("<unused", k, ">"));

    std::string out;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        const auto& [piece, type] = pieces[i];
        // BPE scores: earlier merges win, so the score falls with the id (bytes and specials score 0).
        const float score = type == normal ? -static_cast<float>(i) : 0.0f;
        put_bytes(out, 1, sp_piece(piece, score, type));
    }
    std::string trainer;
    put_tag(trainer, 3, 0);
    put_varint(trainer, 2);  // model_type BPE
    put_bool(trainer, 35, true);  // byte_fallback
    put_bytes(out, 2, trainer);
    std::string normalizer;
    put_bytes(normalizer, 1, "identity");
    put_bool(normalizer, 3, false);  // add_dummy_prefix
    put_bool(normalizer, 4, false);  // remove_extra_whitespaces
    put_bytes(out, 3, normalizer);
    return out;
}

}  // namespace shardforge::model::detail
