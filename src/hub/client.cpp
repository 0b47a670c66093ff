// Hub client operations (huggingface_hub's hf_api.py, _commit_api.py; http_backoff in huggingface_hub's
// utils/_http.py): retries with backoff + jitter, clear errors per status, LFS uploads (basic and multipart, parts in
// parallel on `Config::parallel` threads), the NDJSON commit with a safe parentCommit retry, and resumable downloads.
#include <shardforge/hub.hpp>

#include "http.hpp"
#include "protocol.hpp"
#include "xet.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <span>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;
using detail::Request;
using detail::Response;
using nlohmann::json;

namespace {

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double jitter() {
    thread_local std::mt19937_64 rng(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The one-line message for a failed Hub call; status-specific hints (huggingface_hub's utils/_http.py).
[[noreturn]] void fail(const Response& r, const std::string& what, const std::string& repo, const std::string& token) {
    const std::string server = r.status == 0 ? r.error : detail::error_text(r, token);
    std::string hint;
    switch (r.status) {
        case 0: hint = "network error"; break;
        case 401: hint = "HTTP 401 unauthorized: the token is invalid or missing, or repo '" + repo +
                         "' is not visible to it (set HF_TOKEN, HF_HOME/token or --token-file)"; break;
        case 403: hint = "HTTP 403 forbidden: the token has no write access to '" + repo + "'"; break;
        case 404: hint = "HTTP 404 not found: repo '" + repo + "' or the revision does not exist"; break;
        case 409: hint = "HTTP 409 conflict on '" + repo + "'"; break;
        case 412: hint = "HTTP 412: the branch moved since this upload read its head (someone else committed); "
                         "rerun to commit on the new head"; break;
        case 413: hint = "HTTP 413: request or file too large for the Hub"; break;
        case 429: hint = "HTTP 429: rate limited by the Hub; retries exhausted, try again later"; break;
        default: hint = core::cat("HTTP ", r.status); break;
    }
    throw Error(ErrorKind::Network, "", "", redact(core::cat(what, ": ", hint, " (", server, ")"), token));
}

}  // namespace

struct Client::Impl {
    struct UploadRound;
    static void xet_upload(Client& c, const std::string& repo_id, const std::string& revision, bool create_pr,
                           const std::vector<BatchAction>& actions,
                           const std::function<fs::path(const std::string&)>& file_of,
                           const std::function<void(const std::string&)>& on_stored);
    // Sends with the retry policy; returns the last response (2xx or a non-retryable / exhausted failure).
    static Response send(Client& c, const Request& req, std::atomic<std::uint64_t>* retries = nullptr) {
        for (int attempt = 0;; ++attempt) {
            Response r = detail::perform(c.cfg_, req);
            if (r.status >= 200 && r.status < 300) return r;
            const RetryDecision d = retry_decision(c.cfg_, attempt, r.status, r.headers, jitter(), now_unix());
            if (!d.retry) return r;
            if (retries) ++*retries;
            else ++c.stats_.retries;
            if (c.log_)
                c.log_(redact(core::cat("hub: ", req.method, " ", strip_query(req.url), ": ",
                                        r.status ? core::cat("HTTP ", r.status) : r.error, "; retry ", attempt + 1, "/",
                                        c.cfg_.max_retries, " in ", static_cast<int>(d.delay_s * 10) / 10.0, " s"),
                              c.cfg_.token));
            std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(d.delay_s * 1000)));
        }
    }
    static std::string strip_query(const std::string& url) { return url.substr(0, url.find('?')); }
    // One object of the LFS batch answer, for either transfer: a refused object stops the upload (one line naming
    // it); true when the Hub already has it (counted and reported through on_stored), so there is nothing to send.
    static bool already_stored(Client& c, const BatchAction& a, const std::function<void(const std::string&)>& on_stored) {
        if (a.error_code != 0) {
            std::string m = core::cat("LFS batch refused object ", a.oid, " (", a.size, " bytes): ", a.error_code, " ",
                                      a.error_message);
            for (auto& ch : m)
                if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
            throw Error(ErrorKind::Network, "", "", redact(m, c.cfg_.token));
        }
        if (!a.present) return false;
        ++c.stats_.objects_skipped;
        if (on_stored) on_stored(a.oid);
        return true;
    }

    static Request api(Client& c, const std::string& method, const std::string& path) {
        Request r;
        r.method = method;
        r.url = c.cfg_.endpoint + path;
        r.auth = true;
        return r;
    }
    static json json_or_fail(const Response& r, const std::string& what) {
        json j = json::parse(r.body, nullptr, false);
        if (j.is_discarded()) throw Error(ErrorKind::Network, "", "", what + ": the Hub answered with malformed JSON");
        return j;
    }
};

Client::Client(Config cfg, LogFn log) : cfg_(std::move(cfg)), log_(std::move(log)) {
    while (!cfg_.endpoint.empty() && cfg_.endpoint.back() == '/') cfg_.endpoint.pop_back();
    if (cfg_.parallel < 1) cfg_.parallel = 1;
}
Client::~Client() = default;

std::string Client::whoami() {
    const Response r = Impl::send(*this, Impl::api(*this, "GET", "/api/whoami-v2"));
    if (r.status != 200) fail(r, "whoami", "(whoami)", cfg_.token);
    const json j = Impl::json_or_fail(r, "whoami");
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string())
        throw Error(ErrorKind::Network, "", "", "whoami: no user name in the Hub's answer");
    return j["name"].get<std::string>();
}

std::string Client::create_repo(const std::string& repo_id, bool private_repo) {
    const auto ref = parse_repo_ref(repo_id);
    if (!ref) throw Error(ErrorKind::Usage, "", "", "repo id '" + repo_id + "' is not ORG/NAME");
    Request q = Impl::api(*this, "POST", "/api/repos/create");
    q.headers.push_back("Content-Type: application/json");
    q.body = json{{"name", ref->name}, {"organization", ref->ns}, {"type", "model"},
                  {"visibility", private_repo ? "private" : "public"}, {"private", private_repo}}
                 .dump();
    const Response r = Impl::send(*this, q);
    if (r.status == 200 || r.status == 201 || r.status == 409) {
        const json j = json::parse(r.body, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("url") && j["url"].is_string()) return j["url"].get<std::string>();
        if (r.status == 409 && r.body.find("conflicting operation") != std::string::npos) fail(r, "create repo " + repo_id, repo_id, cfg_.token);
        return cfg_.endpoint + "/" + repo_id;
    }
    fail(r, "create repo " + repo_id, repo_id, cfg_.token);
}

