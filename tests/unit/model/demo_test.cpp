// The demo model and adapter: files parse, sizes follow the options, the tokenizer is a well-formed byte-level
// BPE, the adapter changes weights, and the output is byte-for-byte deterministic.
#include <algorithm>
#include <shardforge/formats.hpp>
#include <shardforge/model.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

namespace sf = shardforge;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path fresh_dir(const std::string& tag) {
    const fs::path d = fs::temp_directory_path() / sf::core::cat("sf_demo_test_", ::getpid(), "_", tag);
    fs::remove_all(d);
    return d;
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream os;
    os << f.rdbuf();
    return os.str();
}

json read_json(const fs::path& p) {
    EXPECT_TRUE(fs::exists(p)) << p;
    return json::parse(slurp(p));  // throws (test fails) on invalid JSON
}

std::vector<float> read_f32(const sf::formats::SafetensorsSet& set, const std::string& name) {
    const auto ref = set.find(name);
    if (!ref) {
        ADD_FAILURE() << "missing tensor " << name;
        return {};
    }
    const sf::formats::StTensor& t = *ref->tensor;
    std::vector<std::byte> raw(t.nbytes);
    set.file(ref->file).read(t, 0, raw);
    const auto n = static_cast<std::size_t>(sf::core::numel(t.shape));
    std::vector<float> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (t.dtype == sf::core::DType::BF16) {
            std::uint16_t h;
            std::memcpy(&h, raw.data() + 2 * i, 2);
            std::uint32_t u = std::uint32_t{h} << 16;  // bf16 is the top half of an f32
            std::memcpy(&out[i], &u, 4);
        } else if (t.dtype == sf::core::DType::F32) {
            std::memcpy(&out[i], raw.data() + 4 * i, 4);
        } else {
            ADD_FAILURE() << "unexpected dtype for " << name;
        }
    }
    return out;
}

// GPT-2 bytes_to_unicode, written out independently of the code under test.
std::string byte_token(int b) {
    int cp = b;
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    if (!printable) {
        int k = 0;
        for (int c = 0; c < b; ++c) {
            if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))) ++k;
        }
        cp = 256 + k;
    }
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else {
        s += static_cast<char>(0xc0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return s;
}

class DemoDefault : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new fs::path(fresh_dir("default"));
        sf::model::write_demo(*dir_);
    }
    static void TearDownTestSuite() {
        fs::remove_all(*dir_);
        delete dir_;
    }
    static fs::path* dir_;
};
fs::path* DemoDefault::dir_ = nullptr;

}  // namespace

TEST_F(DemoDefault, WritesLlamaConfigWithIssueTwoSizes) {
    const json c = read_json(*dir_ / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"LlamaForCausalLM"}));
    EXPECT_EQ(c["model_type"], "llama");
    EXPECT_EQ(c["hidden_size"], 256);
    EXPECT_EQ(c["intermediate_size"], 768);
    EXPECT_EQ(c["num_hidden_layers"], 4);
    EXPECT_EQ(c["num_attention_heads"], 8);
    EXPECT_EQ(c["num_key_value_heads"], 2);
    EXPECT_EQ(c["head_dim"], 32);
    EXPECT_EQ(c["vocab_size"], 640);
    EXPECT_DOUBLE_EQ(c["rms_norm_eps"].get<double>(), 1e-5);
    EXPECT_DOUBLE_EQ(c["rope_theta"].get<double>(), 10000.0);
    EXPECT_EQ(c["max_position_embeddings"], 2048);
    EXPECT_EQ(c["torch_dtype"], "bfloat16");
    EXPECT_EQ(c["tie_word_embeddings"], false);
    EXPECT_EQ(c["hidden_act"], "silu");
    const json g = read_json(*dir_ / "base" / "generation_config.json");
    EXPECT_EQ(g["bos_token_id"], c["bos_token_id"]);
    read_json(*dir_ / "base" / "special_tokens_map.json");
}

TEST_F(DemoDefault, WritesTwoBf16ShardsWithAConsistentIndex) {
    const fs::path base = *dir_ / "base";
    EXPECT_TRUE(fs::exists(base / "model-00001-of-00002.safetensors"));
    EXPECT_TRUE(fs::exists(base / "model-00002-of-00002.safetensors"));
    EXPECT_FALSE(fs::exists(base / "model.safetensors"));
    const json idx = read_json(base / "model.safetensors.index.json");
    const auto set = sf::formats::SafetensorsSet::open_dir(base);
    ASSERT_EQ(set.n_files(), 2u);
    // embed + 9 per layer * 4 + final norm + lm_head
    EXPECT_EQ(set.n_tensors(), 39u);
    EXPECT_EQ(idx["weight_map"].size(), 39u);
    std::uint64_t total = 0;
    for (std::size_t f = 0; f < set.n_files(); ++f) {
        EXPECT_GT(set.file(f).header().tensors.size(), 0u) << "shard " << f << " is empty";
        for (const auto& t : set.file(f).header().tensors) {
            EXPECT_EQ(t.dtype, sf::core::DType::BF16) << t.name;
            total += t.nbytes;
            EXPECT_EQ(idx["weight_map"][t.name], set.file(f).path().filename().string()) << t.name;
        }
    }
    EXPECT_EQ(idx["metadata"]["total_size"].get<std::uint64_t>(), total);
    // Parameter count of this exact architecture, written out by hand:
    // 2 * 640*256 (embed, lm_head) + 256 (norm) + 4 * (2*256 + 256*256 + 2*64*256 + 256*256 + 3*768*256)
    const std::uint64_t n_params = 2ull * 640 * 256 + 256 + 4ull * (512 + 65536 + 32768 + 65536 + 589824);
    EXPECT_EQ(total, 2 * n_params);

    const auto shape = [&](const std::string& n) { return set.find(n).value().tensor->shape; };
    EXPECT_EQ(shape("model.embed_tokens.weight"), (sf::core::Shape{640, 256}));
    EXPECT_EQ(shape("lm_head.weight"), (sf::core::Shape{640, 256}));
    EXPECT_EQ(shape("model.layers.3.self_attn.q_proj.weight"), (sf::core::Shape{256, 256}));
    EXPECT_EQ(shape("model.layers.3.self_attn.k_proj.weight"), (sf::core::Shape{64, 256}));
    EXPECT_EQ(shape("model.layers.3.self_attn.v_proj.weight"), (sf::core::Shape{64, 256}));
    EXPECT_EQ(shape("model.layers.0.self_attn.o_proj.weight"), (sf::core::Shape{256, 256}));
    EXPECT_EQ(shape("model.layers.0.mlp.gate_proj.weight"), (sf::core::Shape{768, 256}));
    EXPECT_EQ(shape("model.layers.0.mlp.up_proj.weight"), (sf::core::Shape{768, 256}));
    EXPECT_EQ(shape("model.layers.0.mlp.down_proj.weight"), (sf::core::Shape{256, 768}));
    EXPECT_EQ(shape("model.layers.2.input_layernorm.weight"), (sf::core::Shape{256}));
    EXPECT_EQ(shape("model.norm.weight"), (sf::core::Shape{256}));
}

