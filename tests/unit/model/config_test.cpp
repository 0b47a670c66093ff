// config.json reading: text_config merge, architecture choice, typed fields and errors.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace sf = shardforge;
using sf::core::Error;
using sf::core::ErrorKind;

namespace {

sf::model::HfConfig parse(const char* text) { return sf::model::parse_hf_config(nlohmann::json::parse(text)); }

template <class F>
Error capture(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no shardforge::core::Error thrown";
    return Error(ErrorKind::Internal, "", "", "none");
}

}  // namespace

TEST(HfConfig, ReadsTypedFieldsWithConverterFallbacks) {
    const auto c = parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 3,
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
        "vocab_size": 128, "num_local_experts": 8, "num_experts_per_tok": 2})");
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.model_type, "llama");
    EXPECT_EQ(c.n_layer, 3);
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_EQ(c.n_head, 4);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 16);  // 64 / 4
    EXPECT_EQ(c.n_ff, 96);
    EXPECT_EQ(c.n_vocab, 128);
    EXPECT_EQ(c.n_expert, 8);
    EXPECT_EQ(c.n_expert_used, 2);
    EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(HfConfig, KvHeadsDefaultToHeadsAndExplicitHeadDimWins) {
    const auto c = parse(R"({"architectures": ["MistralForCausalLM"], "num_hidden_layers": 1, "hidden_size": 64,
        "num_attention_heads": 4, "head_dim": 32, "num_key_value_heads": null})");
    EXPECT_EQ(c.n_head_kv, 4);  // null counts as absent
    EXPECT_EQ(c.head_dim, 32);
}

TEST(HfConfig, MergesTextConfigIntoTheTopLevelAndTextWins) {
    const auto c = parse(R"({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "hidden_size": 1, "text_config": {"model_type": "gemma3_text", "num_hidden_layers": 2, "hidden_size": 64},
        "vision_config": {"hidden_size": 32}})");
    EXPECT_EQ(c.architecture, "Gemma3ForConditionalGeneration");
    EXPECT_EQ(c.model_type, "gemma3_text");
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_TRUE(c.json().contains("text_config"));  // {**hparams, **text_config} keeps text_config itself
    EXPECT_TRUE(c.tie_word_embeddings);           // Gemma default
}

TEST(HfConfig, TextConfigArchitecturesWin) {
    const auto c = parse(R"({"architectures": ["SomethingForConditionalGeneration"],
        "text_config": {"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 1}})");
    EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
}

TEST(HfConfig, RefusesAConfigWithoutArchitectures) {
    const Error e = capture([] { (void)parse(R"({"num_hidden_layers": 2})"); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), "config.json");
    EXPECT_NE(std::string(e.what()).find("architectures"), std::string::npos) << e.what();
}

TEST(HfConfig, RefusesAConfigWithoutLayerCount) {
    const Error e = capture([] { (void)parse(R"({"architectures": ["LlamaForCausalLM"]})"); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("num_hidden_layers"), std::string::npos) << e.what();
}

TEST(HfConfig, RefusesNonIntegerCounts) {
    const Error e = capture(
        [] { (void)parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": "two"})"); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
}

TEST(HfConfig, ReadsConfigJsonFromADirectoryAndNamesItInErrors) {
    const auto dir = std::filesystem::temp_directory_path() / ("sf_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream(dir / "config.json") << R"({"architectures": ["Qwen3ForCausalLM"], "num_hidden_layers": 4})";
    }
    const auto c = sf::model::read_hf_config(dir);
    EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
    EXPECT_EQ(c.file, (dir / "config.json").string());
    {
        std::ofstream(dir / "config.json") << "{not json";
    }
    Error e = capture([&] { (void)sf::model::read_hf_config(dir); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), (dir / "config.json").string());
    std::filesystem::remove_all(dir);
    e = capture([&] { (void)sf::model::read_hf_config(dir); });
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(e.file().find("config.json"), std::string::npos);
}
