// Ollama REST client (ollama's docs/api.md): blob upload by sha256, POST /api/create, POST /api/push.
// libcurl callbacks never throw: they record and hand back a status (an exception must not cross libcurl's C frames).
#include <shardforge/ollama.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#if SHARDFORGE_HAVE_CURL
#include <curl/curl.h>
#endif

namespace shardforge::ollama {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

std::string normalize_host(std::string_view host) {
    std::string h(host);
    if (h.empty()) {
        h = core::env("OLLAMA_HOST");
        if (h.empty()) h = "http://127.0.0.1:11434";
    }
    while (!h.empty() && h.back() == '/') h.pop_back();
    std::string scheme = "http://";
    if (const auto p = h.find("://"); p != std::string::npos) {
        scheme = h.substr(0, p + 3);
        h = h.substr(p + 3);
    }
    if (h.find(':') == std::string::npos || (h.front() == '[' && h.back() == ']'))
        h += scheme == "https://" ? ":443" : ":11434";
    if (h.rfind("0.0.0.0:", 0) == 0) h.replace(0, 7, "127.0.0.1");   // a listen address, not a destination
    return scheme + h;
}

std::string sha256_file(const fs::path& file) { return "sha256:" + core::sha256_file_hex(file.string()); }

#if SHARDFORGE_HAVE_CURL
namespace {

struct Response {
    long status = 0;
    std::string body;
};

// Streams NDJSON lines to the caller as they arrive; remembers the last status and any error.
struct Stream {
    std::string pending, last_status, error, raw;
    const StatusFn* on_status = nullptr;
    void line(const std::string& l) {
        if (l.find_first_not_of(" \r\t") == std::string::npos) return;
        const auto j = nlohmann::json::parse(l, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return;
        if (j.contains("error")) {
            error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
        } else if (j.contains("status") && j["status"].is_string()) {
            last_status = j["status"].get<std::string>();
            if (on_status && *on_status) (*on_status)(last_status);
        }
    }
    void feed(const char* p, std::size_t n) {
        raw.append(p, std::min<std::size_t>(n, 4096 - std::min<std::size_t>(raw.size(), 4096)));
        pending.append(p, n);
        for (std::size_t e; (e = pending.find('\n')) != std::string::npos;) {
            line(pending.substr(0, e));
            pending.erase(0, e + 1);
        }
    }
};

extern "C" std::size_t sf_ollama_write_body(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    try {
        static_cast<std::string*>(user)->append(p, size * n);
        return size * n;
    } catch (...) {
        return 0;
    }
}

extern "C" std::size_t sf_ollama_write_stream(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    try {
        static_cast<Stream*>(user)->feed(p, size * n);
        return size * n;
    } catch (...) {
        return 0;   // aborts the transfer: reported as a write error
    }
}

extern "C" std::size_t sf_ollama_read_file(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    return std::fread(p, 1, size * n, static_cast<std::FILE*>(user));
}

struct Curl {
    CURL* h;
    curl_slist* headers = nullptr;
    char err[CURL_ERROR_SIZE] = {};
    Curl() : h(curl_easy_init()) {
        if (!h) throw Error(ErrorKind::Internal, "", "", "curl_easy_init failed");
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "shardforge/" SHARDFORGE_VERSION_STRING);
        headers = curl_slist_append(headers, "Expect:");   // no 100-continue round trip for blob uploads
    }
    ~Curl() {
        curl_slist_free_all(headers);
        curl_easy_cleanup(h);
    }
    Curl(const Curl&) = delete;
    Curl& operator=(const Curl&) = delete;

    // Performs the request; throws a Network error naming `what` when the server cannot be reached.
    long perform(const std::string& what, const std::string& url) {
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        const CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
            std::string why = err[0] ? err : curl_easy_strerror(rc);
            if (rc == CURLE_COULDNT_CONNECT) why += " (is `ollama serve` running? set --ollama-host or OLLAMA_HOST)";
            throw Error(ErrorKind::Network, url, "", core::cat(what, ": ", why));
        }
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        return status;
    }
};

// Ollama reports errors as {"error": "..."}; fall back to the raw body.
std::string error_text(const std::string& body) {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string())
        return j["error"].get<std::string>();
    std::string s = body.substr(0, 300);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s.empty() ? "(empty response)" : s;
}

bool blob_exists(const std::string& host, const std::string& digest, const fs::path& file) {
    Curl c;
    curl_easy_setopt(c.h, CURLOPT_NOBODY, 1L);
    const std::string url = core::cat(host, "/api/blobs/", digest);
    const long st = c.perform(core::cat("checking blob of ", file.filename().string()), url);
    if (st == 200) return true;
    if (st == 404) return false;
    throw Error(ErrorKind::Network, url, "", core::cat("HEAD blob of ", file.string(), ": HTTP ", st));
}

