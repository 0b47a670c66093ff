// The Hub jobs ranks share (docs/hub.md "How it works"): resolving and downloading --base/--adapter repo ids, each
// rank's fetch of the tensors it reads from a sparse snapshot, and `shardforge push` (rank 0 prepares, every rank
// uploads its share, rank 0 commits once). All collective over a core::Comm.
#include <shardforge/hub.hpp>
#include <shardforge/plan.hpp>

#include "jobs.hpp"
#include "push.hpp"

#include <chrono>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

Config make_config(const JobOptions& o, int rank) {
    Config c;
    c.endpoint = discover_endpoint(o.endpoint);
    c.token = discover_token(o.token_file);
    c.ca_bundle = o.ca_bundle;
    c.parallel = o.parallel;
    const auto transfer = parse_transfer(o.transfer);
    if (!transfer) throw Error(ErrorKind::Usage, "", "", "--transfer '" + o.transfer + "': expected lfs, xet or auto");
    c.transfer = *transfer;
    c.user_agent_tag = "rank/" + std::to_string(rank);
    if (const auto ms = core::env("SHARDFORGE_HUB_MAX_FILE_SIZE"); !ms.empty()) c.max_file_size = std::stoull(ms);
    // Test knobs (tests/hub/client_*.sh): shorter backoff, a commit answer given up on early.
    if (const auto r = core::env("SHARDFORGE_HUB_BACKOFF_BASE_S"); !r.empty()) c.backoff_base_s = std::stod(r);
    if (const auto t = core::env("SHARDFORGE_HUB_COMMIT_TIMEOUT_S"); !t.empty()) c.commit_timeout_s = std::stod(t);
    return c;
}

PushOptions push_options(const std::string& repo_id, const JobOptions& o, const std::string& option) {
    if (!parse_repo_ref(repo_id) || repo_id.find('@') != std::string::npos)
        throw Error(ErrorKind::Usage, "", "", option + ": '" + repo_id + "' is not ORG/NAME");
    PushOptions p;
    p.repo_id = repo_id;
    p.revision = o.revision;
    p.commit_message = o.commit_message;
    p.commit_description = o.commit_description;
    p.private_repo = o.private_repo;
    p.create_pr = o.create_pr;
    return p;
}

// ------------------------------------------------------------------ --base / --adapter as repo ids
namespace {

// DIR_OR_REPO[:WEIGHT]: splits off a numeric ":WEIGHT" suffix (kept, with its ':', in `suffix`).
std::string split_adapter_weight(const std::string& arg, std::string& suffix) {
    std::string spec = arg;
    if (const auto c = spec.rfind(':'); c != std::string::npos) {
        const std::string tail = spec.substr(c + 1);
        char* end = nullptr;
        std::strtod(tail.c_str(), &end);
        if (!tail.empty() && end == tail.c_str() + tail.size()) {
            suffix = spec.substr(c);
            spec.resize(c);
        }
    }
    return spec;
}

// --download: rank 0 fetches (several ranks: the base as a sparse snapshot, headers only; each rank fetches what it
// reads later), then any rank whose node-local cache lacks it prepares it there too.
std::string download_on_ranks(const RepoRef& ref, bool adapter, JobOptions& o, core::Comm& comm) {
    const bool sparse = !adapter && comm.size() > 1;
    std::string snap;
    auto fetch = [&] {
        Client client(make_config(o, comm.rank()), log_warn);
        snap = (sparse ? prepare_sparse_snapshot(client, ref) : download_snapshot(client, ref, adapter)).string();
        log_info("hub: " + ref.id() + " -> " + snap + (sparse ? " (sparse: headers only; ranks fetch their tensors)" : ""));
    };
    on_root(comm, fetch);
    comm.broadcast(snap, 0);
    std::optional<Error> err;
    if (comm.rank() != 0 && !fs::exists(fs::path(snap) / (sparse ? ".shardforge-source" : "config.json"))) {
        err = core::capture([&] {
            fetch();
        });
    }
    if (auto e = core::agree_on_error(comm, err)) throw *e;
    if (sparse) o.sparse_base = true;
    return snap;
}

// Without --download: the HF cache only (every rank looks; the lowest failing rank's error is thrown).
std::string resolve_offline(const RepoRef& ref, const std::string& spec, core::Comm& comm) {
    std::string snap;
    const std::optional<Error> err = core::capture([&] {
        snap = resolve_cached(ref).string();
    });
    if (auto e = core::agree_on_error(comm, err)) throw *e;
    if (comm.rank() == 0) log_info("hub: " + spec + " resolved offline to " + snap);
    return snap;
}

}  // namespace

