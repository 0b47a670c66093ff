// CLI glue of the hub module (see hub_cli.hpp).
#include "hub_cli.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace shardforge::cli {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

void add_hub_options(CLI::App* app, HubArgs& a) {
    app->add_option("--endpoint", a.endpoint, "Hub URL (default: $HF_ENDPOINT or https://huggingface.co)");
    app->add_option("--token-file", a.token_file,
                    "File holding the Hub token (default: $HF_TOKEN, then $HF_HOME/token or ~/.cache/huggingface/token). "
                    "Tokens are never accepted on the command line");
    app->add_option("--ca-bundle", a.ca_bundle, "Extra CA certificates (PEM) for TLS through proxies; verification stays on");
    app->add_option("--revision", a.revision, "Branch to commit to")->capture_default_str();
    app->add_option("--commit-message", a.commit_message, "Commit title")->capture_default_str();
    app->add_option("--commit-description", a.commit_description, "Commit description");
    app->add_flag("--private", a.private_repo, "Create the repo private (when it does not exist yet)");
    app->add_flag("--create-pr", a.create_pr, "Open a pull request instead of committing to the branch");
    app->add_option("--hub-parallel", a.parallel, "Concurrent object/part uploads per rank")->capture_default_str();
    app->add_flag("--no-card", a.no_card, "Do not write a model card README.md");
    app->add_option("--base-model", a.base_models, "Model card base_model (repeatable; default: --base when a repo id)");
    app->add_option("--license", a.license, "Model card license (default: the base's license when known)");
}

hub::Config make_hub_config(const HubArgs& a, int rank) {
    hub::Config c;
    c.endpoint = hub::discover_endpoint(a.endpoint);
    c.token = hub::discover_token(a.token_file);
    c.ca_bundle = a.ca_bundle;
    c.parallel = a.parallel;
    c.user_agent_tag = "rank/" + std::to_string(rank);
    if (const auto ms = core::env("SHARDFORGE_HUB_MAX_FILE_SIZE"); !ms.empty()) c.max_file_size = std::stoull(ms);
    // Test knobs (tests/hub/client_*.sh): shorter backoff, a commit answer given up on early.
    if (const auto r = core::env("SHARDFORGE_HUB_BACKOFF_BASE_S"); !r.empty()) c.backoff_base_s = std::stod(r);
    if (const auto t = core::env("SHARDFORGE_HUB_COMMIT_TIMEOUT_S"); !t.empty()) c.commit_timeout_s = std::stod(t);
    return c;
}

namespace {

void log_hub(const std::string& s) { core::log::info(s); }
void warn_hub(const std::string& s) { core::log::warn(s); }

// Runs f on rank 0 only; every rank then throws the same error if it failed.
template <class F>
void on_root(exec::Comm& comm, F&& f) {
    std::optional<Error> err;
    if (comm.rank() == 0) {
        try {
            f();
        } catch (const Error& e) {
            err = e;
        }
    }
    if (auto e = exec::agree_on_error(comm, err)) throw *e;
}

}  // namespace

std::string resolve_model_arg(const std::string& arg, bool adapter, HubArgs& a, exec::Comm& comm) {
    std::string spec = arg, suffix;
    if (adapter) {   // DIR_OR_REPO[:WEIGHT]
        if (const auto c = spec.rfind(':'); c != std::string::npos) {
            const std::string tail = spec.substr(c + 1);
            char* end = nullptr;
            std::strtod(tail.c_str(), &end);
            if (!tail.empty() && end == tail.c_str() + tail.size()) {
                suffix = spec.substr(c);
                spec.resize(c);
            }
        }
    }
    if (spec.empty() || fs::exists(spec)) return arg;
    const auto ref = hub::parse_repo_ref(spec);
    if (!ref) return arg;   // the plan reports the missing path
    std::string snap;
    if (a.download) {
        // Several ranks: the base as a sparse snapshot (headers only); each rank fetches what it reads later.
        const bool sparse = !adapter && comm.size() > 1;
        auto fetch = [&] {
            hub::Client client(make_hub_config(a, comm.rank()), warn_hub);
            snap = (sparse ? hub::prepare_sparse_snapshot(client, *ref) : hub::download_snapshot(client, *ref, adapter)).string();
            log_hub("hub: " + ref->id() + " -> " + snap + (sparse ? " (sparse: headers only; ranks fetch their tensors)" : ""));
        };
        on_root(comm, fetch);
        comm.broadcast(snap, 0);
        // Node-local cache on another node: prepare it there too.
        std::optional<Error> err;
        if (comm.rank() != 0 && !fs::exists(fs::path(snap) / (sparse ? ".shardforge-source" : "config.json"))) {
            try {
                fetch();
            } catch (const Error& e) {
                err = e;
            }
        }
        if (auto e = exec::agree_on_error(comm, err)) throw *e;
        if (sparse) a.sparse_base = true;
    } else {
        std::optional<Error> err;
        try {
            snap = hub::resolve_cached(*ref).string();
        } catch (const Error& e) {
            err = e;
        }
        if (auto e = exec::agree_on_error(comm, err)) throw *e;
        if (comm.rank() == 0) log_hub("hub: " + spec + " resolved offline to " + snap);
    }
    if (!adapter) {
        if (a.base_models.empty()) a.base_models.push_back(ref->id());
        a.base_dir = snap;
    }
    return snap + suffix;
}