TEST_F(DemoDefault, WeightsLookLikeARealInit) {
    const auto set = sf::formats::SafetensorsSet::open_dir(*dir_ / "base");
    const auto stats = [](const std::vector<float>& v) {
        double s = 0, s2 = 0;
        for (const float x : v) {
            EXPECT_TRUE(std::isfinite(x));
            s += x;
            s2 += double{x} * x;
        }
        const double m = s / static_cast<double>(v.size());
        return std::pair{m, std::sqrt(s2 / static_cast<double>(v.size()) - m * m)};
    };
    const auto [m_q, sd_q] = stats(read_f32(set, "model.layers.1.self_attn.q_proj.weight"));
    EXPECT_NEAR(m_q, 0.0, 0.002);
    EXPECT_NEAR(sd_q, 0.02, 0.002);
    const auto [m_n, sd_n] = stats(read_f32(set, "model.layers.1.input_layernorm.weight"));
    EXPECT_NEAR(m_n, 1.0, 0.02);
    EXPECT_GT(sd_n, 0.001);  // not all exactly 1
    EXPECT_LT(sd_n, 0.1);
    // Different tensors get different numbers.
    EXPECT_NE(read_f32(set, "model.layers.0.mlp.up_proj.weight"), read_f32(set, "model.layers.0.mlp.gate_proj.weight"));
}

TEST_F(DemoDefault, TokenizerIsAValidByteLevelBpe) {
    const json tj = read_json(*dir_ / "base" / "tokenizer.json");
    const json& m = tj["model"];
    EXPECT_EQ(m["type"], "BPE");
    EXPECT_EQ(m["byte_fallback"], false);
    const json& vocab = m["vocab"];
    std::set<int> ids;
    for (const auto& [tok, id] : vocab.items()) EXPECT_TRUE(ids.insert(id.get<int>()).second) << "duplicate id " << id;
    for (int b = 0; b < 256; ++b) {
        ASSERT_TRUE(vocab.contains(byte_token(b))) << "byte " << b;
        EXPECT_LT(vocab[byte_token(b)].get<int>(), 256) << "byte tokens come first";
    }
    const json& merges = m["merges"];
    EXPECT_GT(merges.size(), 300u);
    for (const auto& mj : merges) {
        const std::string mstr = mj.get<std::string>();
        const auto sp = mstr.find(' ', 1);
        ASSERT_NE(sp, std::string::npos) << mstr;
        const std::string a = mstr.substr(0, sp), b = mstr.substr(sp + 1);
        EXPECT_TRUE(vocab.contains(a)) << mstr;
        EXPECT_TRUE(vocab.contains(b)) << mstr;
        EXPECT_TRUE(vocab.contains(a + b)) << mstr;
        if (vocab.contains(a) && vocab.contains(a + b)) {
            EXPECT_GT(vocab[a + b], vocab[a]) << mstr;
        }
    }
    // vocab ids then added tokens tile [0, 640).
    const json& added = tj["added_tokens"];
    std::set<std::string> names;
    for (const auto& a : added) {
        EXPECT_TRUE(ids.insert(a["id"].get<int>()).second) << a;
        EXPECT_EQ(a["special"], true);
        names.insert(a["content"]);
    }
    EXPECT_EQ(ids.size(), 640u);
    EXPECT_EQ(*ids.begin(), 0);
    EXPECT_EQ(*ids.rbegin(), 639);
    for (const char* s : {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                          "<|eot_id|>"}) {
        EXPECT_TRUE(names.count(s)) << s;
    }
    // Llama 3 shape of the pipeline.
    const json& pre = tj["pre_tokenizer"];
    EXPECT_EQ(pre["type"], "Sequence");
    EXPECT_EQ(pre["pretokenizers"][0]["type"], "Split");
    EXPECT_EQ(pre["pretokenizers"][0]["pattern"]["Regex"],
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
              "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    EXPECT_EQ(pre["pretokenizers"][1]["type"], "ByteLevel");
    EXPECT_EQ(pre["pretokenizers"][1]["use_regex"], false);
    EXPECT_EQ(tj["decoder"]["type"], "ByteLevel");
    const json& tp = tj["post_processor"]["processors"][1];
    EXPECT_EQ(tp["type"], "TemplateProcessing");
    EXPECT_EQ(tp["single"][0]["SpecialToken"]["id"], "<|begin_of_text|>");

    const json c = read_json(*dir_ / "base" / "config.json");
    const json tc = read_json(*dir_ / "base" / "tokenizer_config.json");
    EXPECT_EQ(tc["bos_token"], "<|begin_of_text|>");
    EXPECT_EQ(tc["added_tokens_decoder"][std::to_string(c["bos_token_id"].get<int>())]["content"],
              "<|begin_of_text|>");
    EXPECT_EQ(tc["added_tokens_decoder"][std::to_string(c["eos_token_id"].get<int>())]["content"],
              tc["eos_token"]);
    EXPECT_NE(tc["chat_template"].get<std::string>().find("<|start_header_id|>"), std::string::npos);
}

TEST_F(DemoDefault, TokenizerLearnedCommonEnglishWords) {
    // " the" is the most frequent word of any English text; a trainer that works must have learned it.
    const json vocab = read_json(*dir_ / "base" / "tokenizer.json")["model"]["vocab"];
    EXPECT_TRUE(vocab.contains("\xc4\xa0the"));  // "Ġthe"
    EXPECT_TRUE(vocab.contains("\xc4\xa0town"));
}

TEST_F(DemoDefault, AdapterIsAPeftLoraWithNonZeroB) {
    const fs::path ad = *dir_ / "adapter";
    const json ac = read_json(ad / "adapter_config.json");
    EXPECT_EQ(ac["peft_type"], "LORA");
    EXPECT_EQ(ac["r"], 8);
    EXPECT_EQ(ac["lora_alpha"], 16);
    EXPECT_EQ(ac["task_type"], "CAUSAL_LM");
    EXPECT_EQ(ac["use_rslora"], false);
    EXPECT_EQ(ac["target_modules"].size(), 7u);
    const auto set = sf::formats::SafetensorsSet::open_files({ad / "adapter_model.safetensors"});
    EXPECT_EQ(set.n_tensors(), 4u * 7u * 2u);
    const std::string p = "base_model.model.model.layers.2.";
    const auto shape = [&](const std::string& n) { return set.find(n).value().tensor->shape; };
    EXPECT_EQ(shape(p + "self_attn.q_proj.lora_A.weight"), (sf::core::Shape{8, 256}));
    EXPECT_EQ(shape(p + "self_attn.k_proj.lora_B.weight"), (sf::core::Shape{64, 8}));
    EXPECT_EQ(shape(p + "mlp.down_proj.lora_A.weight"), (sf::core::Shape{8, 768}));
    EXPECT_EQ(shape(p + "mlp.down_proj.lora_B.weight"), (sf::core::Shape{256, 8}));
    EXPECT_EQ(set.find(p + "mlp.up_proj.lora_B.weight").value().tensor->dtype, sf::core::DType::F32);
    for (const auto& n : set.names()) {
        const auto v = read_f32(set, n);
        double amax = 0;
        for (const float x : v) amax = std::max(amax, double{std::fabs(x)});
        EXPECT_GT(amax, 1e-3) << n;
    }
}

TEST(Demo, IsByteIdenticalAcrossRuns) {
    const fs::path a = fresh_dir("det_a"), b = fresh_dir("det_b");
    sf::model::DemoOptions o;
    o.base_model_name_or_path = "shardforge/demo";
    sf::model::write_demo(a, o);
    sf::model::write_demo(b, o);
    int n_files = 0;
    for (const auto& e : fs::recursive_directory_iterator(a)) {
        if (!e.is_regular_file()) continue;
        const fs::path rel = fs::relative(e.path(), a);
        ASSERT_TRUE(fs::exists(b / rel)) << rel;
        EXPECT_TRUE(slurp(e.path()) == slurp(b / rel)) << rel << " differs";
        ++n_files;
    }
    EXPECT_EQ(n_files, 10);  // 5 json + 2 shards + index in base, 2 in adapter
    fs::remove_all(a);
    fs::remove_all(b);
}

TEST(Demo, ScalesWithOptions) {
    const fs::path d = fresh_dir("scaled");
    sf::model::DemoOptions o;
    o.n_layer = 2;
    o.hidden = 128;
    o.intermediate = 320;
    o.n_head = 4;
    o.n_kv_head = 4;
    o.vocab = 300;
    o.n_shards = 3;
    o.dtype = sf::core::DType::F32;
    o.tie_word_embeddings = true;
    o.lora_rank = 4;
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["hidden_size"], 128);
    EXPECT_EQ(c["torch_dtype"], "float32");
    EXPECT_EQ(c["head_dim"], 32);
    EXPECT_EQ(c["tie_word_embeddings"], true);
    EXPECT_TRUE(fs::exists(d / "base" / "model-00003-of-00003.safetensors"));
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    EXPECT_EQ(set.n_files(), 3u);
    EXPECT_EQ(set.n_tensors(), 2u + 9u * 2u);  // no lm_head
    EXPECT_FALSE(set.find("lm_head.weight").has_value());
    EXPECT_EQ(set.find("model.embed_tokens.weight").value().tensor->shape, (sf::core::Shape{300, 128}));
    EXPECT_EQ(set.find("model.layers.1.mlp.down_proj.weight").value().tensor->dtype, sf::core::DType::F32);
    const json tj = read_json(d / "base" / "tokenizer.json");
    EXPECT_EQ(tj["model"]["vocab"].size() + tj["added_tokens"].size(), 300u);
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_EQ(ad.find("base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight").value().tensor->shape,
              (sf::core::Shape{4, 128}));
    fs::remove_all(d);
}