std::string Client::head(const std::string& repo_id, const std::string& revision) {
    const Response r = Impl::send(*this, Impl::api(*this, "GET", "/api/models/" + repo_id + "/revision/" + url_encode(revision)));
    if (r.status == 404 && r.headers.get("x-error-code") == "RevisionNotFound") return "";
    if (r.status != 200) fail(r, "read head of " + repo_id + "@" + revision, repo_id, cfg_.token);
    const json j = Impl::json_or_fail(r, "revision");
    if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string()) return "";
    return j["sha"].get<std::string>();
}

std::vector<PreuploadResult> Client::preupload(const std::string& repo_id, const std::string& revision,
                                               const std::vector<PreuploadFile>& files, bool create_pr) {
    std::vector<PreuploadResult> out;
    for (std::size_t i = 0; i < files.size(); i += 100) {
        const std::vector<PreuploadFile> chunk(files.begin() + static_cast<std::ptrdiff_t>(i),
                                               files.begin() + static_cast<std::ptrdiff_t>(std::min(files.size(), i + 100)));
        Request q = Impl::api(*this, "POST", "/api/models/" + repo_id + "/preupload/" + url_encode(revision) +
                                                 (create_pr ? "?create_pr=1" : ""));
        q.headers.push_back("Content-Type: application/json");
        q.body = encode_preupload(chunk);
        const Response r = Impl::send(*this, q);
        if (r.status != 200) fail(r, "preupload to " + repo_id, repo_id, cfg_.token);
        auto res = parse_preupload(r.body);
        out.insert(out.end(), res.begin(), res.end());
    }
    return out;
}

// ------------------------------------------------------------------ LFS upload
// One round of an LFS upload (docs/hub.md "How it works"; huggingface_hub's lfs.py): the batch call says which
// objects the Hub needs and where to put them; one task per basic object or multipart part runs on cfg.parallel
// threads, and the thread finishing an object's last part completes and verifies it. Objects whose pre-signed
// URLs expired (storage 403) come back from run() for the next round.
struct Client::Impl::UploadRound {
    struct Obj {
        BatchAction a;
        fs::path file;
        int fd = -1;
        std::vector<std::string> etags;
        std::atomic<std::size_t> left{0};
        std::atomic<bool> expired{false};
    };
    struct Task {
        Obj* o;
        std::size_t part;   // 0 = basic
    };

    Client& c;
    const std::string& repo_id;
    const std::function<void(const std::string&)>& on_stored;
    std::vector<std::unique_ptr<Obj>> objs;
    std::deque<Task> tasks;
    std::mutex mu;
    std::optional<Error> first_error;
    std::atomic<std::uint64_t> bytes{0}, parts_done{0}, retries{0}, uploaded{0};

    UploadRound(Client& client, const std::string& repo, const std::function<void(const std::string&)>& stored)
        : c(client), repo_id(repo), on_stored(stored) {}
    ~UploadRound() {
        for (auto& o : objs)
            if (o->fd >= 0) ::close(o->fd);
    }
    UploadRound(const UploadRound&) = delete;
    UploadRound& operator=(const UploadRound&) = delete;

