// libcurl request layer (see http.hpp). Callbacks never throw: they record and hand back a status.
#include "http.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

#include <unistd.h>

#if SHARDFORGE_HAVE_CURL
#include <curl/curl.h>
#endif

namespace shardforge::hub::detail {
using core::Error;
using core::ErrorKind;

#if SHARDFORGE_HAVE_CURL
namespace {

struct Body {
    const Request* req;
    std::uint64_t pos = 0;     // within the range / in-memory body
    std::uint64_t sent = 0;
    bool io_error = false;
};
struct Sink {
    std::string* body;
    std::FILE* file;
    int fd = -1;
    std::uint64_t offset = 0, written = 0;
    CURL* handle = nullptr;   // pwrite only a 206 body (a 200 would be the whole file at the wrong offset)
    bool io_error = false;
};

extern "C" std::size_t sf_hub_read(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    auto* b = static_cast<Body*>(user);
    const Request& r = *b->req;
    const std::uint64_t total = r.fd >= 0 ? r.length : r.body.size();
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size * n, total - b->pos));
    if (want == 0) return 0;
    if (r.fd >= 0) {
        const ssize_t got = ::pread(r.fd, p, want, static_cast<off_t>(r.offset + b->pos));
        if (got <= 0) {
            b->io_error = true;
            return CURL_READFUNC_ABORT;
        }
        b->pos += static_cast<std::uint64_t>(got);
        b->sent += static_cast<std::uint64_t>(got);
        return static_cast<std::size_t>(got);
    }
    std::memcpy(p, r.body.data() + b->pos, want);
    b->pos += want;
    b->sent += want;
    return want;
}

extern "C" int sf_hub_seek(void* user, curl_off_t off, int origin) noexcept {
    auto* b = static_cast<Body*>(user);
    if (origin != SEEK_SET || off < 0) return CURL_SEEKFUNC_CANTSEEK;
    b->pos = static_cast<std::uint64_t>(off);
    return CURL_SEEKFUNC_OK;
}

extern "C" std::size_t sf_hub_write(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    auto* s = static_cast<Sink*>(user);
    try {
        if (s->fd >= 0) {
            long code = 0;
            curl_easy_getinfo(s->handle, CURLINFO_RESPONSE_CODE, &code);
            if (code != 206) {
                if (code >= 200 && code < 300) return 0;   // abort: not the range we asked for
                s->body->append(p, std::min<std::size_t>(size * n, 4096));   // an error body: keep its start
                return size * n;
            }
            const std::size_t n_bytes = size * n;
            for (std::size_t done = 0; done < n_bytes;) {
                const ssize_t w = ::pwrite(s->fd, p + done, n_bytes - done, static_cast<off_t>(s->offset + s->written));
                if (w <= 0) {
                    s->io_error = true;
                    return 0;
                }
                done += static_cast<std::size_t>(w);
                s->written += static_cast<std::uint64_t>(w);
            }
            return n_bytes;
        }
        if (s->file) {
            if (std::fwrite(p, 1, size * n, s->file) != size * n) {
                s->io_error = true;
                return 0;
            }
        } else {
            if (s->body->size() > (64u << 20)) return 0;   // API answers are small; refuse unbounded bodies
            s->body->append(p, size * n);
        }
        return size * n;
    } catch (...) {
        return 0;
    }
}

extern "C" std::size_t sf_hub_header(char* p, std::size_t size, std::size_t n, void* user) noexcept {
    auto* h = static_cast<HttpHeaders*>(user);
    try {
        std::string line(p, size * n);
        if (line.rfind("HTTP/", 0) == 0) {
            h->h.clear();   // a new response (redirect, 100-continue): keep only the last one's headers
            return size * n;
        }
        const auto c = line.find(':');
        if (c == std::string::npos) return size * n;
        std::string k = line.substr(0, c), v = line.substr(c + 1);
        for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
        while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
        h->h[k] = v;
    } catch (...) {
        return 0;
    }
    return size * n;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

Response perform(const Config& cfg, const Request& req) {
    global_init();
    Response resp;
    CURL* h = curl_easy_init();
    if (!h) throw Error(ErrorKind::Internal, "", "", "curl_easy_init failed");
    char err[CURL_ERROR_SIZE] = {};
    curl_slist* hdrs = curl_slist_append(nullptr, "Expect:");
    for (const auto& x : req.headers) hdrs = curl_slist_append(hdrs, x.c_str());
    Body body{&req};
    Sink sink{&resp.body, req.sink, req.sink_fd, req.sink_offset, 0, h};
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req.low_speed_time_s);
    if (req.timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req.timeout_ms);
    const std::string ua = std::string("shardforge/" SHARDFORGE_VERSION_STRING " (hub client; libcurl)") +
                           (cfg.user_agent_tag.empty() ? "" : " " + cfg.user_agent_tag);
    curl_easy_setopt(h, CURLOPT_USERAGENT, ua.c_str());
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!cfg.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, cfg.ca_bundle.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https,http");
#endif
    if (req.auth && !cfg.token.empty()) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, cfg.token.c_str());
    }
    if (req.follow) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    }
    const bool has_body = req.fd >= 0 || !req.body.empty() || req.method == "POST" || req.method == "PUT";
    if (has_body) {
        const std::uint64_t len = req.fd >= 0 ? req.length : req.body.size();
        curl_easy_setopt(h, CURLOPT_READFUNCTION, sf_hub_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &body);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, sf_hub_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &body);
        if (req.method == "PUT") {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(len));
        } else {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(len));
            if (req.method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
        }
    } else if (req.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sf_hub_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sf_hub_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
    const CURLcode rc = curl_easy_perform(h);
    resp.bytes_sent = body.sent;
    resp.bytes_received = sink.written;
    if (rc != CURLE_OK) {
        resp.status = 0;
        resp.error = err[0] ? err : curl_easy_strerror(rc);
        while (!resp.error.empty() && resp.error.back() == '\n') resp.error.pop_back();
        if (body.io_error) resp.error = "read error on the local file (" + resp.error + ")";
        if (sink.io_error) resp.error = "write error on the local file (" + resp.error + ")";
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (body.io_error || sink.io_error) throw Error(ErrorKind::Io, "", "", resp.error);
    return resp;
}

#else
Response perform(const Config&, const Request&) {
    throw Error(ErrorKind::Unsupported, "", "", "shardforge was built without libcurl: cannot talk to the Hub");
}
#endif

std::string error_text(const Response& r, const std::string& token) {
    std::string msg = r.headers.get("x-error-message");
    if (msg.empty()) {
        const auto j = nlohmann::json::parse(r.body, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("error")) {
            if (j["error"].is_string()) msg = j["error"].get<std::string>();
            else msg = j["error"].dump();
        }
    }
    if (msg.empty()) {
        msg = r.body.substr(0, 200);
        std::replace(msg.begin(), msg.end(), '\n', ' ');
    }
    const std::string id = r.headers.get("x-request-id");
    if (!id.empty()) msg += " (request id " + id + ")";
    for (auto& c : msg)   // server-controlled text: keep the error on one line
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    return redact(msg, token);
}

}  // namespace shardforge::hub::detail