TEST(Demo, PadsAVocabLargerThanTheCorpusWithReservedSpecials) {
    const fs::path d = fresh_dir("bigvocab");
    sf::model::DemoOptions o;
    o.n_layer = 1;
    o.hidden = 64;
    o.intermediate = 128;
    o.n_head = 2;
    o.n_kv_head = 1;
    o.vocab = 5000;
    o.n_shards = 1;
    sf::model::write_demo(d, o);
    EXPECT_TRUE(fs::exists(d / "base" / "model.safetensors"));
    EXPECT_FALSE(fs::exists(d / "base" / "model.safetensors.index.json"));
    const json tj = read_json(d / "base" / "tokenizer.json");
    EXPECT_LT(tj["model"]["vocab"].size(), 5000u);
    EXPECT_EQ(tj["model"]["vocab"].size() + tj["added_tokens"].size(), 5000u);
    EXPECT_EQ(tj["added_tokens"].back()["id"], 4999);
    fs::remove_all(d);
}

TEST(Demo, RejectsInconsistentOptions) {
    sf::model::DemoOptions o;
    o.n_kv_head = 3;  // 8 heads not a multiple of 3
    try {
        sf::model::write_demo(fresh_dir("bad"), o);
        FAIL() << "expected a Usage error";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
        EXPECT_NE(std::string(e.what()).find("n_kv_head"), std::string::npos) << e.what();
    }
    sf::model::DemoOptions v;
    v.vocab = 100;
    EXPECT_THROW(sf::model::write_demo(fresh_dir("bad2"), v), sf::core::Error);
}

TEST(Demo, ArchVariantsAddTheirTensorsAndConfig) {
    for (const auto arch : {sf::model::DemoArch::Mistral, sf::model::DemoArch::Qwen2, sf::model::DemoArch::Qwen3}) {
        const std::string name(sf::model::to_string(arch));
        sf::model::DemoArch back{};
        ASSERT_TRUE(sf::model::parse_demo_arch(name, back)) << name;
        EXPECT_EQ(back, arch);
        const fs::path d = fresh_dir("arch_" + name);
        sf::model::DemoOptions o;
        o.arch = arch;
        o.n_layer = 2;
        sf::model::write_demo(d, o);
        const json c = read_json(d / "base" / "config.json");
        const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
        const std::string p = "model.layers.1.self_attn.";
        if (arch == sf::model::DemoArch::Mistral) {
            EXPECT_EQ(c["model_type"], "mistral");
            EXPECT_EQ(c["architectures"][0], "MistralForCausalLM");
            EXPECT_EQ(set.n_tensors(), 3u + 9u * 2u);
        } else if (arch == sf::model::DemoArch::Qwen2) {
            EXPECT_EQ(c["model_type"], "qwen2");
            EXPECT_EQ(c["architectures"][0], "Qwen2ForCausalLM");
            EXPECT_DOUBLE_EQ(c["rope_theta"].get<double>(), 1e6);
            EXPECT_EQ(set.n_tensors(), 3u + 12u * 2u);
            EXPECT_EQ(set.find(p + "q_proj.bias").value().tensor->shape, (sf::core::Shape{256}));
            EXPECT_EQ(set.find(p + "k_proj.bias").value().tensor->shape, (sf::core::Shape{64}));
            EXPECT_EQ(set.find(p + "v_proj.bias").value().tensor->shape, (sf::core::Shape{64}));
        } else {
            EXPECT_EQ(c["model_type"], "qwen3");
            EXPECT_EQ(c["architectures"][0], "Qwen3ForCausalLM");
            EXPECT_EQ(set.n_tensors(), 3u + 11u * 2u);
            EXPECT_EQ(set.find(p + "q_norm.weight").value().tensor->shape, (sf::core::Shape{32}));
            EXPECT_EQ(set.find(p + "k_norm.weight").value().tensor->shape, (sf::core::Shape{32}));
            EXPECT_FALSE(set.find(p + "q_proj.bias").has_value());
        }
        fs::remove_all(d);
    }
    sf::model::DemoArch a{};
    EXPECT_FALSE(sf::model::parse_demo_arch("gpt2", a));
}

