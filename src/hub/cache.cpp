// The Hugging Face cache layout (huggingface_hub's file_download.py conventions):
//   <cache>/models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>, refs/<rev>}
// Offline resolution of ORG/NAME[@REV] and downloads into that layout (resumable, only the files an export reads).
#include <shardforge/hub.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

namespace {

bool is_commit_sha(const std::string& s) {
    return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

fs::path repo_dir(const RepoRef& ref) { return hub_cache_dir() / ("models--" + ref.ns + "--" + ref.name); }

bool wanted(const std::string& path, bool adapter) {
    const std::string name = fs::path(path).filename().string();
    auto ends = [&](const char* suf) {
        const std::string s = suf;
        return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (path.find('/') != std::string::npos) return false;   // top-level files only
    if (adapter) return name == "adapter_config.json" || name == "adapter_model.safetensors";
    return ends(".safetensors") || name == "model.safetensors.index.json" || name == "config.json" ||
           name == "generation_config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" ||
           name == "special_tokens_map.json" || name == "tokenizer.model" || name == "chat_template.jinja" ||
           name == "chat_template.json" || name == "added_tokens.json" || name == "vocab.json" || name == "merges.txt" ||
           name == "README.md" || name == "LICENSE";
}

// A snapshot being downloaded: the revision asked for, the commit it resolved to, the repo's cache folder and the
// folder (snapshots/ or shardforge-sparse/, `kind`) receiving the links.
struct Fetch {
    std::string rev, sha;
    fs::path dir, snap;
};

Fetch begin_fetch(Client& client, const RepoRef& ref, const char* kind) {
    Fetch f;
    f.rev = ref.revision.empty() ? std::string("main") : ref.revision;
    f.sha = client.head(ref.id(), f.rev);
    if (f.sha.empty())
        throw Error(ErrorKind::Network, "", "", core::cat(ref.id(), "@", f.rev, ": revision not found on the Hub"));
    f.dir = repo_dir(ref);
    f.snap = f.dir / kind / f.sha;
    fs::create_directories(f.dir / "blobs");
    fs::create_directories(f.snap);
    return f;
}

// --include PATTERN as huggingface_hub's filter_repo_objects reads it: fnmatch over the whole repo path, where '*'
// also matches '/', and a pattern ending in '/' means everything under that folder.
bool included(const std::string& path, const std::vector<std::string>& include) {
    for (std::string p : include) {
        if (!p.empty() && p.back() == '/') p += '*';
        if (::fnmatch(p.c_str(), path.c_str(), 0) == 0) return true;
    }
    return false;
}

// The tree entries an export reads (wanted), or those matching `include` when given; BadInput when there is none.
std::vector<TreeEntry> wanted_entries(Client& client, const RepoRef& ref, const Fetch& f, bool adapter,
                                      const std::vector<std::string>& include = {}) {
    std::vector<TreeEntry> out;
    for (const auto& e : client.tree(ref.id(), f.sha))
        if (include.empty() ? wanted(e.path, adapter) : included(e.path, include)) out.push_back(e);
    if (out.empty() && !include.empty())
        throw Error(ErrorKind::BadInput, "", "", core::cat(ref.id(), "@", f.rev, ": no file on the Hub matches --include"));
    if (out.empty())
        throw Error(ErrorKind::BadInput, "", "", core::cat(ref.id(), "@", f.rev, ": no model files found on the Hub"));
    return out;
}

// Downloads `e` into blobs/<etag> unless a blob of its size is there, verifies it (size; sha256 for LFS files) and
// links snap/<path> to it.
void fetch_blob(Client& client, const RepoRef& ref, const Fetch& f, const TreeEntry& e) {
    const std::string etag = e.lfs_oid.empty() ? e.oid : e.lfs_oid;
    if (etag.empty() || etag.find('/') != std::string::npos || etag.find("..") != std::string::npos)
        throw Error(ErrorKind::Network, "", "", "tree entry " + e.path + " without a usable oid");
    const fs::path blob = f.dir / "blobs" / etag;
    std::error_code ec;
    if (!(fs::exists(blob) && fs::file_size(blob, ec) == e.size)) client.download(ref.id(), f.sha, e.path, blob, e.xet_hash);
    if (fs::file_size(blob, ec) != e.size)
        throw Error(ErrorKind::Verify, blob.string(), "",
                    core::cat("downloaded ", fs::file_size(blob, ec), " bytes, expected ", e.size));
    if (!e.lfs_oid.empty() && core::sha256_file_hex(blob.string()) != e.lfs_oid) {
        fs::remove(blob, ec);
        throw Error(ErrorKind::Verify, blob.string(), "", "sha256 does not match the Hub's LFS oid (removed; rerun)");
    }
    const fs::path link = f.snap / e.path;
    if (!fs::is_symlink(link)) {
        fs::remove(link, ec);
        fs::create_directories(link.parent_path());
        fs::path target = fs::path("..") / "..";   // snapshots/<commit>/ -> the repo folder, one more per subfolder
        for (std::size_t i = 0; i < e.path.size(); ++i)
            if (e.path[i] == '/') target /= "..";
        fs::create_symlink(target / "blobs" / etag, link);
    }
}

}  // namespace

// huggingface_hub links snapshots/<commit>/<path> to ../../blobs/<etag>. A link that resolves anywhere else
// (an absolute path, "../" out of the repo folder, another repo's blobs) would let a planted cache make an export
// read, and copy into its output, any file the user can read: refused, naming the link.
void check_snapshot_links(const fs::path& snap) {
    std::error_code ec;
    const fs::path blobs = fs::weakly_canonical(snap / ".." / ".." / "blobs", ec);
    const std::string prefix = blobs.string() + "/";
    fs::recursive_directory_iterator it(snap, fs::directory_options::none, ec), end;
    if (ec) throw Error(ErrorKind::Io, snap.string(), "", "cannot list the snapshot: " + ec.message());
    for (; it != end; it.increment(ec)) {
        if (ec) throw Error(ErrorKind::Io, snap.string(), "", "cannot list the snapshot: " + ec.message());
        const fs::path p = it->path();
        if (!fs::is_symlink(it->symlink_status(ec))) continue;
        const fs::path target = fs::weakly_canonical(p, ec);
        if (ec || target.string().rfind(prefix, 0) != 0)
            throw Error(ErrorKind::BadInput, p.string(), "",
                        core::cat("symlink in a Hugging Face cache snapshot leads to '",
                                  ec ? fs::read_symlink(p, ec).string() : target.string(), "', outside ",
                                  blobs.string(), " (refused: a snapshot links only into its repo's blobs/)"));
    }
}

fs::path hub_cache_dir() {
    if (!core::env("HF_HUB_CACHE").empty()) return core::env("HF_HUB_CACHE");
    if (!core::env("HUGGINGFACE_HUB_CACHE").empty()) return core::env("HUGGINGFACE_HUB_CACHE");
    if (!core::env("HF_HOME").empty()) return fs::path(core::env("HF_HOME")) / "hub";
    if (!core::env("XDG_CACHE_HOME").empty()) return fs::path(core::env("XDG_CACHE_HOME")) / "huggingface" / "hub";
    return fs::path(core::env("HOME")) / ".cache" / "huggingface" / "hub";
}

fs::path resolve_cached(const RepoRef& ref) {
    const fs::path dir = repo_dir(ref);
    const std::string rev = ref.revision.empty() ? std::string("main") : ref.revision;
    std::string sha;
    if (is_commit_sha(rev) && fs::is_directory(dir / "snapshots" / rev)) {
        sha = rev;
    } else {
        std::ifstream in(dir / "refs" / rev);
        std::getline(in, sha);
        while (!sha.empty() && (sha.back() == '\n' || sha.back() == '\r' || sha.back() == ' ')) sha.pop_back();
    }
    if (sha.empty() || !is_commit_sha(sha) || !fs::is_directory(dir / "snapshots" / sha))
        throw Error(ErrorKind::BadInput, dir.string(), "",
                    core::cat(ref.id(), "@", rev, " is not in the Hugging Face cache (looked for refs/", rev,
                              " and snapshots/<commit>; set HF_HOME or HF_HUB_CACHE, or pass --download)"));
    check_snapshot_links(dir / "snapshots" / sha);
    return dir / "snapshots" / sha;
}

fs::path download_snapshot(Client& client, const RepoRef& ref, bool adapter, const std::vector<std::string>& include) {
    const Fetch f = begin_fetch(client, ref, "snapshots");
    for (const auto& e : wanted_entries(client, ref, f, adapter, include)) {
        if (e.path.empty() || e.path.front() == '/' || ("/" + e.path + "/").find("/../") != std::string::npos)
            throw Error(ErrorKind::Network, "", "", "tree entry '" + e.path + "' is not a plain repo path");
        fetch_blob(client, ref, f, e);
    }
    if (!is_commit_sha(f.rev)) {
        fs::create_directories(f.dir / "refs" / fs::path(f.rev).parent_path());
        // Written aside and renamed: a reader of refs/<rev> sees the old or the new commit, never half a line.
        const fs::path ref_file = f.dir / "refs" / f.rev;
        const fs::path tmp = ref_file.string() + core::cat(".tmp.", ::getpid());
        {
            std::ofstream out(tmp);
            out << f.sha;
            out.close();
            if (!out) throw core::Error(core::ErrorKind::Io, tmp.string(), "", "cannot write the ref");
        }
        fs::rename(tmp, ref_file);
    }
    check_snapshot_links(f.snap);   // links written by others (or earlier runs) into the same snapshot folder
    return f.snap;
}

}  // namespace shardforge::hub

// ------------------------------------------------------------------ sparse snapshots (multi-rank --download)
namespace shardforge::hub {
namespace {

constexpr const char* sparse_marker = ".shardforge-source";

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

Ranges read_done(const fs::path& file) {
    Ranges r;
    std::ifstream in(file.string() + ".ranges");
    std::uint64_t o = 0, n = 0;
    while (in >> o >> n) r.emplace_back(o, n);
    return r;
}

}  // namespace

bool is_sparse_snapshot(const fs::path& dir) { return fs::exists(dir / sparse_marker); }

fs::path prepare_sparse_snapshot(Client& client, const RepoRef& ref) {
    const Fetch f = begin_fetch(client, ref, "shardforge-sparse");
    const fs::path& snap = f.snap;
    std::vector<TreeEntry> shards;
    for (const auto& e : wanted_entries(client, ref, f, false)) {
        if (e.path.size() > 12 && e.path.compare(e.path.size() - 12, 12, ".safetensors") == 0)
            shards.push_back(e);   // sparse: only the byte ranges a rank reads are fetched (below, fetch_ranges)
        else
            fetch_blob(client, ref, f, e);
    }
    {
        // Line 3 on: "<path> <xet hash>" of each Xet-stored shard, so that ranks fetch their ranges through Xet.
        std::ofstream m(snap / sparse_marker);
        m << ref.id() << "\n" << f.sha << "\n";
        for (const auto& e : shards)
            if (!e.xet_hash.empty()) m << e.path << " " << e.xet_hash << "\n";
    }
    for (const auto& e : shards) {
        const fs::path dest = snap / e.path;
        std::error_code ec;
        if (!fs::exists(dest) || fs::file_size(dest, ec) != e.size) {
            std::ofstream(dest, std::ios::binary | std::ios::app).close();
            fs::resize_file(dest, e.size);   // sparse: no block is allocated until written
        }
        // The safetensors header: 8 bytes of length, then that many bytes of JSON.
        if (e.size < 8) throw Error(ErrorKind::BadInput, e.path, "", "safetensors file shorter than its header length");
        fetch_ranges(client, dest, {{0, 8}});
        std::uint64_t hlen = 0;
        {
            std::ifstream in(dest, std::ios::binary);
            unsigned char b[8] = {};
            in.read(reinterpret_cast<char*>(b), 8);
            for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | b[i];
        }
        if (hlen > e.size - 8) throw Error(ErrorKind::BadInput, e.path, "", "safetensors header length exceeds the file");
        fetch_ranges(client, dest, {{8, hlen}});
    }
    return snap;
}

std::uint64_t fetch_ranges(Client& client, const fs::path& file, Ranges ranges) {
    std::ifstream src(file.parent_path() / sparse_marker);
    std::string repo, sha;
    std::getline(src, repo);
    std::getline(src, sha);
    if (repo.empty() || sha.empty()) throw Error(ErrorKind::Internal, file.string(), "", "not in a sparse snapshot");
    std::string xet_hash;
    for (std::string p, h; src >> p >> h;)
        if (p == file.filename().string()) xet_hash = h;
    // Merge touching/overlapping ranges, drop the ones already fetched.
    std::sort(ranges.begin(), ranges.end());
    Ranges merged;
    for (const auto& r : ranges) {
        if (r.second == 0) continue;
        if (!merged.empty() && r.first <= merged.back().first + merged.back().second)
            merged.back().second = std::max(merged.back().first + merged.back().second, r.first + r.second) - merged.back().first;
        else merged.push_back(r);
    }
    const Ranges done = read_done(file);
    auto covered = [&](const std::pair<std::uint64_t, std::uint64_t>& r) {
        for (const auto& d : done)
            if (d.first <= r.first && r.first + r.second <= d.first + d.second) return true;
        return false;
    };
    std::uint64_t got = 0;
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrorKind::Io, file.string(), "", "cannot open for writing");
    try {
        for (const auto& r : merged) {
            if (covered(r)) continue;
            got += client.download_range(repo, sha, file.filename().string(), fd, r.first, r.second, xet_hash);
            if (::fdatasync(fd) != 0) throw Error(ErrorKind::Io, file.string(), "", "fdatasync failed");
            // Recorded only once the bytes are on disk: a killed fetch re-fetches at most the range in flight.
            const std::string line = core::cat(r.first, " ", r.second, "\n");
            const int jf = ::open((file.string() + ".ranges").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (jf >= 0) {
                [[maybe_unused]] const auto w = ::write(jf, line.data(), line.size());
                ::close(jf);
            }
        }
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return got;
}

}  // namespace shardforge::hub