void fetch_rank_inputs(const plan::Plan& p, const HubArgs& a, exec::Comm& comm) {
    if (!a.sparse_base) return;
    std::uint64_t got = 0;
    std::optional<Error> err;
    try {
        const auto all = plan::units(p);
        std::vector<char> mine_items(p.items.size(), 0);
        for (const auto u : plan::assign_units(all, p, comm.rank(), comm.size())) mine_items[all[u].item] = 1;
        // Whole source tensors of the items this rank works on (a superset of the rows it reads).
        std::map<std::uint32_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> by_file;
        for (std::size_t i = 0; i < p.items.size(); ++i)
            if (mine_items[i])
                for (const auto& s : p.items[i].sources) by_file[s.file].emplace_back(s.offset, s.nbytes);
        hub::Client client(make_hub_config(a, comm.rank()), warn_hub);
        for (auto& [f, ranges] : by_file) {
            if (!hub::is_sparse_snapshot(fs::path(p.input_files[f]).parent_path())) continue;
            got += hub::fetch_ranges(client, p.input_files[f], std::move(ranges));
        }
    } catch (const Error& e) {
        err = e;
    }
    if (auto e = exec::agree_on_error(comm, err)) throw *e;
    const std::uint64_t mx = comm.max(got), total = comm.sum(got);
    if (comm.rank() == 0)
        log_hub(core::cat("hub: ranks fetched ", total / 1000, " kB of base tensors (largest share ", mx / 1000,
                          " kB) out of ", p.input_bytes / 1000, " kB"));
}

void check_plan_for_hub(const plan::Plan& p, const HubArgs& a) {
    std::vector<std::pair<std::string, std::uint64_t>> sizes;
    for (const auto& f : p.files) sizes.emplace_back(f.name, f.size);
    hub::check_file_sizes(sizes, make_hub_config(a).max_file_size);
}

namespace {
// The commit options shared by `push` and `export --push-to-hub`; the repo id must be ORG/NAME (no @REV).
hub::PushOptions push_options(const std::string& repo_id, const HubArgs& a, const std::string& option) {
    if (!hub::parse_repo_ref(repo_id) || repo_id.find('@') != std::string::npos)
        throw Error(ErrorKind::Usage, "", "", option + ": '" + repo_id + "' is not ORG/NAME");
    hub::PushOptions o;
    o.repo_id = repo_id;
    o.revision = a.revision;
    o.commit_message = a.commit_message;
    o.commit_description = a.commit_description;
    o.private_repo = a.private_repo;
    o.create_pr = a.create_pr;
    return o;
}
}  // namespace

// ------------------------------------------------------------------ export --push-to-hub, overlapped
struct OverlapPush::Impl {
    hub::PushOptions opt;
    HubArgs args;
    std::string dir;
    const plan::Plan& p;
    int rank = 0;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    struct Job {
        std::uint32_t file;
        std::string sha;
        fs::path link;  // empty: no link could be made; the final push uploads the file
    };
    std::mutex jmu;                         // the upload journal (callbacks from exec threads, the upload thread)
    std::optional<hub::Journal> journal;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> jobs;
    bool closing = false, busy = false, export_done = false;
    std::optional<Error> err;
    std::uint64_t sent = 0, uploaded = 0, present = 0, parts = 0, retries = 0, started_during_export = 0, inline_files = 0;
    std::thread th;

    Impl(const plan::Plan& plan, const HubArgs& a) : args(a), dir(plan.out_dir), p(plan) {}

    fs::path link_dir() const { return fs::path(dir) / ".cache" / "shardforge" / "upload"; }

