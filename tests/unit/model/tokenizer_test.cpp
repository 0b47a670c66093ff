// read_tokenizer: GGUF tokenizer.* keys from HF tokenizer files (llama.cpp's gguf-py/gguf/vocab.py). Expected values
// are written out by hand from the reference converter's rules (convert_hf_to_gguf.py _create_vocab_sentencepiece,
// get_vocab_base, gguf-py vocab.py SpecialVocab) applied to the small fixtures.
#include <shardforge/model.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

namespace sf = shardforge;
namespace fs = std::filesystem;
using nlohmann::json;
using sf::formats::GgufKV;
using sf::formats::GgufValue;
using sf::formats::GgufValueType;

namespace {

fs::path data_dir() { return fs::path(SHARDFORGE_TEST_SOURCE_DIR) / "tests" / "data" / "tokenizers"; }

// A fresh temporary model directory, removed at the end of the test.
class TmpDir {
public:
    TmpDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("sf_tok_" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TmpDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const std::string& name, const std::string& text) const {
        fs::create_directories((path_ / name).parent_path());
        std::ofstream(path_ / name, std::ios::binary) << text;
    }
    void write_json(const std::string& name, const json& j) const { write(name, j.dump()); }
    void copy_from(const fs::path& src) const {
        for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), path_ / e.path().filename());
    }

private:
    fs::path path_;
};

std::vector<std::string> keys(const sf::model::TokenizerInfo& t) {
    std::vector<std::string> k;
    for (const GgufKV& kv : t.kvs) k.push_back(kv.key);
    return k;
}

const GgufValue& kv(const sf::model::TokenizerInfo& t, const std::string& key) {
    for (const GgufKV& x : t.kvs)
        if (x.key == key) return x.value;
    throw std::runtime_error("missing key " + key);
}
bool has(const sf::model::TokenizerInfo& t, const std::string& key) {
    for (const GgufKV& x : t.kvs)
        if (x.key == key) return true;
    return false;
}
std::vector<std::int64_t> i32s(const GgufValue& v) {
    EXPECT_EQ(v.elem_type, GgufValueType::INT32);
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < v.array_size(); ++i) out.push_back(v.array_i64(i));
    return out;
}
std::vector<double> f32s(const GgufValue& v) {
    EXPECT_EQ(v.elem_type, GgufValueType::FLOAT32);
    std::vector<double> out;
    for (std::size_t i = 0; i < v.array_size(); ++i) out.push_back(v.array_f64(i));
    return out;
}
std::uint64_t u32(const GgufValue& v) {
    EXPECT_EQ(v.type, GgufValueType::UINT32);
    return v.as_u64();
}
bool boolean(const GgufValue& v) {
    EXPECT_EQ(v.type, GgufValueType::BOOL);
    return v.as_bool();
}

sf::core::ErrorKind error_kind(const std::function<void()>& f, const std::string& must_mention) {
    try {
        f();
    } catch (const sf::core::Error& e) {
        EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos) << e.what();
        return e.kind();
    }
    ADD_FAILURE() << "no error";
    return sf::core::ErrorKind::Internal;
}

const std::string G = "\xc4\xa0";  // U+0120, byte-level BPE space

json llama3_tokenizer_json() {
    std::ifstream f(data_dir() / "llama3-bpe" / "tokenizer.json");
    return json::parse(f);
}

}  // namespace

// ---------------------------------------------------------------- byte-level BPE