    // 1. batch: which objects the Hub needs, and where to put them. Objects of a batch answered with the Xet
    // transfer go to `xet` (docs/xet.md "Upload"), the others are returned.
    std::vector<BatchAction> batch(const std::string& revision, bool create_pr, const std::vector<LfsObject>& todo,
                                   std::vector<BatchAction>& xet) {
        std::vector<BatchAction> actions;
        const bool offer_xet = c.cfg_.transfer != Transfer::Lfs;
        for (std::size_t i = 0; i < todo.size(); i += 100) {
            const std::vector<LfsObject> chunk(todo.begin() + static_cast<std::ptrdiff_t>(i),
                                               todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), i + 100)));
            Request q = Impl::api(c, "POST", "/" + repo_id + ".git/info/lfs/objects/batch");
            q.headers = {"Accept: application/vnd.git-lfs+json", "Content-Type: application/vnd.git-lfs+json"};
            q.body = encode_batch(chunk, revision, create_pr, offer_xet);
            const Response r = Impl::send(c, q);
            if (r.status != 200) fail(r, "LFS batch for " + repo_id, repo_id, c.cfg_.token);
            auto a = parse_batch(r.body);
            const std::string transfer = parse_batch_transfer(r.body);
            if (transfer == "xet") {
                xet.insert(xet.end(), a.begin(), a.end());
                continue;
            }
            if (c.cfg_.transfer == Transfer::Xet)
                throw Error(ErrorKind::Unsupported, "", "", "--transfer xet: the Hub answered the LFS batch for " +
                                                                repo_id + " with transfer '" + transfer + "', not Xet");
            actions.insert(actions.end(), a.begin(), a.end());
        }
        return actions;
    }

    // 2. tasks: one per basic object, one per multipart part; objects the Hub has are skipped.
    void add_tasks(std::vector<BatchAction> actions, const std::function<fs::path(const std::string&)>& file_of) {
        for (auto& a : actions) {
            if (Impl::already_stored(c, a, on_stored)) continue;
            auto o = std::make_unique<Obj>();
            o->a = std::move(a);
            o->file = file_of(o->a.oid);
            o->fd = ::open(o->file.c_str(), O_RDONLY | O_CLOEXEC);
            if (o->fd < 0) throw Error(ErrorKind::Io, o->file.string(), "", "cannot open for upload");
            if (o->a.chunk_size > 0) {
                o->etags.resize(o->a.part_urls.size());
                o->left = o->a.part_urls.size();
                for (std::size_t p = 1; p <= o->a.part_urls.size(); ++p) tasks.push_back({o.get(), p});
            } else {
                o->left = 1;
                tasks.push_back({o.get(), 0});
            }
            objs.push_back(std::move(o));
        }
    }

    // After an object's last part: the multipart completion, then verify.
    void finish(Obj& o) {
        if (o.a.chunk_size > 0) {
            Request q;
            q.method = "POST";
            q.url = o.a.upload_href;
            q.headers = {"Accept: application/vnd.git-lfs+json", "Content-Type: application/vnd.git-lfs+json"};
            q.body = encode_completion(o.a.oid, o.etags);
            const Response r = Impl::send(c, q, &retries);
            if (r.status == 403) return void(o.expired = true);
            if (r.status < 200 || r.status >= 300) fail(r, "completing multipart upload of " + o.file.string(), repo_id, c.cfg_.token);
        }
        if (!o.a.verify_href.empty()) {
            Request q;
            q.method = "POST";
            q.url = o.a.verify_href;
            q.auth = true;   // verify is a Hub URL (huggingface_hub's lfs.py)
            q.headers = {"Accept: application/vnd.git-lfs+json", "Content-Type: application/vnd.git-lfs+json"};
            q.body = json{{"oid", o.a.oid}, {"size", o.a.size}}.dump();
            const Response r = Impl::send(c, q, &retries);
            if (r.status < 200 || r.status >= 300) fail(r, "verifying upload of " + o.file.string(), repo_id, c.cfg_.token);
        }
        ++uploaded;
        if (on_stored) {
            std::lock_guard<std::mutex> lk(mu);
            on_stored(o.a.oid);
        }
    }

    // One basic object or one part: PUT to storage.
    void send_task(const Task& t) {
        Obj& o = *t.o;
        if (o.expired) return;
        Request q;
        q.method = "PUT";   // storage URLs: no Authorization header (huggingface_hub's lfs.py)
        q.fd = o.fd;
        if (t.part == 0) {
            q.url = o.a.upload_href;
            q.length = o.a.size;
        } else {
            q.url = o.a.part_urls[t.part - 1];
            q.offset = (t.part - 1) * o.a.chunk_size;
            q.length = std::min(o.a.chunk_size, o.a.size - q.offset);
        }
        const Response r = Impl::send(c, q, &retries);
        if (r.status == 403) {   // expired pre-signed URL: fresh URLs from the next batch round
            o.expired = true;
            return;
        }
        if (r.status < 200 || r.status >= 300)
            fail(r, core::cat("uploading ", o.file.string(), t.part ? core::cat(" part ", t.part) : ""), repo_id, c.cfg_.token);
        bytes += q.length;
        if (t.part > 0) {
            const std::string etag = r.headers.get("etag");
            if (etag.empty())
                throw Error(ErrorKind::Network, o.file.string(), "", core::cat("part ", t.part, ": storage returned no ETag"));
            o.etags[t.part - 1] = etag;
            ++parts_done;
        }
        if (--o.left == 0) finish(o);
    }

    void worker() {
        for (;;) {
            Task t;
            {
                std::lock_guard<std::mutex> lk(mu);
                if (tasks.empty() || first_error) return;
                t = tasks.front();
                tasks.pop_front();
            }
            if (auto e = core::capture([&] { send_task(t); })) {
                std::lock_guard<std::mutex> lk(mu);
                if (!first_error) first_error = e;
                return;
            }
        }
    }

    // 3. the tasks on cfg.parallel threads; the counters go to the client's stats. Returns the expired objects.
    std::vector<LfsObject> run() {
        std::vector<std::thread> pool;
        const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(c.cfg_.parallel), tasks.size());
        for (std::size_t i = 0; i < n; ++i) pool.emplace_back([this] { worker(); });
        for (auto& th : pool) th.join();
        std::vector<LfsObject> again;
        for (auto& o : objs) {
            ::close(o->fd);
            o->fd = -1;
            if (o->expired) again.push_back({o->a.oid, o->a.size});
        }
        c.stats_.bytes_sent += bytes.exchange(0);
        c.stats_.parts_uploaded += parts_done.exchange(0);
        c.stats_.retries += retries.exchange(0);
        c.stats_.objects_uploaded += uploaded.exchange(0);
        if (first_error) throw *first_error;
        return again;
    }
};

void Client::upload_objects(const std::string& repo_id, const std::string& revision, bool create_pr,
                            const std::vector<LfsObject>& objects, const std::function<fs::path(const std::string&)>& file_of,
                            const std::function<void(const std::string&)>& on_stored) {
    std::vector<LfsObject> todo = objects;
    for (int round = 0; !todo.empty(); ++round) {
        Impl::UploadRound r(*this, repo_id, on_stored);
        std::vector<BatchAction> xet;
        auto lfs = r.batch(revision, create_pr, todo, xet);
        if (!xet.empty()) Impl::xet_upload(*this, repo_id, revision, create_pr, xet, file_of, on_stored);
        r.add_tasks(std::move(lfs), file_of);
        std::vector<LfsObject> again = r.run();
        if (!again.empty() && round >= 2)
            throw Error(ErrorKind::Network, "", "", core::cat("storage refused ", again.size(), " object(s) with 403 even with fresh URLs"));
        if (!again.empty() && log_) log_(core::cat("hub: ", again.size(), " object(s) hit expired storage URLs; asking for new ones"));
        todo = std::move(again);
    }
}

// ------------------------------------------------------------------ Xet upload
// The objects of a batch answered with "transfer":"xet" (docs/xet.md "Upload"; @huggingface/hub's commit.ts,
// createXorbs.ts, uploadShards.ts): each file is chunked and hashed (src/hub/xet.hpp), the new chunks packed into
// xorbs, every xorb POSTed to the CAS, then one shard describing the files. The commit stays the LFS one (sha256
// oids). Objects the Hub already has come back without actions and are skipped.
namespace {

struct Fd {
    int fd = -1;
    explicit Fd(const fs::path& p) : fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (fd < 0) throw Error(ErrorKind::Io, p.string(), "", "cannot open for upload");
    }
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

void pread_all(int fd, const fs::path& p, std::uint64_t offset, std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n <= 0) throw Error(ErrorKind::Io, p.string(), "", core::cat("short read at offset ", offset + done, " (file changed?)"));
        done += static_cast<std::size_t>(n);
    }
}

core::Sha256Digest digest_of(const std::string& hex) {
    core::Sha256Digest d{};
    if (hex.size() != 64) throw Error(ErrorKind::Internal, "", "", "sha256 oid '" + hex + "' is not 64 hex digits");
    for (std::size_t i = 0; i < 32; ++i) d[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return d;
}

}  // namespace

