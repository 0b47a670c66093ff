// The Hugging Face cache layout (huggingface_hub's file_download.py conventions):
//   <cache>/models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>, refs/<rev>}
// Offline resolution of ORG/NAME[@REV] and downloads into that layout (resumable, only the files an export reads).
#include <shardforge/hub.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

namespace {

std::string env(const char* n) {
    const char* v = std::getenv(n);
    return v ? std::string(v) : std::string();
}

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

}  // namespace

fs::path hub_cache_dir() {
    if (!env("HF_HUB_CACHE").empty()) return env("HF_HUB_CACHE");
    if (!env("HUGGINGFACE_HUB_CACHE").empty()) return env("HUGGINGFACE_HUB_CACHE");
    if (!env("HF_HOME").empty()) return fs::path(env("HF_HOME")) / "hub";
    if (!env("XDG_CACHE_HOME").empty()) return fs::path(env("XDG_CACHE_HOME")) / "huggingface" / "hub";
    return fs::path(env("HOME")) / ".cache" / "huggingface" / "hub";
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
    return dir / "snapshots" / sha;
}

fs::path download_snapshot(Client& client, const RepoRef& ref, bool adapter) {
    const std::string rev = ref.revision.empty() ? std::string("main") : ref.revision;
    const std::string sha = client.head(ref.id(), rev);
    if (sha.empty()) throw Error(ErrorKind::Network, "", "", core::cat(ref.id(), "@", rev, ": revision not found on the Hub"));
    const fs::path dir = repo_dir(ref);
    const fs::path snap = dir / "snapshots" / sha;
    fs::create_directories(dir / "blobs");
    fs::create_directories(snap);
    std::size_t n = 0;
    for (const auto& e : client.tree(ref.id(), sha)) {
        if (!wanted(e.path, adapter)) continue;
        ++n;
        const std::string etag = e.lfs_oid.empty() ? e.oid : e.lfs_oid;
        if (etag.empty() || etag.find('/') != std::string::npos || etag.find("..") != std::string::npos)
            throw Error(ErrorKind::Network, "", "", "tree entry " + e.path + " without a usable oid");
        const fs::path blob = dir / "blobs" / etag;
        std::error_code ec;
        if (!(fs::exists(blob) && fs::file_size(blob, ec) == e.size)) client.download(ref.id(), sha, e.path, blob);
        if (fs::file_size(blob, ec) != e.size)
            throw Error(ErrorKind::Verify, blob.string(), "", core::cat("downloaded ", fs::file_size(blob, ec), " bytes, expected ", e.size));
        if (!e.lfs_oid.empty() && sha256_file(blob) != e.lfs_oid) {
            fs::remove(blob, ec);
            throw Error(ErrorKind::Verify, blob.string(), "", "sha256 does not match the Hub's LFS oid (removed; rerun)");
        }
        const fs::path link = snap / e.path;
        if (!fs::is_symlink(link)) {
            fs::remove(link, ec);
            fs::create_symlink(fs::path("..") / ".." / "blobs" / etag, link);
        }
    }
    if (n == 0) throw Error(ErrorKind::BadInput, "", "", core::cat(ref.id(), "@", rev, ": no model files found on the Hub"));
    if (!is_commit_sha(rev)) {
        fs::create_directories(dir / "refs" / fs::path(rev).parent_path());
        std::ofstream(dir / "refs" / rev) << sha;
    }
    return snap;
}

}  // namespace shardforge::hub
