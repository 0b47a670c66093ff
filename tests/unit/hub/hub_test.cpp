// Unit tests of the hub module's pure parts: token/endpoint discovery, retry policy, protocol encoders and response
// parsers, push planning helpers, model card. Expected values come from the official clients' behaviour (docs/hub.md)
// or independent tools (git hash-object, sha256sum), never from our own output.
#include <shardforge/hub.hpp>

#include "hub/protocol.hpp"
#include "hub/push.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace sf = shardforge;
namespace hub = shardforge::hub;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Saves and clears the token/endpoint environment; restores it afterwards.
class EnvGuard {
public:
    EnvGuard() {
        for (const char* n : names_) {
            const char* v = std::getenv(n);
            saved_.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
            unsetenv(n);
        }
    }
    ~EnvGuard() {
        for (auto& [n, v] : saved_) {
            if (v) setenv(n, v->c_str(), 1);
            else unsetenv(n);
        }
    }

private:
    static constexpr const char* names_[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME",
                                             "XDG_CACHE_HOME", "HOME", "HF_ENDPOINT", "HF_HUB_CACHE",
                                             "HUGGINGFACE_HUB_CACHE"};
    std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("sf_hub_unit_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

void write(const fs::path& p, const std::string& s) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

// ------------------------------------------------------------------ token discovery (huggingface_hub's utils/_auth.py)
TEST(HubToken, OrderEnvThenTokenPathThenHfHomeThenXdgThenHome) {
    EnvGuard g;
    const fs::path d = temp_dir("token");
    write(d / "home/.cache/huggingface/token", "hf_home_token\n");
    write(d / "xdg/huggingface/token", "hf_xdg_token");
    write(d / "hfhome/token", "  hf_hfhome_token \r\n");
    write(d / "path_token", "hf_path_token");
    std::string origin;
    setenv("HOME", (d / "home").c_str(), 1);
    EXPECT_EQ(hub::discover_token("", &origin), "hf_home_token");
    setenv("XDG_CACHE_HOME", (d / "xdg").c_str(), 1);
    EXPECT_EQ(hub::discover_token(""), "hf_xdg_token");
    setenv("HF_HOME", (d / "hfhome").c_str(), 1);
    EXPECT_EQ(hub::discover_token(""), "hf_hfhome_token");   // cleaned: CR/LF and blanks removed
    setenv("HF_TOKEN_PATH", (d / "path_token").c_str(), 1);
    EXPECT_EQ(hub::discover_token(""), "hf_path_token");
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    EXPECT_EQ(hub::discover_token(""), "hf_legacy");
    setenv("HF_TOKEN", "hf_env", 1);
    EXPECT_EQ(hub::discover_token("", &origin), "hf_env");
    EXPECT_EQ(origin, "HF_TOKEN");
    // --token-file wins over everything.
    write(d / "explicit", "hf_explicit\n");
    EXPECT_EQ(hub::discover_token((d / "explicit").string(), &origin), "hf_explicit");
    EXPECT_EQ(origin, "--token-file");
    fs::remove_all(d);
}

TEST(HubToken, EmptyMeansNoneAndMissingTokenFileIsAUsageError) {
    EnvGuard g;
    const fs::path d = temp_dir("token_empty");
    setenv("HOME", d.c_str(), 1);
    setenv("HF_TOKEN", "   ", 1);   // blank env var counts as unset
    EXPECT_EQ(hub::discover_token(""), "");
    try {
        (void)hub::discover_token((d / "nope").string());
        FAIL() << "expected an error";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
    }
    fs::remove_all(d);
}

TEST(HubToken, RedactRemovesEveryOccurrence) {
    EXPECT_EQ(hub::redact("a hf_secret b hf_secret", "hf_secret"), "a hf_*** b hf_***");
    EXPECT_EQ(hub::redact("nothing", ""), "nothing");
}

// ------------------------------------------------------------------ endpoint
TEST(HubEndpoint, FlagThenEnvThenDefaultAndHttpOnlyForLoopback) {
    EnvGuard g;
    EXPECT_EQ(hub::discover_endpoint(""), "https://huggingface.co");
    setenv("HF_ENDPOINT", "https://hub.example.org/", 1);
    EXPECT_EQ(hub::discover_endpoint(""), "https://hub.example.org");
    EXPECT_EQ(hub::discover_endpoint("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    EXPECT_EQ(hub::discover_endpoint("http://localhost:1/"), "http://localhost:1");
    EXPECT_EQ(hub::discover_endpoint("http://[::1]:5"), "http://[::1]:5");
    EXPECT_THROW((void)hub::discover_endpoint("http://hub.example.org"), sf::core::Error);
    EXPECT_THROW((void)hub::discover_endpoint("http://127.0.0.1.evil.com"), sf::core::Error);
    EXPECT_THROW((void)hub::discover_endpoint("http://localhost.evil.com:80"), sf::core::Error);
    EXPECT_THROW((void)hub::discover_endpoint("ftp://127.0.0.1"), sf::core::Error);
}

// ------------------------------------------------------------------ retry policy (http_backoff in huggingface_hub's
// utils/_http.py)
TEST(HubRetry, TransientStatusesOnlyAndBoundedAttempts) {
    hub::Config c;
    const hub::HttpHeaders none;
    for (long s : {0L, 408L, 429L, 500L, 502L, 503L, 504L}) EXPECT_TRUE(hub::retry_decision(c, 0, s, none, 0.5, 0).retry) << s;
    for (long s : {400L, 401L, 403L, 404L, 409L, 412L, 413L, 501L}) EXPECT_FALSE(hub::retry_decision(c, 0, s, none, 0.5, 0).retry) << s;
    EXPECT_TRUE(hub::retry_decision(c, 4, 500, none, 0.5, 0).retry);
    EXPECT_FALSE(hub::retry_decision(c, 5, 500, none, 0.5, 0).retry);   // at most 5 retries
}

TEST(HubRetry, ExponentialBackoffCappedWithJitter) {
    hub::Config c;   // 1 s doubling to 8 s, +-25 % jitter
    const hub::HttpHeaders none;
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 500, none, 0.5, 0).delay_s, 1.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 1, 500, none, 0.5, 0).delay_s, 2.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 2, 500, none, 0.5, 0).delay_s, 4.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 3, 500, none, 0.5, 0).delay_s, 8.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 4, 500, none, 0.5, 0).delay_s, 8.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 2, 0, none, 0.0, 0).delay_s, 3.0);
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 2, 0, none, 1.0, 0).delay_s, 5.0);
}

