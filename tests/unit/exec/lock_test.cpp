// The output directory's lock (include/shardforge/exec.hpp, OutputLock; docs/engine.md "One writer per output
// directory"): a live holder is refused with a Usage error naming it, a stale one (pid gone on this host, heartbeat
// older than SHARDFORGE_LOCK_STALE_S, an unreadable file older than that) is taken over, the heartbeat advances,
// and release removes the lock and a directory the lock created.
#include <shardforge/exec.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace sf = shardforge;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "sf-lock-XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string host() {
    char b[256] = {};
    ::gethostname(b, sizeof b - 1);
    return b;
}

json read_lock(const fs::path& dir) {
    std::ifstream in(dir / sf::exec::lock_file_name);
    std::stringstream s;
    s << in.rdbuf();
    return json::parse(s.str());
}

void write_lock(const fs::path& dir, const std::string& h, long pid, double age_s) {
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::ofstream(dir / sf::exec::lock_file_name) << json{{"host", h}, {"pid", pid}, {"slurm_job_id", "12"},
                                                          {"slurm_step_id", "3"}, {"started_unix", now - 100},
                                                          {"heartbeat_unix", now - age_s}, {"token", "t"}}
                                                         .dump();
}

long dead_pid() {
    const pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    int st = 0;
    ::waitpid(p, &st, 0);
    return p;
}

// The Usage error's text, or "" when no error.
std::string refusal(const fs::path& dir) {
    try {
        sf::exec::OutputLock::check_free(dir.string());
        return "";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
        return e.what();
    }
}

}  // namespace

TEST(OutputLock, HeldRefusedNamingTheHolderReleasedRemoved) {
    TempDir t;
    const fs::path out = t.path / "out";
    {
        sf::exec::OutputLock lock(out.string(), false);
        const json j = read_lock(out);
        EXPECT_EQ(j["host"], host());
        EXPECT_EQ(j["pid"], static_cast<long>(::getpid()));
        const std::string why = refusal(out);
        EXPECT_NE(why.find("another run is writing this output directory (host " + host() + ", pid " +
                           std::to_string(::getpid())),
                  std::string::npos)
            << why;
        EXPECT_THROW(sf::exec::OutputLock(out.string(), false), sf::core::Error);
        lock.release();
        EXPECT_FALSE(fs::exists(out / sf::exec::lock_file_name));
    }
    EXPECT_FALSE(fs::exists(out)) << "the lock created the directory and nothing else was written: removed";
}

TEST(OutputLock, OtherHostLiveUntilTheHeartbeatIsStale) {
    TempDir t;
    write_lock(t.path, "elsewhere.invalid", 1, 30);
    const std::string why = refusal(t.path);
    EXPECT_NE(why.find("host elsewhere.invalid, pid 1, Slurm job 12 step 3, heartbeat 3"), std::string::npos) << why;
    ::setenv("SHARDFORGE_LOCK_STALE_S", "10", 1);
    EXPECT_EQ(refusal(t.path), "");
    {
        sf::exec::OutputLock lock(t.path.string(), true);  // taken over
        EXPECT_EQ(read_lock(t.path)["pid"], static_cast<long>(::getpid()));
    }
    ::unsetenv("SHARDFORGE_LOCK_STALE_S");
    EXPECT_TRUE(fs::exists(t.path)) << "a directory that existed before stays";
    EXPECT_FALSE(fs::exists(t.path / sf::exec::lock_file_name));
}

TEST(OutputLock, SameHostDeadPidIsStale) {
    TempDir t;
    write_lock(t.path, host(), dead_pid(), 0);
    EXPECT_EQ(refusal(t.path), "");
    sf::exec::OutputLock lock(t.path.string(), false);
    EXPECT_EQ(read_lock(t.path)["pid"], static_cast<long>(::getpid()));
}

TEST(OutputLock, UnreadableLockIsLiveUntilOldEnough) {
    TempDir t;
    std::ofstream(t.path / sf::exec::lock_file_name) << "";  // a creator caught between O_EXCL and its write
    EXPECT_NE(refusal(t.path).find("an unreadable lock file"), std::string::npos);
    fs::last_write_time(t.path / sf::exec::lock_file_name, fs::file_time_type::clock::now() - std::chrono::hours(1));
    EXPECT_EQ(refusal(t.path), "");
}

TEST(OutputLock, HeartbeatAdvances) {
    TempDir t;
    ::setenv("SHARDFORGE_LOCK_STALE_S", "0.6", 1);  // a beat every 0.1 s
    sf::exec::OutputLock lock(t.path.string(), false);
    const double hb1 = read_lock(t.path)["heartbeat_unix"];
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    const double hb2 = read_lock(t.path)["heartbeat_unix"];
    EXPECT_GT(hb2, hb1);
    EXPECT_NE(refusal(t.path), "") << "a live heartbeat under a short timeout is still held";
    ::unsetenv("SHARDFORGE_LOCK_STALE_S");
}

TEST(OutputLock, CompletionMarkIsWrittenAndSeenByTheNextHolder) {
    TempDir t;
    {
        sf::exec::OutputLock lock(t.path.string(), false);
        EXPECT_EQ(lock.took_over_complete(), "");
        lock.mark_complete("abc123");
        EXPECT_EQ(read_lock(t.path)["completed_plan_sha256"], "abc123") << "written at once, not at the next beat";
    }
    json j = {{"host", host()}, {"pid", dead_pid()}, {"heartbeat_unix", 0.0}, {"completed_plan_sha256", "abc123"}};
    std::ofstream(t.path / sf::exec::lock_file_name) << j.dump();
    sf::exec::OutputLock next(t.path.string(), true);
    EXPECT_EQ(next.took_over_complete(), "abc123");
}