void Client::Impl::xet_upload(Client& c, const std::string& repo_id, const std::string& revision, bool create_pr,
                              const std::vector<BatchAction>& actions,
                              const std::function<fs::path(const std::string&)>& file_of,
                              const std::function<void(const std::string&)>& on_stored) {
    std::vector<const BatchAction*> todo;
    std::string href;
    std::map<std::string, std::string> header;
    for (const auto& a : actions) {
        if (already_stored(c, a, on_stored)) continue;
        todo.push_back(&a);
        href = a.upload_href;   // per batch, not per object: the last one wins (as in commit.ts)
        header = a.xet_header;
    }
    if (todo.empty()) return;

    // The write token: from the batch headers while valid for another minute, else from the href (a Hub URL).
    const std::string token_url = !href.empty() ? href
                                                : c.cfg_.endpoint + "/api/models/" + repo_id + "/xet-write-token/" +
                                                      url_encode(revision) + (create_pr ? "?create_pr=1" : "");
    auto fresh_token = [&]() {
        Request q;
        q.url = token_url;
        q.auth = token_url.rfind(c.cfg_.endpoint + "/", 0) == 0;   // the Hub token only to the Hub
        const Response r = send(c, q);
        if (r.status != 200) fail(r, "Xet write token for " + repo_id, repo_id, c.cfg_.token);
        return parse_xet_token(r.body);
    };
    auto from_headers = xet_token_from_headers(header);
    XetToken tok = from_headers && from_headers->exp > now_unix() + 60 ? *from_headers : fresh_token();
    const auto session = header.find("x-xet-session-id");

    // One CAS POST with the token; a 401 (expired token) gets one fresh token and one more try.
    auto cas_post = [&](const std::string& path, std::string body, const std::string& what) {
        for (int attempt = 0;; ++attempt) {
            Request q;
            q.method = "POST";
            q.url = tok.cas_url + path;
            q.headers = {"Authorization: Bearer " + tok.access_token, "Content-Type: application/octet-stream"};
            if (session != header.end()) q.headers.push_back("X-Xet-Session-Id: " + session->second);
            q.body = body;
            q.low_speed_time_s = 120;
            const Response r = send(c, q);
            if (r.status == 401 && attempt == 0) {
                tok = fresh_token();
                continue;
            }
            if (r.status < 200 || r.status >= 300) fail(r, what + " (Xet CAS)", repo_id, tok.access_token);
            c.stats_.bytes_sent += body.size();
            return;
        }
    };

    // Global dedup (docs/xet.md "Deduplication"): ask the CAS about a file's first chunk, as @huggingface/hub does; a
    // hit lists the chunks of the xorb holding it as HMACs, and every chunk of the file found there is referenced,
    // not sent. A failed query only costs the dedup.
    std::set<std::string> asked;
    xet::Packer packer;
    auto dedup_query = [&](const std::vector<xet::Chunk>& chunks) {
        const std::string first = xet::to_hex(chunks.front().hash);
        if (!asked.insert(first).second) return;
        Request q;
        q.url = tok.cas_url + "/v1/chunks/default/" + first;
        q.headers = {"Authorization: Bearer " + tok.access_token};
        const Response r = send(c, q);
        if (r.status != 200) return;   // 404: unknown chunk
        const auto ans = xet::parse_dedup_shard(std::span(reinterpret_cast<const std::uint8_t*>(r.body.data()), r.body.size()));
        if (ans.key_expiry != 0 && static_cast<std::int64_t>(ans.key_expiry) < now_unix()) return;
        std::map<xet::Hash, std::pair<std::size_t, std::uint32_t>> known;   // hmac -> block, chunk index
        for (std::size_t i = 0; i < ans.blocks.size(); ++i)
            for (std::uint32_t k = 0; k < ans.blocks[i].chunk_hmacs.size(); ++k) known.emplace(ans.blocks[i].chunk_hmacs[k], std::pair{i, k});
        for (const auto& ch : chunks)
            if (const auto it = known.find(xet::hmac(ch.hash, ans.key)); it != known.end())
                packer.add_remote(ch.hash, ans.blocks[it->second.first].xorb, it->second.second);
    };

    // Chunk and hash every file (one sequential read each), then pack.
    std::vector<fs::path> paths;
    std::vector<std::unique_ptr<Fd>> fds;
    std::vector<xet::FileEntry> entries;
    std::vector<std::uint8_t> buf(4u << 20);
    for (const BatchAction* a : todo) {
        paths.push_back(file_of(a->oid));
        fds.push_back(std::make_unique<Fd>(paths.back()));
        xet::ChunkHasher hasher;   // the specification's minimum-chunk constant (docs/xet.md)
        std::uint64_t at = 0;
        for (;;) {
            const ssize_t n = ::pread(fds.back()->fd, buf.data(), buf.size(), static_cast<off_t>(at));
            if (n < 0) throw Error(ErrorKind::Io, paths.back().string(), "", "read error while chunking");
            if (n == 0) break;
            hasher.update(std::span(buf).first(static_cast<std::size_t>(n)));
            at += static_cast<std::uint64_t>(n);
        }
        if (at != a->size)
            throw Error(ErrorKind::Io, paths.back().string(), "", core::cat("has ", at, " bytes, the upload expected ", a->size, " (file changed?)"));
        const auto chunks = hasher.finish();
        if (!chunks.empty()) dedup_query(chunks);
        entries.push_back(packer.add_file(static_cast<std::uint32_t>(paths.size() - 1), chunks, digest_of(a->oid)));
        for (const auto& t : entries.back().terms)
            if (t.remote) c.stats_.bytes_deduplicated += t.unpacked_bytes;
    }
    const auto xorbs = packer.finish();
    // Every xorb before the shard that references it (the CAS checks that the xorbs exist).
    for (const auto& x : xorbs) {
        const auto bytes = xet::serialize_xorb(x, [&](const xet::ChunkSource& s, std::span<std::uint8_t> out) {
            pread_all(fds[s.file]->fd, paths[s.file], s.offset, out);
        });
        cas_post("/v1/xorbs/default/" + xet::to_hex(x.hash), std::string(bytes.begin(), bytes.end()),
                 "uploading xorb " + xet::to_hex(x.hash));
        ++c.stats_.xorbs_uploaded;
    }
    const auto shard = xet::serialize_shard(entries, xorbs, std::nullopt, packer.remote_xorbs());
    cas_post("/v1/shards", std::string(shard.begin(), shard.end()), core::cat("uploading the shard of ", todo.size(), " file(s)"));
    ++c.stats_.shards_uploaded;
    c.stats_.objects_uploaded += todo.size();
    for (const BatchAction* a : todo)
        if (on_stored) on_stored(a->oid);
}

