// Pure parts of the Hub protocol (huggingface_hub's utils/_auth.py; docs/hub.md): token/endpoint discovery, retry
// policy, repo ids, JSON/NDJSON encoders and the parsers of the Hub's responses (untrusted input:
// tests/fuzz/fuzz_hub.cpp).
#include <shardforge/hub.hpp>

#include "protocol.hpp"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;
using nlohmann::json;

namespace {

std::string clean_token(std::string t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '\r' || c == '\n'; }), t.end());
    const auto b = t.find_first_not_of(" \t");
    if (b == std::string::npos) return "";
    const auto e = t.find_last_not_of(" \t");
    return t.substr(b, e - b + 1);
}

std::string read_small_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return "";
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

json parse_json(std::string_view body, const char* what) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded())
        throw Error(ErrorKind::Network, "", "", core::cat("malformed ", what, " response from the Hub (not JSON)"));
    return j;
}

[[noreturn]] void malformed(const char* what, std::string why) {
    for (auto& c : why)   // server-controlled text: keep the error on one line
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    throw Error(ErrorKind::Network, "", "", core::cat("malformed ", what, " response from the Hub: ", why));
}

}  // namespace

// ------------------------------------------------------------------ token / endpoint
std::string discover_token(const std::string& token_file, std::string* origin) {
    auto set = [&](const std::string& o) {
        if (origin) *origin = o;
    };
    if (!token_file.empty()) {
        if (!fs::exists(token_file)) throw Error(ErrorKind::Usage, token_file, "", "--token-file: no such file");
        set("--token-file");
        return clean_token(read_small_file(token_file));
    }
    for (const char* v : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
        const std::string t = clean_token(core::env(v));
        if (!t.empty()) {
            set(v);
            return t;
        }
    }
    fs::path file;
    if (!core::env("HF_TOKEN_PATH").empty()) file = core::env("HF_TOKEN_PATH");
    else if (!core::env("HF_HOME").empty()) file = fs::path(core::env("HF_HOME")) / "token";
    else if (!core::env("XDG_CACHE_HOME").empty()) file = fs::path(core::env("XDG_CACHE_HOME")) / "huggingface" / "token";
    else if (!core::env("HOME").empty()) file = fs::path(core::env("HOME")) / ".cache" / "huggingface" / "token";
    if (!file.empty()) {
        const std::string t = clean_token(read_small_file(file));
        if (!t.empty()) {
            set(file.string());
            return t;
        }
    }
    set("none");
    return "";
}

bool is_loopback_url(std::string_view url) {
    const auto p = url.find("://");
    if (p == std::string_view::npos) return false;
    std::string_view host = url.substr(p + 3);
    host = host.substr(0, host.find_first_of("/?#"));
    if (const auto at = host.rfind('@'); at != std::string_view::npos) host = host.substr(at + 1);
    if (!host.empty() && host.front() == '[') {
        const auto e = host.find(']');
        return e != std::string_view::npos && host.substr(1, e - 1) == "::1";
    }
    host = host.substr(0, host.find(':'));
    if (host == "localhost") return true;
    // 127.0.0.0/8 as a dotted quad of numbers only ("127.0.0.1.evil.com" is not loopback).
    if (host.rfind("127.", 0) != 0) return false;
    int dots = 0;
    for (const char c : host) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 3 && host.back() != '.' && host.find("..") == std::string_view::npos;
}

std::string discover_endpoint(const std::string& flag) {
    std::string e = !flag.empty() ? flag : core::env("HF_ENDPOINT");
    if (e.empty()) e = "https://huggingface.co";
    while (!e.empty() && e.back() == '/') e.pop_back();
    const std::string l = lower(e);
    if (l.rfind("https://", 0) == 0) return e;
    if (l.rfind("http://", 0) == 0) {
        if (is_loopback_url(e)) return e;
        throw Error(ErrorKind::Usage, "", "",
                    "Hub endpoint '" + e + "': plain http is accepted only for loopback hosts (test Hubs); use https");
    }
    throw Error(ErrorKind::Usage, "", "", "Hub endpoint '" + e + "' must start with https://");
}

std::string redact(std::string text, const std::string& secret) {
    if (secret.size() < 4) return text;
    for (std::size_t p = text.find(secret); p != std::string::npos; p = text.find(secret, p))
        text.replace(p, secret.size(), "hf_***");
    return text;
}

// ------------------------------------------------------------------ retry policy
std::string HttpHeaders::get(const std::string& lower_name) const {
    const auto it = h.find(lower_name);
    return it == h.end() ? std::string() : it->second;
}