// Mistral3ForConditionalGeneration in its checkpoint layout (transformers' Mistral3Config, Pixtral vision tower,
// the text model under language_model.*), the adapter with PEFT's module names on transformers >= 4.52; and
// Ministral3ForCausalLM with Ministral3Config's yarn rope_parameters.
TEST(Demo, Mistral3AndMinistral3Layouts) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("mistral3", back));
    EXPECT_EQ(back, sf::model::DemoArch::Mistral3);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Mistral3;
    o.n_layer = 2;
    const fs::path d = fresh_dir("mistral3");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Mistral3ForConditionalGeneration"}));
    EXPECT_EQ(c["model_type"], "mistral3");
    EXPECT_EQ(c["text_config"]["model_type"], "mistral");
    EXPECT_EQ(c["text_config"]["num_hidden_layers"], 2);
    EXPECT_DOUBLE_EQ(c["text_config"]["rope_theta"].get<double>(), 1e9);
    EXPECT_EQ(c["vision_config"]["model_type"], "pixtral");
    EXPECT_FALSE(c.contains("num_hidden_layers"));
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // text: embed, norm, head + 9 per layer; Pixtral: patch_conv, ln_pre + 9 per layer (3 layers: the converter's
    // --mmproj names multi_modal_projector.linear_2 only with a block count above 2); projector: 4
    EXPECT_EQ(c["vision_config"]["num_hidden_layers"], 3);
    EXPECT_EQ(c["spatial_merge_size"], 2);
    EXPECT_EQ(set.n_tensors(), 3u + 9u * 2u + 2u + 9u * 3u + 4u);
    EXPECT_EQ(set.find("multi_modal_projector.patch_merger.merging_layer.weight").value().tensor->shape,
              (sf::core::Shape{64, 256}));
    EXPECT_EQ(set.find("language_model.model.layers.1.self_attn.k_proj.weight").value().tensor->shape,
              (sf::core::Shape{64, 256}));
    EXPECT_EQ(set.find("language_model.lm_head.weight").value().tensor->shape, (sf::core::Shape{640, 256}));
    EXPECT_EQ(set.find("vision_tower.patch_conv.weight").value().tensor->shape, (sf::core::Shape{64, 3, 4, 4}));
    EXPECT_EQ(set.find("multi_modal_projector.linear_1.weight").value().tensor->shape, (sf::core::Shape{256, 64}));
    EXPECT_FALSE(set.find("model.embed_tokens.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.language_model.layers.1.self_attn.q_proj.lora_A.weight").has_value());
    // the text model's 7 projections per layer, the tower's 7 per layer, the projector's 3 (PEFT's names)
    EXPECT_EQ(ad.n_tensors(), 2u * (7u * 2u + 7u * 3u + 3u));
    EXPECT_EQ(ad.find("base_model.model.model.vision_tower.transformer.layers.2.attention.k_proj.lora_B.weight")
                  .value().tensor->shape,
              (sf::core::Shape{64, 8}));
    EXPECT_EQ(ad.find("base_model.model.model.multi_modal_projector.patch_merger.merging_layer.lora_A.weight")
                  .value().tensor->shape,
              (sf::core::Shape{8, 256}));
    EXPECT_TRUE(ad.find("base_model.model.model.multi_modal_projector.linear_2.lora_B.weight").has_value());
    const json ac = read_json(d / "adapter" / "adapter_config.json");
    EXPECT_TRUE(ac["target_modules"].is_string());
    // the processor files the converter's --mmproj reads, and the [IMG_BREAK] it looks up
    const json pre = read_json(d / "base" / "preprocessor_config.json");
    EXPECT_EQ(pre["image_processor_type"], "PixtralImageProcessor");
    EXPECT_EQ(pre["image_mean"].size(), 3u);
    EXPECT_EQ(read_json(d / "base" / "processor_config.json")["spatial_merge_size"], 2);
    EXPECT_EQ(read_json(d / "base" / "tokenizer_config.json")["added_tokens_decoder"]["12"]["content"], "[IMG_BREAK]");
    fs::remove_all(d);

    o.arch = sf::model::DemoArch::Ministral3;
    const fs::path m = fresh_dir("ministral3");
    sf::model::write_demo(m, o);
    const json mc = read_json(m / "base" / "config.json");
    EXPECT_EQ(mc["architectures"], json::array({"Ministral3ForCausalLM"}));
    EXPECT_EQ(mc["model_type"], "ministral3");
    EXPECT_FALSE(mc.contains("rope_scaling"));
    EXPECT_FALSE(mc.contains("rope_theta"));
    EXPECT_EQ(mc["rope_parameters"]["rope_type"], "yarn");
    EXPECT_DOUBLE_EQ(mc["rope_parameters"]["llama_4_scaling_beta"].get<double>(), 0.1);
    EXPECT_EQ(mc["rope_parameters"]["original_max_position_embeddings"], 16384);
    EXPECT_TRUE(sf::formats::SafetensorsSet::open_dir(m / "base").find("model.layers.1.mlp.up_proj.weight").has_value());
    fs::remove_all(m);
}

// GLM-4.5's layout: layer 0 dense, the others MoE with an F32 router bias and shared experts, the MTP layer at
// model.layers.{n_layer}; the adapter wraps every projection of the decoder layers (routed experts included) and
// nothing of the MTP layer; GLM's specials in the tokenizer files.
TEST(Demo, Glm4MoeLayout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("glm4moe", back));
    EXPECT_EQ(back, sf::model::DemoArch::Glm4Moe);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Glm4Moe;
    o.n_layer = 2;
    const fs::path d = fresh_dir("glm4moe");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Glm4MoeForCausalLM"}));
    EXPECT_EQ(c["model_type"], "glm4_moe");
    EXPECT_EQ(c["num_nextn_predict_layers"], 1);
    EXPECT_EQ(c["first_k_dense_replace"], 1);
    EXPECT_EQ(c["n_routed_experts"], 4);
    EXPECT_DOUBLE_EQ(c["partial_rotary_factor"].get<double>(), 0.5);
    EXPECT_FALSE(c.contains("bos_token_id"));
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // embed, norm, head; dense layer: 2 norms + 9 attention + 3 MLP; MoE layers (1 and the MTP layer 2): 2 norms +
    // 9 attention + 4 x 3 experts + router + bias + 3 shared; MTP: eh_proj, embed_tokens, enorm, hnorm, shared_head x2
    EXPECT_EQ(set.n_tensors(), 3u + 14u + 2u * 28u + 6u);
    const auto bias = set.find("model.layers.1.mlp.gate.e_score_correction_bias").value().tensor;
    EXPECT_EQ(bias->dtype, sf::core::DType::F32);
    EXPECT_EQ(bias->shape, (sf::core::Shape{4}));
    EXPECT_TRUE(set.find("model.layers.0.mlp.gate_proj.weight").has_value());
    EXPECT_FALSE(set.find("model.layers.0.mlp.gate.weight").has_value());
    EXPECT_EQ(set.find("model.layers.1.mlp.shared_experts.down_proj.weight").value().tensor->shape,
              (sf::core::Shape{256, 384}));
    EXPECT_EQ(set.find("model.layers.2.eh_proj.weight").value().tensor->shape, (sf::core::Shape{256, 512}));
    EXPECT_TRUE(set.find("model.layers.2.mlp.experts.3.up_proj.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    // layer 0: 4 attention + 3 MLP; layer 1: 4 attention + 3 shared + 4 x 3 experts; A and B each
    EXPECT_EQ(ad.n_tensors(), 2u * (7u + 19u));
    EXPECT_TRUE(ad.find("base_model.model.model.layers.1.mlp.experts.2.down_proj.lora_B.weight").has_value());
    EXPECT_FALSE(ad.find("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight").has_value());
    const json tc = read_json(d / "base" / "tokenizer_config.json");
    EXPECT_EQ(tc["eos_token"], "<|endoftext|>");
    EXPECT_FALSE(tc.contains("bos_token"));
    EXPECT_NE(slurp(d / "base" / "tokenizer.json").find("\"[gMASK]\""), std::string::npos);
    fs::remove_all(d);

    // one layer (no MoE layer after the dense one), one expert, or room for fewer than GLM's 10 specials: refused
    for (int k = 0; k < 3; ++k) {
        sf::model::DemoOptions b = o;
        if (k == 0) b.n_layer = 1;
        if (k == 1) b.n_expert = b.n_expert_used = 1;
        if (k == 2) b.vocab = 256 + 9;
        try {
            sf::model::write_demo(fresh_dir("glm_bad"), b);
            ADD_FAILURE() << "expected a Usage error";
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage) << e.what();
        }
    }
}