std::vector<TreeEntry> Client::tree(const std::string& repo_id, const std::string& revision) {
    const Response r = Impl::send(*this, Impl::api(*this, "GET", "/api/models/" + repo_id + "/tree/" + url_encode(revision) + "?recursive=true"));
    if (r.status != 200) fail(r, "tree of " + repo_id, repo_id, cfg_.token);
    const json j = Impl::json_or_fail(r, "tree");
    std::vector<TreeEntry> out;
    if (!j.is_array()) return out;
    for (const auto& e : j) {
        if (!e.is_object() || e.value("type", "") != "file" || !e.contains("path") || !e["path"].is_string()) continue;
        TreeEntry t;
        t.path = e["path"].get<std::string>();
        if (e.contains("oid") && e["oid"].is_string()) t.oid = e["oid"].get<std::string>();
        if (e.contains("size") && e["size"].is_number_unsigned()) t.size = e["size"].get<std::uint64_t>();
        if (e.contains("lfs") && e["lfs"].is_object() && e["lfs"].contains("oid") && e["lfs"]["oid"].is_string())
            t.lfs_oid = e["lfs"]["oid"].get<std::string>();
        if (e.contains("xetHash") && e["xetHash"].is_string()) t.xet_hash = e["xetHash"].get<std::string>();
        out.push_back(std::move(t));
    }
    return out;
}

CommitResult Client::commit(const std::string& repo_id, const std::string& revision, const CommitHeader& header,
                            const std::vector<CommitOp>& ops, bool create_pr) {
    if (header.summary.empty()) throw Error(ErrorKind::Usage, "", "", "the commit message must not be empty");
    const std::string body = encode_commit(header, ops);
    for (int attempt = 0;; ++attempt) {
        Request q = Impl::api(*this, "POST", "/api/models/" + repo_id + "/commit/" + url_encode(revision) +
                                                 (create_pr ? "?create_pr=1" : ""));
        q.headers.push_back("Content-Type: application/x-ndjson");
        q.body = body;
        q.low_speed_time_s = 120;
        if (cfg_.commit_timeout_s > 0) q.timeout_ms = static_cast<long>(cfg_.commit_timeout_s * 1000);
        const Response r = detail::perform(cfg_, q);   // never the generic retry: a lost answer may be a done commit
        if (r.status == 200 || r.status == 201) return parse_commit_response(r.body);
        const RetryDecision d = retry_decision(cfg_, attempt, r.status, r.headers, jitter(), now_unix());
        if (!d.retry) fail(r, "commit to " + repo_id + "@" + revision, repo_id, cfg_.token);
        ++stats_.retries;
        if (log_) log_(core::cat("hub: commit: ", r.status ? core::cat("HTTP ", r.status) : r.error, "; re-reading the head before retrying"));
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(d.delay_s * 1000)));
        const std::string now_head = head(repo_id, revision);
        if (!header.parent_commit.empty() && now_head == header.parent_commit) continue;   // not applied: same parent
        // The head moved (or we had no parent): did our commit land? Compare the tree with what we sent.
        bool ours = !now_head.empty();
        if (ours) {
            std::map<std::string, TreeEntry> t;
            for (auto& e : tree(repo_id, revision)) t[e.path] = e;
            for (const auto& op : ops) {
                const auto it = t.find(op.path);
                if (op.deleted) {
                    ours = ours && it == t.end();
                } else if (it == t.end()) {
                    ours = false;
                } else if (op.lfs) {
                    ours = ours && it->second.lfs_oid == op.oid;
                } else {
                    ours = ours && it->second.size == op.content.size() &&
                           it->second.oid == git_blob_oid(op.content);
                }
            }
        }
        if (ours) {
            if (log_) log_("hub: the commit had landed before its answer was lost; not committing again");
            CommitResult res;
            res.commit_oid = now_head;
            res.commit_url = cfg_.endpoint + "/" + repo_id + "/commit/" + now_head;
            return res;
        }
        if (!header.parent_commit.empty())
            throw Error(ErrorKind::Network, "", "", "commit to " + repo_id + "@" + revision +
                                                        ": the branch moved to another commit while our commit's answer was lost; "
                                                        "not re-committing blindly (rerun to commit on the new head)");
    }
}

