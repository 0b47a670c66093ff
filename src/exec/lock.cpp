// One writer per output directory (exec.hpp, OutputLock; docs/engine.md "One writer per output directory").
// The lock file is JSON: {"host","pid","slurm_job_id","slurm_step_id","started_unix","heartbeat_unix","token"}.
// Taken with open(O_CREAT|O_EXCL); the heartbeat replaces it with write-to-temp + rename, so a reader sees either
// the old or the new content; the token tells our lock from a successor's.
#include <shardforge/exec.hpp>

#include "fault.hpp"
#include "io.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace shardforge::exec {
namespace {

double now_unix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

double stale_after_s() {
    const std::string v = core::env("SHARDFORGE_LOCK_STALE_S");
    if (v.empty()) return 120;
    char* end = nullptr;
    const double s = std::strtod(v.c_str(), &end);
    if (*end != '\0' || !(s > 0))
        throw core::Error(core::ErrorKind::Usage, "", "",
                          "SHARDFORGE_LOCK_STALE_S must be a positive number of seconds");
    return s;
}

std::string lock_path(const std::string& out_dir) { return (fs::path(out_dir) / lock_file_name).string(); }

// The lock's content, or "" when the file is missing.
std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Holder {
    json j;               // parsed content (null: unreadable, e.g. caught between O_EXCL and the first write)
    std::string text;     // the raw content, to recognise the same lock later
    double age_s = 0;     // since the heartbeat (unreadable: since the file's mtime)
    bool live = true;
};

std::string describe(const Holder& h) {
    if (h.j.is_null()) return core::cat("an unreadable lock file (", static_cast<long>(h.age_s), " s old)");
    std::string s = core::cat("host ", h.j.value("host", std::string("?")), ", pid ", h.j.value("pid", 0));
    const std::string job = h.j.value("slurm_job_id", std::string());
    if (!job.empty()) {
        s += ", Slurm job " + job;
        const std::string step = h.j.value("slurm_step_id", std::string());
        if (!step.empty()) s += " step " + step;
    }
    return s + core::cat(", heartbeat ", static_cast<long>(h.age_s), " s ago");
}

// The current holder of `path`, or nullopt when there is no lock file. Judges it live or stale.
std::optional<Holder> inspect(const std::string& path) {
    Holder h;
    for (int attempt = 0; attempt < 20; ++attempt) {  // a lock being created is empty for an instant
        std::error_code ec;
        if (!fs::exists(path, ec)) return std::nullopt;
        h.text = read_text(path);
        h.j = json::parse(h.text, nullptr, false);
        if (!h.j.is_discarded() && h.j.is_object() && h.j.contains("heartbeat_unix")) break;
        h.j = nullptr;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const double stale = stale_after_s();
    if (h.j.is_null()) {
        std::error_code ec;
        const auto mt = fs::last_write_time(path, ec);
        if (ec) return std::nullopt;
        h.age_s = std::chrono::duration<double>(fs::file_time_type::clock::now() - mt).count();
        h.live = h.age_s < stale;
        return h;
    }
    h.age_s = std::max(0.0, now_unix() - h.j.value("heartbeat_unix", 0.0));
    h.live = h.age_s < stale;
    const long pid = h.j.value("pid", 0L);
    if (h.live && h.j.value("host", std::string()) == host_name() && pid > 0 &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        h.live = false;  // same host, the process is gone
    return h;
}

core::Error held_by(const std::string& out_dir, const Holder& h) {
    return core::Error(core::ErrorKind::Usage, out_dir, "",
                       "another run is writing this output directory (" + describe(h) + "; lock " +
                           lock_path(out_dir) + "): wait for it to end, or use another --out");
}

void write_all(int fd, const std::string& s, const std::string& path) {
    std::size_t done = 0;
    while (done < s.size()) {
        const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot write: ", std::strerror(errno)));
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

struct OutputLock::Impl {
    std::string out_dir, path;
    json content;
    std::string token;
    double interval_s = 10;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false, held = false;
    bool created_dir = false;  // out_dir did not exist: removed again on release when still empty
    std::string took_over_complete;  // the stale lock's "completed_plan_sha256"
    std::thread heartbeat;

    std::string text() const { return content.dump() + "\n"; }
    // Is the lock file still ours (no successor took it over after our heartbeat stalled)?
    bool ours() const {
        const json j = json::parse(read_text(path), nullptr, false);
        return !j.is_discarded() && j.is_object() && j.value("token", std::string()) == token;
    }
    void beat() {
        std::unique_lock lock(mu);
        while (!cv.wait_for(lock, std::chrono::duration<double>(interval_s), [this] { return stop; })) {
            if (!ours()) {
                core::log::warn("lock " + path + " was taken over by another run; this run no longer holds " + out_dir);
                held = false;
                return;
            }
            content["heartbeat_unix"] = now_unix();
            const std::string tmp = path + core::cat(".hb-", ::getpid());
            const UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
            if (!fd) continue;  // a missed beat is harmless while the timeout is several intervals long
            try {
                write_all(fd.get(), text(), tmp);
            } catch (const core::Error&) {
                continue;
            }
            if (::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
        }
    }
};

void OutputLock::check_free(const std::string& out_dir) {
    if (const auto h = inspect(lock_path(out_dir)); h && h->live) throw held_by(out_dir, *h);
}

OutputLock::OutputLock(const std::string& out_dir, bool resume) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.out_dir = out_dir;
    m.path = lock_path(out_dir);
    const double stale = stale_after_s();
    m.interval_s = std::min(10.0, stale / 6);
    std::random_device rd;
    char token[40];
    std::snprintf(token, sizeof token, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
    m.token = token;
    m.content = {{"host", host_name()},
                 {"pid", static_cast<long>(::getpid())},
                 {"slurm_job_id", core::env("SLURM_JOB_ID")},
                 {"slurm_step_id", core::env("SLURM_STEP_ID")},
                 {"started_unix", now_unix()},
                 {"heartbeat_unix", now_unix()},
                 {"token", m.token}};
    std::error_code ec;
    m.created_dir = !fs::exists(out_dir, ec);
    fs::create_directories(out_dir, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, out_dir, "", "cannot create: " + ec.message());
    for (int attempt = 0;; ++attempt) {
        const int fd = ::open(m.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0) {
            const UniqueFd owned(fd);
            write_all(fd, m.text(), m.path);
            fsync_or_throw(fd, m.path);
            break;
        }
        if (errno != EEXIST)
            throw core::Error(core::ErrorKind::Io, m.path, "",
                              core::cat("cannot create the lock: ", std::strerror(errno)));
        const auto h = inspect(m.path);
        if (!h) continue;  // released meanwhile
        if (h->live || attempt >= 5) throw held_by(out_dir, *h);
        // Stale: move it aside under a name of our own, and check that what we moved is what we judged (not a
        // successor's fresh lock taken in between; that one goes back).
        const std::string aside = m.path + core::cat(".stale-", host_name(), "-", ::getpid());
        if (::rename(m.path.c_str(), aside.c_str()) != 0) continue;
        if (read_text(aside) != h->text) {
            if (::link(aside.c_str(), m.path.c_str()) != 0 && errno != EEXIST) {
                // nothing to restore into: the next attempt judges the lock file again
            }
            ::unlink(aside.c_str());
            continue;
        }
        ::unlink(aside.c_str());
        if (!h->j.is_null()) m.took_over_complete = h->j.value("completed_plan_sha256", std::string());
        core::log::info(core::cat(resume ? "resume: " : "", "taking over the lock on ", out_dir,
                                  " from a run that is gone (", describe(*h), ")"));
    }
    // Heartbeat temporaries and moved-aside locks of runs that died: nobody else holds the directory now.
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind(std::string(lock_file_name) + ".", 0) == 0) fs::remove(e.path(), ec);
    }
    m.held = true;
    m.heartbeat = std::thread([&m] { m.beat(); });
}

OutputLock::~OutputLock() { release(); }

void OutputLock::mark_complete(const std::string& plan_sha256) {
    Impl& m = *impl_;
    std::lock_guard lock(m.mu);
    if (!m.held) return;
    m.content["completed_plan_sha256"] = plan_sha256;
    // Written now (not at the next beat): temporary file, fsync, rename over the lock.
    const std::string tmp = m.path + core::cat(".hb-", ::getpid());
    const UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) return;
    try {
        write_all(fd.get(), m.text(), tmp);
    } catch (const core::Error&) {
        return;
    }
    if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), m.path.c_str()) != 0) ::unlink(tmp.c_str());
}

std::string OutputLock::took_over_complete() const { return impl_->took_over_complete; }

void OutputLock::release() noexcept {
    if (!impl_) return;
    Impl& m = *impl_;
    bool held = false;
    {
        std::lock_guard lock(m.mu);
        held = m.held;
    }
    if (held) fault::point("unlock");
    {
        std::lock_guard lock(m.mu);
        m.stop = true;
    }
    m.cv.notify_all();
    if (m.heartbeat.joinable()) m.heartbeat.join();
    try {
        if (m.held && m.ours()) ::unlink(m.path.c_str());
        ::unlink((m.path + core::cat(".hb-", ::getpid())).c_str());
        if (m.created_dir) ::rmdir(m.out_dir.c_str());  // a run refused before writing anything leaves no directory
    } catch (...) {
    }
    m.held = false;
}

}  // namespace shardforge::exec