TEST(Tokenizer, Llama3BpeVocabularyMergesAndSpecialTokens) {
    TmpDir d;
    d.copy_from(data_dir() / "llama3-bpe");
    const json config = {{"vocab_size", 18}, {"bos_token_id", 12}, {"eos_token_id", json::array({13, 14})}};
    const auto t = sf::model::read_tokenizer(d.path(), config, "llama", 18);

    EXPECT_EQ(t.model, "gpt2");
    EXPECT_EQ(t.pre, "llama-bpe");
    EXPECT_EQ(t.vocab_size, 15);  // 11 vocab + 4 added tokens (gemma3's n_vocab_real formula)
    const std::vector<std::string> want_keys = {
        "tokenizer.ggml.model",        "tokenizer.ggml.pre",          "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",   "tokenizer.ggml.merges",       "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_sep_token",
        "tokenizer.chat_template"};
    EXPECT_EQ(keys(t), want_keys);
    EXPECT_EQ(kv(t, "tokenizer.ggml.model").as_string(), "gpt2");
    const std::vector<std::string> want_tokens = {
        "!", "a", "b", "c", G, "ab", G + "a", "abc", G + "ab", "[PAD9]", G + G, "x", "<|begin_of_text|>",
        "<|end_of_text|>", "<|reserved_special_token_0|>", "hello world", "[PAD16]", "[PAD17]"};
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_strings(), want_tokens);
    // NORMAL 1, UNUSED 5, CONTROL 3 (special, or not special but looks special), USER_DEFINED 4
    const std::vector<std::int64_t> want_types = {1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 1, 1, 3, 3, 3, 4, 5, 5};
    EXPECT_EQ(i32s(kv(t, "tokenizer.ggml.token_type")), want_types);
    const std::vector<std::string> want_merges = {"a b", G + " a", "ab c", G + "a b", G + " " + G};
    EXPECT_EQ(kv(t, "tokenizer.ggml.merges").array_strings(), want_merges);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.bos_token_id")), 12u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), 13u);  // tokenizer_config; config's list is ignored
    EXPECT_TRUE(boolean(kv(t, "tokenizer.ggml.add_bos_token")));   // TemplateProcessing leading <|begin_of_text|>
    EXPECT_FALSE(boolean(kv(t, "tokenizer.ggml.add_sep_token")));  // pair template has bos, not sep/eos, between
    EXPECT_EQ(kv(t, "tokenizer.chat_template").as_string(),
              "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}");
    EXPECT_FALSE(has(t, "tokenizer.ggml.scores"));
}

TEST(Tokenizer, Qwen2PairFormMergesEncodeInnerSpaces) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    const json config = {{"vocab_size", 16}, {"bos_token_id", 12}, {"eos_token_id", 14}};
    const auto t = sf::model::read_tokenizer(d.path(), config, "qwen2", 16);
    EXPECT_EQ(t.model, "gpt2");
    EXPECT_EQ(t.pre, "qwen2");
    const std::vector<std::string> want_merges = {"a b", G + " a", "ab c", G + "a b", "x" + G + "y z"};
    EXPECT_EQ(kv(t, "tokenizer.ggml.merges").array_strings(), want_merges);
    const std::vector<std::string> want_keys = {
        "tokenizer.ggml.model",         "tokenizer.ggml.pre",           "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",    "tokenizer.ggml.merges",        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"};
    EXPECT_EQ(keys(t), want_keys);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), 14u);      // <|im_end|> from tokenizer_config
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.padding_token_id")), 12u);  // <|endoftext|>
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.bos_token_id")), 12u);      // config.json fallback
    EXPECT_FALSE(boolean(kv(t, "tokenizer.ggml.add_bos_token")));
    const auto types = i32s(kv(t, "tokenizer.ggml.token_type"));
    ASSERT_EQ(types.size(), 16u);
    EXPECT_EQ(types[10], 1);  // "x y" is a normal vocab entry
    EXPECT_EQ(types[15], 4);  // <tool_call>: added, not special, does not look special
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_strings()[10], "x y");
}

TEST(Tokenizer, MergesTxtFallbackSkipsVersionLine) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    json tj = json::parse(std::ifstream(d.path() / "tokenizer.json"));
    tj["model"].erase("merges");
    d.write_json("tokenizer.json", tj);
    d.write("merges.txt", "#version: 0.2\na b\n\n" + G + " a\nbad line here\n");
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 16);
    const std::vector<std::string> want = {"a b", G + " a"};
    EXPECT_EQ(kv(t, "tokenizer.ggml.merges").array_strings(), want);
}

TEST(Tokenizer, RefusesTokenizerLargerThanEmbedding) {
    TmpDir d;
    d.copy_from(data_dir() / "llama3-bpe");
    // added token id 15 needs 16 rows
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "llama", 15); },
                         "tokenizer.json"),
              sf::core::ErrorKind::BadInput);
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "llama", 16);  // exactly enough
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_size(), 16u);
}

TEST(Tokenizer, RefusesUnknownPreTokenizer) {
    TmpDir d;
    d.copy_from(data_dir() / "llama3-bpe");
    json tj = llama3_tokenizer_json();
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = R"(\p{L}+|\p{N}{1,4}|\s+)";
    d.write_json("tokenizer.json", tj);
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "llama", 16); },
                         "tokenizer.json"),
              sf::core::ErrorKind::Unsupported);
}

