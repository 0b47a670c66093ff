// Drives our Ollama REST client against fake_ollama.mjs (a loopback server implementing the documented
// endpoints and recording every request), then checks the record: blobs HEAD-checked before upload and uploaded
// once, digests equal to what the server computes from the bytes, and the /api/create body.
#include <shardforge/ollama.hpp>

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>

namespace sf = shardforge;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::FILE* g_server = nullptr;
std::string g_host;

std::size_t append(char* p, std::size_t s, std::size_t n, void* u) {
    static_cast<std::string*>(u)->append(p, s * n);
    return s * n;
}

json get_json(const std::string& path) {
    std::string body;
    CURL* c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, (g_host + path).c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    const CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? json::parse(body, nullptr, false) : json();
}

class OllamaClient : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string cmd = std::string("'") + SF_NODE + "' '" + SF_FAKE_OLLAMA + "'";
        g_server = popen(cmd.c_str(), "r");
        char line[64] = {};
        if (g_server && std::fgets(line, sizeof line, g_server) && std::atoi(line) > 0)
            g_host = std::string("http://127.0.0.1:") + std::to_string(std::atoi(line));
    }
    static void TearDownTestSuite() {
        if (!g_host.empty()) get_json("/_shutdown");
        if (g_server) pclose(g_server);
    }
    void SetUp() override {
        // node is installed by jobs/install-deps.sh: a server that does not start is a failure, never a skip.
        ASSERT_FALSE(g_host.empty()) << "fake Ollama server (node " << SF_FAKE_OLLAMA << ") did not start";
        dir_ = fs::temp_directory_path() / ("sf_ollama_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    void write(const std::string& name, const std::string& bytes) {
        std::ofstream(dir_ / name, std::ios::binary) << bytes;
    }
    fs::path dir_;
};

// sha256("abc"), FIPS 180-2 appendix B.1.
constexpr const char* abc_digest = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

const char* llama3_jinja =
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] + '<|eot_id|>' }}{% endfor %}";

}  // namespace