// ------------------------------------------------------------------ Xet download
// A file the Hub stores in Xet (docs/xet.md "Download"; @huggingface/hub's file-download-info.ts and XetBlob.ts):
// the resolve answer names its Xet hash; a read token; the CAS's reconstruction (terms = runs of chunks of xorbs,
// with the xorb byte ranges that hold them); ranged GETs of those bytes; chunks decoded and written at their file
// offsets.
namespace {

// `<url>; rel="name"` from a Link header; "" when absent.
std::string link_url(const std::string& link, const std::string& rel) {
    for (std::size_t at = 0; (at = link.find('<', at)) != std::string::npos;) {
        const std::size_t close = link.find('>', at);
        if (close == std::string::npos) break;
        const std::size_t next = link.find('<', close);
        const std::string params = link.substr(close, next == std::string::npos ? std::string::npos : next - close);
        if (params.find("rel=\"" + rel + "\"") != std::string::npos || params.find("rel=" + rel) != std::string::npos)
            return link.substr(at + 1, close - at - 1);
        at = close;
    }
    return "";
}

std::string resolve_url(const Config& cfg, const std::string& repo_id, const std::string& revision, const std::string& path) {
    std::string enc_path;
    for (std::size_t i = 0, j; i <= path.size(); i = j + 1) {
        j = std::min(path.find('/', i), path.size());
        if (i) enc_path += '/';
        enc_path += url_encode(path.substr(i, j - i));
    }
    return cfg.endpoint + "/" + repo_id + "/resolve/" + url_encode(revision) + "/" + enc_path;
}

// One term of a reconstruction and where its chunks are fetched from.
struct XetTerm {
    std::string xorb;
    std::uint32_t start = 0, end = 0;   // chunk indexes in the xorb, end exclusive
    std::uint64_t unpacked = 0;
    std::string url;                    // fetch entry covering [start, end): chunks [fetch_start, ...) at bytes
    std::uint32_t fetch_start = 0, fetch_end = 0;
    std::uint64_t byte_start = 0, byte_end = 0;   // inclusive
    [[nodiscard]] std::string entry_key() const { return core::cat(xorb, "/", fetch_start, "/", fetch_end); }
};
struct Reconstruction {
    std::uint64_t offset_into_first = 0;
    std::vector<XetTerm> terms;
};

// The v1 answer: {"offset_into_first_range", "terms": [{hash, unpacked_length, range}], "fetch_info": {xorb:
// [{range, url, url_range}]}} (chunk ranges end-exclusive, url_range end-inclusive).
Reconstruction parse_reconstruction(const std::string& body) {
    const json j = json::parse(body, nullptr, false);
    auto bad = [](const std::string& why) { return Error(ErrorKind::Network, "", "", "Xet reconstruction answer: " + why); };
    if (j.is_discarded() || !j.is_object() || !j.contains("terms") || !j["terms"].is_array()) throw bad("malformed JSON");
    // Numbers must be unsigned and in range; a missing one is 0 (as the official client reads the answer).
    auto num = [&](const json& o, const char* key, std::uint64_t max) -> std::uint64_t {
        if (!o.is_object()) throw bad(core::cat("'", key, "' is not inside an object"));
        const auto f = o.find(key);
        if (f == o.end()) return 0;
        if (!f->is_number_unsigned() || f->get<std::uint64_t>() > max)
            throw bad(core::cat("'", key, "' is not an unsigned number up to ", max));
        return f->get<std::uint64_t>();
    };
    constexpr std::uint64_t u32 = 0xFFFFFFFFu, u64 = ~std::uint64_t{0};
    Reconstruction rc;
    rc.offset_into_first = num(j, "offset_into_first_range", u64);
    const json fi = j.contains("fetch_info") && j["fetch_info"].is_object() ? j["fetch_info"] : json::object();
    for (const auto& t : j["terms"]) {
        XetTerm x;
        if (!t.is_object() || !t.contains("hash") || !t["hash"].is_string() || !t.contains("range")) throw bad("malformed term");
        x.xorb = t["hash"].get<std::string>();
        if (!xet::from_hex(x.xorb)) throw bad("term hash '" + x.xorb + "' is not a Xet hash");
        x.start = static_cast<std::uint32_t>(num(t["range"], "start", u32));
        x.end = static_cast<std::uint32_t>(num(t["range"], "end", u32));
        x.unpacked = num(t, "unpacked_length", u64);
        if (x.end <= x.start) throw bad("empty chunk range of xorb " + x.xorb);
        if (fi.contains(x.xorb) && fi[x.xorb].is_array())
            for (const auto& e : fi[x.xorb]) {
                if (!e.is_object() || !e.contains("range") || !e.contains("url_range") || !e.contains("url") || !e["url"].is_string()) continue;
                const auto s = static_cast<std::uint32_t>(num(e["range"], "start", u32));
                const auto en = static_cast<std::uint32_t>(num(e["range"], "end", u32));
                if (s > x.start || en < x.end) continue;
                x.url = e["url"].get<std::string>();
                x.fetch_start = s;
                x.fetch_end = en;
                x.byte_start = num(e["url_range"], "start", u64);
                x.byte_end = num(e["url_range"], "end", u64);
                break;
            }
        if (x.url.empty() || x.byte_end < x.byte_start) throw bad(core::cat("no fetch info for chunks ", x.start, "..", x.end, " of xorb ", x.xorb));
        // One fetch entry is a range of one xorb: at most max_xorb_chunks chunks in max_xorb_bytes (plus headers).
        if (x.fetch_end - x.fetch_start > xet::max_xorb_chunks || x.byte_end - x.byte_start >= 2 * xet::max_xorb_bytes)
            throw bad(core::cat("fetch entry of xorb ", x.xorb, " spans ", x.fetch_end - x.fetch_start, " chunks, ",
                                x.byte_end - x.byte_start + 1, " bytes: more than a xorb holds"));
        rc.terms.push_back(std::move(x));
    }
    return rc;
}

void pwrite_all(int fd, const fs::path& p, const std::uint8_t* data, std::size_t n, std::uint64_t offset) {
    for (std::size_t done = 0; done < n;) {
        const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(offset + done));
        if (w <= 0) throw Error(ErrorKind::Io, p.string(), "", core::cat("write failed at offset ", offset + done));
        done += static_cast<std::size_t>(w);
    }
}

}  // namespace

std::optional<Client::XetFile> Client::xet_file(const std::string& repo_id, const std::string& revision, const std::string& path) {
    if (cfg_.transfer == Transfer::Lfs) return std::nullopt;
    Request q;
    q.url = resolve_url(cfg_, repo_id, revision, path);
    q.auth = true;
    q.headers = {"Accept: application/vnd.xet-fileinfo+json, */*", "Range: bytes=0-0"};
    Response r = Impl::send(*this, q);
    if (r.status >= 400) fail(r, "download of " + repo_id + "/" + path, repo_id, cfg_.token);
    const std::string hash = r.headers.get("x-xet-hash");
    if (hash.empty()) return std::nullopt;
    if (!xet::from_hex(hash)) throw Error(ErrorKind::Network, "", "", "download of " + repo_id + "/" + path + ": X-Xet-Hash '" + hash + "' is not a Xet hash");
    XetFile x;
    x.hash = hash;
    const std::string size = r.headers.get("x-linked-size");
    try {
        x.size = std::stoull(size);
    } catch (...) {
        throw Error(ErrorKind::Network, "", "", "download of " + repo_id + "/" + path + ": X-Xet-Hash without a usable X-Linked-Size");
    }
    x.auth_url = link_url(r.headers.get("link"), "xet-auth");
    if (x.auth_url.empty()) x.auth_url = cfg_.endpoint + "/api/models/" + repo_id + "/xet-read-token/" + url_encode(revision);
    return x;
}