TEST(Tokenizer, RefusesMissingTokenizer) {
    TmpDir d;
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 16); },
                         d.path().string()),
              sf::core::ErrorKind::Unsupported);
}

// llama.py LlamaModel.set_vocab: tekken.json without tokenizer.json goes to mistral-common (not emulated): exit 4
// naming tekken.json, for llama and mistral3 alike; with tokenizer.json beside it the HF file is used.
TEST(Tokenizer, TekkenJsonAloneIsRefusedNamingTheFile) {
    for (const char* arch : {"mistral3", "llama"}) {
        SCOPED_TRACE(arch);
        TmpDir d;
        d.write_json("tekken.json", json{{"config", {{"pattern", "x"}}}, {"vocab", json::array()}});
        d.write_json("tokenizer_config.json", json{{"add_prefix_space", false}});
        EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), arch, 16); },
                             (d.path() / "tekken.json").string()),
                  sf::core::ErrorKind::Unsupported);
        TmpDir both;
        both.copy_from(data_dir() / "llama3-bpe");
        both.write_json("tekken.json", json{{"vocab", json::array()}});
        const auto t = sf::model::read_tokenizer(both.path(), json::object(), arch, 16);
        EXPECT_EQ(t.pre, "llama-bpe");
    }
}

// _set_vocab_glm: the GLM specials by name after the files' own ids; "glm4" for GLM's (Llama 3's) split.
TEST(Tokenizer, Glm4MoeSetsGlmSpecialsAndTheGlm4PreTokenizer) {
    TmpDir d;
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Glm4Moe;
    o.n_layer = 2;
    o.n_shards = 1;
    sf::model::write_demo(d.path(), o);
    const fs::path base = d.path() / "base";
    std::ifstream cf(base / "config.json");
    const json config = json::parse(cf);
    const auto t = sf::model::read_tokenizer(base, config, "glm4moe", 640);
    EXPECT_EQ(t.pre, "glm4");
    const auto tokens = kv(t, "tokenizer.ggml.tokens").array_strings();
    auto id = [&](const std::string& s) {
        return static_cast<std::uint64_t>(std::find(tokens.begin(), tokens.end(), s) - tokens.begin());
    };
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.bos_token_id")), id("[gMASK]"));
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), id("<|endoftext|>"));  // tokenizer_config's eos_token
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.padding_token_id")), id("<|endoftext|>"));
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eot_token_id")), id("<|user|>"));
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.unknown_token_id")), id("<|endoftext|>"));
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eom_token_id")), id("<|observation|>"));
    EXPECT_LT(id("<|observation|>"), tokens.size());
    EXPECT_FALSE(has(t, "tokenizer.ggml.add_bos_token"));  // GLM's tokenizer adds none
    // the same files under another arch: Llama 3's name, and none of GLM's extra ids
    const auto other = sf::model::read_tokenizer(base, config, "qwen3", 640);
    EXPECT_EQ(other.pre, "llama-bpe");
    EXPECT_FALSE(has(other, "tokenizer.ggml.eom_token_id"));

    // a GLM tokenizer without [gMASK] is the converter's KeyError: refused naming the token
    std::ifstream tf(base / "tokenizer.json");
    json tj = json::parse(tf);
    for (json& a : tj["added_tokens"])
        if (a["content"] == "[gMASK]") a["content"] = "[gMASK_]";
    d.write("base/tokenizer.json", tj.dump());
    const sf::core::Error e = [&] {
        try {
            (void)sf::model::read_tokenizer(base, config, "glm4moe", 640);
        } catch (const sf::core::Error& err) {
            return err;
        }
        return sf::core::Error(sf::core::ErrorKind::Internal, "", "", "not refused");
    }();
    EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find("[gMASK]"), std::string::npos) << e.what();
}

// llama.cpp's conversion/deepseek.py builds Kimi-K2's vocabulary by running its tiktoken tokenizer (remote code, not
// emulated): a deepseek2 model with tiktoken.model and no tokenizer.json is refused naming the file; with a
// tokenizer.json (DeepSeek-V3/R1) that file is used.
TEST(Tokenizer, DeepSeek2TiktokenModelIsRefusedNamingTheFile) {
    TmpDir d;
    d.write_json("tiktoken.model", json("IQ== 0"));
    d.write_json("tokenizer_config.json", json{{"tokenizer_class", "TikTokenTokenizer"}});
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "deepseek2", 16); },
                         (d.path() / "tiktoken.model").string()),
              sf::core::ErrorKind::Unsupported);
    TmpDir both;
    both.copy_from(data_dir() / "llama3-bpe");
    both.write_json("tiktoken.model", json("IQ== 0"));
    EXPECT_EQ(sf::model::read_tokenizer(both.path(), json::object(), "deepseek2", 16).pre, "llama-bpe");
}

