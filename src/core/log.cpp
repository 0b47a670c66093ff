// Minimal leveled logging: rank 0 prints info; other ranks print warnings and errors with "[rank N]".
#include <shardforge/core.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace shardforge::core {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::atomic<int> g_rank{0};
std::mutex g_mu;

void emit(LogLevel l, const char* tag, const std::string& msg) {
    if (static_cast<int>(l) < g_level.load()) return;
    const int rank = g_rank.load();
    if (l == LogLevel::Info && rank != 0) return;
    std::lock_guard lock(g_mu);
    std::string line;
    if (rank != 0) line += "[rank " + std::to_string(rank) + "] ";
    if (tag) line += tag;
    line += msg;
    line += '\n';
    std::FILE* out = (l == LogLevel::Info) ? stdout : stderr;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
}
}  // namespace

void set_log_level(LogLevel l) noexcept { g_level = static_cast<int>(l); }
void set_log_rank(int rank) noexcept { g_rank = rank; }
LogLevel log_level() noexcept { return static_cast<LogLevel>(g_level.load()); }

namespace log {
void debug(const std::string& msg) { emit(LogLevel::Debug, "debug: ", msg); }
void info(const std::string& msg) { emit(LogLevel::Info, nullptr, msg); }
void warn(const std::string& msg) { emit(LogLevel::Warn, "warning: ", msg); }
void error(const std::string& msg) { emit(LogLevel::Error, "error: ", msg); }
}  // namespace log

}  // namespace shardforge::core