TEST_F(OllamaClient, UploadsEachBlobOnceAndSendsTemplateParametersSystem) {
    write("model.Q8_0.gguf", "abc");
    std::string big(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
    write("adapter.gguf", big);
    sf::ollama::ModelfileInput in;
    in.from = "model.Q8_0.gguf";
    in.adapter = "adapter.gguf";
    in.chat_template = llama3_jinja;
    in.tokens = {"<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"};
    in.system = "Be brief.";
    const auto mf = sf::ollama::make_modelfile(in);

    std::vector<std::string> statuses;
    sf::ollama::create_model(g_host, "tiny:latest", dir_, mf, [&](const std::string& s) { statuses.push_back(s); });
    ASSERT_FALSE(statuses.empty());
    EXPECT_EQ(statuses.back(), "success");

    json rec = get_json("/_requests");
    ASSERT_TRUE(rec.is_array());
    // Every blob: HEAD (404) then one POST whose body hashes (server side) to the digest in the URL.
    std::vector<std::string> order;
    std::map<std::string, int> posts;
    json create;
    std::string adapter_digest;
    for (const auto& r : rec) {
        order.push_back(r["method"].get<std::string>() + " " + r["path"].get<std::string>());
        if (r["method"] == "POST" && r["path"].get<std::string>().rfind("/api/blobs/", 0) == 0) {
            const std::string d = r["path"].get<std::string>().substr(11);
            EXPECT_EQ(r["body_digest"], d) << "uploaded bytes do not hash to the digest we claimed";
            ++posts[d];
            if (r["size"] == big.size()) adapter_digest = d;
        }
        if (r["path"] == "/api/create") create = r["json"];
    }
    const std::vector<std::string> want = {
        std::string("HEAD /api/blobs/") + abc_digest, std::string("POST /api/blobs/") + abc_digest,
        "HEAD /api/blobs/" + adapter_digest, "POST /api/blobs/" + adapter_digest, "POST /api/create"};
    EXPECT_EQ(order, want);
    EXPECT_EQ(posts[abc_digest], 1);
    ASSERT_FALSE(adapter_digest.empty());

    EXPECT_EQ(create["model"], "tiny:latest");
    EXPECT_EQ(create["files"], json({{"model.Q8_0.gguf", abc_digest}}));
    EXPECT_EQ(create["adapters"], json({{"adapter.gguf", adapter_digest}}));
    EXPECT_EQ(create["template"],
              "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
              "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(create["parameters"], json::parse(R"({"stop":["<|start_header_id|>","<|end_header_id|>","<|eot_id|>"]})"));
    EXPECT_EQ(create["system"], "Be brief.");

    // A second create of the same files: HEADs say the blobs exist, nothing is uploaded again.
    sf::ollama::create_model(g_host, "tiny2", dir_, mf);
    rec = get_json("/_requests");
    std::vector<std::string> second;
    for (std::size_t i = want.size(); i < rec.size(); ++i)
        second.push_back(rec[i]["method"].get<std::string>() + " " + rec[i]["path"].get<std::string>());
    EXPECT_EQ(second, (std::vector<std::string>{std::string("HEAD /api/blobs/") + abc_digest,
                                                "HEAD /api/blobs/" + adapter_digest, "POST /api/create"}));
}

TEST_F(OllamaClient, SplitGgufListsEveryPart) {
    write("m-00001-of-00002.gguf", "abc");
    write("m-00002-of-00002.gguf", "");
    sf::ollama::ModelfileInput in;
    in.from = "m-00001-of-00002.gguf";
    sf::ollama::create_model(g_host, "split", dir_, sf::ollama::make_modelfile(in));
    json create;
    for (const auto& r : get_json("/_requests"))
        if (r["path"] == "/api/create") create = r["json"];
    // sha256 of the empty string (FIPS 180-2).
    EXPECT_EQ(create["files"],
              json({{"m-00001-of-00002.gguf", abc_digest},
                    {"m-00002-of-00002.gguf",
                     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}));
    EXPECT_FALSE(create.contains("template")) << "no chat template: Ollama must use the GGUF's own";
}

void expect_error(const std::function<void()>& f, sf::core::ErrorKind kind, const std::string& text) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one containing '" << text << "'";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
        EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
}

TEST_F(OllamaClient, ErrorsCarryOllamasMessage) {
    write("model.gguf", "abc");
    sf::ollama::ModelfileInput in;
    in.from = "model.gguf";
    const auto mf = sf::ollama::make_modelfile(in);
    using K = sf::core::ErrorKind;
    expect_error([&] { sf::ollama::create_model(g_host, "bad name!", dir_, mf); }, K::Network,
                 "ollama create 'bad name!' failed: HTTP 400: invalid model name");
    expect_error([&] { sf::ollama::create_model(g_host, "x-midstream-fail", dir_, mf); }, K::Network,
                 "unsupported architecture \"tinyllama\"");
    expect_error([&] { sf::ollama::create_model("http://127.0.0.1:1", "x", dir_, mf); }, K::Network, "ollama serve");
    sf::ollama::ModelfileInput missing;
    missing.from = "absent.gguf";
    expect_error([&] { sf::ollama::create_model(g_host, "x", dir_, sf::ollama::make_modelfile(missing)); }, K::Io,
                 "absent.gguf");
    expect_error([&] { sf::ollama::push_model(g_host, "nonamespace"); }, K::Usage, "<namespace>/<model>");
    expect_error([&] { sf::ollama::push_model(g_host, "me/unauthorized:latest"); }, K::Network,
                 "unauthorized: your ollama key is not registered");
}

TEST_F(OllamaClient, PushStreamsToSuccess) {
    std::vector<std::string> statuses;
    sf::ollama::push_model(g_host, "me/tiny:latest", [&](const std::string& s) { statuses.push_back(s); });
    EXPECT_EQ(statuses, (std::vector<std::string>{"retrieving manifest", "starting upload", "pushing manifest",
                                                  "success"}));
    json push;
    for (const auto& r : get_json("/_requests"))
        if (r["path"] == "/api/push") push = r["json"];
    EXPECT_EQ(push["model"], "me/tiny:latest");
}