// ---------------------------------------------------------------- pre-tokenizer detection

TEST(TokenizerPre, DetectsFamiliesFromPreTokenizer) {
    const json llama3 = llama3_tokenizer_json();
    EXPECT_EQ(sf::model::detect_bpe_pre(llama3, json(), "llama", "t.json"), "llama-bpe");

    json qwen = llama3;
    qwen["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    EXPECT_EQ(sf::model::detect_bpe_pre(qwen, json::object(), "qwen2", "t.json"), "qwen2");
    // DeepSeek-R1-Distill-Qwen: Qwen2 regex with DeepSeek's BOS
    const json r1_config = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<｜begin▁of▁sentence｜>"}}}};
    EXPECT_EQ(sf::model::detect_bpe_pre(qwen, r1_config, "qwen2", "t.json"), "deepseek-r1-qwen");

    json tekken = llama3;
    tekken["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] =
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    EXPECT_EQ(sf::model::detect_bpe_pre(tekken, json(), "llama", "t.json"), "tekken");

    // o200k's split (gpt-4o) is Llama 4's and MiniMax-M2's too: the arch names the fingerprint
    json o200k = llama3;
    o200k["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] =
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    EXPECT_EQ(sf::model::detect_bpe_pre(o200k, json(), "minimax-m2", "t.json"), "minimax-m2");
    EXPECT_EQ(sf::model::detect_bpe_pre(o200k, json(), "llama4", "t.json"), "llama4");
    EXPECT_EQ(sf::model::detect_bpe_pre(o200k, json(), "llama", "t.json"), "gpt-4o");
    // the demo's Llama 3 split stays llama-bpe under minimax-m2 (its own vocabulary, not MiniMax's)
    EXPECT_EQ(sf::model::detect_bpe_pre(llama3, json(), "minimax-m2", "t.json"), "llama-bpe");

    const json gpt2 = {{"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                          {"trim_offsets", true}, {"use_regex", true}}}};
    EXPECT_EQ(sf::model::detect_bpe_pre(gpt2, json(), "gpt2", "t.json"), "gpt-2");

    const json smollm = {{"pre_tokenizer",
                          {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Digits"}, {"individual_digits", true}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}}}};
    EXPECT_EQ(sf::model::detect_bpe_pre(smollm, json(), "llama", "t.json"), "smollm");
}

TEST(TokenizerPre, RefusesNearMissesNamingTheFile) {
    json llama3 = llama3_tokenizer_json();
    // ByteLevel doing its own regex split after the Llama-3 Split is a different pre-tokenizer
    llama3["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
    EXPECT_EQ(error_kind([&] { (void)sf::model::detect_bpe_pre(llama3, json(), "llama", "m/tokenizer.json"); },
                         "m/tokenizer.json"),
              sf::core::ErrorKind::Unsupported);
    const json metaspace = {{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "▁"}}}};
    EXPECT_EQ(error_kind([&] { (void)sf::model::detect_bpe_pre(metaspace, json(), "llama", "m/tokenizer.json"); },
                         "Metaspace"),
              sf::core::ErrorKind::Unsupported);
    EXPECT_EQ(error_kind([&] { (void)sf::model::detect_bpe_pre(json::object(), json(), "llama", "x.json"); },
                         "x.json"),
              sf::core::ErrorKind::Unsupported);
}

TEST(TokenizerPre, LooksSpecial) {
    EXPECT_TRUE(sf::model::token_looks_special("<|im_start|>"));
    EXPECT_TRUE(sf::model::token_looks_special("<｜end▁of▁sentence｜>"));
    EXPECT_TRUE(sf::model::token_looks_special("<unused12>"));
    EXPECT_TRUE(sf::model::token_looks_special("<mask>"));
    EXPECT_TRUE(sf::model::token_looks_special("[@BOS@]"));
    EXPECT_FALSE(sf::model::token_looks_special("<tool_call>"));
    EXPECT_FALSE(sf::model::token_looks_special("<|"));
    EXPECT_TRUE(sf::model::token_looks_special("<|>"));  // Python startswith/endswith overlap
    EXPECT_FALSE(sf::model::token_looks_special("<s>"));
}

// ---------------------------------------------------------------- special ids and chat templates

TEST(TokenizerSpecial, ConfigFallbackTextConfigAndRangeChecks) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    d.write_json("tokenizer_config.json", {{"eos_token", "<|nope|>"}, {"pad_token", {{"content", "<|im_end|>"}}}});
    // eos: tokenizer_config content matches no added token -> config.json; text_config fallback for unk;
    // bos 99 is out of range and skipped; a negative id is an error
    const json config = {{"eos_token_id", 14}, {"bos_token_id", 99}, {"text_config", {{"unk_token_id", 13}}}};
    const auto t = sf::model::read_tokenizer(d.path(), config, "qwen2", 16);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.padding_token_id")), 14u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), 14u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.unknown_token_id")), 13u);
    EXPECT_FALSE(has(t, "tokenizer.ggml.bos_token_id"));
    EXPECT_FALSE(has(t, "tokenizer.chat_template"));
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), {{"eos_token_id", -1}}, "qwen2", 16); },
                         "config.json"),
              sf::core::ErrorKind::BadInput);
}