void upload_blob(const std::string& host, const std::string& digest, const fs::path& file) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) throw Error(ErrorKind::Io, file.string(), "", core::cat("cannot stat: ", ec.message()));
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), std::fclose);
    if (!f) throw Error(ErrorKind::Io, file.string(), "", "cannot open for upload");
    Curl c;
    std::string body;
    c.headers = curl_slist_append(c.headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(c.h, CURLOPT_POST, 1L);
    curl_easy_setopt(c.h, CURLOPT_READFUNCTION, sf_ollama_read_file);
    curl_easy_setopt(c.h, CURLOPT_READDATA, f.get());
    curl_easy_setopt(c.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, sf_ollama_write_body);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &body);
    const std::string url = core::cat(host, "/api/blobs/", digest);
    const long st = c.perform(core::cat("uploading ", file.filename().string()), url);
    if (st != 200 && st != 201)
        throw Error(ErrorKind::Network, file.string(), "",
                    core::cat("blob upload to ", url, " failed: HTTP ", st, ": ", error_text(body)));
}

// POST a JSON body and follow the NDJSON status stream to its end; `what` names the operation in errors.
void post_stream(const std::string& host, const std::string& path, const nlohmann::json& req, const std::string& what,
                 const StatusFn& on_status) {
    Curl c;
    Stream s;
    s.on_status = &on_status;
    const std::string body = req.dump();
    c.headers = curl_slist_append(c.headers, "Content-Type: application/json");
    curl_easy_setopt(c.h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, sf_ollama_write_stream);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &s);
    const std::string url = host + path;
    const long st = c.perform(what, url);
    s.line(s.pending);
    if (st < 200 || st >= 300)
        throw Error(ErrorKind::Network, url, "",
                    core::cat(what, " failed: HTTP ", st, ": ", s.error.empty() ? error_text(s.raw) : s.error));
    if (!s.error.empty()) throw Error(ErrorKind::Network, url, "", core::cat(what, " failed: ", s.error));
    if (s.last_status != "success")
        throw Error(ErrorKind::Network, url, "",
                    core::cat(what, ": stream ended without \"success\" (last status: '", s.last_status, "')"));
}

}  // namespace

void create_model(const std::string& host_in, const std::string& name, const fs::path& dir, const Modelfile& mf,
                  const StatusFn& on_status) {
    if (name.empty()) throw Error(ErrorKind::Usage, "", "", "Ollama model name is empty");
    const std::string host = normalize_host(host_in);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    auto upload = [&](const std::string& rel) {
        const fs::path file = dir / rel;
        const std::string digest = sha256_file(file);
        if (!blob_exists(host, digest, file)) upload_blob(host, digest, file);
        return digest;
    };
    nlohmann::json req = {{"model", name}, {"stream", true}};
    nlohmann::json files = nlohmann::json::object();
    for (const auto& p : mf.parts.empty() ? std::vector<std::string>{mf.from} : mf.parts)
        files[fs::path(p).filename().string()] = upload(p);
    req["files"] = files;
    if (!mf.adapter.empty()) req["adapters"] = {{fs::path(mf.adapter).filename().string(), upload(mf.adapter)}};
    if (!mf.go_template.empty()) req["template"] = mf.go_template;
    if (!mf.stop.empty()) req["parameters"] = {{"stop", mf.stop}};
    if (!mf.system.empty()) req["system"] = mf.system;
    post_stream(host, "/api/create", req, core::cat("ollama create '", name, "'"), on_status);
}

void push_model(const std::string& host_in, const std::string& name, const StatusFn& on_status) {
    if (name.find('/') == std::string::npos)
        throw Error(ErrorKind::Usage, "", "",
                    core::cat("ollama push needs '<namespace>/<model>[:tag]', got '", name, "'"));
    const std::string host = normalize_host(host_in);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    post_stream(host, "/api/push", {{"model", name}, {"insecure", false}, {"stream", true}},
                core::cat("ollama push '", name, "'"), on_status);
}

#else   // !SHARDFORGE_HAVE_CURL

void create_model(const std::string&, const std::string&, const fs::path&, const Modelfile&, const StatusFn&) {
    throw Error(ErrorKind::Unsupported, "", "", "shardforge was built without libcurl: cannot talk to Ollama");
}
void push_model(const std::string&, const std::string&, const StatusFn&) {
    throw Error(ErrorKind::Unsupported, "", "", "shardforge was built without libcurl: cannot talk to Ollama");
}

#endif

}  // namespace shardforge::ollama