    void run() {
        std::optional<hub::Client> client;
        for (;;) {
            Job j;
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return closing || !jobs.empty(); });
                if (jobs.empty()) return;
                j = std::move(jobs.front());
                jobs.pop_front();
                busy = true;
                if (!export_done) ++started_during_export;
            }
            try {
                if (!err) {
                    if (!client) client.emplace(make_hub_config(args, rank), warn_hub);
                    upload(*client, j);
                }
            } catch (const Error& e) {
                std::lock_guard lock(mu);
                if (!err) err = e;
            }
            std::lock_guard lock(mu);
            busy = false;
            cv.notify_all();
            if (client) {
                sent = client->stats().bytes_sent, uploaded = client->stats().objects_uploaded;
                present = client->stats().objects_skipped, parts = client->stats().parts_uploaded;
                retries = client->stats().retries;
            }
        }
    }

    // exec's callback, before the partial can be renamed: the digest goes to the upload journal, keyed by (path,
    // size, mtime) so that the final push finds it, and a hard link keeps these bytes reachable whatever the
    // partial is renamed to meanwhile.
    Job prepare(std::uint32_t file, const std::string& sha, const std::string& partial) {
        Job j{file, sha, {}};
        hub::LocalFile lf;
        lf.path = p.files[file].name;
        lf.local = partial;
        lf.size = p.files[file].size;
        lf.sha256 = sha;
        {
            std::lock_guard lock(jmu);
            if (!journal) journal.emplace(dir);
            journal->record_sha256(lf);
        }
        std::error_code ec;
        fs::create_directories(link_dir(), ec);
        const fs::path link = link_dir() / sha;
        fs::remove(link, ec);
        fs::create_hard_link(partial, link, ec);
        if (ec)   // e.g. a filesystem without hard links: the final push uploads it from its final name
            core::log::debug("hub: cannot link " + partial + " (" + ec.message() + "); uploaded after the export");
        else
            j.link = link;
        return j;
    }

    void upload(hub::Client& client, const Job& j) {
        const auto& f = p.files[j.file];
        if (j.link.empty()) return;
        const fs::path& link = j.link;
        std::string sample(std::min<std::uint64_t>(512, f.size), '\0');
        {
            std::ifstream in(link, std::ios::binary);
            in.read(sample.data(), static_cast<std::streamsize>(sample.size()));
            sample.resize(static_cast<std::size_t>(in.gcount()));
        }
        const auto res = client.preupload(opt.repo_id, opt.revision, {{f.name, f.size, sample}}, opt.create_pr);
        if (res.size() != 1 || res[0].path != f.name)
            throw Error(ErrorKind::Network, "", "", "preupload answered for another file than " + f.name);
        if (!res[0].lfs || res[0].should_ignore || f.size == 0 || res[0].remote_oid == j.sha) {
            std::lock_guard lock(mu);
            ++inline_files;   // goes inline in the commit, or is ignored, or is unchanged on the Hub
            return;
        }
        client.upload_objects(opt.repo_id, opt.revision, opt.create_pr, {{j.sha, f.size}},
                              [&](const std::string&) { return link; },
                              [&](const std::string& oid) {
                                  std::lock_guard lock(jmu);
                                  if (!journal) journal.emplace(dir);
                                  journal->record_stored(oid);
                              });
        core::log::debug(core::cat("hub: ", f.name, " uploaded ",
                                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                                   " s after the export started"));
    }
};

OverlapPush::OverlapPush(const plan::Plan& p, const std::string& repo_id, const HubArgs& a, exec::Comm& comm)
    : impl_(std::make_unique<Impl>(p, a)) {
    impl_->opt = push_options(repo_id, a, "--push-to-hub");
    impl_->rank = comm.rank();
    on_root(comm, [&] {
        std::error_code ec;
        fs::remove_all(impl_->link_dir(), ec);   // links of a killed run may point at partials about to be rewritten
        hub::Client client(make_hub_config(a), warn_hub);
        client.create_repo(repo_id, a.private_repo);
    });
    impl_->th = std::thread([this] { impl_->run(); });
}

OverlapPush::~OverlapPush() {
    {
        std::lock_guard lock(impl_->mu);
        impl_->closing = true;
        impl_->jobs.clear();
        impl_->cv.notify_all();
    }
    if (impl_->th.joinable()) impl_->th.join();
}

void OverlapPush::file_hashed(std::uint32_t file, const std::string& sha256_hex, const std::string& partial_path) {
    try {
        Impl::Job j = impl_->prepare(file, sha256_hex, partial_path);
        std::lock_guard lock(impl_->mu);
        impl_->jobs.push_back(std::move(j));
        impl_->cv.notify_all();
    } catch (const std::exception& e) {   // never throw into exec: the final push uploads what was not sent
        core::log::warn(std::string("hub: ") + e.what());
    }
}