TEST(TokenizerSpecial, ChatTemplateFromJinjaFile) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    d.write("chat_template.jinja", "{{ messages }}");
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 16);
    EXPECT_EQ(kv(t, "tokenizer.chat_template").as_string(), "{{ messages }}");
}

TEST(TokenizerSpecial, ChatTemplateFromJsonFile) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    d.write_json("chat_template.json", {{"chat_template", "{{ json_tmpl }}"}});
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 16);
    EXPECT_EQ(kv(t, "tokenizer.chat_template").as_string(), "{{ json_tmpl }}");
}

TEST(TokenizerSpecial, TokenizerConfigTemplateWinsOverFiles) {
    TmpDir d;
    d.copy_from(data_dir() / "llama3-bpe");
    d.write("chat_template.jinja", "{{ file }}");
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "llama", 16);
    EXPECT_EQ(kv(t, "tokenizer.chat_template").as_string(),
              "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}");
}

TEST(TokenizerSpecial, NamedTemplateListAndAdditionalJinja) {
    TmpDir d;
    d.copy_from(data_dir() / "qwen2-bpe");
    json tc = json::parse(std::ifstream(d.path() / "tokenizer_config.json"));
    tc["chat_template"] = json::array({{{"name", "default"}, {"template", "D"}},
                                       {{"name", "tool use"}, {"template", "T"}},
                                       {{"name", "rag"}, {"template", "R"}},
                                       {{"name", "no template"}}});
    d.write_json("tokenizer_config.json", tc);
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 16);
    EXPECT_EQ(kv(t, "tokenizer.chat_template.tool_use").as_string(), "T");
    EXPECT_EQ(kv(t, "tokenizer.chat_template.rag").as_string(), "R");
    EXPECT_EQ(kv(t, "tokenizer.chat_templates").array_strings(), (std::vector<std::string>{"tool_use", "rag"}));
    EXPECT_EQ(kv(t, "tokenizer.chat_template").as_string(), "D");
    const auto k = keys(t);
    EXPECT_EQ(std::vector<std::string>(k.end() - 4, k.end()),
              (std::vector<std::string>{"tokenizer.chat_template.tool_use", "tokenizer.chat_template.rag",
                                        "tokenizer.chat_templates", "tokenizer.chat_template"}));

    TmpDir d2;
    d2.copy_from(data_dir() / "qwen2-bpe");
    d2.write("chat_template.jinja", "MAIN");
    d2.write("additional_chat_templates/tool-use.jinja", "TOOLS");
    const auto t2 = sf::model::read_tokenizer(d2.path(), json::object(), "qwen2", 16);
    EXPECT_EQ(kv(t2, "tokenizer.chat_template").as_string(), "MAIN");
    EXPECT_EQ(kv(t2, "tokenizer.chat_template.tool_use").as_string(), "TOOLS");
    EXPECT_EQ(kv(t2, "tokenizer.chat_templates").array_strings(), (std::vector<std::string>{"tool_use"}));
}

// ---------------------------------------------------------------- SentencePiece path