// Qwen3NextForCausalLM as the Hub checkpoints store it: fused in_proj_qkvz / in_proj_ba, per-expert MoE in every
// layer, an MTP block without mtp_num_hidden_layers, full_attention_interval without layer_types; the adapter
// (PEFT module names) wraps the shared expert and every expert's projections, not the MTP block.
TEST(Demo, Qwen3NextLayout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("qwen3next", back));
    EXPECT_EQ(back, sf::model::DemoArch::Qwen3Next);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Qwen3Next;
    o.n_shards = 1;
    const fs::path d = fresh_dir("qwen3next");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Qwen3NextForCausalLM"}));
    EXPECT_EQ(c["model_type"], "qwen3_next");
    EXPECT_EQ(c["full_attention_interval"], 4);
    EXPECT_FALSE(c.contains("layer_types"));
    EXPECT_FALSE(c.contains("mtp_num_hidden_layers"));
    EXPECT_DOUBLE_EQ(c["partial_rotary_factor"].get<double>(), 0.25);
    EXPECT_EQ(c["linear_num_key_heads"], 2);
    EXPECT_EQ(c["linear_num_value_heads"], 4);
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // 3 + 3 linear layers x 26 + 1 full-attention layer x 25 + MTP (fc, 19 MLP/norm, 6 attention, 3 norms)
    EXPECT_EQ(set.n_tensors(), 3u + 3u * 26u + 25u + 29u);
    const std::string la = "model.layers.0.linear_attn.";
    // per K head: q 32 + k 32 + v 2 x 32 + z 2 x 32 rows
    EXPECT_EQ(set.find(la + "in_proj_qkvz.weight").value().tensor->shape, (sf::core::Shape{2 * 192, 256}));
    EXPECT_EQ(set.find(la + "in_proj_ba.weight").value().tensor->shape, (sf::core::Shape{8, 256}));
    EXPECT_FALSE(set.find(la + "in_proj_qkv.weight").has_value());
    EXPECT_EQ(set.find("model.layers.3.mlp.experts.3.down_proj.weight").value().tensor->shape,
              (sf::core::Shape{256, 384}));
    EXPECT_TRUE(set.find("mtp.layers.0.mlp.experts.0.up_proj.weight").has_value());
    EXPECT_TRUE(set.find("model.layers.3.self_attn.q_norm.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.layers.0.linear_attn.in_proj_qkvz.lora_B.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.layers.2.mlp.experts.1.gate_proj.lora_A.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.layers.3.mlp.shared_expert.down_proj.lora_A.weight").has_value());
    // linear layers: 3 linear-attention + 3 shared-expert + 4 x 3 expert targets; full: 4 + 15; A and B each
    EXPECT_EQ(ad.n_tensors(), 2u * (3u * 18u + 19u));
    const json ac = read_json(d / "adapter" / "adapter_config.json");
    EXPECT_EQ(ac["target_modules"].size(), 10u);
    fs::remove_all(d);
}

// Gemma4ForCausalLM as transformers' modeling_gemma4 lays it out: sliding/full layers alternating, the last two
// layers KV-shared (no k/v projections or k_norm there), full layers without v_proj (attention_k_eq_v) and with
// global_head_dim heads, double-wide MLPs in the shared layers, per-layer embeddings; the SentencePiece-style BPE
// tokenizer.json. gemma4moe: the MoE block in every layer, no sharing, no per-layer embeddings.
TEST(Demo, Gemma4Layouts) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("gemma4", back));
    EXPECT_EQ(back, sf::model::DemoArch::Gemma4);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Gemma4;  // 4 layers, hidden 256, 8 heads of 32, intermediate 768
    const fs::path d = fresh_dir("gemma4");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Gemma4ForCausalLM"}));
    EXPECT_EQ(c["layer_types"], json::array({"sliding_attention", "full_attention", "sliding_attention", "full_attention"}));
    EXPECT_EQ(c["num_kv_shared_layers"], 2);
    EXPECT_EQ(c["global_head_dim"], 64);
    EXPECT_EQ(c["rope_parameters"]["full_attention"]["rope_type"], "proportional");
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    auto shape = [&](const std::string& n) { return set.find(n).value().tensor->shape; };
    EXPECT_EQ(shape("model.layers.0.self_attn.v_proj.weight"), (sf::core::Shape{64, 256}));   // 2 KV heads x 32
    EXPECT_EQ(shape("model.layers.1.self_attn.k_proj.weight"), (sf::core::Shape{64, 256}));   // 1 global head x 64
    EXPECT_EQ(shape("model.layers.1.self_attn.q_proj.weight"), (sf::core::Shape{512, 256}));  // 8 x 64
    EXPECT_FALSE(set.find("model.layers.1.self_attn.v_proj.weight").has_value());
    for (const char* n : {"model.layers.2.self_attn.k_proj.weight", "model.layers.3.self_attn.k_norm.weight",
                          "model.layers.2.self_attn.v_proj.weight", "lm_head.weight"})
        EXPECT_FALSE(set.find(n).has_value()) << n;
    EXPECT_EQ(shape("model.layers.3.mlp.up_proj.weight"), (sf::core::Shape{1536, 256}));  // double-wide
    EXPECT_EQ(shape("model.layers.1.mlp.up_proj.weight"), (sf::core::Shape{768, 256}));
    EXPECT_EQ(shape("model.layers.0.layer_scalar"), (sf::core::Shape{1}));
    EXPECT_EQ(shape("model.embed_tokens_per_layer.weight"), (sf::core::Shape{640, 4 * 32}));
    const json tj = read_json(d / "base" / "tokenizer.json");
    EXPECT_EQ(tj["model"]["byte_fallback"], true);
    EXPECT_EQ(tj["decoder"]["type"], "Sequence");
    EXPECT_EQ(tj["model"]["vocab"].size(), 640u);
    EXPECT_EQ(tj["model"]["vocab"]["<|channel>"], 7);
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.layers.0.per_layer_input_gate.lora_A.weight").has_value());
    EXPECT_FALSE(ad.find("base_model.model.model.layers.2.self_attn.k_proj.lora_A.weight").has_value());
    fs::remove_all(d);

    o.arch = sf::model::DemoArch::Gemma4Moe;
    o.n_layer = 2;
    const fs::path m = fresh_dir("gemma4moe");
    sf::model::write_demo(m, o);
    const json mc = read_json(m / "base" / "config.json");
    EXPECT_EQ(mc["enable_moe_block"], true);
    EXPECT_EQ(mc["num_kv_shared_layers"], 0);
    EXPECT_EQ(mc["hidden_size_per_layer_input"], 0);
    const auto ms = sf::formats::SafetensorsSet::open_dir(m / "base");
    EXPECT_EQ(ms.find("model.layers.1.experts.gate_up_proj").value().tensor->shape, (sf::core::Shape{4, 768, 256}));
    EXPECT_EQ(ms.find("model.layers.1.router.per_expert_scale").value().tensor->shape, (sf::core::Shape{4}));
    EXPECT_FALSE(ms.find("model.embed_tokens_per_layer.weight").has_value());
    fs::remove_all(m);
}