TEST(HubRetry, RetryAfterSecondsAndHttpDateAndRateLimit) {
    hub::Config c;
    hub::HttpHeaders h;
    h.h["retry-after"] = "7";
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 429, h, 0.5, 0).delay_s, 8.0);   // value + 1 s
    // HTTP-date 10 s in the future of "now" (784111777 = Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example).
    h.h["retry-after"] = "Sun, 06 Nov 1994 08:49:47 GMT";
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 429, h, 0.5, 784111777).delay_s, 11.0);
    // RateLimit r=0;t=T wins over Retry-After.
    h.h["ratelimit"] = "\"api\";r=0;t=42";
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 429, h, 0.5, 784111777).delay_s, 43.0);
    // r>0: not exhausted, fall back to Retry-After.
    h.h["ratelimit"] = "\"api\";r=5;t=42";
    h.h["retry-after"] = "3";
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 429, h, 0.5, 0).delay_s, 4.0);
    // Retry-After is ignored on a 500 (backoff applies).
    EXPECT_DOUBLE_EQ(hub::retry_decision(c, 0, 500, h, 0.5, 0).delay_s, 1.0);
}

TEST(HubRetry, HeaderParsers) {
    EXPECT_EQ(hub::parse_retry_after("120", 0).value(), 120.0);
    EXPECT_FALSE(hub::parse_retry_after("soon", 0).has_value());
    EXPECT_FALSE(hub::parse_retry_after("", 0).has_value());
    EXPECT_EQ(hub::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 100).value(), 0.0);   // past: 0
    const auto rl = hub::parse_ratelimit("\"api\";r=0;t=12");
    ASSERT_TRUE(rl);
    EXPECT_EQ(rl->remaining, 0);
    EXPECT_EQ(rl->reset_s, 12.0);
    EXPECT_FALSE(hub::parse_ratelimit("garbage").has_value());
}