TEST(TokenizerSentencePiece, LlamaVocabWithAddedTokensAndFixes) {
    TmpDir d;
    fs::copy_file(data_dir() / "tiny.model", d.path() / "tokenizer.model");
    // tiny.model has 10 pieces; added_tokens.json continues them at 10, 11
    d.write_json("added_tokens.json", {{"<extra_a>", 10}, {"<|extra_b|>", 11}});
    d.write_json("tokenizer.json",
                 {{"added_tokens", json::array({{{"id", 6}, {"content", "<start_of_turn>"}, {"special", true}},
                                                {{"id", 11}, {"content", "<|extra_b|>"}, {"special", true}}})},
                  {"model", {{"type", "Unigram"}}}});
    d.write_json("tokenizer_config.json",
                 {{"add_prefix_space", false},
                  {"add_bos_token", true},
                  {"add_eos_token", false},
                  {"bos_token", "<s>"},
                  {"eos_token", {{"content", "</s>"}, {"__type", "AddedToken"}}},
                  {"chat_template", "T"},
                  {"added_tokens_decoder",
                   {{"11", {{"content", "<|extra_b|>"}, {"special", false}}},
                    {"12", {{"content", "my\xe2\x96\x81word"}, {"special", false}}},
                    {"40", {{"content", "<far>"}, {"special", true}}}}}});
    const json config = {{"vocab_size", 14}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", 0}};
    const auto t = sf::model::read_tokenizer(d.path(), config, "llama", 14);

    EXPECT_EQ(t.model, "llama");
    EXPECT_EQ(t.pre, "default");
    EXPECT_EQ(t.vocab_size, 14);
    const std::vector<std::string> want_keys = {
        "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.model",          "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",           "tokenizer.ggml.scores",         "tokenizer.ggml.token_type",
        "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",   "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",    "tokenizer.ggml.add_eos_token",  "tokenizer.chat_template"};
    EXPECT_EQ(keys(t), want_keys);
    EXPECT_FALSE(boolean(kv(t, "tokenizer.ggml.add_space_prefix")));
    const std::string sp = "\xe2\x96\x81";
    const std::vector<std::string> want_tokens = {
        "<unk>", "<s>", "</s>", "<0x0A>", sp + "the", sp + "a", "<start_of_turn>", "<mask>", "<unused0>",
        "\xc3\xa9t\xc3\xa9", "<extra_a>", "<|extra_b|>", "my word", "[PAD13]"};
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_strings(), want_tokens);
    const std::vector<double> want_scores = {0, 0, 0, 0, -1.5, -2.25, 0, 0, 0, -7, -1000, -1000, -1000, -10000};
    EXPECT_EQ(f32s(kv(t, "tokenizer.ggml.scores")), want_scores);
    // <start_of_turn> NORMAL -> CONTROL (special in tokenizer.json); <mask> USER_DEFINED piece -> NORMAL;
    // <|extra_b|>: added_tokens_decoder says not special, but it looks special -> CONTROL; "my▁word" user-defined
    const std::vector<std::int64_t> want_types = {2, 3, 3, 6, 1, 1, 3, 1, 5, 1, 4, 3, 4, 5};
    EXPECT_EQ(i32s(kv(t, "tokenizer.ggml.token_type")), want_types);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.bos_token_id")), 1u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), 2u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.padding_token_id")), 0u);
    EXPECT_TRUE(boolean(kv(t, "tokenizer.ggml.add_bos_token")));
    EXPECT_FALSE(boolean(kv(t, "tokenizer.ggml.add_eos_token")));
}

TEST(TokenizerSentencePiece, AddedTokensExtendVocabWhenConfigHasNoSize) {
    TmpDir d;
    fs::copy_file(data_dir() / "tiny.model", d.path() / "tokenizer.model");
    d.write_json("added_tokens.json", {{"<extra_a>", 10}, {"<extra_b>", 11}});
    // n_vocab unknown (0): the vocabulary is the SentencePiece model extended by the contiguous added tokens
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "qwen2", 0);
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_size(), 12u);
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_strings()[11], "<extra_b>");

    TmpDir d2;  // non-contiguous ids: left alone (and 20 is out of range)
    fs::copy_file(data_dir() / "tiny.model", d2.path() / "tokenizer.model");
    d2.write_json("added_tokens.json", {{"<extra_a>", 10}, {"<extra_b>", 20}});
    const auto t2 = sf::model::read_tokenizer(d2.path(), json::object(), "qwen2", 0);
    EXPECT_EQ(kv(t2, "tokenizer.ggml.tokens").array_size(), 10u);
}