// DeepSeek-V3's layout (DeepseekV3ForCausalLM with its FP8 release's quantization_config): MLA projections, the
// first layer dense, routed + shared experts with the router's correction bias, the MTP layer after the decoder
// layers, every Linear weight F8_E4M3 with an F32 128x128 weight_scale_inv grid; the adapter on the MLA projections,
// the dense MLP and the shared experts.
TEST(Demo, DeepSeek2LayoutIsFp8BlockScaled) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("deepseek2", back));
    EXPECT_EQ(back, sf::model::DemoArch::DeepSeek2);
    sf::model::DemoOptions o;
    o.arch = back;
    o.n_layer = 2;
    o.n_shards = 1;
    const fs::path d = fresh_dir("deepseek2");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"DeepseekV3ForCausalLM"}));
    EXPECT_EQ(c["model_type"], "deepseek_v3");
    EXPECT_EQ(c["quantization_config"]["quant_method"], "fp8");
    EXPECT_EQ(c["quantization_config"]["weight_block_size"], json::array({128, 128}));
    EXPECT_EQ(c["rope_scaling"]["type"], "yarn");
    EXPECT_EQ(c["scoring_func"], "sigmoid");
    EXPECT_EQ(c["first_k_dense_replace"], 1);
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    auto shape = [&](const std::string& n) { return set.find(n).value().tensor->shape; };
    auto dtype = [&](const std::string& n) { return set.find(n).value().tensor->dtype; };
    // q_b_proj: 8 heads x (32 nope + 16 rope) rows over q_lora_rank 192: a 3 x 2 grid with partial edge blocks
    const std::string qb = "model.layers.1.self_attn.q_b_proj.weight";
    EXPECT_EQ(shape(qb), (sf::core::Shape{384, 192}));
    EXPECT_EQ(dtype(qb), sf::core::DType::F8_E4M3);
    EXPECT_EQ(shape(qb + "_scale_inv"), (sf::core::Shape{3, 2}));
    EXPECT_EQ(dtype(qb + "_scale_inv"), sf::core::DType::F32);
    EXPECT_EQ(shape("model.layers.0.self_attn.kv_b_proj.weight"), (sf::core::Shape{8 * 64, 160}));
    EXPECT_EQ(shape("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"), (sf::core::Shape{176, 256}));
    EXPECT_TRUE(set.find("model.layers.0.mlp.gate_proj.weight").has_value());       // dense
    EXPECT_FALSE(set.find("model.layers.0.mlp.gate.weight").has_value());
    EXPECT_EQ(shape("model.layers.1.mlp.gate.weight"), (sf::core::Shape{8, 256}));  // 2 x n_expert routed experts
    EXPECT_EQ(dtype("model.layers.1.mlp.gate.weight"), sf::core::DType::BF16);
    EXPECT_EQ(dtype("model.layers.1.mlp.gate.e_score_correction_bias"), sf::core::DType::F32);
    EXPECT_TRUE(set.find("model.layers.1.mlp.experts.7.down_proj.weight_scale_inv").has_value());
    EXPECT_TRUE(set.find("model.layers.1.mlp.shared_experts.up_proj.weight").has_value());
    EXPECT_TRUE(set.find("model.layers.2.eh_proj.weight").has_value());  // the MTP layer
    EXPECT_TRUE(set.find("model.layers.2.shared_head.head.weight").has_value());
    // Every block's scale is its amax / 448, so each block holds a code of magnitude 448 (0x7e) and none above.
    const auto ref = set.find(qb).value();
    std::vector<std::byte> raw(ref.tensor->nbytes);
    set.file(ref.file).read(*ref.tensor, 0, raw);
    for (int bi = 0; bi < 3; ++bi)
        for (int bj = 0; bj < 2; ++bj) {
            int top = 0;
            for (int r = bi * 128; r < std::min(384, (bi + 1) * 128); ++r)
                for (int col = bj * 128; col < std::min(192, (bj + 1) * 128); ++col)
                    top = std::max(top, static_cast<int>(raw[static_cast<std::size_t>(r * 192 + col)]) & 0x7f);
            EXPECT_EQ(top, 0x7e) << "block " << bi << "," << bj;
        }
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.layers.0.self_attn.kv_b_proj.lora_B.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.layers.1.mlp.shared_experts.up_proj.lora_A.weight").has_value());
    EXPECT_EQ(ad.n_tensors(), 2u * (8u + 8u));  // per layer: 5 MLA/o_proj + 3 MLP targets, A and B
    fs::remove_all(d);
}

// Kimi-K2-Thinking's storage of the same model: model_type kimi_k2, the routed experts compressed-tensors
// pack-quantized INT4 (I32 weight_packed of eight codes a word, BF16 group-of-32 weight_scale, I64 weight_shape), every
// other weight unquantized, no MTP layer.
TEST(Demo, KimiK2Int4RoutedExpertsArePackQuantized) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("kimi-k2-int4", back));
    EXPECT_EQ(back, sf::model::DemoArch::KimiK2Int4);
    sf::model::DemoOptions o;
    o.arch = back;
    o.n_layer = 2;
    o.n_shards = 1;
    const fs::path d = fresh_dir("kimi");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"DeepseekV3ForCausalLM"}));
    EXPECT_EQ(c["model_type"], "kimi_k2");
    const json& q = c["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "pack-quantized");
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["num_bits"], 4);
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["group_size"], 32);
    EXPECT_EQ(c["num_nextn_predict_layers"], 0);
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    auto shape = [&](const std::string& n) { return set.find(n).value().tensor->shape; };
    auto dtype = [&](const std::string& n) { return set.find(n).value().tensor->dtype; };
    const std::string up = "model.layers.1.mlp.experts.0.up_proj";  // [moe 384, hidden 256]
    EXPECT_FALSE(set.find(up + ".weight").has_value());
    EXPECT_EQ(shape(up + ".weight_packed"), (sf::core::Shape{384, 32}));
    EXPECT_EQ(dtype(up + ".weight_packed"), sf::core::DType::I32);
    EXPECT_EQ(shape(up + ".weight_scale"), (sf::core::Shape{384, 8}));
    EXPECT_EQ(dtype(up + ".weight_scale"), sf::core::DType::BF16);
    const auto ws = set.find(up + ".weight_shape").value();
    EXPECT_EQ(ws.tensor->dtype, sf::core::DType::I64);
    std::vector<std::byte> b(ws.tensor->nbytes);
    set.file(ws.file).read(*ws.tensor, 0, b);
    std::int64_t dims[2];
    std::memcpy(dims, b.data(), sizeof dims);
    EXPECT_EQ(dims[0], 384);
    EXPECT_EQ(dims[1], 256);
    EXPECT_EQ(dtype("model.layers.1.mlp.shared_experts.up_proj.weight"), sf::core::DType::BF16);
    EXPECT_EQ(dtype("model.layers.1.self_attn.q_b_proj.weight"), sf::core::DType::BF16);
    EXPECT_FALSE(set.find("model.layers.2.enorm.weight").has_value());  // no MTP layer
    fs::remove_all(d);
}

