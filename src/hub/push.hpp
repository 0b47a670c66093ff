// Private to src/hub (and its unit tests): the pieces a push is made of, docs/hub.md "How it works". The upload
// journal, and the push split so that ranks can share it: rank 0 prepares (create repo, read the head, preupload),
// every rank hashes and uploads its share of the LFS files, rank 0 commits once. jobs.cpp runs the collectives.
#pragma once
#include <shardforge/hub.hpp>

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace shardforge::hub {

// Upload journal, DIR/.cache/shardforge/upload-journal.jsonl (append-only JSON lines): sha256 per
// (path, size, mtime) so a rerun does not re-hash, and oids already stored on the Hub.
class Journal {
public:
    explicit Journal(const std::filesystem::path& dir);
    [[nodiscard]] std::string cached_sha256(const LocalFile& f) const;
    void record_sha256(const LocalFile& f);
    void record_stored(const std::string& oid);
    [[nodiscard]] bool stored(const std::string& oid) const;

private:
    std::filesystem::path file_;
    std::map<std::string, std::string> sha_;
    std::map<std::string, bool> stored_;
};
// Fills f.sha256 (from the journal when path/size/mtime match, else by reading the file).
void hash_file(LocalFile& f, Journal& journal);

struct PushPlan {
    std::vector<LocalFile> files;
    std::vector<char> lfs, skip;      // per file: LFS upload mode; unchanged on the Hub or .gitignored
    std::vector<std::string> remote_oid;
    std::string parent;               // branch head when prepared ("" = none)
};
[[nodiscard]] PushPlan prepare_push(Client& client, std::vector<LocalFile> files, const PushOptions& opt);
[[nodiscard]] std::string to_json(const PushPlan& p);   // rank 0 broadcasts it
[[nodiscard]] PushPlan push_plan_from_json(const std::string& s);
// Indices of the LFS files rank r of n hashes and uploads: greedy by size (largest first, to the least loaded
// rank), deterministic.
[[nodiscard]] std::vector<std::size_t> upload_share(const PushPlan& p, int rank, int n_ranks);
// Hashes (journal-cached) and uploads the given LFS files; fills their sha256.
void upload_files(Client& client, PushPlan& p, const std::vector<std::size_t>& which, const PushOptions& opt,
                  Journal& journal);
// The single commit: regular files inline, LFS files by oid (every LFS file's sha256 must be filled). Skips files
// unchanged on the Hub; no commit at all when nothing changed (result.commit_oid = the head).
CommitResult commit_push(Client& client, PushPlan& p, const PushOptions& opt, Journal& journal);

}  // namespace shardforge::hub