std::uint64_t Client::xet_fetch(const std::string& repo_id, const XetFile& file, int fd, const fs::path& dest,
                                std::uint64_t from, std::uint64_t to, const fs::path& journal) {
    if (from >= to) return 0;
    const bool whole = from == 0 && to == file.size;
    auto token = [&]() {
        Request q;
        q.url = file.auth_url;
        q.auth = file.auth_url.rfind(cfg_.endpoint + "/", 0) == 0;   // the Hub token only to the Hub
        const Response r = Impl::send(*this, q);
        if (r.status != 200) fail(r, "Xet read token for " + repo_id, repo_id, cfg_.token);
        return parse_xet_token(r.body);
    };
    XetToken tok = token();
    auto reconstruction = [&]() {
        for (int attempt = 0;; ++attempt) {
            Request q;
            q.url = tok.cas_url + "/v1/reconstructions/" + file.hash;
            q.headers = {"Authorization: Bearer " + tok.access_token};
            if (!whole) q.headers.push_back(core::cat("Range: bytes=", from, "-", to - 1));
            const Response r = Impl::send(*this, q);
            if (r.status == 401 && attempt == 0) {
                tok = token();
                continue;
            }
            if (r.status != 200 && r.status != 206) fail(r, "Xet reconstruction of " + dest.filename().string(), repo_id, tok.access_token);
            return parse_reconstruction(r.body);
        }
    };
    const Reconstruction rc = reconstruction();

    // Resume (whole files): the journal lists the terms already on disk with their chunks; it is kept only for the
    // same Xet hash.
    std::map<std::size_t, std::vector<xet::Chunk>> done;
    if (whole && !journal.empty()) {
        std::ifstream in(journal);
        std::string line;
        if (std::getline(in, line) && line == file.hash) {
            while (std::getline(in, line)) {
                std::istringstream ls(line);
                std::size_t idx = 0;
                std::string h;
                std::uint32_t len = 0;
                std::vector<xet::Chunk> cs;
                if (!(ls >> idx)) continue;
                bool ok = true;
                while (ls >> h >> len) {
                    const auto hh = xet::from_hex(h);
                    if (!hh) ok = false;
                    else cs.push_back({*hh, len});
                }
                if (ok && idx < rc.terms.size()) done[idx] = std::move(cs);
            }
        } else {
            std::ofstream(journal, std::ios::trunc) << file.hash << "\n";
        }
    }

    // Decoded fetch entries stay cached while a later term still needs them (a chunk can serve several terms).
    std::map<std::string, int> uses;
    for (std::size_t i = 0; i < rc.terms.size(); ++i)
        if (!done.count(i)) ++uses[rc.terms[i].entry_key()];
    std::map<std::string, xet::DecodedChunks> cache;
    auto fetch_entry = [&](XetTerm t) -> const xet::DecodedChunks& {
        const std::string key = t.entry_key();
        if (const auto it = cache.find(key); it != cache.end()) return it->second;
        const std::uint64_t want = t.byte_end - t.byte_start + 1;
        bool resigned = false;
        for (int attempt = 0;; ++attempt) {
            Request q;
            q.url = t.url;   // signed: no Authorization header
            q.headers = {core::cat("Range: bytes=", t.byte_start, "-", t.byte_end)};
            Response r = detail::perform(cfg_, q);
            if ((r.status == 206 || r.status == 200) && r.body.size() == want) {
                stats_.xet_bytes_fetched += want;
                ++stats_.xet_range_fetches;
                return cache[key] = xet::decode_chunk_records(
                           std::span(reinterpret_cast<const std::uint8_t*>(r.body.data()), r.body.size()), t.fetch_end - t.fetch_start);
            }
            if (r.status == 206 || r.status == 200) {
                r.status = 0;
                r.error = core::cat("short xorb range: ", r.body.size(), " of ", want, " bytes");
            }
            if (r.status == 403 && !resigned) {
                // The signed URL expired: a fresh reconstruction signs it again (@huggingface/hub's XetBlob.ts).
                resigned = true;
                if (log_) log_(core::cat("hub: xorb range ", t.xorb.substr(0, 12), ": HTTP 403; asking the CAS for fresh URLs"));
                for (const auto& u : reconstruction().terms)
                    if (u.entry_key() == key && u.byte_end - u.byte_start + 1 == want) t.url = u.url;
                continue;
            }
            const RetryDecision d = retry_decision(cfg_, attempt, r.status, r.headers, jitter(), now_unix());
            if (!d.retry) fail(r, "Xet xorb range of " + dest.filename().string(), repo_id, tok.access_token);
            ++stats_.retries;
            if (log_) log_(core::cat("hub: xorb range ", t.xorb.substr(0, 12), ": ", r.status ? core::cat("HTTP ", r.status) : r.error, "; retrying"));
            std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(d.delay_s * 1000)));
        }
    };

    std::vector<xet::Chunk> chunks;   // the file's chunks in order (whole files: the file hash)
    std::uint64_t pos = from;         // file offset of the next byte written
    std::uint64_t skip = rc.offset_into_first;
    for (std::size_t i = 0; i < rc.terms.size() && pos < to; ++i) {
        const XetTerm& t = rc.terms[i];
        if (const auto it = done.find(i); it != done.end()) {
            std::uint64_t n = 0;
            for (const auto& c : it->second) n += c.length;
            if (n != t.unpacked) {
                std::error_code ec;
                fs::remove(journal, ec);   // the rerun starts over
                throw Error(ErrorKind::Verify, journal.string(), "", "the resume journal disagrees with the reconstruction (removed; rerun)");
            }
            chunks.insert(chunks.end(), it->second.begin(), it->second.end());
            pos += n;
            continue;
        }
        const xet::DecodedChunks& d = fetch_entry(t);
        std::uint64_t off = 0;
        for (std::uint32_t k = 0; k < t.start - t.fetch_start; ++k) off += d.lengths[k];
        std::uint64_t n = 0;
        std::vector<xet::Chunk> term_chunks;
        for (std::uint32_t k = t.start - t.fetch_start; k < t.end - t.fetch_start; ++k) {
            const auto bytes = std::span(d.bytes).subspan(off + n, d.lengths[k]);
            term_chunks.push_back({xet::chunk_hash(bytes), d.lengths[k]});
            n += d.lengths[k];
        }
        if (n != t.unpacked)
            throw Error(ErrorKind::Verify, dest.string(), "", core::cat("Xet term of xorb ", t.xorb, " decodes to ", n, " bytes, the CAS says ", t.unpacked));
        const std::uint64_t s = std::min(skip, n);
        skip -= s;
        const std::uint64_t len = std::min(n - s, to - pos);
        pwrite_all(fd, dest, d.bytes.data() + off + s, static_cast<std::size_t>(len), pos);
        pos += len;
        chunks.insert(chunks.end(), term_chunks.begin(), term_chunks.end());
        if (--uses[t.entry_key()] == 0) cache.erase(t.entry_key());
        if (whole && !journal.empty()) {
            // Recorded once the bytes are on disk: a killed run re-fetches at most the terms in flight.
            if (::fdatasync(fd) != 0) throw Error(ErrorKind::Io, dest.string(), "", "fdatasync failed");
            std::string line = core::cat(i);
            for (const auto& c : term_chunks) line += core::cat(" ", xet::to_hex(c.hash), " ", c.length);
            std::ofstream(journal, std::ios::app) << line << "\n";
        }
    }
    if (pos != to)
        throw Error(ErrorKind::Verify, dest.string(), "", core::cat("Xet reconstruction gave ", pos - from, " bytes, expected ", to - from));
    if (whole && xet::to_hex(xet::file_hash(chunks)) != file.hash) {
        std::error_code ec;
        if (!journal.empty()) fs::remove(journal, ec);   // the rerun starts over
        throw Error(ErrorKind::Verify, dest.string(), "",
                    "the chunks fetched do not hash to the file's Xet hash " + file.hash + (journal.empty() ? "" : " (journal removed; rerun)"));
    }
    ++stats_.xet_files_downloaded;
    return to - from;
}