TEST(TokenizerSentencePiece, GemmaFamiliesTurnOffSpacePrefix) {
    TmpDir d;
    fs::copy_file(data_dir() / "tiny.model", d.path() / "tokenizer.model");
    d.write_json("tokenizer_config.json", {{"bos_token", "<s>"}});
    const auto g3 = sf::model::read_tokenizer(d.path(), json::object(), "gemma3", 12);
    EXPECT_EQ(keys(g3).back(), "tokenizer.ggml.add_space_prefix");
    EXPECT_FALSE(boolean(kv(g3, "tokenizer.ggml.add_space_prefix")));
    EXPECT_EQ(kv(g3, "tokenizer.ggml.tokens").array_size(), 12u);
    EXPECT_EQ(g3.vocab_size, 12);

    const auto g1 = sf::model::read_tokenizer(d.path(), json::object(), "gemma", 200);
    const auto k = keys(g1);
    EXPECT_EQ(std::vector<std::string>(k.end() - 2, k.end()),
              (std::vector<std::string>{"tokenizer.ggml.eot_token_id", "tokenizer.ggml.add_space_prefix"}));
    EXPECT_EQ(u32(kv(g1, "tokenizer.ggml.eot_token_id")), 107u);
}

TEST(TokenizerSentencePiece, CorruptModelNamesTheFile) {
    TmpDir d;
    d.write("tokenizer.model", std::string("\x0a\x7f", 2));
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "llama", 10); },
                         "tokenizer.model"),
              sf::core::ErrorKind::BadInput);
}

TEST(TokenizerLlamaHf, ByteFallbackBpeWithoutSentencePieceModelIsWrittenAsLlama) {
    TmpDir d;
    const std::string sp = "\xe2\x96\x81";
    auto added = [](int id, const std::string& c, bool special) {
        return json{{"id", id}, {"content", c}, {"special", special}, {"normalized", false}};
    };
    d.write_json("tokenizer.json",
                 {{"added_tokens", json::array({added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true),
                                                added(6, "<tool>", false), added(7, "[INST]", true)})},
                  {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", sp}}},
                  {"decoder", {{"type", "Sequence"}, {"decoders", json::array()}}},
                  {"model",
                   {{"type", "BPE"},
                    {"byte_fallback", true},
                    {"fuse_unk", true},
                    {"vocab", {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0x0A>", 3}, {sp + "a", 4}, {"b", 5}}},
                    {"merges", json::array()}}}});
    d.write_json("tokenizer_config.json", {{"bos_token", "<s>"},
                                           {"eos_token", "</s>"},
                                           {"unk_token", "<unk>"},
                                           {"additional_special_tokens", json::array({"[INST]"})}});
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "llama", 10);
    EXPECT_EQ(t.model, "llama");
    EXPECT_EQ(t.pre, "default");
    const std::vector<std::string> want_keys = {
        "tokenizer.ggml.model",        "tokenizer.ggml.pre",          "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",       "tokenizer.ggml.token_type",   "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    EXPECT_EQ(keys(t), want_keys);
    const std::vector<std::string> want_tokens = {"<unk>", "<s>",    "</s>",   "<0x0A>", sp + "a",
                                                  "b",     "<tool>", "[INST]", "[PAD8]", "[PAD9]"};
    EXPECT_EQ(kv(t, "tokenizer.ggml.tokens").array_strings(), want_tokens);
    const std::vector<std::int64_t> want_types = {3, 3, 3, 6, 1, 1, 4, 3, 5, 5};
    EXPECT_EQ(i32s(kv(t, "tokenizer.ggml.token_type")), want_types);
    const std::vector<double> want_scores = {-1000, -1000, -1000, -1000, -1000, -1000, -1000, -1000, -10000, -10000};
    EXPECT_EQ(f32s(kv(t, "tokenizer.ggml.scores")), want_scores);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.bos_token_id")), 1u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.eos_token_id")), 2u);
    EXPECT_EQ(u32(kv(t, "tokenizer.ggml.unknown_token_id")), 0u);
    // more tokens than embedding rows
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(d.path(), json::object(), "llama", 7); },
                         "tokenizer.json"),
              sf::core::ErrorKind::BadInput);
}

