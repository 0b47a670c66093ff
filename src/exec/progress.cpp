// Progress rounds, interrupt propagation and the progress display (see progress.hpp).
#include "progress.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

namespace shardforge::exec {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

struct SavedHandlers {
    struct sigaction term {}, usr1 {}, intr {};
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_eta(double s) {
    if (!std::isfinite(s) || s < 0) return "--:--";
    char buf[32];
    const long t = std::lround(s);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
    return buf;
}

SavedHandlers g_saved;

}  // namespace

int Monitor::signal_seen() { return g_signal.load(std::memory_order_relaxed); }

SignalScope::SignalScope() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &g_saved.term);
    sigaction(SIGUSR1, &sa, &g_saved.usr1);
    sigaction(SIGINT, &sa, &g_saved.intr);
}

SignalScope::~SignalScope() {
    sigaction(SIGTERM, &g_saved.term, nullptr);
    sigaction(SIGUSR1, &g_saved.usr1, nullptr);
    sigaction(SIGINT, &g_saved.intr, nullptr);
}

Monitor::Monitor(Comm& comm, const RunOptions& opt, std::uint64_t total_units, std::uint64_t total_emits,
                 std::uint64_t total_bytes)
    : comm_(comm), own_(comm.dup()), opt_(opt), total_units_(total_units), total_emits_(total_emits),
      total_bytes_(total_bytes), t0_(now_s()) {
    last_plain_ = last_json_ = t0_;
    if (comm_.rank() == 0) {
        tty_ = ::isatty(STDERR_FILENO) != 0;
        if (!opt_.progress_json.empty()) {
            json_ = std::fopen(opt_.progress_json.c_str(), "a");
            // Not fatal (and never thrown on one rank only: the others would wait in the rounds).
            if (!json_) core::log::warn("cannot open --progress-json file " + opt_.progress_json + "; no JSON progress");
        }
    }
}

Monitor::~Monitor() {
    if (json_) std::fclose(json_);
}

void Monitor::unit_done(std::uint64_t emits, std::uint64_t bytes_out, std::uint64_t bytes_in,
                        std::uint64_t weights_quantized, bool resumed) {
    units_.fetch_add(1, std::memory_order_relaxed);
    emits_.fetch_add(emits, std::memory_order_relaxed);
    if (resumed) {
        resumed_bytes_.fetch_add(bytes_out, std::memory_order_relaxed);
        return;
    }
    bytes_out_.fetch_add(bytes_out, std::memory_order_relaxed);
    bytes_in_.fetch_add(bytes_in, std::memory_order_relaxed);
    weights_.fetch_add(weights_quantized, std::memory_order_relaxed);
}

void Monitor::loop(const std::function<bool()>& workers_done, const std::function<void()>& idle) {
    Comm& c = own_ ? *own_ : comm_;
    const auto n = static_cast<std::uint64_t>(c.size());
    for (;;) {
        const bool done = workers_done();
        const bool sig = signal_seen() != 0;
        std::vector<std::uint64_t> local = {
            units_.load(), emits_.load(), bytes_out_.load(), bytes_in_.load(), weights_.load(), resumed_bytes_.load(),
            sig ? 1u : 0u, failed_.load() ? 1u : 0u, done ? 1u : 0u};
        constexpr std::size_t kFixed = 9;
        if (payload_) {
            const std::vector<std::uint64_t> extra = payload_();
            local.insert(local.end(), extra.begin(), extra.end());
        }
        auto req = c.isum(local);
        while (!req->test()) {
            idle();
            if (signal_seen() != 0 || failed_) stop_ = true;  // stop locally at once; the next round tells the others
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        const auto& r = req->result();
        g_units_ = r[0], g_emits_ = r[1], g_bytes_out_ = r[2], g_bytes_in_ = r[3], g_weights_ = r[4];
        g_resumed_bytes_ = r[5];
        if (r[6] > 0) g_interrupted_ = true;
        if (r[6] > 0 || r[7] > 0) stop_ = true;
        if (on_payload_) on_payload_(std::vector<std::uint64_t>(r.begin() + kFixed, r.end()));
        if (r[8] == n) break;
        report(false);
        idle();
        // Rounds at most every 50 ms: cheap, and a stop reaches every rank quickly.
        for (int i = 0; i < 10 && !workers_done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    report(true);
}

void Monitor::report(bool final) {
    if (comm_.rank() != 0) return;
    const double t = now_s(), el = std::max(1e-9, t - t0_);
    const double new_bytes = static_cast<double>(g_bytes_out_);
    const double left = static_cast<double>(total_bytes_) - static_cast<double>(g_bytes_out_ + g_resumed_bytes_);
    const double eta = new_bytes > 0 ? left / (new_bytes / el) : NAN;
    const double rd = static_cast<double>(g_bytes_in_) / el / 1e9, wr = new_bytes / el / 1e9;
    const double wps = static_cast<double>(g_weights_) / el;
    const double frac = total_bytes_ ? static_cast<double>(g_bytes_out_ + g_resumed_bytes_) / total_bytes_ : 1.0;
    if (json_ && (final || t - last_json_ >= 0.5)) {
        last_json_ = t;
        std::fprintf(json_,
                     "{\"elapsed_s\":%.3f,\"units_done\":%llu,\"units_total\":%llu,\"tensors_done\":%llu,"
                     "\"tensors_total\":%llu,\"bytes_written\":%llu,\"bytes_resumed\":%llu,\"bytes_total\":%llu,"
                     "\"bytes_read\":%llu,\"read_gbps\":%.4f,\"write_gbps\":%.4f,\"weights_quantized\":%llu,"
                     "\"weights_per_s\":%.1f,\"eta_s\":%s,\"interrupted\":%s,\"final\":%s}\n",
                     el, static_cast<unsigned long long>(g_units_), static_cast<unsigned long long>(total_units_),
                     static_cast<unsigned long long>(g_emits_), static_cast<unsigned long long>(total_emits_),
                     static_cast<unsigned long long>(g_bytes_out_), static_cast<unsigned long long>(g_resumed_bytes_),
                     static_cast<unsigned long long>(total_bytes_), static_cast<unsigned long long>(g_bytes_in_), rd,
                     wr, static_cast<unsigned long long>(g_weights_), wps,
                     std::isfinite(eta) ? core::cat(std::max(0.0, eta)).c_str() : "null",
                     g_interrupted_ ? "true" : "false", final ? "true" : "false");
        std::fflush(json_);
    }
    char line[256];
    std::snprintf(line, sizeof line, "%llu/%llu tensors, %s/%s written, read %.2f GB/s, write %.2f GB/s, %.3g weights/s quantized, ETA %s",
                  static_cast<unsigned long long>(g_emits_), static_cast<unsigned long long>(total_emits_),
                  core::human_size(g_bytes_out_ + g_resumed_bytes_).c_str(), core::human_size(total_bytes_).c_str(), rd, wr, wps, fmt_eta(final ? 0 : eta).c_str());
    if (tty_) {
        constexpr int width = 30;
        const int fill = static_cast<int>(std::clamp(frac, 0.0, 1.0) * width);
        std::fprintf(stderr, "\r[%.*s%*s] %3.0f%% %s\033[K%s", fill, "##############################", width - fill,
                     "", frac * 100, line, final ? "\n" : "");
        std::fflush(stderr);
    } else if (opt_.progress_interval_s > 0 && !final && t - last_plain_ >= opt_.progress_interval_s) {
        last_plain_ = t;
        std::fprintf(stderr, "shardforge: progress %3.0f%%: %s\n", frac * 100, line);
        std::fflush(stderr);
    }
}

}  // namespace shardforge::exec