// ------------------------------------------------------------------ repo ids, url encoding
TEST(HubRepoRef, ParsesOrgNameRevAndRejectsPaths) {
    const auto r = hub::parse_repo_ref("meta-llama/Llama-3.1-8B@refs/pr/3");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->ns, "meta-llama");
    EXPECT_EQ(r->name, "Llama-3.1-8B");
    EXPECT_EQ(r->revision, "refs/pr/3");
    EXPECT_FALSE(hub::parse_repo_ref("./models/x"));
    EXPECT_FALSE(hub::parse_repo_ref("/abs/path"));
    EXPECT_FALSE(hub::parse_repo_ref("a/b/c"));
    EXPECT_FALSE(hub::parse_repo_ref("../x"));
    EXPECT_FALSE(hub::parse_repo_ref("org/name@"));
    EXPECT_EQ(hub::url_encode("refs/pr/3"), "refs%2Fpr%2F3");   // Python quote(safe="") / encodeURIComponent
}

// ------------------------------------------------------------------ hashes (independent reference values)
TEST(HubHash, Sha256AndGitBlobOidMatchStandardTools) {
    // printf 'hello\n' | sha256sum ; printf 'hello\n' | git hash-object --stdin
    EXPECT_EQ(sf::core::sha256_hex("hello\n"), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    EXPECT_EQ(hub::git_blob_oid("hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
    EXPECT_EQ(hub::git_blob_oid(""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    EXPECT_EQ(hub::base64("hello\n"), "aGVsbG8K");
    EXPECT_EQ(hub::base64(""), "");
}

// ------------------------------------------------------------------ encoders (huggingface_hub's _commit_api.py)
TEST(HubEncode, CommitNdjsonHeaderFirstRegularInlineLfsByOid) {
    std::vector<hub::CommitOp> ops(3);
    ops[0].path = "config.json";
    ops[0].content = "{}\n";
    ops[1].path = "model.safetensors";
    ops[1].lfs = true;
    ops[1].oid = std::string(64, 'a');
    ops[1].size = 123;
    ops[2].path = "old.bin";
    ops[2].deleted = true;
    const std::string nd = hub::encode_commit({"title", "body", "0123456789abcdef0123456789abcdef01234567"}, ops);
    std::vector<json> lines;
    std::size_t pos = 0;
    while (pos < nd.size()) {
        const auto nl = nd.find('\n', pos);
        ASSERT_NE(nl, std::string::npos) << "every line ends with \\n";
        lines.push_back(json::parse(nd.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[0]["key"], "header");
    EXPECT_EQ(lines[0]["value"]["summary"], "title");
    EXPECT_EQ(lines[0]["value"]["description"], "body");
    EXPECT_EQ(lines[0]["value"]["parentCommit"], "0123456789abcdef0123456789abcdef01234567");
    EXPECT_EQ(lines[1]["key"], "file");
    EXPECT_EQ(lines[1]["value"]["encoding"], "base64");
    EXPECT_EQ(lines[1]["value"]["content"], "e30K");   // base64("{}\n")
    EXPECT_EQ(lines[2]["key"], "lfsFile");
    EXPECT_EQ(lines[2]["value"]["algo"], "sha256");
    EXPECT_EQ(lines[2]["value"]["oid"], std::string(64, 'a'));
    EXPECT_EQ(lines[2]["value"]["size"], 123);
    EXPECT_EQ(lines[3]["key"], "deletedFile");
    // No parent: the key is left out.
    const json h0 = json::parse(hub::encode_commit({"t", "", ""}, {}));
    EXPECT_FALSE(h0["value"].contains("parentCommit"));
}

TEST(HubEncode, BatchRequestOffersBasicAndMultipartAndRefUnlessPr) {
    const json j = json::parse(hub::encode_batch({{std::string(64, 'b'), 9}}, "dev", false));
    EXPECT_EQ(j["operation"], "upload");
    EXPECT_EQ(j["transfers"], json({"basic", "multipart"}));   // xet only when offered (--transfer)
    EXPECT_EQ(j["objects"][0]["oid"], std::string(64, 'b'));
    EXPECT_EQ(j["objects"][0]["size"], 9);
    EXPECT_EQ(j["ref"]["name"], "dev");
    EXPECT_FALSE(json::parse(hub::encode_batch({}, "main", true)).contains("ref"));
    const json c = json::parse(hub::encode_completion("abc", {"\"e1\"", "\"e2\""}));
    EXPECT_EQ(c["parts"][1]["partNumber"], 2);
    EXPECT_EQ(c["parts"][1]["etag"], "\"e2\"");
    const json p = json::parse(hub::encode_preupload({{"a.txt", 6, "hello\n"}}));
    EXPECT_EQ(p["files"][0]["sample"], "aGVsbG8K");
}

// ------------------------------------------------------------------ parsers
TEST(HubParse, BatchResponseVariants) {
    const std::string body = R"({"transfer":"multipart","objects":[
      {"oid":"o1","size":10,"authenticated":true},
      {"oid":"o2","size":5,"actions":{"upload":{"href":"http://s/put"},"verify":{"href":"http://h/verify"}}},
      {"oid":"o3","size":25,"actions":{"upload":{"href":"http://s/done","header":{"chunk_size":"10",
         "00003":"u3","00001":"u1","00002":"u2","x-other":"ignored"}}}},
      {"oid":"o4","size":1,"error":{"code":422,"message":"bad"}}]})";
    const auto a = hub::parse_batch(body);
    ASSERT_EQ(a.size(), 4u);
    EXPECT_TRUE(a[0].present);
    EXPECT_FALSE(a[1].present);
    EXPECT_EQ(a[1].upload_href, "http://s/put");
    EXPECT_EQ(a[1].verify_href, "http://h/verify");
    EXPECT_EQ(a[1].chunk_size, 0u);
    EXPECT_EQ(a[2].chunk_size, 10u);
    EXPECT_EQ(a[2].part_urls, (std::vector<std::string>{"u1", "u2", "u3"}));   // numeric order
    EXPECT_EQ(a[3].error_code, 422);
    EXPECT_EQ(a[3].error_message, "bad");
}

TEST(HubParse, BatchRejectsWrongPartCountUnknownTransferAndMalformed) {
    // ceil(25/10) = 3 parts required (huggingface_hub's lfs.py).
    EXPECT_THROW((void)hub::parse_batch(R"({"objects":[{"oid":"o","size":25,"actions":{"upload":{"href":"h","header":{"chunk_size":"10","00001":"a","00002":"b"}}}}]})"),
                 sf::core::Error);
    EXPECT_THROW((void)hub::parse_batch(R"({"transfer":"ssh","objects":[]})"), sf::core::Error);
    EXPECT_THROW((void)hub::parse_batch(R"({"objects":[{"oid":1,"size":2}]})"), sf::core::Error);
    EXPECT_THROW((void)hub::parse_batch("not json"), sf::core::Error);
    EXPECT_THROW((void)hub::parse_batch(R"({"objects":[{"oid":"o","size":-1}]})"), sf::core::Error);
    // "actions": null counts as present (never a crash).
    EXPECT_TRUE(hub::parse_batch(R"({"objects":[{"oid":"o","size":2,"actions":null}]})")[0].present);
}

// The Xet transfer (docs/xet.md "Upload"): offered in the batch call, its answer's X-Xet-* headers and the token.
TEST(HubParse, XetBatchAnswerHeadersAndToken) {
    const json j = json::parse(hub::encode_batch({{std::string(64, 'b'), 9}}, "main", false, true));
    EXPECT_EQ(j["transfers"], json({"basic", "multipart", "xet"}));
    EXPECT_EQ(json::parse(hub::encode_batch({}, "main", false))["transfers"], json({"basic", "multipart"}));
    const std::string body = R"({"transfer":"xet","objects":[{"oid":"a","size":1},
        {"oid":"b","size":2,"actions":{"upload":{"href":"http://h/api/models/o/r/xet-write-token/main",
         "header":{"X-Xet-Cas-Url":"http://cas/","X-Xet-Access-Token":"tok","X-Xet-Token-Expiration":"1900000000",
                   "X-Xet-Session-Id":"s1"}}}}]})";
    EXPECT_EQ(hub::parse_batch_transfer(body), "xet");
    EXPECT_EQ(hub::parse_batch_transfer(R"({"objects":[]})"), "basic");
    const auto a = hub::parse_batch(body);
    ASSERT_EQ(a.size(), 2u);
    EXPECT_TRUE(a[0].present);
    EXPECT_EQ(a[1].upload_href, "http://h/api/models/o/r/xet-write-token/main");
    EXPECT_EQ(a[1].chunk_size, 0u);
    EXPECT_EQ(a[1].xet_header.at("x-xet-session-id"), "s1");
    const auto t = hub::xet_token_from_headers(a[1].xet_header);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->cas_url, "http://cas");
    EXPECT_EQ(t->access_token, "tok");
    EXPECT_EQ(t->exp, 1900000000);
    EXPECT_FALSE(hub::xet_token_from_headers({{"x-xet-cas-url", "http://c"}, {"x-xet-access-token", "t"}}));
    const auto p = hub::parse_xet_token(R"({"accessToken":"jwt","casUrl":"https://cas.example/","exp":1800000000})");
    EXPECT_EQ(p.access_token, "jwt");
    EXPECT_EQ(p.cas_url, "https://cas.example");
    EXPECT_EQ(p.exp, 1800000000);
    EXPECT_THROW((void)hub::parse_xet_token(R"({"accessToken":"jwt","casUrl":"ftp://x","exp":1})"), sf::core::Error);
    EXPECT_THROW((void)hub::parse_xet_token(R"({"accessToken":"jwt"})"), sf::core::Error);
    EXPECT_EQ(hub::parse_transfer("xet"), hub::Transfer::Xet);
    EXPECT_EQ(hub::parse_transfer("lfs"), hub::Transfer::Lfs);
    EXPECT_EQ(hub::parse_transfer("auto"), hub::Transfer::Auto);
    EXPECT_FALSE(hub::parse_transfer("s3"));
}

TEST(HubParse, PreuploadAndCommit) {
    const auto p = hub::parse_preupload(R"({"files":[{"path":"a","uploadMode":"lfs","shouldIgnore":false,"oid":null},
        {"path":"b","uploadMode":"regular","shouldIgnore":true,"oid":"x"}]})");
    ASSERT_EQ(p.size(), 2u);
    EXPECT_TRUE(p[0].lfs);
    EXPECT_TRUE(p[0].remote_oid.empty());
    EXPECT_FALSE(p[1].lfs);
    EXPECT_TRUE(p[1].should_ignore);
    EXPECT_EQ(p[1].remote_oid, "x");
    EXPECT_THROW((void)hub::parse_preupload(R"({"files":[{"path":"a","uploadMode":"xet"}]})"), sf::core::Error);
    const auto c = hub::parse_commit_response(R"({"commitOid":"abc","commitUrl":"u","pullRequestUrl":"pr"})");
    EXPECT_EQ(c.commit_oid, "abc");
    EXPECT_EQ(c.pr_url, "pr");
    EXPECT_THROW((void)hub::parse_commit_response("{}"), sf::core::Error);
}

// ------------------------------------------------------------------ push helpers
TEST(HubPush, FolderListingSkipsCacheAndPartialsAndRefusesOversizedFiles) {
    const fs::path d = temp_dir("list");
    write(d / "a.json", "{}");
    write(d / "sub/b.gguf", std::string(100, 'x'));
    write(d / "c.safetensors.partial", "zz");
    write(d / ".cache/shardforge/upload-journal.jsonl", "{}");
    const auto files = hub::list_folder(d, 1000);
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0].path, "a.json");
    EXPECT_EQ(files[1].path, "sub/b.gguf");
    EXPECT_EQ(files[1].size, 100u);
    try {
        (void)hub::list_folder(d, 50);
        FAIL() << "expected the size check to refuse sub/b.gguf";
    } catch (const sf::core::Error& e) {
        EXPECT_NE(std::string(e.what()).find("sub/b.gguf"), std::string::npos);
    }
    fs::remove_all(d);
}

