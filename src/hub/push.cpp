// Pushing an output folder (docs/hub.md): list, size check, preupload, hash (journal-cached), LFS upload
// shared between ranks, one NDJSON commit. The upload journal makes a rerun cheap: hashes are not recomputed and
// objects the Hub already has come back from the batch API without actions, so their bytes are not re-sent.
#include "push.hpp"

#include "protocol.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <numeric>

#include <fcntl.h>
#include <unistd.h>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;
using nlohmann::json;

namespace {

std::int64_t mtime_ns(const fs::path& p) {
    std::error_code ec;
    const auto t = fs::last_write_time(p, ec);
    return ec ? 0 : static_cast<std::int64_t>(t.time_since_epoch().count());
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(ErrorKind::Io, p.string(), "", "cannot read");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string read_sample(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::string s(512, '\0');
    in.read(s.data(), 512);
    s.resize(static_cast<std::size_t>(in.gcount()));
    return s;
}

}  // namespace

void check_file_sizes(const std::vector<std::pair<std::string, std::uint64_t>>& files, std::uint64_t max_file_size) {
    std::string bad;
    for (const auto& [name, size] : files)
        if (size > max_file_size) bad += core::cat(bad.empty() ? "" : ", ", name, " (", core::human_size(size), ")");
    if (!bad.empty())
        throw Error(ErrorKind::Usage, "", "",
                    core::cat("Hub per-file limit is ", core::human_size(max_file_size), "; too large: ", bad,
                              ". Split GGUF outputs with --split-max-size, safetensors with --max-shard-size"));
}

std::vector<LocalFile> list_folder(const fs::path& dir, std::uint64_t max_file_size) {
    if (!fs::is_directory(dir)) throw Error(ErrorKind::Usage, dir.string(), "", "not a directory");
    std::vector<LocalFile> out;
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
        const std::string name = it->path().filename().string();
        if (it->is_directory() && (name == ".cache" || name == ".git")) {
            it.disable_recursion_pending();
            continue;
        }
        if (!it->is_regular_file()) continue;
        if (name.size() > 8 && name.compare(name.size() - 8, 8, ".partial") == 0) continue;
        if (name.size() > 11 && name.compare(name.size() - 11, 11, ".incomplete") == 0) continue;
        if (name.rfind(".shardforge.lock", 0) == 0) continue;  // the export's output lock (docs/engine.md)
        LocalFile f;
        f.path = fs::relative(it->path(), dir).generic_string();
        f.local = it->path();
        f.size = it->file_size();
        out.push_back(std::move(f));
    }
    std::sort(out.begin(), out.end(), [](const LocalFile& a, const LocalFile& b) { return a.path < b.path; });
    std::vector<std::pair<std::string, std::uint64_t>> sizes;
    for (const auto& f : out) sizes.emplace_back(f.path, f.size);
    check_file_sizes(sizes, max_file_size);
    return out;
}

// ------------------------------------------------------------------ journal
Journal::Journal(const fs::path& dir) : file_(dir / ".cache" / "shardforge" / "upload-journal.jsonl") {
    std::ifstream in(file_);
    std::string line;
    while (std::getline(in, line)) {
        const json j = json::parse(line, nullptr, false);   // a torn last line (killed run) is skipped
        if (j.is_discarded() || !j.is_object()) continue;
        if (j.contains("key") && j.contains("sha256") && j["key"].is_string() && j["sha256"].is_string())
            sha_[j["key"].get<std::string>()] = j["sha256"].get<std::string>();
        if (j.contains("stored") && j["stored"].is_string()) stored_[j["stored"].get<std::string>()] = true;
    }
}

namespace {
std::string journal_key(const LocalFile& f) { return core::cat(f.path, "|", f.size, "|", mtime_ns(f.local)); }

void append_line(const fs::path& file, const std::string& line) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;   // the journal is an optimisation: never fail an upload for it
    const std::string l = line + "\n";
    [[maybe_unused]] const auto n = ::write(fd, l.data(), l.size());   // one write: lines from ranks don't interleave
    ::close(fd);
}
}  // namespace

std::string Journal::cached_sha256(const LocalFile& f) const {
    const auto it = sha_.find(journal_key(f));
    return it == sha_.end() ? std::string() : it->second;
}
void Journal::record_sha256(const LocalFile& f) {
    const std::string k = journal_key(f);
    sha_[k] = f.sha256;
    append_line(file_, json{{"key", k}, {"sha256", f.sha256}}.dump());
}
void Journal::record_stored(const std::string& oid) {
    stored_[oid] = true;
    append_line(file_, json{{"stored", oid}}.dump());
}
bool Journal::stored(const std::string& oid) const { return stored_.count(oid) > 0; }

void hash_file(LocalFile& f, Journal& journal) {
    f.sha256 = journal.cached_sha256(f);
    if (!f.sha256.empty()) return;
    f.sha256 = core::sha256_file_hex(f.local.string());
    journal.record_sha256(f);
}