std::optional<double> parse_retry_after(std::string_view v, std::int64_t now_unix) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.remove_suffix(1);
    if (v.empty()) return std::nullopt;
    if (all_digits(v)) {
        if (v.size() > 9) return std::nullopt;
        return static_cast<double>(std::stol(std::string(v)));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    char mon[4] = {};
    int d = 0, y = 0, H = 0, M = 0, S = 0;
    const std::string s(v);
    if (std::sscanf(s.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &d, mon, &y, &H, &M, &S) != 6) return std::nullopt;
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int m = -1;
    for (int i = 0; i < 12; ++i)
        if (std::string_view(mon) == months[i]) m = i;
    if (m < 0 || d < 1 || d > 31 || H > 23 || M > 59 || S > 60 || y < 1970 || y > 9999) return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = m;
    tm.tm_mday = d;
    tm.tm_hour = H;
    tm.tm_min = M;
    tm.tm_sec = S;
    const auto t = static_cast<std::int64_t>(timegm(&tm));
    return static_cast<double>(std::max<std::int64_t>(0, t - now_unix));
}

std::optional<RateLimit> parse_ratelimit(std::string_view v) {
    RateLimit rl;
    bool any = false;
    std::size_t i = 0;
    while (i < v.size()) {
        const std::size_t e = std::min(v.find(';', i), v.size());
        std::string_view item = v.substr(i, e - i);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        if (item.size() > 2 && item[1] == '=' && (item[0] == 'r' || item[0] == 't')) {
            const std::string_view num = item.substr(2);
            if (all_digits(num) && num.size() < 10) {
                if (item[0] == 'r') rl.remaining = std::stol(std::string(num));
                else rl.reset_s = static_cast<double>(std::stol(std::string(num)));
                any = true;
            }
        }
        i = e + 1;
    }
    if (!any) return std::nullopt;
    return rl;
}

RetryDecision retry_decision(const Config& cfg, int attempt, long status, const HttpHeaders& headers, double jitter01,
                             std::int64_t now_unix) {
    const bool transient = status == 0 || status == 408 || status == 429 || status == 500 || status == 502 ||
                           status == 503 || status == 504;
    if (!transient || attempt >= cfg.max_retries) return {};
    double d = std::min(cfg.backoff_base_s * std::pow(2.0, attempt), cfg.backoff_max_s);
    d *= 0.75 + 0.5 * std::clamp(jitter01, 0.0, 1.0);
    if (status == 429 || status == 503) {
        const auto rl = parse_ratelimit(headers.get("ratelimit"));
        const auto ra = parse_retry_after(headers.get("retry-after"), now_unix);
        if (rl && rl->remaining == 0 && rl->reset_s >= 0) d = rl->reset_s + 1;
        else if (ra) d = *ra + 1;
        d = std::min(d, 3600.0);
    }
    return {true, d};
}

// ------------------------------------------------------------------ repo ids
std::optional<RepoRef> parse_repo_ref(std::string_view s) {
    RepoRef r;
    if (const auto at = s.find('@'); at != std::string_view::npos) {
        r.revision = std::string(s.substr(at + 1));
        s = s.substr(0, at);
        if (r.revision.empty() || r.revision.find("..") != std::string::npos) return std::nullopt;
    }
    const auto slash = s.find('/');
    if (slash == std::string_view::npos || s.find('/', slash + 1) != std::string_view::npos) return std::nullopt;
    auto ok = [](std::string_view p) {
        return !p.empty() && p.size() <= 96 && p != "." && p != ".." && p.front() != '.' &&
               std::all_of(p.begin(), p.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
               });
    };
    r.ns = std::string(s.substr(0, slash));
    r.name = std::string(s.substr(slash + 1));
    if (!ok(r.ns) || !ok(r.name)) return std::nullopt;
    return r;
}

std::string url_encode(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// ------------------------------------------------------------------ hashing, base64
std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string git_blob_oid(std::string_view bytes) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr);
    const std::string hdr = core::cat("blob ", bytes.size());
    EVP_DigestUpdate(ctx.get(), hdr.c_str(), hdr.size() + 1);   // with the NUL
    EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx.get(), d, &len);
    return core::to_hex({d, len});
}

// ------------------------------------------------------------------ encoders / parsers
std::string encode_preupload(const std::vector<PreuploadFile>& files) {
    json arr = json::array();
    for (const auto& f : files)
        arr.push_back({{"path", f.path}, {"size", f.size}, {"sample", base64(std::string_view(f.sample).substr(0, 512))}});
    return json{{"files", arr}}.dump();
}

