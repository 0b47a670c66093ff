// export --push-to-hub with the upload overlapping the export (docs/hub.md "How it works"; hub.hpp OverlapPush):
// exec's hash callback records each finished tensor file in the upload journal and hands it to this rank's upload
// thread, which sends it while the export goes on.
#include <shardforge/hub.hpp>
#include <shardforge/plan.hpp>

#include "jobs.hpp"
#include "push.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

namespace shardforge::hub {
namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;

struct OverlapPush::Impl {
    PushOptions opt;
    JobOptions args;
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
    std::optional<Journal> journal;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> jobs;
    bool closing = false, busy = false, export_done = false;
    std::optional<Error> err;
    std::uint64_t sent = 0, uploaded = 0, present = 0, parts = 0, retries = 0, started_during_export = 0, inline_files = 0;
    std::thread th;

    Impl(const plan::Plan& plan, const JobOptions& a) : args(a), dir(plan.out_dir), p(plan) {}

    fs::path link_dir() const { return fs::path(dir) / ".cache" / "shardforge" / "upload"; }

    void run() {
        std::optional<Client> client;
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
            if (auto e = core::capture([&] {
                    if (!err) {
                        if (!client) client.emplace(make_config(args, rank), log_warn);
                        upload(*client, j);
                    }
                })) {
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
        LocalFile lf;
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

    void upload(Client& client, const Job& j) {
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

OverlapPush::OverlapPush(const plan::Plan& p, const std::string& repo_id, const JobOptions& a, core::Comm& comm)
    : impl_(std::make_unique<Impl>(p, a)) {
    impl_->opt = push_options(repo_id, a, "--push-to-hub");
    impl_->rank = comm.rank();
    on_root(comm, [&] {
        std::error_code ec;
        fs::remove_all(impl_->link_dir(), ec);   // links of a killed run may point at partials about to be rewritten
        Client client(make_config(a), log_warn);
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

void OverlapPush::finish(const Hashed& hashed, core::Comm& comm) {
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
    if (auto e = core::agree_on_error(comm, err)) throw *e;
    const std::uint64_t up = comm.sum(m.uploaded), pre = comm.sum(m.present), sent = comm.sum(m.sent);
    const std::uint64_t parts = comm.sum(m.parts), files = comm.sum(during), ranks = comm.sum(m.uploaded ? 1u : 0u);
    if (comm.rank() == 0) {
        log_info(core::cat("hub: sha256 of ", hashed.files, " tensor file(s) computed during the export: ",
                           hashed.from_memory, " bytes hashed from memory, ", hashed.read_back,
                           " bytes read back"));
        log_info(core::cat("hub: uploads overlapping the export: ", files,
                           " started before the last file was finished; ", up, " object(s) uploaded by ", ranks,
                           " rank(s) (", parts, " multipart parts, ", sent / 1000000, " MB), ", pre,
                           " already on the Hub"));
    }
}

void OverlapPush::cleanup(core::Comm& comm) {
    if (comm.rank() != 0) return;
    std::error_code ec;
    fs::remove_all(impl_->link_dir(), ec);
}

}  // namespace shardforge::hub
