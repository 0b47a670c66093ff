// Family detection and Modelfile text. The Go templates themselves are checked against the models' Jinja
// templates by tests/conformance/ollama (Go text/template vs @huggingface/jinja).
#include <shardforge/ollama.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace sf = shardforge;
using sf::ollama::Family;

namespace {

#ifdef SF_OLLAMA_TEMPLATES
const std::string templates_dir = SF_OLLAMA_TEMPLATES;
#else
const std::string templates_dir;
#endif

std::string fixture(const std::string& name) {
    std::ifstream f(templates_dir + "/" + name);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST(DetectFamily, ReadsTheTurnMarkersOfRealTemplates) {
    ASSERT_FALSE(templates_dir.empty()) << "built without SF_OLLAMA_TEMPLATES (tests/conformance/ollama/tests.cmake)";
    const std::vector<std::pair<std::string, Family>> cases = {
        {"llama3.jinja", Family::Llama3},  {"qwen2.5.jinja", Family::ChatML},  {"chatml.jinja", Family::ChatML},
        {"mistral-v0.3.jinja", Family::Mistral}, {"gemma2.jinja", Family::Gemma}, {"gemma3.jinja", Family::Gemma},
        {"phi3.5.jinja", Family::Phi3},    {"alpaca.jinja", Family::Alpaca},   {"vicuna.jinja", Family::Vicuna},
        {"llama2.jinja", Family::Unknown}, {"gemma4.jinja", Family::Gemma4},
        {"llama4.jinja", Family::Llama4}};
    for (const auto& [file, fam] : cases) {
        const std::string j = fixture(file);
        ASSERT_FALSE(j.empty()) << file;
        EXPECT_EQ(sf::ollama::detect_family(j).family, fam) << file;
    }
    EXPECT_EQ(sf::ollama::detect_family(fixture("qwen2.5.jinja")).default_system,
              "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    EXPECT_EQ(sf::ollama::detect_family(fixture("vicuna.jinja")).default_system,
              "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
              "detailed, and polite answers to the user's questions.");
    EXPECT_EQ(sf::ollama::detect_family(fixture("llama3.jinja")).default_system, "");
}

TEST(DetectFamily, DefaultSystemFromASetStatement) {
    const auto fi = sf::ollama::detect_family(
        "{% set default_system_message = 'You are helpful.\\nBe kind.' %}{% for m in messages %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}");
    EXPECT_EQ(fi.family, Family::ChatML);
    EXPECT_EQ(fi.default_system, "You are helpful.\nBe kind.");
}

TEST(DetectFamily, NameIsIrrelevantOnlyStructureCounts) {
    EXPECT_EQ(sf::ollama::detect_family("{# Llama-3 Qwen Gemma #}{{ messages[0]['content'] }}").family,
              Family::Unknown);
    EXPECT_EQ(sf::ollama::detect_family("").family, Family::Unknown);
}

TEST(MakeModelfile, WritesFromAdapterTemplateStopsAndSystem) {
    sf::ollama::ModelfileInput in;
    in.from = "tiny.Q4_K_M.gguf";
    in.adapter = "lora.gguf";
    in.chat_template = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                       "<|im_end|>\n{% endfor %}";
    in.system = "Be brief.";
    const auto mf = sf::ollama::make_modelfile(in);
    EXPECT_EQ(mf.family, Family::ChatML);
    const std::string body = mf.text.substr(mf.text.find("FROM"));
    EXPECT_EQ(body,
              "FROM ./tiny.Q4_K_M.gguf\n"
              "ADAPTER ./lora.gguf\n"
              "TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
              "{{ end }}<|im_start|>assistant\n\"\"\"\n"
              "PARAMETER stop \"<|im_start|>\"\n"
              "PARAMETER stop \"<|im_end|>\"\n"
              "SYSTEM \"\"\"Be brief.\"\"\"\n");
    EXPECT_EQ(mf.parts, std::vector<std::string>{"tiny.Q4_K_M.gguf"});
}

TEST(MakeModelfile, AVisionModelsProjectorIsASecondFromAndUploadedAfterTheModel) {
    sf::ollama::ModelfileInput in;
    in.from = "vl-00001-of-00002.gguf";
    in.projector = "mmproj-vl-F16.gguf";
    const auto mf = sf::ollama::make_modelfile(in);
    const std::string body = mf.text.substr(mf.text.find("FROM"));
    EXPECT_EQ(body.substr(0, body.find("\n", body.find("\n") + 1) + 1),
              "FROM ./vl-00001-of-00002.gguf\nFROM ./mmproj-vl-F16.gguf\n");
    EXPECT_EQ(mf.parts, (std::vector<std::string>{"vl-00001-of-00002.gguf", "vl-00002-of-00002.gguf",
                                                  "mmproj-vl-F16.gguf"}));
    in.projector = "/abs/mmproj.gguf";
    EXPECT_THROW((void)sf::ollama::make_modelfile(in), sf::core::Error);
}

TEST(MakeModelfile, UnknownTemplateWarnsAndLeavesTemplateToTheGguf) {
    sf::ollama::ModelfileInput in;
    in.from = "x.gguf";
    in.chat_template = "{{ messages | map(attribute='content') | join('\\n') }}";
    const auto mf = sf::ollama::make_modelfile(in);
    EXPECT_EQ(mf.family, Family::Unknown);
    ASSERT_EQ(mf.warnings.size(), 1u);
    EXPECT_NE(mf.warnings[0].find("tokenizer.chat_template"), std::string::npos);
    EXPECT_EQ(mf.text.find("\nTEMPLATE"), std::string::npos);
    EXPECT_EQ(mf.text.find("PARAMETER"), std::string::npos);
    EXPECT_NE(mf.text.find("\nFROM ./x.gguf\n"), std::string::npos);
}

TEST(MakeModelfile, EosIsWrittenLiterallyForFamiliesThatEndRepliesWithIt) {
    sf::ollama::ModelfileInput in;
    in.from = "m.gguf";
    in.chat_template = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + "
                       "m['content'] + '[/INST]' }}{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}";
    in.tokens.eos = "</s>";
    const auto mf = sf::ollama::make_modelfile(in);
    EXPECT_EQ(mf.family, Family::Mistral);
    EXPECT_NE(mf.go_template.find(" {{ .Content }}</s>"), std::string::npos) << mf.go_template;
    EXPECT_EQ(mf.stop, (std::vector<std::string>{"[INST]", "[/INST]", "</s>"}));
}

TEST(MakeModelfile, SplitGgufNamesEveryPart) {
    sf::ollama::ModelfileInput in;
    in.from = "big.Q8_0-00001-of-00003.gguf";
    EXPECT_EQ(sf::ollama::make_modelfile(in).parts,
              (std::vector<std::string>{"big.Q8_0-00001-of-00003.gguf", "big.Q8_0-00002-of-00003.gguf",
                                        "big.Q8_0-00003-of-00003.gguf"}));
}

TEST(MakeModelfile, RejectsMissingOrAbsolutePaths) {
    sf::ollama::ModelfileInput in;
    EXPECT_THROW((void)sf::ollama::make_modelfile(in), sf::core::Error);
    in.from = "/abs/model.gguf";
    EXPECT_THROW((void)sf::ollama::make_modelfile(in), sf::core::Error);
}

TEST(OllamaHost, NormalizesLikeOllamaHostVariable) {
    EXPECT_EQ(sf::ollama::normalize_host("localhost"), "http://localhost:11434");
    EXPECT_EQ(sf::ollama::normalize_host("10.0.0.2:8080/"), "http://10.0.0.2:8080");
    EXPECT_EQ(sf::ollama::normalize_host("https://ollama.example"), "https://ollama.example:443");
    EXPECT_EQ(sf::ollama::normalize_host("0.0.0.0:11434"), "http://127.0.0.1:11434");
}

TEST(Sha256File, MatchesFipsVectors) {
    const auto dir = std::filesystem::temp_directory_path();
    const auto a = dir / "sf_ollama_sha_abc", e = dir / "sf_ollama_sha_empty";
    std::ofstream(a, std::ios::binary) << "abc";
    std::ofstream(e, std::ios::binary).close();
    EXPECT_EQ(sf::ollama::sha256_file(a), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sf::ollama::sha256_file(e), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    std::filesystem::remove(a);
    std::filesystem::remove(e);
    EXPECT_THROW((void)sf::ollama::sha256_file(dir / "sf_ollama_no_such_file"), sf::core::Error);
}

TEST(ReadHfChatConfig, TakesDefaultTemplateAndAddedTokenContents) {
    const auto dir = std::filesystem::temp_directory_path() / "sf_ollama_hfcfg";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "tokenizer_config.json")
        << R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
              "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})";
    auto in = sf::ollama::read_hf_chat_config(dir);
    EXPECT_EQ(in.tokens.bos, "<s>");
    EXPECT_EQ(in.tokens.eos, "</s>");
    EXPECT_EQ(in.chat_template, "D");
    std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "<|im_end|>"})";
    std::ofstream(dir / "chat_template.jinja") << "{{ '<|im_start|>' }}";
    in = sf::ollama::read_hf_chat_config(dir);
    EXPECT_EQ(in.chat_template, "{{ '<|im_start|>' }}");
    std::ofstream(dir / "tokenizer_config.json") << "[1,";
    EXPECT_THROW((void)sf::ollama::read_hf_chat_config(dir), sf::core::Error);
    std::filesystem::remove_all(dir);
}