std::string resolve_model_arg(const std::string& arg, bool adapter, JobOptions& o, core::Comm& comm) {
    std::string suffix;
    const std::string spec = adapter ? split_adapter_weight(arg, suffix) : arg;
    if (spec.empty() || fs::exists(spec)) return arg;
    const auto ref = parse_repo_ref(spec);
    if (!ref) return arg;   // the plan reports the missing path
    const std::string snap = o.download ? download_on_ranks(*ref, adapter, o, comm) : resolve_offline(*ref, spec, comm);
    if (!adapter) {
        if (o.base_models.empty()) o.base_models.push_back(ref->id());
        o.base_dir = snap;
    }
    return snap + suffix;
}

std::string run_download(const std::string& spec, bool adapter, const JobOptions& o, core::Comm& comm) {
    const auto ref = parse_repo_ref(spec);
    if (!ref) throw Error(ErrorKind::Usage, "", "", "download: '" + spec + "' is not ORG/NAME[@REVISION]");
    if (hub_offline())
        throw Error(ErrorKind::Usage, "", "", "download: HF_HUB_OFFLINE is set; unset it on a node that may reach the Hub");
    std::string snap;
    on_root(comm, [&] {
        Client client(make_config(o, 0), log_warn);
        snap = download_snapshot(client, *ref, adapter, o.include).string();  // printed by the command, the only stdout line
    });
    comm.broadcast(snap, 0);
    return snap;
}

bool hub_offline() {
    const char* v = std::getenv("HF_HUB_OFFLINE");
    if (!v) return false;
    std::string s(v);
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s == "1" || s == "true" || s == "yes" || s == "on";
}

// ------------------------------------------------------------------ per-rank fetch of a sparse base
void fetch_rank_inputs(const plan::Plan& p, const JobOptions& o, core::Comm& comm) {
    if (!o.sparse_base) return;
    std::uint64_t got = 0;
    const std::optional<Error> err = core::capture([&] {
        const auto all = plan::units(p);
        std::vector<char> mine_items(p.items.size(), 0);
        for (const auto u : plan::assign_units(all, p, comm.rank(), comm.size())) mine_items[all[u].item] = 1;
        // Whole source tensors of the items this rank works on (a superset of the rows it reads).
        std::map<std::uint32_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> by_file;
        for (std::size_t i = 0; i < p.items.size(); ++i)
            if (mine_items[i])
                for (const auto& s : p.items[i].sources) by_file[s.file].emplace_back(s.offset, s.nbytes);
        Client client(make_config(o, comm.rank()), log_warn);
        for (auto& [f, ranges] : by_file) {
            if (!is_sparse_snapshot(fs::path(p.input_files[f]).parent_path())) continue;
            got += fetch_ranges(client, p.input_files[f], std::move(ranges));
        }
    });
    if (auto e = core::agree_on_error(comm, err)) throw *e;
    const std::uint64_t mx = comm.max(got), total = comm.sum(got);
    if (comm.rank() == 0)
        log_info(core::cat("hub: ranks fetched ", total / 1000, " kB of base tensors (largest share ", mx / 1000,
                           " kB) out of ", p.input_bytes / 1000, " kB"));
}

void check_plan_for_hub(const plan::Plan& p, const JobOptions& o) {
    std::vector<std::pair<std::string, std::uint64_t>> sizes;
    for (const auto& f : p.files) sizes.emplace_back(f.name, f.size);
    check_file_sizes(sizes, make_config(o).max_file_size);
}