// ------------------------------------------------------------------ push
PushPlan prepare_push(Client& client, std::vector<LocalFile> files, const PushOptions& opt) {
    PushPlan p;
    client.create_repo(opt.repo_id, opt.private_repo);
    p.parent = client.head(opt.repo_id, opt.revision);
    std::vector<PreuploadFile> pre;
    for (const auto& f : files) pre.push_back({f.path, f.size, read_sample(f.local)});
    const auto res = client.preupload(opt.repo_id, opt.revision, pre, opt.create_pr);
    if (res.size() != files.size())
        throw Error(ErrorKind::Network, "", "", core::cat("preupload answered for ", res.size(), " of ", files.size(), " files"));
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (res[i].path != files[i].path)
            throw Error(ErrorKind::Network, "", "", "preupload answered out of order ('" + res[i].path + "')");
        // Empty files always go inline (S3 refuses empty objects; the official clients do the same).
        p.lfs.push_back(res[i].lfs && files[i].size > 0 ? 1 : 0);
        p.skip.push_back(res[i].should_ignore ? 1 : 0);
        p.remote_oid.push_back(res[i].remote_oid);
    }
    p.files = std::move(files);
    return p;
}

std::string to_json(const PushPlan& p) {
    json files = json::array();
    for (std::size_t i = 0; i < p.files.size(); ++i)
        files.push_back({{"path", p.files[i].path}, {"local", p.files[i].local.string()}, {"size", p.files[i].size},
                         {"sha256", p.files[i].sha256}, {"lfs", p.lfs[i] != 0}, {"skip", p.skip[i] != 0},
                         {"remote_oid", p.remote_oid[i]}});
    return json{{"parent", p.parent}, {"files", files}}.dump();
}

PushPlan push_plan_from_json(const std::string& s) {
    const json j = json::parse(s);
    PushPlan p;
    p.parent = j.at("parent").get<std::string>();
    for (const auto& f : j.at("files")) {
        LocalFile l;
        l.path = f.at("path").get<std::string>();
        l.local = f.at("local").get<std::string>();
        l.size = f.at("size").get<std::uint64_t>();
        l.sha256 = f.at("sha256").get<std::string>();
        p.files.push_back(std::move(l));
        p.lfs.push_back(f.at("lfs").get<bool>() ? 1 : 0);
        p.skip.push_back(f.at("skip").get<bool>() ? 1 : 0);
        p.remote_oid.push_back(f.at("remote_oid").get<std::string>());
    }
    return p;
}

std::vector<std::size_t> upload_share(const PushPlan& p, int rank, int n_ranks) {
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < p.files.size(); ++i)
        if (p.lfs[i] && !p.skip[i]) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return p.files[a].size > p.files[b].size; });
    std::vector<std::uint64_t> load(static_cast<std::size_t>(std::max(1, n_ranks)), 0);
    std::vector<std::size_t> mine;
    for (const std::size_t i : idx) {
        const auto r = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        load[r] += p.files[i].size + 1;
        if (static_cast<int>(r) == rank) mine.push_back(i);
    }
    return mine;
}

void upload_files(Client& client, PushPlan& p, const std::vector<std::size_t>& which, const PushOptions& opt,
                  Journal& journal) {
    std::vector<LfsObject> objects;
    std::map<std::string, fs::path> by_oid;
    for (const std::size_t i : which) {
        hash_file(p.files[i], journal);
        if (p.files[i].sha256 == p.remote_oid[i]) continue;   // same content already at that path
        if (by_oid.emplace(p.files[i].sha256, p.files[i].local).second) objects.push_back({p.files[i].sha256, p.files[i].size});
    }
    if (objects.empty()) return;
    client.upload_objects(
        opt.repo_id, opt.revision, opt.create_pr, objects, [&](const std::string& oid) { return by_oid.at(oid); },
        [&](const std::string& oid) { journal.record_stored(oid); });
}

CommitResult commit_push(Client& client, PushPlan& p, const PushOptions& opt, Journal& journal) {
    std::vector<CommitOp> ops;
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        if (p.skip[i]) continue;
        CommitOp op;
        op.path = p.files[i].path;
        op.size = p.files[i].size;
        if (p.lfs[i]) {
            if (p.files[i].sha256.empty()) hash_file(p.files[i], journal);
            if (p.files[i].sha256 == p.remote_oid[i]) continue;
            op.lfs = true;
            op.oid = p.files[i].sha256;
        } else {
            op.content = read_all(p.files[i].local);
            if (!p.remote_oid[i].empty() && git_blob_oid(op.content) == p.remote_oid[i]) continue;
        }
        ops.push_back(std::move(op));
    }
    if (ops.empty()) {
        CommitResult r;
        r.commit_oid = p.parent;
        return r;
    }
    CommitHeader h{opt.commit_message, opt.commit_description, p.parent};
    return client.commit(opt.repo_id, opt.revision, h, ops, opt.create_pr);
}

}  // namespace shardforge::hub