TEST(Tokenizer, KeysHaveTheTypesLlamaCppRequires) {
    TmpDir sp;
    fs::copy_file(data_dir() / "tiny.model", sp.path() / "tokenizer.model");
    sp.write_json("tokenizer_config.json", {{"add_prefix_space", true}, {"chat_template", "T"}});
    TmpDir llama3, qwen2;
    llama3.copy_from(data_dir() / "llama3-bpe");
    qwen2.copy_from(data_dir() / "qwen2-bpe");
    const json config = {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", 3}};
    for (const auto& [dir, arch] : std::vector<std::pair<fs::path, std::string>>{
             {sp.path(), "llama"}, {sp.path(), "gemma"}, {llama3.path(), "llama"}, {qwen2.path(), "qwen2"}}) {
        const auto t = sf::model::read_tokenizer(dir, config, arch, 20);
        for (const GgufKV& x : t.kvs) EXPECT_TRUE(sf::formats::gguf_key_type_ok(x.key, x.value)) << arch << " " << x.key;
        EXPECT_NO_THROW((void)sf::formats::layout_gguf(t.kvs, {})) << arch;  // unique keys, consistent values
    }
}

// gemma.py Gemma4Model.set_vocab: LlamaHfVocab's tokens under model "gemma4" (no tokenizer.ggml.pre), the chat
// parser's markers USER_DEFINED even when special, merges from tokenizer.json, add_space_prefix false and
// add_bos_token true last; vocab_size for Gemma3Model's token_embd trim = len(model.vocab) + len(added_tokens).
TEST(TokenizerGemma4, LlamaHfVocabWithVisibleMarkersAndMerges) {
    TmpDir d;
    const std::string sp = "\xe2\x96\x81";
    auto added = [](int id, const std::string& c) {
        return json{{"id", id}, {"content", c}, {"special", true}, {"normalized", false}};
    };
    d.write_json("tokenizer.json",
                 {{"added_tokens", json::array({added(0, "<pad>"), added(1, "<eos>"), added(2, "<bos>"),
                                                added(3, "<|channel>"), added(4, "<|turn>")})},
                  {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}}},
                  {"decoder", {{"type", "Sequence"}, {"decoders", json::array()}}},
                  {"model",
                   {{"type", "BPE"},
                    {"byte_fallback", true},
                    {"vocab", {{"<pad>", 0}, {"<eos>", 1}, {"<bos>", 2}, {"<|channel>", 3}, {"<|turn>", 4},
                               {"<0x0A>", 5}, {sp, 6}, {"a", 7}, {sp + "a", 8}}},
                    {"merges", json::array({sp + " a"})}}}});
    d.write_json("tokenizer_config.json", {{"bos_token", "<bos>"},
                                           {"eos_token", "<eos>"},
                                           {"pad_token", "<pad>"},
                                           {"additional_special_tokens", json::array({"<|channel>", "<|turn>"})}});
    const auto t = sf::model::read_tokenizer(d.path(), json::object(), "gemma4", 9);
    EXPECT_EQ(t.model, "gemma4");
    EXPECT_EQ(t.pre, "");
    EXPECT_EQ(t.vocab_size, 9 + 5);  // the converter's n_vocab_real: no trim of a 9-row token_embd
    const std::vector<std::string> want_keys = {
        "tokenizer.ggml.model",          "tokenizer.ggml.tokens",           "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",     "tokenizer.ggml.merges",           "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",   "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_space_prefix",
        "tokenizer.ggml.add_bos_token"};
    EXPECT_EQ(keys(t), want_keys);
    EXPECT_EQ(kv(t, "tokenizer.ggml.model").as_string(), "gemma4");
    // <|channel> is special (CONTROL) but always rendered (USER_DEFINED); <|turn> stays CONTROL
    const std::vector<std::int64_t> want_types = {3, 3, 3, 4, 3, 6, 1, 1, 1};
    EXPECT_EQ(i32s(kv(t, "tokenizer.ggml.token_type")), want_types);
    EXPECT_EQ(kv(t, "tokenizer.ggml.merges").array_strings(), std::vector<std::string>{sp + " a"});

    // a byte-level (GPT-2 style) tokenizer.json is not what the converter reads for Gemma 4
    TmpDir bl;
    bl.write_json("tokenizer.json", {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
                                     {"decoder", {{"type", "ByteLevel"}}}});
    EXPECT_EQ(error_kind([&] { (void)sf::model::read_tokenizer(bl.path(), json::object(), "gemma4", 1); },
                         "tokenizer.json"),
              sf::core::ErrorKind::Unsupported);
}