// ------------------------------------------------------------------ push
namespace {

// Rank 0: the model card (unless --no-card or a README.md exists), then the push prepared (repo, head,
// preupload), as JSON for the broadcast.
std::string prepare_on_root(const std::string& dir, const std::string& repo_id, const JobOptions& o,
                            const PushOptions& opt) {
    const fs::path readme = fs::path(dir) / "README.md";
    if (!o.no_card && !fs::exists(readme)) {
        std::string license = o.license;
        if (license.empty() && !o.base_dir.empty()) {
            std::ifstream in(fs::path(o.base_dir) / "README.md");
            license = license_from_readme(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
        }
        const std::string card = make_model_card(card_info_from_dir(dir, repo_id, o.base_models, license));
        std::ofstream(readme, std::ios::binary) << card;
    }
    Client client(make_config(o), log_warn);
    const auto files = list_folder(dir, client.config().max_file_size);
    return to_json(prepare_push(client, files, opt));
}

// One rank's share of the uploads: "index\tsha256\n" per file it hashed, and its client's counters.
struct RankUpload {
    std::string oids;
    Stats stats;
};

// Every rank: hash and upload its share of the LFS files, in parallel with the other ranks.
RankUpload upload_rank_share(const std::string& dir, PushPlan& p, const JobOptions& o, const PushOptions& opt,
                             core::Comm& comm) {
    RankUpload mine;
    const std::optional<Error> err = core::capture([&] {
        Client client(make_config(o, comm.rank()), log_warn);
        Journal journal(dir);
        const auto share = upload_share(p, comm.rank(), comm.size());
        upload_files(client, p, share, opt, journal);
        for (const auto i : share) mine.oids += std::to_string(i) + "\t" + p.files[i].sha256 + "\n";
        mine.stats = client.stats();
    });
    if (auto e = core::agree_on_error(comm, err)) throw *e;
    return mine;
}

// Rank 0: every LFS file's sha256 from the gathered shares into the plan.
void fill_gathered_oids(PushPlan& p, const std::vector<std::string>& all) {
    for (const auto& part : all) {
        std::size_t pos = 0;
        while (pos < part.size()) {
            const auto nl = part.find('\n', pos);
            const std::string line = part.substr(pos, nl - pos);
            pos = nl + 1;
            const auto tab = line.find('\t');
            p.files[std::stoull(line.substr(0, tab))].sha256 = line.substr(tab + 1);
        }
    }
}

}  // namespace

void run_push(const std::string& dir, const std::string& repo_id, JobOptions o, core::Comm& comm) {
    const PushOptions opt = push_options(repo_id, o, "--repo/--push-to-hub");
    const auto t0 = std::chrono::steady_clock::now();
    std::string plan_json;
    on_root(comm, [&] { plan_json = prepare_on_root(dir, repo_id, o, opt); });
    comm.broadcast(plan_json, 0);
    PushPlan p = push_plan_from_json(plan_json);
    const RankUpload mine = upload_rank_share(dir, p, o, opt, comm);
    const auto all = comm.gather(mine.oids, 0);
    const std::uint64_t sent = comm.sum(mine.stats.bytes_sent), skipped = comm.sum(mine.stats.objects_skipped);
    const std::uint64_t uploaded = comm.sum(mine.stats.objects_uploaded), parts = comm.sum(mine.stats.parts_uploaded);
    const std::uint64_t retries = comm.sum(mine.stats.retries), xorbs = comm.sum(mine.stats.xorbs_uploaded);
    const std::uint64_t deduped = comm.sum(mine.stats.bytes_deduplicated);
    on_root(comm, [&] {
        fill_gathered_oids(p, all);
        Client client(make_config(o), log_warn);
        Journal journal(dir);
        const CommitResult r = commit_push(client, p, opt, journal);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        log_info(core::cat("hub: pushed ", dir, " to ", repo_id, " from ", comm.size(), " rank(s): ", uploaded,
                           " object(s) uploaded (", parts, " multipart parts, ", xorbs, " Xet xorbs, ", sent / 1000000, " MB; ",
                           deduped / 1000000, " MB deduplicated by Xet), ", skipped,
                           " already on the Hub, ", retries + client.stats().retries, " retries, ", s, " s"));
        if (r.commit_url.empty() && r.pr_url.empty()) log_info("hub: nothing changed; no commit (head " + r.commit_oid + ")");
        else log_info("hub: commit " + r.commit_oid + " " + (r.pr_url.empty() ? r.commit_url : r.pr_url));
    });
}

}  // namespace shardforge::hub