void OverlapPush::finish(const exec::RunStats& st, exec::Comm& comm) {
    Impl& m = *impl_;
    std::uint64_t during = 0;
    {
        std::unique_lock lock(m.mu);
        m.export_done = true;
        during = m.started_during_export;   // uploads that started before run() returned
        m.closing = true;
        m.cv.notify_all();
    }
    if (m.th.joinable()) m.th.join();
    std::optional<Error> err;
    {
        std::lock_guard lock(m.mu);
        err = m.err;
    }
    if (auto e = exec::agree_on_error(comm, err)) throw *e;
    const std::uint64_t up = comm.sum(m.uploaded), pre = comm.sum(m.present), sent = comm.sum(m.sent);
    const std::uint64_t parts = comm.sum(m.parts), files = comm.sum(during), ranks = comm.sum(m.uploaded ? 1u : 0u);
    if (comm.rank() == 0) {
        log_hub(core::cat("hub: sha256 of ", st.files_hashed, " tensor file(s) computed during the export: ",
                          st.hashed_from_memory, " bytes hashed from memory, ", st.hashed_read_back,
                          " bytes read back"));
        log_hub(core::cat("hub: uploads overlapping the export: ", files,
                          " started before the last file was finished; ", up, " object(s) uploaded by ", ranks,
                          " rank(s) (", parts, " multipart parts, ", sent / 1000000, " MB), ", pre,
                          " already on the Hub"));
    }
}

void OverlapPush::cleanup(exec::Comm& comm) {
    if (comm.rank() != 0) return;
    std::error_code ec;
    fs::remove_all(impl_->link_dir(), ec);
}

void push_dir(const std::string& dir, const std::string& repo_id, HubArgs a, exec::Comm& comm) {
    hub::PushOptions opt = push_options(repo_id, a, "--repo/--push-to-hub");
    const auto t0 = std::chrono::steady_clock::now();
    std::string plan_json;
    on_root(comm, [&] {
        const fs::path readme = fs::path(dir) / "README.md";
        if (!a.no_card && !fs::exists(readme)) {
            std::string license = a.license;
            if (license.empty() && !a.base_dir.empty()) {
                std::ifstream in(fs::path(a.base_dir) / "README.md");
                license = hub::license_from_readme(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
            }
            const std::string card = hub::make_model_card(hub::card_info_from_dir(dir, repo_id, a.base_models, license));
            std::ofstream(readme, std::ios::binary) << card;
        }
        hub::Client client(make_hub_config(a), warn_hub);
        const auto files = hub::list_folder(dir, client.config().max_file_size);
        plan_json = hub::to_json(hub::prepare_push(client, files, opt));
    });
    comm.broadcast(plan_json, 0);
    hub::PushPlan p = hub::push_plan_from_json(plan_json);
    // Every rank: hash and upload its share of the LFS files, in parallel with the other ranks.
    std::string mine;
    std::uint64_t sent = 0, skipped = 0, uploaded = 0, parts = 0, retries = 0;
    {
        std::optional<Error> err;
        try {
            hub::Client client(make_hub_config(a, comm.rank()), warn_hub);
            hub::Journal journal(dir);
            const auto share = hub::upload_share(p, comm.rank(), comm.size());
            hub::upload_files(client, p, share, opt, journal);
            for (const auto i : share) mine += std::to_string(i) + "\t" + p.files[i].sha256 + "\n";
            sent = client.stats().bytes_sent;
            skipped = client.stats().objects_skipped;
            uploaded = client.stats().objects_uploaded;
            parts = client.stats().parts_uploaded;
            retries = client.stats().retries;
        } catch (const Error& e) {
            err = e;
        }
        if (auto e = exec::agree_on_error(comm, err)) throw *e;
    }
    const auto all = comm.gather(mine, 0);
    sent = comm.sum(sent);
    skipped = comm.sum(skipped);
    uploaded = comm.sum(uploaded);
    parts = comm.sum(parts);
    retries = comm.sum(retries);
    on_root(comm, [&] {
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
        hub::Client client(make_hub_config(a), warn_hub);
        hub::Journal journal(dir);
        const hub::CommitResult r = hub::commit_push(client, p, opt, journal);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        log_hub(core::cat("hub: pushed ", dir, " to ", repo_id, " from ", comm.size(), " rank(s): ", uploaded,
                          " object(s) uploaded (", parts, " multipart parts, ", sent / 1000000, " MB), ", skipped,
                          " already on the Hub, ", retries + client.stats().retries, " retries, ", s, " s"));
        if (r.commit_url.empty() && r.pr_url.empty()) log_hub("hub: nothing changed; no commit (head " + r.commit_oid + ")");
        else log_hub("hub: commit " + r.commit_oid + " " + (r.pr_url.empty() ? r.commit_url : r.pr_url));
    });
}

}  // namespace shardforge::cli