TEST(HubPush, UploadShareCoversEveryLfsFileOnceAndBalances) {
    hub::PushPlan p;
    const std::uint64_t sizes[] = {50, 40, 30, 20, 10, 5};
    for (int i = 0; i < 6; ++i) {
        hub::LocalFile f;
        f.path = "f" + std::to_string(i);
        f.size = sizes[i];
        p.files.push_back(f);
        p.lfs.push_back(i != 5 ? 1 : 0);   // f5 is a regular file: committed inline, never uploaded
        p.skip.push_back(0);
        p.remote_oid.emplace_back();
    }
    std::vector<int> seen(6, 0);
    std::uint64_t load[3] = {};
    for (int r = 0; r < 3; ++r)
        for (auto i : hub::upload_share(p, r, 3)) {
            ++seen[i];
            load[r] += p.files[i].size;
        }
    EXPECT_EQ(seen, (std::vector<int>{1, 1, 1, 1, 1, 0}));
    EXPECT_EQ(load[0], 50u);
    EXPECT_EQ(load[1], 50u);   // 40 + 10
    EXPECT_EQ(load[2], 50u);   // 30 + 20
    // Round trip for the broadcast.
    const auto q = hub::push_plan_from_json(hub::to_json(p));
    EXPECT_EQ(q.files.size(), 6u);
    EXPECT_EQ(q.lfs, p.lfs);
}