std::uint64_t Client::download(const std::string& repo_id, const std::string& revision, const std::string& path,
                               const fs::path& dest, const std::string& xet_hash) {
    const fs::path part = dest.string() + ".incomplete";
    const fs::path journal = dest.string() + ".incomplete.xet";
    fs::create_directories(dest.parent_path());
    std::error_code ec0;
    if (const auto xf = xet_hash.empty() ? std::nullopt : xet_file(repo_id, revision, path)) {
        // Xet: chunks written at their offsets into the partial file, finished terms in the journal, then one
        // rename (docs/xet.md "Download").
        if (!fs::exists(part)) fs::remove(journal, ec0);   // a journal without its partial file describes nothing
        const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) throw Error(ErrorKind::Io, part.string(), "", "cannot open for writing");
        try {
            if (!fs::exists(journal)) {
                if (::ftruncate(fd, 0) != 0) throw Error(ErrorKind::Io, part.string(), "", "cannot truncate");
            }
            xet_fetch(repo_id, *xf, fd, part, 0, xf->size, journal);
            if (::ftruncate(fd, static_cast<off_t>(xf->size)) != 0 || ::fsync(fd) != 0)
                throw Error(ErrorKind::Io, part.string(), "", "cannot finish the file");
        } catch (const Error& e) {
            ::close(fd);
            // A verification failure removed the journal: the partial file, written at scattered offsets, goes too
            // (a later plain download would otherwise append to it).
            if (e.kind() == ErrorKind::Verify) fs::remove(part, ec0);
            throw;
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        fs::rename(part, dest);
        fs::remove(journal, ec0);
        return xf->size;
    }
    if (fs::exists(journal)) {   // a Xet partial (written at offsets) cannot be resumed by appending
        fs::remove(part, ec0);
        fs::remove(journal, ec0);
    }
    const std::string url = resolve_url(cfg_, repo_id, revision, path);
    for (int attempt = 0;; ++attempt) {
        std::error_code ec;
        const std::uint64_t have = fs::exists(part) ? fs::file_size(part, ec) : 0;
        std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(part.c_str(), "ab"), std::fclose);
        if (!f) throw Error(ErrorKind::Io, part.string(), "", "cannot open for writing");
        Request q;
        q.url = url;
        q.auth = true;
        q.follow = true;
        q.sink = f.get();
        if (have > 0) q.headers.push_back(core::cat("Range: bytes=", have, "-"));
        // A 200 to a Range request restarts from 0: write into a fresh file then.
        Response r = detail::perform(cfg_, q);
        f.reset();
        if (r.status == 200 && have > 0) {
            // Server ignored the Range: the appended bytes follow the old ones; drop the file and start over.
            fs::remove(part, ec);
            continue;
        }
        if (r.status == 416 && have > 0) {   // already complete
            fs::rename(part, dest);
            return have;
        }
        if (r.status == 200 || r.status == 206) {
            const std::uint64_t got = fs::file_size(part, ec);
            std::string cl = r.headers.get("content-range");
            std::uint64_t total = got;
            if (const auto s = cl.rfind('/'); s != std::string::npos && cl.substr(s + 1) != "*") total = std::stoull(cl.substr(s + 1));
            if (got == total) {
                fs::rename(part, dest);
                return got;
            }
            r.status = 0;   // short body: resume
            r.error = "connection closed early";
        }
        const RetryDecision d = retry_decision(cfg_, attempt, r.status, r.headers, jitter(), now_unix());
        if (!d.retry) fail(r, "download of " + repo_id + "/" + path, repo_id, cfg_.token);
        ++stats_.retries;
        if (log_) log_(core::cat("hub: download ", path, ": ", r.status ? core::cat("HTTP ", r.status) : r.error, "; resuming"));
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(d.delay_s * 1000)));
    }
}

std::uint64_t Client::download_range(const std::string& repo_id, const std::string& revision, const std::string& path,
                                     int fd, std::uint64_t offset, std::uint64_t length, const std::string& xet_hash) {
    if (const auto xf = xet_hash.empty() ? std::nullopt : xet_file(repo_id, revision, path)) {
        // Only the terms holding [offset, offset+length) are fetched (the reconstruction's Range).
        if (offset + length > xf->size)
            throw Error(ErrorKind::Network, "", "", core::cat("download of ", repo_id, "/", path, ": range past the file's ", xf->size, " bytes"));
        return xet_fetch(repo_id, *xf, fd, path, offset, offset + length, {});
    }
    const std::string url = resolve_url(cfg_, repo_id, revision, path);
    std::uint64_t done = 0;
    for (int attempt = 0; done < length;) {
        Request q;
        q.url = url;
        q.auth = true;
        q.follow = true;
        q.sink_fd = fd;
        q.sink_offset = offset + done;
        q.headers.push_back(core::cat("Range: bytes=", offset + done, "-", offset + length - 1));
        Response r = detail::perform(cfg_, q);
        if (r.status == 206 || (r.status == 0 && r.bytes_received > 0)) {
            const std::string cr = r.headers.get("content-range");
            if (r.status == 206 && cr.rfind(core::cat("bytes ", offset + done, "-"), 0) != 0)
                throw Error(ErrorKind::Network, "", "", core::cat("download of ", repo_id, "/", path, ": unexpected Content-Range '", cr, "'"));
            done += r.bytes_received;
            if (r.bytes_received > 0) attempt = 0;   // progress: a fresh retry budget
            if (done >= length) break;
            if (r.status == 206) r.status = 0, r.error = "connection closed early";
        } else if (r.status == 200) {
            throw Error(ErrorKind::Network, "", "", core::cat("download of ", repo_id, "/", path, ": the server ignored the Range request"));
        }
        const RetryDecision d = retry_decision(cfg_, attempt++, r.status, r.headers, jitter(), now_unix());
        if (!d.retry) fail(r, "download of " + repo_id + "/" + path, repo_id, cfg_.token);
        ++stats_.retries;
        if (log_) log_(core::cat("hub: ranged download ", path, ": ", r.status ? core::cat("HTTP ", r.status) : r.error, "; resuming"));
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(d.delay_s * 1000)));
    }
    return done;
}

}  // namespace shardforge::hub
