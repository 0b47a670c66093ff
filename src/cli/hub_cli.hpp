// CLI glue of the hub module: options shared by `push` and `export --push-to-hub`, resolution of --base/--adapter
// given as ORG/NAME[@REV] (HF cache, or --download), and the distributed push (every rank uploads its share of the
// LFS files, rank 0 commits once). The collectives live here because hub never sees MPI.
#pragma once
#include <shardforge/exec.hpp>
#include <shardforge/hub.hpp>
#include <shardforge/plan.hpp>

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace shardforge::cli {

struct HubArgs {
    std::string endpoint, token_file, ca_bundle, revision = "main";
    std::string commit_message = "Upload model with shardforge", commit_description;
    bool private_repo = false, create_pr = false, download = false, no_card = false;
    int parallel = 4;
    std::vector<std::string> base_models;   // model card base_model (default: --base when it is a repo id)
    std::string license;                    // model card license (default: the base's README front matter)
    std::string base_dir;                   // resolved base directory (license lookup)
    bool sparse_base = false;               // base is a sparse snapshot: ranks fetch their ranges (fetch_rank_inputs)
};

// --endpoint, --token-file, --ca-bundle, --revision, --commit-message, --commit-description, --private,
// --create-pr, --hub-parallel, --no-card, --base-model, --license.
void add_hub_options(CLI::App* app, HubArgs& a);
[[nodiscard]] hub::Config make_hub_config(const HubArgs& a, int rank = 0);

// A --base / --adapter argument: an existing local path is returned as is; ORG/NAME[@REV] (with an optional
// ":WEIGHT" suffix for adapters, kept) resolves to a snapshot directory in the HF cache, downloaded first by
// rank 0 with --download. Collective.
[[nodiscard]] std::string resolve_model_arg(const std::string& arg, bool adapter, HubArgs& a, exec::Comm& comm);

// Collective, after the plan is known on every rank: with a sparse base (multi-rank --download), each rank fetches
// the byte ranges of the source tensors of its work units (plan::assign_units), nothing else.
void fetch_rank_inputs(const plan::Plan& p, const HubArgs& a, exec::Comm& comm);

// Planning-time check of --push-to-hub: no output file over the Hub's per-file limit.
void check_plan_for_hub(const plan::Plan& p, const HubArgs& a);

// export --push-to-hub with the upload overlapping the export (docs/hub.md "How it works"). Before exec::run, rank 0
// creates the repo (a bad token or a missing permission fails before any compute) and every rank starts one upload
// thread.
// exec hashes each tensor file on its owner rank while it is written (RunOptions::hash_outputs) and calls
// file_hashed() once it is complete: the owner records the sha256 in the upload journal (so the final push never
// re-reads the file), hard-links the partial under OUT/.cache/shardforge/upload/ (the link survives the rename to
// the final name) and its upload thread sends it (preupload, LFS batch, basic or multipart parts) while the rank
// goes on producing other files. After the export, finish() waits for the uploads; push_dir() then makes the ONE
// commit (objects already sent come back from the batch API as present: nothing is re-sent).
class OverlapPush {
public:
    OverlapPush(const plan::Plan& p, const std::string& repo_id, const HubArgs& a, exec::Comm& comm);  // collective
    ~OverlapPush();
    OverlapPush(const OverlapPush&) = delete;
    OverlapPush& operator=(const OverlapPush&) = delete;
    // exec::RunOptions::on_file_hashed (any thread; never throws).
    void file_hashed(std::uint32_t file, const std::string& sha256_hex, const std::string& partial_path);
    // Collective, after exec::run: waits for this rank's uploads, agrees on their errors, logs the figures.
    void finish(const exec::RunStats& st, exec::Comm& comm);
    // Rank 0, after the commit: removes the upload links.
    void cleanup(exec::Comm& comm);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Collective: writes the model card (rank 0, unless --no-card or a README.md exists), then pushes dir.
void push_dir(const std::string& dir, const std::string& repo_id, HubArgs a, exec::Comm& comm);

}  // namespace shardforge::cli
