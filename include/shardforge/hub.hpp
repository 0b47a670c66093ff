// shardforge hub: our Hugging Face Hub client (libcurl), docs/hub.md. Token and endpoint discovery like the
// official clients, repo creation, preupload, Git LFS batch (basic + multipart, parts in parallel), verify, the
// NDJSON commit with a safe parentCommit retry, downloads (Range, resumable) into the HF cache layout, offline
// resolution of ORG/NAME[@REV] from that cache, and the model card. The rank collectives (`shardforge push`,
// `export --push-to-hub`, `--download`) run over a core::Comm: every rank hashes and uploads its share of the LFS
// files or fetches the tensors it reads, rank 0 commits once. Never sees MPI.
// The token is held in Config only; it never appears in an error message, log line or report.
#pragma once
#include <shardforge/comm.hpp>
#include <shardforge/core.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::plan {
struct Plan;
}

namespace shardforge::hub {

// ------------------------------------------------------------------ configuration, token, endpoint
// How LFS files' bytes travel (docs/xet.md "Upload"): auto offers Xet in the LFS batch call and follows the Hub's
// answer (Xet or basic/multipart); lfs never offers Xet; xet offers it and fails when the Hub does not pick it.
enum class Transfer { Auto, Lfs, Xet };
[[nodiscard]] std::optional<Transfer> parse_transfer(std::string_view s);

struct Config {
    std::string endpoint = "https://huggingface.co";  // no trailing '/'
    std::string token;                                // secret; empty = anonymous
    std::string ca_bundle;                            // extra CA file (TLS verification is always on)
    int max_retries = 5;                              // per request (http_backoff in huggingface_hub's utils/_http.py)
    double backoff_base_s = 1.0, backoff_max_s = 8.0;
    int parallel = 4;                                 // concurrent object/part uploads per process
    std::uint64_t max_file_size = 50'000'000'000ULL;  // per-file limit on the LFS path (docs/hub.md: stay <= 50 GB)
    double commit_timeout_s = 0;                      // > 0: give up waiting for the commit answer (then re-read the head)
    std::string user_agent_tag;                       // appended to the User-Agent (e.g. "rank/3")
    Transfer transfer = Transfer::Auto;
};

// Order of huggingface_hub's get_token(): token_file (--token-file) if given, else HF_TOKEN,
// HUGGING_FACE_HUB_TOKEN, $HF_TOKEN_PATH, ${HF_HOME:-${XDG_CACHE_HOME:-~/.cache}/huggingface}/token.
// Cleaned (CR/LF removed, trimmed); "" when none. `origin` (if given) names where it came from, never the value.
[[nodiscard]] std::string discover_token(const std::string& token_file, std::string* origin = nullptr);
// --endpoint flag > HF_ENDPOINT > https://huggingface.co. Throws Usage for plain http to a non-loopback host.
[[nodiscard]] std::string discover_endpoint(const std::string& flag);
[[nodiscard]] bool is_loopback_url(std::string_view url);
// Replaces every occurrence of the secret by "hf_***" (belt and braces for server-echoed text).
[[nodiscard]] std::string redact(std::string text, const std::string& secret);

// ------------------------------------------------------------------ repo ids and the requests' data
struct RepoRef {
    std::string ns, name, revision;  // revision "" = main
    [[nodiscard]] std::string id() const { return ns + "/" + name; }
};
// "ORG/NAME[@REV]" (strict: both parts non-empty, [A-Za-z0-9._-]); nullopt otherwise (a local path, say).
[[nodiscard]] std::optional<RepoRef> parse_repo_ref(std::string_view s);

struct PreuploadFile {
    std::string path;
    std::uint64_t size = 0;
    std::string sample;  // first <= 512 bytes (raw; base64-encoded by the encoder)
};
struct PreuploadResult {
    std::string path;
    bool lfs = false, should_ignore = false;
    std::string remote_oid;
};

struct LfsObject {
    std::string oid;  // sha256 hex
    std::uint64_t size = 0;
};

struct CommitOp {
    std::string path;
    bool lfs = false;
    std::string oid;                // lfs: sha256 hex
    std::uint64_t size = 0;
    std::string content;            // regular: raw bytes (base64 in the NDJSON)
    bool deleted = false;
};
struct CommitHeader {
    std::string summary, description, parent_commit;
};
struct CommitResult {
    std::string commit_oid, commit_url, pr_url;
};

// ------------------------------------------------------------------ client
struct TreeEntry {
    std::string path, oid, lfs_oid;  // oid: git blob oid; lfs_oid: sha256 for LFS files
    std::string xet_hash;            // Xet-stored files: their Xet file hash (the tree's xetHash), else ""
    std::uint64_t size = 0;
};
struct Stats {
    std::uint64_t bytes_sent = 0, objects_uploaded = 0, objects_skipped = 0, parts_uploaded = 0, retries = 0;
    std::uint64_t xorbs_uploaded = 0, shards_uploaded = 0;   // Xet transfers (bytes_sent counts their bodies)
    std::uint64_t bytes_deduplicated = 0;                    // Xet: file bytes the CAS already had (global dedup)
    std::uint64_t xet_files_downloaded = 0, xet_range_fetches = 0, xet_bytes_fetched = 0;   // Xet downloads
};
using LogFn = std::function<void(const std::string&)>;

class Client {
public:
    explicit Client(Config cfg, LogFn log = {});
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    [[nodiscard]] std::string whoami();                                   // user name
    std::string create_repo(const std::string& repo_id, bool private_repo);  // 409 = exists = ok; returns url
    // Branch head sha; "" if the branch (or the repo's first commit) does not exist yet.
    [[nodiscard]] std::string head(const std::string& repo_id, const std::string& revision);
    [[nodiscard]] std::vector<PreuploadResult> preupload(const std::string& repo_id, const std::string& revision,
                                                         const std::vector<PreuploadFile>& files, bool create_pr);
    // Stores the bytes of every object the Hub does not have (batch API, basic or multipart with parts in
    // parallel, then verify). `file_of(oid)` gives the local file with those bytes. Objects the Hub already has
    // are skipped (counted in stats().objects_skipped). Calls on_stored(oid) after each stored object.
    void upload_objects(const std::string& repo_id, const std::string& revision, bool create_pr,
                        const std::vector<LfsObject>& objects,
                        const std::function<std::filesystem::path(const std::string& oid)>& file_of,
                        const std::function<void(const std::string& oid)>& on_stored = {});
    // One NDJSON commit. header.parent_commit is sent when non-empty. On a lost response (transport error, 5xx)
    // it re-reads the head: moved and the tree holds our files -> success; not moved -> retry with the same
    // parent; moved otherwise -> Network error (412 semantics). Never re-commits blindly.
    CommitResult commit(const std::string& repo_id, const std::string& revision, const CommitHeader& header,
                        const std::vector<CommitOp>& ops, bool create_pr);
    [[nodiscard]] std::vector<TreeEntry> tree(const std::string& repo_id, const std::string& revision);
    // GET resolve/REV/PATH into dest (resuming dest + ".incomplete" with Range); returns the size. A Xet-stored file
    // (xet_file) comes through the Xet CAS instead, resumed from dest + ".incomplete.xet".
    // xet_hash: the tree's xetHash of the file ("" = not Xet-stored: the plain path without asking).
    std::uint64_t download(const std::string& repo_id, const std::string& revision, const std::string& path,
                           const std::filesystem::path& dest, const std::string& xet_hash = "");
    // GET resolve/REV/PATH bytes [offset, offset+length) written at `offset` of the open file `fd` (pwrite);
    // a cut transfer resumes where it stopped. Returns the bytes received.
    std::uint64_t download_range(const std::string& repo_id, const std::string& revision, const std::string& path,
                                 int fd, std::uint64_t offset, std::uint64_t length, const std::string& xet_hash = "");
    // A file the Hub stores in Xet, as its resolve answer describes it (X-Xet-Hash, X-Linked-Size, the Link to the
    // read token); nullopt for plain LFS / regular files and with Transfer::Lfs (docs/xet.md "Download").
    struct XetFile {
        std::string hash;       // Xet file hash, xet-hex
        std::uint64_t size = 0;
        std::string auth_url;   // GET -> {accessToken, casUrl, exp}
    };
    [[nodiscard]] std::optional<XetFile> xet_file(const std::string& repo_id, const std::string& revision,
                                                  const std::string& path);
    // Bytes [from, to) of a Xet file, written at their offsets of the open file `fd` (named `dest` in errors):
    // read token, reconstruction (with Range unless the whole file), ranged xorb GETs (retried), chunks decoded and
    // their lengths checked. The whole file: its chunks must hash to file.hash, and `journal` (when not empty)
    // records finished terms so that a rerun fetches only the others. Returns the bytes written.
    std::uint64_t xet_fetch(const std::string& repo_id, const XetFile& file, int fd, const std::filesystem::path& dest,
                            std::uint64_t from, std::uint64_t to, const std::filesystem::path& journal);
    [[nodiscard]] const Stats& stats() const { return stats_; }
    [[nodiscard]] const Config& config() const { return cfg_; }

private:
    struct Impl;
    Config cfg_;
    LogFn log_;
    Stats stats_;
};

// ------------------------------------------------------------------ folder push (the pieces: src/hub/push.hpp)
struct PushOptions {
    std::string repo_id, revision = "main", commit_message = "Upload model with shardforge", commit_description;
    bool private_repo = false, create_pr = false;
};
struct LocalFile {
    std::string path;                 // path in the repo ('/' separators)
    std::filesystem::path local;
    std::uint64_t size = 0;
    std::string sha256;               // filled by hash step / journal
};
// Files of an output dir to push: regular files, recursively, excluding ".cache/", ".git/", "*.partial",
// sorted by path. Throws BadInput for a file over cfg.max_file_size (name and size in the message).
[[nodiscard]] std::vector<LocalFile> list_folder(const std::filesystem::path& dir, std::uint64_t max_file_size);
// Refuses (Usage) any (name, size) over the limit: called at planning time for exports with --push-to-hub.
void check_file_sizes(const std::vector<std::pair<std::string, std::uint64_t>>& files, std::uint64_t max_file_size);

// ------------------------------------------------------------------ model card
struct CardInfo {
    std::string repo_id;
    std::vector<std::string> base_models;   // hub ids; 2+ = merge
    std::string relation;                   // adapter | merge | quantized | finetune | "" (omitted)
    std::string license, pipeline_tag = "text-generation", library_name;
    std::vector<std::string> tags;
    struct File {
        std::string path;
        std::uint64_t size = 0;
    };
    std::vector<File> files;
    bool has_modelfile = false;
};
// Fills repo_id-independent facts from an output dir: files+sizes, GGUF/safetensors/adapter kinds, relation,
// library_name, tags (gguf, llama-cpp, quantized, lora, peft, shardforge), license/base from config.json and
// a base README front matter when given.
[[nodiscard]] CardInfo card_info_from_dir(const std::filesystem::path& dir, const std::string& repo_id,
                                          const std::vector<std::string>& base_models, const std::string& license);
[[nodiscard]] std::string make_model_card(const CardInfo& info);
// GGUF quant type named in a llama.cpp-style file name ("model-Q4_K_M.gguf" -> "Q4_K_M"); "" if none.
[[nodiscard]] std::string gguf_quant_from_name(std::string_view file_name);
// `license:` of a README's YAML front matter; "" if none.
[[nodiscard]] std::string license_from_readme(std::string_view readme);

// ------------------------------------------------------------------ HF cache (offline) and downloads
// HF_HUB_CACHE, else $HF_HOME/hub, else ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub.
[[nodiscard]] std::filesystem::path hub_cache_dir();
// models--ORG--NAME/snapshots/<sha> for ref.revision (a commit sha, or a ref name read from refs/<name>;
// default "main"). Throws BadInput naming the cache path when it is not in the cache, or naming a symlink of the
// snapshot that leads outside the repo's blobs/ (check_snapshot_links).
[[nodiscard]] std::filesystem::path resolve_cached(const RepoRef& ref);
// Every symlink under `snap` (snapshots/<commit>, at any depth) must resolve into <snap>/../../blobs/; BadInput
// naming the first that does not (absolute targets, "../" out of the repo folder, dangling chains, loops).
void check_snapshot_links(const std::filesystem::path& snap);
// Downloads what an export reads (config/tokenizer/generation JSONs, tokenizer.model, *.safetensors and the
// index; for adapters adapter_config.json + adapter_model.safetensors) into the cache layout
// (blobs/<sha256>, snapshots/<commit>/<path> symlinks, refs/<rev>) and returns the snapshot dir. Files already
// complete are skipped; partial ones resume with Range.
// With `include` (shardforge download --include): the files whose repo path matches one of the fnmatch patterns
// instead, at any depth ('*' matches '/' too; "dir/" = everything under dir).
[[nodiscard]] std::filesystem::path download_snapshot(Client& client, const RepoRef& ref, bool adapter,
                                                      const std::vector<std::string>& include = {});

// Multi-rank --download without the whole base on any node: a sparse snapshot,
// <repo cache>/shardforge-sparse/<commit>/, holds the small files (symlinks to complete cache blobs) and every
// *.safetensors as a sparse file of its full size in which only the header is fetched (enough to plan). Each
// rank then fetches the byte ranges of the tensors its share of the plan reads (fetch_ranges). Fetched ranges are
// recorded in FILE.ranges, so an interrupted fetch resumes without re-downloading completed ranges.
[[nodiscard]] std::filesystem::path prepare_sparse_snapshot(Client& client, const RepoRef& ref);
[[nodiscard]] bool is_sparse_snapshot(const std::filesystem::path& dir);
// Fetches the [offset, offset+length) ranges of `file` (in a sparse snapshot) not fetched yet; returns bytes fetched.
std::uint64_t fetch_ranges(Client& client, const std::filesystem::path& file,
                           std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges);

// ------------------------------------------------------------------ collective jobs (src/hub/jobs.cpp, overlap.cpp)
// Every function below is collective over `comm` (docs/hub.md "How it works"); an error on any rank is thrown on
// every rank (core::agree_on_error), so no rank waits in a collective for one that stopped.

// The Hub options of `push` and `export` (docs/hub.md "Usage"). The token is never an option: discover_token.
struct JobOptions {
    std::string endpoint, token_file, ca_bundle, revision = "main";
    std::string transfer = "auto";          // --transfer lfs|xet|auto (parse_transfer)
    std::string commit_message = "Upload model with shardforge", commit_description;
    bool private_repo = false, create_pr = false, download = false, no_card = false;
    int parallel = 4;
    std::vector<std::string> base_models;   // model card base_model (default: --base when it is a repo id)
    std::string license;                    // model card license (default: the base's README front matter)
    std::string base_dir;                   // resolved base directory (license lookup)
    bool sparse_base = false;               // base is a sparse snapshot: ranks fetch their ranges (fetch_rank_inputs)
    std::vector<std::string> include;       // `download --include`: fnmatch patterns of the files to fetch
};

// A --base / --adapter argument: an existing local path is returned as is; ORG/NAME[@REV] (with an optional
// ":WEIGHT" suffix for adapters, kept) resolves to a snapshot directory in the HF cache, downloaded first by
// rank 0 with o.download (several ranks: the base as a sparse snapshot, o.sparse_base). A base also becomes the
// card's base model and o.base_dir. Collective.
[[nodiscard]] std::string resolve_model_arg(const std::string& arg, bool adapter, JobOptions& o, core::Comm& comm);

// `shardforge download ORG/NAME[@REV]`: rank 0 fetches what an export reads (download_snapshot; adapter: the adapter
// files) into the HF cache, resuming partial files; returns the snapshot directory on every rank. The stage step of
// a stage / convert / publish chain (docs/slurm.md): the export then reads it offline. Collective; Usage when the
// argument is not ORG/NAME[@REV].
[[nodiscard]] std::string run_download(const std::string& spec, bool adapter, const JobOptions& o, core::Comm& comm);

// HF_HUB_OFFLINE set to 1 / true / yes / on (as huggingface_hub reads it): the Hub must not be contacted.
[[nodiscard]] bool hub_offline();

// Collective, after the plan is known on every rank: with a sparse base (multi-rank --download), each rank fetches
// the byte ranges of the source tensors of its work units (plan::assign_units), nothing else.
void fetch_rank_inputs(const plan::Plan& p, const JobOptions& o, core::Comm& comm);

// Planning-time check of --push-to-hub: no output file over the Hub's per-file limit (Usage).
void check_plan_for_hub(const plan::Plan& p, const JobOptions& o);

// `shardforge push DIR` and the commit of `export --push-to-hub`: rank 0 writes the model card (unless o.no_card
// or a README.md exists) and prepares the push (repo, head, preupload), every rank hashes and uploads its share of
// the LFS files, rank 0 makes the one commit. Collective. Usage when repo_id is not ORG/NAME.
void run_push(const std::string& dir, const std::string& repo_id, JobOptions o, core::Comm& comm);

// export --push-to-hub with the upload overlapping the export (docs/hub.md "How it works"). The constructor
// (collective) makes rank 0 create the repo (a bad token or a missing permission fails before any compute) and
// starts one upload thread per rank. exec hashes each tensor file on its owner rank while it is written
// (exec::RunOptions::hash_outputs) and calls file_hashed() once it is complete: the owner records the sha256 in
// the upload journal (so the final push never re-reads the file), hard-links the partial under
// OUT/.cache/shardforge/upload/ (the link survives the rename to the final name) and its upload thread sends it
// (preupload, LFS batch, basic or multipart parts) while the rank goes on producing other files. After the export,
// finish() waits for the uploads; run_push() then makes the ONE commit (objects already sent come back from the
// batch API as present: nothing is re-sent), and cleanup() removes the links.
class OverlapPush {
public:
    // What exec reports of the hashing (exec::RunStats files_hashed, hashed_from_memory, hashed_read_back).
    struct Hashed {
        std::uint64_t files = 0, from_memory = 0, read_back = 0;
    };
    OverlapPush(const plan::Plan& p, const std::string& repo_id, const JobOptions& o, core::Comm& comm);  // collective
    ~OverlapPush();
    OverlapPush(const OverlapPush&) = delete;
    OverlapPush& operator=(const OverlapPush&) = delete;
    // exec::RunOptions::on_file_hashed (any thread; never throws).
    void file_hashed(std::uint32_t file, const std::string& sha256_hex, const std::string& partial_path);
    // Collective, after exec::run: waits for this rank's uploads, agrees on their errors, logs the figures.
    void finish(const Hashed& hashed, core::Comm& comm);
    // Rank 0, after the commit: removes the upload links.
    void cleanup(core::Comm& comm);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace shardforge::hub