std::vector<PreuploadResult> parse_preupload(std::string_view body) {
    const json j = parse_json(body, "preupload");
    if (!j.is_object() || !j.contains("files") || !j["files"].is_array()) malformed("preupload", "no files array");
    std::vector<PreuploadResult> out;
    for (const auto& f : j["files"]) {
        if (!f.is_object() || !f.contains("path") || !f["path"].is_string()) malformed("preupload", "file without path");
        PreuploadResult r;
        r.path = f["path"].get<std::string>();
        if (!f.contains("uploadMode") || !f["uploadMode"].is_string()) malformed("preupload", "file without uploadMode");
        const std::string m = f["uploadMode"].get<std::string>();
        if (m != "lfs" && m != "regular") malformed("preupload", "unknown uploadMode '" + m + "'");
        r.lfs = m == "lfs";
        if (f.contains("shouldIgnore") && f["shouldIgnore"].is_boolean()) r.should_ignore = f["shouldIgnore"].get<bool>();
        if (f.contains("oid") && f["oid"].is_string()) r.remote_oid = f["oid"].get<std::string>();
        out.push_back(std::move(r));
    }
    return out;
}

std::string encode_batch(const std::vector<LfsObject>& objects, const std::string& revision, bool create_pr,
                         bool offer_xet) {
    json objs = json::array();
    for (const auto& o : objects) objs.push_back({{"oid", o.oid}, {"size", o.size}});
    json transfers = {"basic", "multipart"};
    if (offer_xet) transfers.push_back("xet");   // the official clients' order (@huggingface/hub's commit.ts)
    json j{{"operation", "upload"}, {"transfers", transfers}, {"objects", objs}, {"hash_algo", "sha256"}};
    if (!create_pr) j["ref"] = {{"name", revision.empty() ? std::string("main") : revision}};
    return j.dump();
}

std::string parse_batch_transfer(std::string_view body) {
    const json j = parse_json(body, "LFS batch");
    if (j.is_object() && j.contains("transfer") && j["transfer"].is_string()) return j["transfer"].get<std::string>();
    return "basic";
}

std::vector<BatchAction> parse_batch(std::string_view body) {
    const json j = parse_json(body, "LFS batch");
    if (!j.is_object() || !j.contains("objects") || !j["objects"].is_array()) malformed("LFS batch", "no objects array");
    bool xet = false;
    if (j.contains("transfer") && j["transfer"].is_string()) {
        const std::string t = j["transfer"].get<std::string>();
        if (t != "basic" && t != "multipart" && t != "xet")
            throw Error(ErrorKind::Unsupported, "", "", "the Hub chose LFS transfer '" + t + "', which we do not speak");
        xet = t == "xet";
    }
    std::vector<BatchAction> out;
    for (const auto& o : j["objects"]) {
        if (!o.is_object() || !o.contains("oid") || !o["oid"].is_string() || !o.contains("size") ||
            !o["size"].is_number_unsigned())
            malformed("LFS batch", "object without string oid / integer size");
        BatchAction a;
        a.oid = o["oid"].get<std::string>();
        a.size = o["size"].get<std::uint64_t>();
        if (o.contains("error") && o["error"].is_object()) {
            const auto& e = o["error"];
            a.error_code = e.contains("code") && e["code"].is_number_integer() ? e["code"].get<int>() : -1;
            a.error_message = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
            if (a.error_code == 0) a.error_code = -1;
            out.push_back(std::move(a));
            continue;
        }
        if (!o.contains("actions") || o["actions"].is_null()) {
            a.present = true;
            out.push_back(std::move(a));
            continue;
        }
        const auto& acts = o["actions"];
        if (!acts.is_object()) malformed("LFS batch", "actions is not an object");
        if (!acts.contains("upload")) {
            a.present = true;
        } else {
            const auto& up = acts["upload"];
            if (!up.is_object() || !up.contains("href") || !up["href"].is_string())
                malformed("LFS batch", "upload without href");
            a.upload_href = up["href"].get<std::string>();
            if (xet && up.contains("header") && up["header"].is_object()) {
                for (auto it = up["header"].begin(); it != up["header"].end(); ++it) {
                    std::string k = it.key();
                    for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                    if (it.value().is_string()) a.xet_header[k] = it.value().get<std::string>();
                    else if (it.value().is_number_integer()) a.xet_header[k] = std::to_string(it.value().get<std::int64_t>());
                }
            } else if (up.contains("header") && up["header"].is_object() && up["header"].contains("chunk_size")) {
                const auto& h = up["header"];
                const auto& cs = h["chunk_size"];
                const std::string s = cs.is_string()            ? cs.get<std::string>()
                                      : cs.is_number_unsigned() ? std::to_string(cs.get<std::uint64_t>())
                                                                : std::string();
                if (!all_digits(s) || s.size() > 18) malformed("LFS batch", "bad chunk_size");
                a.chunk_size = std::stoull(s);
                if (a.chunk_size == 0) malformed("LFS batch", "chunk_size 0");
                std::vector<std::pair<unsigned long, std::string>> parts;
                for (auto it = h.begin(); it != h.end(); ++it) {
                    const std::string& k = it.key();
                    if (!all_digits(k) || k.size() > 9) continue;
                    if (!it.value().is_string()) malformed("LFS batch", "part url is not a string");
                    parts.emplace_back(std::stoul(k), it.value().get<std::string>());
                }
                std::sort(parts.begin(), parts.end());
                const std::uint64_t want = (a.size + a.chunk_size - 1) / a.chunk_size;
                if (parts.size() != want)
                    malformed("LFS batch", core::cat("object ", a.oid, ": ", parts.size(), " part urls for ", want, " parts"));
                for (std::size_t i = 0; i < parts.size(); ++i) {
                    if (parts[i].first != i + 1) malformed("LFS batch", "part numbers are not 1..N");
                    a.part_urls.push_back(std::move(parts[i].second));
                }
            }
        }
        if (acts.contains("verify") && acts["verify"].is_object() && acts["verify"].contains("href") &&
            acts["verify"]["href"].is_string())
            a.verify_href = acts["verify"]["href"].get<std::string>();
        out.push_back(std::move(a));
    }
    return out;
}