// MiniMax-M2's layout: every layer MoE (router, F32 e_score_correction_bias, per-expert w1/w2/w3 of intermediate / 2
// rows), full-width q/k norms, attention and expert weights F8_E4M3 with weight_scale_inv grids; the adapter wraps
// attention, the router and every expert's w1/w2/w3.
TEST(Demo, MiniMaxM2Layout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("minimax-m2", back));
    EXPECT_EQ(back, sf::model::DemoArch::MiniMaxM2);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::MiniMaxM2;
    o.n_layer = 2;
    const fs::path d = fresh_dir("minimax");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"MiniMaxM2ForCausalLM"}));
    EXPECT_EQ(c["model_type"], "minimax_m2");
    EXPECT_EQ(c["intermediate_size"], 384);
    EXPECT_EQ(c["rotary_dim"], 16);
    EXPECT_EQ(c["head_dim"], 32);
    EXPECT_EQ(c["num_local_experts"], 4);
    EXPECT_EQ(c["scoring_func"], "sigmoid");
    EXPECT_EQ(c["quantization_config"]["quant_method"], "fp8");
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // embed, norm, head; per layer: 2 norms, 4 attention weights + 4 scales, q/k norms, router, bias,
    // 4 x 3 experts + 12 scales
    EXPECT_EQ(set.n_tensors(), 3u + 2u * (2u + 8u + 2u + 2u + 24u));
    EXPECT_EQ(set.find("model.layers.1.self_attn.q_norm.weight").value().tensor->shape, (sf::core::Shape{256}));
    EXPECT_EQ(set.find("model.layers.1.self_attn.k_norm.weight").value().tensor->shape, (sf::core::Shape{64}));
    const auto w2 = set.find("model.layers.1.block_sparse_moe.experts.3.w2.weight").value().tensor;
    EXPECT_EQ(w2->dtype, sf::core::DType::F8_E4M3);
    EXPECT_EQ(w2->shape, (sf::core::Shape{256, 384}));
    EXPECT_EQ(set.find("model.layers.1.block_sparse_moe.experts.3.w2.weight_scale_inv").value().tensor->shape,
              (sf::core::Shape{2, 3}));
    EXPECT_EQ(set.find("model.layers.0.block_sparse_moe.e_score_correction_bias").value().tensor->dtype,
              sf::core::DType::F32);
    EXPECT_EQ(set.find("model.layers.0.block_sparse_moe.gate.weight").value().tensor->dtype, sf::core::DType::BF16);
    EXPECT_FALSE(set.find("model.layers.0.mlp.gate_proj.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    // per layer: 4 attention + the router + 4 x 3 experts; A and B each
    EXPECT_EQ(ad.n_tensors(), 2u * 2u * 17u);
    EXPECT_TRUE(ad.find("base_model.model.model.layers.1.block_sparse_moe.experts.2.w2.lora_B.weight").has_value());
    EXPECT_EQ(ad.find("base_model.model.model.layers.1.block_sparse_moe.gate.lora_B.weight").value().tensor->shape,
              (sf::core::Shape{4, 8}));
    const json ac = read_json(d / "adapter" / "adapter_config.json");
    EXPECT_EQ(ac["target_modules"], json::array({"q_proj", "k_proj", "v_proj", "o_proj", "gate", "w1", "w2", "w3"}));
    fs::remove_all(d);

    // an odd half head cannot rotate in pairs: refused
    sf::model::DemoOptions b = o;
    b.hidden = 8 * 6;  // head_dim 6, rotary_dim 3
    try {
        sf::model::write_demo(fresh_dir("minimax_bad"), b);
        ADD_FAILURE() << "expected a Usage error";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage) << e.what();
        EXPECT_NE(std::string(e.what()).find("minimax-m2"), std::string::npos) << e.what();
    }
}