TEST(HubPush, JournalCachesHashesAcrossRunsAndSurvivesATornLine) {
    const fs::path d = temp_dir("journal");
    write(d / "w.bin", "hello\n");
    hub::LocalFile f;
    f.path = "w.bin";
    f.local = d / "w.bin";
    f.size = 6;
    {
        hub::Journal j(d);
        hub::hash_file(f, j);
        EXPECT_EQ(f.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        j.record_stored(f.sha256);
    }
    std::ofstream(d / ".cache/shardforge/upload-journal.jsonl", std::ios::app) << "{\"key\":\"torn";   // killed mid-line
    hub::Journal j2(d);
    EXPECT_EQ(j2.cached_sha256(f), f.sha256);
    EXPECT_TRUE(j2.stored(f.sha256));
    // A modified file (different mtime/size) is not taken from the journal.
    write(d / "w.bin", "hello!\n");
    f.size = 7;
    EXPECT_EQ(j2.cached_sha256(f), "");
    fs::remove_all(d);
}

// ------------------------------------------------------------------ model card (docs/hub.md)
TEST(HubCard, GgufQuantNamesFromFileNames) {
    EXPECT_EQ(hub::gguf_quant_from_name("Llama-3-8B-Q4_K_M.gguf"), "Q4_K_M");
    EXPECT_EQ(hub::gguf_quant_from_name("model.q8_0.gguf"), "Q8_0");
    EXPECT_EQ(hub::gguf_quant_from_name("m-IQ2_XXS-00001-of-00003.gguf"), "IQ2_XXS");
    EXPECT_EQ(hub::gguf_quant_from_name("base.BF16.gguf"), "BF16");
    EXPECT_EQ(hub::gguf_quant_from_name("model.gguf"), "");
    EXPECT_EQ(hub::gguf_quant_from_name("q4_k_m.txt"), "");
}

TEST(HubCard, LicenseFromFrontMatter) {
    EXPECT_EQ(hub::license_from_readme("---\nlanguage: en\nlicense: \"llama3.1\"\n---\n# x\n"), "llama3.1");
    EXPECT_EQ(hub::license_from_readme("# no front matter\nlicense: mit\n"), "");
}

TEST(HubCard, QuantizedGgufRepo) {
    const fs::path d = temp_dir("card_gguf");
    write(d / "m-Q4_K_M.gguf", std::string(2000, 'g'));
    write(d / "Modelfile", "FROM ./m-Q4_K_M.gguf\n");
    const auto info = hub::card_info_from_dir(d, "me/m-GGUF", {"org/base"}, "apache-2.0");
    EXPECT_EQ(info.relation, "quantized");
    EXPECT_EQ(info.library_name, "gguf");
    const std::string card = hub::make_model_card(info);
    ASSERT_EQ(card.rfind("---\n", 0), 0u);
    const std::string fm = card.substr(0, card.find("\n---\n", 3));
    for (const char* k : {"base_model: org/base", "base_model_relation: quantized", "library_name: gguf",
                          "license: apache-2.0", "pipeline_tag: text-generation", "- gguf", "- llama-cpp"})
        EXPECT_NE(fm.find(k), std::string::npos) << k << "\n" << fm;
    EXPECT_NE(card.find("| `m-Q4_K_M.gguf` | GGUF Q4_K_M | 2.0 kB |"), std::string::npos) << card;
    EXPECT_NE(card.find("llama-cli -hf me/m-GGUF:Q4_K_M"), std::string::npos);
    EXPECT_NE(card.find("ollama run hf.co/me/m-GGUF:Q4_K_M"), std::string::npos);
    fs::remove_all(d);
}

TEST(HubCard, AVisionModelsProjectorIsListedAndRunBesideTheModel) {
    const fs::path d = temp_dir("card_mmproj");
    write(d / "m.Q4_K_M.gguf", std::string(2000, 'g'));
    write(d / "mmproj-m-F16.gguf", std::string(1000, 'p'));
    write(d / "mmproj-m-F32.gguf", std::string(1000, 'p'));
    const std::string card = hub::make_model_card(hub::card_info_from_dir(d, "me/m-GGUF", {"org/base"}, ""));
    EXPECT_NE(card.find("| `mmproj-m-F16.gguf` | GGUF vision projector (mmproj F16) |"), std::string::npos) << card;
    EXPECT_NE(card.find("llama-cli -m m.Q4_K_M.gguf"), std::string::npos) << card;  // the projector is not the model
    EXPECT_NE(card.find("llama-mtmd-cli -m m.Q4_K_M.gguf --mmproj mmproj-m-F16.gguf"), std::string::npos) << card;
    fs::remove_all(d);
}

TEST(HubCard, AdapterAndMergedSafetensorsRepos) {
    const fs::path d = temp_dir("card_adapter");
    write(d / "adapter_config.json", "{}");
    write(d / "adapter_model.safetensors", "x");
    auto info = hub::card_info_from_dir(d, "me/lora", {"org/base"}, "");
    EXPECT_EQ(info.relation, "adapter");
    EXPECT_EQ(info.library_name, "peft");
    EXPECT_EQ(hub::make_model_card(info).find("license:"), std::string::npos);   // unknown: left out
    fs::remove_all(d);
    const fs::path m = temp_dir("card_merged");
    write(m / "model.safetensors", "x");
    write(m / "config.json", R"({"_name_or_path": "org/from-config"})");
    info = hub::card_info_from_dir(m, "me/merged", {}, "");
    EXPECT_EQ(info.base_models, std::vector<std::string>{"org/from-config"});
    EXPECT_EQ(info.library_name, "transformers");
    EXPECT_EQ(info.relation, "finetune");   // a LoRA merged into one base (the Hub's "merge" means 2+ models)
    info = hub::card_info_from_dir(m, "me/merged", {"a/x", "b/y"}, "");
    EXPECT_EQ(info.relation, "merge");
    fs::remove_all(m);
}

// ------------------------------------------------------------------ HF cache layout
TEST(HubCache, ResolvesRefsAndCommitShasOffline) {
    EnvGuard g;
    const fs::path d = temp_dir("cache");
    setenv("HF_HUB_CACHE", d.c_str(), 1);
    const std::string sha = "0123456789abcdef0123456789abcdef01234567";
    const fs::path repo = d / "models--org--name";
    fs::create_directories(repo / "snapshots" / sha);
    write(repo / "refs" / "main", sha);
    EXPECT_EQ(hub::resolve_cached(*hub::parse_repo_ref("org/name")), repo / "snapshots" / sha);
    EXPECT_EQ(hub::resolve_cached(*hub::parse_repo_ref("org/name@" + sha)), repo / "snapshots" / sha);
    EXPECT_THROW((void)hub::resolve_cached(*hub::parse_repo_ref("org/name@dev")), sf::core::Error);
    EXPECT_THROW((void)hub::resolve_cached(*hub::parse_repo_ref("org/other")), sf::core::Error);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", (d / "home").c_str(), 1);
    EXPECT_EQ(hub::hub_cache_dir(), d / "home" / "hub");
    fs::remove_all(d);
}

// A snapshot's symlinks are followed only into the repo's blobs/: a planted cache cannot make an export read
// (and copy into its output) another file.
TEST(HubCache, SnapshotLinksOutsideBlobsAreRefused) {
    EnvGuard g;
    const fs::path d = temp_dir("cachelinks");
    setenv("HF_HUB_CACHE", d.c_str(), 1);
    const std::string sha = "89abcdef0123456789abcdef0123456789abcdef";
    const fs::path repo = d / "models--org--name", snap = repo / "snapshots" / sha;
    fs::create_directories(snap / "sub");
    fs::create_directories(repo / "blobs");
    write(repo / "refs" / "main", sha);
    write(repo / "blobs" / "aaa", "{}");
    write(d / "secret", "x");
    fs::create_symlink(fs::path("..") / ".." / "blobs" / "aaa", snap / "config.json");
    fs::create_symlink(fs::path("..") / ".." / ".." / "blobs" / "aaa", snap / "sub" / "nested.json");
    EXPECT_EQ(hub::resolve_cached(*hub::parse_repo_ref("org/name")), snap);  // links into blobs/: accepted
    auto refused_naming = [&](const fs::path& link) {
        try {
            (void)hub::resolve_cached(*hub::parse_repo_ref("org/name"));
            ADD_FAILURE() << "accepted " << link;
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput);
            EXPECT_EQ(e.file(), link.string());
            EXPECT_NE(e.why().find("outside"), std::string::npos) << e.what();
        }
        fs::remove(link);
    };
    fs::create_symlink(d / "secret", snap / "tokenizer.json");  // absolute target
    refused_naming(snap / "tokenizer.json");
    fs::create_symlink(fs::path("..") / ".." / ".." / ".." / "secret", snap / "tokenizer.json");  // ../ out of the repo
    refused_naming(snap / "tokenizer.json");
    fs::create_symlink(fs::path("..") / ".." / ".." / ".." / ".." / "secret", snap / "sub" / "deep.json");  // nested
    refused_naming(snap / "sub" / "deep.json");
    fs::create_symlink(fs::path("..") / ".." / "refs" / "main", snap / "model.safetensors");  // the repo, not blobs/
    refused_naming(snap / "model.safetensors");
    fs::create_symlink(d / "models--org--name" / "blobs", snap / "linkdir");  // a link to blobs/ itself, not a blob
    refused_naming(snap / "linkdir");
    fs::create_symlink(snap / "loop", snap / "loop");  // a loop
    refused_naming(snap / "loop");
    // A blob that is itself a link out of the cache.
    fs::create_symlink(d / "secret", repo / "blobs" / "bbb");
    fs::create_symlink(fs::path("..") / ".." / "blobs" / "bbb", snap / "vocab.json");
    refused_naming(snap / "vocab.json");
    fs::remove_all(d);
}