std::optional<Transfer> parse_transfer(std::string_view s) {
    if (s == "auto") return Transfer::Auto;
    if (s == "lfs") return Transfer::Lfs;
    if (s == "xet") return Transfer::Xet;
    return std::nullopt;
}

XetToken parse_xet_token(std::string_view body) {
    const json j = parse_json(body, "Xet token");
    if (!j.is_object() || !j.contains("accessToken") || !j["accessToken"].is_string() || !j.contains("casUrl") ||
        !j["casUrl"].is_string() || !j.contains("exp") || !j["exp"].is_number_integer())
        malformed("Xet token", "no accessToken / casUrl / exp");
    XetToken t{j["accessToken"].get<std::string>(), j["casUrl"].get<std::string>(), j["exp"].get<std::int64_t>()};
    while (!t.cas_url.empty() && t.cas_url.back() == '/') t.cas_url.pop_back();
    if (t.cas_url.rfind("http://", 0) != 0 && t.cas_url.rfind("https://", 0) != 0)
        malformed("Xet token", "casUrl is not an http(s) URL");
    return t;
}

std::optional<XetToken> xet_token_from_headers(const std::map<std::string, std::string>& h) {
    const auto tok = h.find("x-xet-access-token"), url = h.find("x-xet-cas-url"), exp = h.find("x-xet-token-expiration");
    if (tok == h.end() || url == h.end() || exp == h.end() || !all_digits(exp->second) || exp->second.size() > 18)
        return std::nullopt;
    XetToken t{tok->second, url->second, std::stoll(exp->second)};
    while (!t.cas_url.empty() && t.cas_url.back() == '/') t.cas_url.pop_back();
    if (t.cas_url.rfind("http://", 0) != 0 && t.cas_url.rfind("https://", 0) != 0) return std::nullopt;
    return t;
}

std::string encode_commit(const CommitHeader& h, const std::vector<CommitOp>& ops) {
    json hv{{"summary", h.summary}, {"description", h.description}};
    if (!h.parent_commit.empty()) hv["parentCommit"] = h.parent_commit;
    std::string out = json{{"key", "header"}, {"value", hv}}.dump() + "\n";
    for (const auto& op : ops) {
        json line;
        if (op.deleted) {
            line = {{"key", "deletedFile"}, {"value", {{"path", op.path}}}};
        } else if (op.lfs) {
            line = {{"key", "lfsFile"},
                    {"value", {{"path", op.path}, {"algo", "sha256"}, {"oid", op.oid}, {"size", op.size}}}};
        } else {
            line = {{"key", "file"}, {"value", {{"path", op.path}, {"content", base64(op.content)}, {"encoding", "base64"}}}};
        }
        out += line.dump() + "\n";
    }
    return out;
}

CommitResult parse_commit_response(std::string_view body) {
    const json j = parse_json(body, "commit");
    if (!j.is_object() || !j.contains("commitOid") || !j["commitOid"].is_string()) malformed("commit", "no commitOid");
    CommitResult r;
    r.commit_oid = j["commitOid"].get<std::string>();
    if (j.contains("commitUrl") && j["commitUrl"].is_string()) r.commit_url = j["commitUrl"].get<std::string>();
    if (j.contains("pullRequestUrl") && j["pullRequestUrl"].is_string()) r.pr_url = j["pullRequestUrl"].get<std::string>();
    return r;
}

std::string encode_completion(const std::string& oid, const std::vector<std::string>& etags) {
    json parts = json::array();
    for (std::size_t i = 0; i < etags.size(); ++i) parts.push_back({{"partNumber", i + 1}, {"etag", etags[i]}});
    return json{{"oid", oid}, {"parts", parts}}.dump();
}

}  // namespace shardforge::hub