// Llama4ForConditionalGeneration in Maverick's checkpoint layout: text_config (MoE every other layer, NoPE every 4th,
// the 8192-token chunk), vision_config, the vision tower and projector beside the text model under language_model.;
// MoE layers with fused experts [E, hidden, 2 * ff] / [E, ff, hidden], router and shared expert, dense layers of
// intermediate_size_mlp; the adapter on attention, the dense MLP and the shared expert with PEFT's module names.
TEST(Demo, Llama4Layout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("llama4", back));
    EXPECT_EQ(back, sf::model::DemoArch::Llama4);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Llama4;
    const fs::path d = fresh_dir("llama4");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Llama4ForConditionalGeneration"}));
    EXPECT_EQ(c["model_type"], "llama4");
    const json& t = c["text_config"];
    EXPECT_EQ(t["model_type"], "llama4_text");
    EXPECT_EQ(t["interleave_moe_layer_step"], 2);
    EXPECT_EQ(t["moe_layers"], json::array({1, 3}));
    EXPECT_EQ(t["no_rope_layers"], json::array({1, 1, 1, 0}));
    EXPECT_EQ(t["intermediate_size"], 384);
    EXPECT_EQ(t["intermediate_size_mlp"], 768);
    EXPECT_EQ(t["attention_chunk_size"], 8192);
    EXPECT_EQ(t["use_qk_norm"], true);
    EXPECT_EQ(t["rope_scaling"]["rope_type"], "llama3");
    EXPECT_EQ(c["vision_config"]["model_type"], "llama4_vision_model");
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // text: embed, norm, head + 9 per dense layer + 12 per MoE layer; vision: 7 + 16 for its layer + 2 adapter MLP;
    // projector: 1
    EXPECT_EQ(set.n_tensors(), 3u + 2u * 9u + 2u * 12u + 7u + 16u + 2u + 1u);
    const std::string l1 = "language_model.model.layers.1.feed_forward.";
    EXPECT_EQ(set.find(l1 + "experts.gate_up_proj").value().tensor->shape, (sf::core::Shape{4, 256, 768}));
    EXPECT_EQ(set.find(l1 + "experts.down_proj").value().tensor->shape, (sf::core::Shape{4, 384, 256}));
    EXPECT_EQ(set.find(l1 + "router.weight").value().tensor->shape, (sf::core::Shape{4, 256}));
    EXPECT_EQ(set.find(l1 + "shared_expert.gate_proj.weight").value().tensor->shape, (sf::core::Shape{384, 256}));
    EXPECT_EQ(set.find("language_model.model.layers.2.feed_forward.down_proj.weight").value().tensor->shape,
              (sf::core::Shape{256, 768}));
    EXPECT_FALSE(set.find("language_model.model.layers.1.feed_forward.gate_proj.weight").has_value());
    EXPECT_TRUE(set.find("multi_modal_projector.linear_1.weight").has_value());
    EXPECT_TRUE(set.find("vision_model.model.layers.0.self_attn.q_proj.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    const std::string p = "base_model.model.model.language_model.layers.";
    EXPECT_TRUE(ad.find(p + "1.feed_forward.shared_expert.gate_proj.lora_A.weight").has_value());
    EXPECT_TRUE(ad.find(p + "0.feed_forward.gate_proj.lora_A.weight").has_value());
    EXPECT_TRUE(ad.find(p + "3.self_attn.o_proj.lora_B.weight").has_value());
    EXPECT_FALSE(ad.find(p + "1.feed_forward.gate_proj.lora_A.weight").has_value());
    EXPECT_EQ(ad.n_tensors(), 4u * 7u * 2u);
    EXPECT_TRUE(read_json(d / "adapter" / "adapter_config.json")["target_modules"].is_string());
    fs::remove_all(d);
    o.n_layer = 1;
    EXPECT_THROW(sf::model::write_demo(fresh_dir("llama4_1"), o), sf::core::Error);
}

// Gemma 3 vision-language: the gemma3 text model under language_model.*, the SigLIP tower and the projector as
// google/gemma-3-4b-it names them, the processor files, and an adapter on both the text model and the tower.
TEST(Demo, Gemma3VlLayout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("gemma3-vl", back));
    EXPECT_EQ(back, sf::model::DemoArch::Gemma3Vl);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Gemma3Vl;
    o.n_layer = 2;
    const fs::path d = fresh_dir("gemma3vl");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Gemma3ForConditionalGeneration"}));
    EXPECT_EQ(c["model_type"], "gemma3");
    EXPECT_EQ(c["text_config"]["model_type"], "gemma3_text");
    EXPECT_EQ(c["text_config"]["num_hidden_layers"], 2);
    EXPECT_EQ(c["vision_config"]["model_type"], "siglip_vision_model");
    EXPECT_EQ(c["mm_tokens_per_image"], 16);
    EXPECT_EQ(read_json(d / "base" / "preprocessor_config.json")["image_seq_length"], 16);
    EXPECT_EQ(read_json(d / "base" / "processor_config.json")["processor_class"], "Gemma3Processor");
    EXPECT_TRUE(read_json(d / "base" / "chat_template.json")["chat_template"].is_string());
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // text: embed, norm + 13 per layer (tied; four norms, q/k norms); tower: patch w/b, position, post_layernorm w/b + 16 per layer;
    // projector: 2
    EXPECT_EQ(set.n_tensors(), 2u + 13u * 2u + 5u + 16u * 2u + 2u);
    EXPECT_EQ(set.find("vision_tower.vision_model.embeddings.patch_embedding.weight").value().tensor->shape,
              (sf::core::Shape{64, 3, 4, 4}));
    EXPECT_EQ(set.find("vision_tower.vision_model.embeddings.position_embedding.weight").value().tensor->shape,
              (sf::core::Shape{64, 64}));
    EXPECT_EQ(set.find("vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight").value().tensor->shape,
              (sf::core::Shape{128, 64}));
    EXPECT_EQ(set.find("multi_modal_projector.mm_input_projection_weight").value().tensor->shape,
              (sf::core::Shape{64, 256}));
    EXPECT_TRUE(set.find("language_model.model.layers.1.self_attn.q_norm.weight").has_value());
    EXPECT_FALSE(set.find("model.embed_tokens.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.vision_tower.vision_model.encoder.layers.1.mlp.fc2.lora_A.weight")
                    .has_value());
    EXPECT_EQ(ad.n_tensors(), 2u * 7u * 2u + 2u * 6u * 2u);  // text: 7 per layer; tower: q/k/v/out, fc1/fc2
    const json ac = read_json(d / "adapter" / "adapter_config.json");
    for (const char* m : {"q_proj", "down_proj", "out_proj", "fc1", "fc2"})
        EXPECT_NE(std::find(ac["target_modules"].begin(), ac["target_modules"].end(), m), ac["target_modules"].end()) << m;
    fs::remove_all(d);
}

// Gemma 3n: the text model under model.language_model.* with AltUp, LAuReL and per-layer embeddings, one tensor of
// each tower beside it, text_config / vision_config / audio_config, and an adapter on every decoder Linear.
TEST(Demo, Gemma3nLayout) {
    sf::model::DemoArch back{};
    ASSERT_TRUE(sf::model::parse_demo_arch("gemma3n", back));
    EXPECT_EQ(back, sf::model::DemoArch::Gemma3n);
    sf::model::DemoOptions o;
    o.arch = sf::model::DemoArch::Gemma3n;
    o.n_layer = 2;
    const fs::path d = fresh_dir("gemma3n");
    sf::model::write_demo(d, o);
    const json c = read_json(d / "base" / "config.json");
    EXPECT_EQ(c["architectures"], json::array({"Gemma3nForConditionalGeneration"}));
    EXPECT_EQ(c["model_type"], "gemma3n");
    const json& tc = c["text_config"];
    EXPECT_EQ(tc["model_type"], "gemma3n_text");
    EXPECT_EQ(tc["intermediate_size"], json::array({768, 768}));
    EXPECT_EQ(tc["layer_types"], json::array({"sliding_attention", "full_attention"}));
    EXPECT_EQ(tc["activation_sparsity_pattern"], json::array({0.95, 0.95}));
    EXPECT_EQ(tc["altup_num_inputs"], 4);
    EXPECT_EQ(tc["num_kv_shared_layers"], 0);
    EXPECT_TRUE(c["vision_config"].is_object());
    EXPECT_TRUE(c["audio_config"].is_object());
    const auto set = sf::formats::SafetensorsSet::open_dir(d / "base");
    // text: embed, norm, per-layer embed / projection / norm, 2 x 3 AltUp projections + 24 per layer; towers: 4
    EXPECT_EQ(set.n_tensors(), 5u + 6u + 24u * 2u + 4u);
    EXPECT_EQ(set.find("model.language_model.embed_tokens_per_layer.weight").value().tensor->shape,
              (sf::core::Shape{640, 2 * 256}));
    EXPECT_EQ(set.find("model.language_model.altup_unembed_projections.2.weight").value().tensor->shape,
              (sf::core::Shape{256, 256}));
    EXPECT_EQ(set.find("model.language_model.layers.1.altup.prediction_coefs.weight").value().tensor->shape,
              (sf::core::Shape{16, 4}));
    EXPECT_EQ(set.find("model.language_model.layers.1.laurel.linear_left.weight").value().tensor->shape,
              (sf::core::Shape{64, 256}));
    EXPECT_TRUE(set.find("model.language_model.layers.0.altup.correct_output_scale").has_value());
    EXPECT_TRUE(set.find("model.vision_tower.timm_model.conv_stem.conv.weight").has_value());
    EXPECT_FALSE(set.find("model.embed_tokens.weight").has_value());
    EXPECT_FALSE(set.find("lm_head.weight").has_value());
    const auto ad = sf::formats::SafetensorsSet::open_files({d / "adapter" / "adapter_model.safetensors"});
    EXPECT_TRUE(ad.find("base_model.model.model.language_model.layers.1.laurel.linear_right.lora_B.weight").has_value());
    EXPECT_TRUE(ad.find("base_model.model.model.language_model.layers.0.altup.modality_router.lora_A.weight")
                    .has_value());
    EXPECT_EQ(ad.n_tensors(), 2u * 14u * 2u);  // 14 Linear modules per layer
    const json ac = read_json(d / "adapter" / "adapter_config.json");
    ASSERT_TRUE(ac["target_modules"].is_string());
    EXPECT_NE(ac["target_modules"].get<std::string>().find("language_model"), std::string::npos);
    fs::remove_all(d);
}
