// Progress and interrupts across ranks (docs/engine.md, "Resume, progress and run report"). Worker threads only touch atomics; the main thread
// (the only one that calls MPI: thread level FUNNELED) runs rounds of a non-blocking sum on a duplicated
// communicator, so a slow rank never stalls the others' work. Each round carries the counters, the interrupt and
// failure flags, and how many ranks have finished; every rank sees the same round results, so all of them agree
// on "stop" and on "everyone is done" without any blocking collective during the work.
#pragma once
#include <shardforge/exec.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>

namespace shardforge::exec {

// SIGTERM, SIGUSR1 and SIGINT only set a flag while a run is in progress (run() holds one for its whole duration);
// the previous handlers come back afterwards.
class SignalScope {
public:
    SignalScope();
    ~SignalScope();
    SignalScope(const SignalScope&) = delete;
    SignalScope& operator=(const SignalScope&) = delete;
};

class Monitor {
public:
    // total_units / total_emits / total_bytes: the whole plan's work (for done fractions and ETA).
    Monitor(Comm& comm, const RunOptions& opt, std::uint64_t total_units, std::uint64_t total_emits,
            std::uint64_t total_bytes);
    ~Monitor();
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    // Worker side (thread-safe, lock-free).
    void unit_done(std::uint64_t emits, std::uint64_t bytes_out, std::uint64_t bytes_in, std::uint64_t weights_quantized,
                   bool resumed);
    void failed() { failed_ = true; }
    // A stop signal arrived here, or a round reported one (or a failure) from any rank.
    [[nodiscard]] bool should_stop() const { return stop_.load(std::memory_order_relaxed) || signal_seen() != 0; }

    // Main thread: rounds until every rank reported done (workers_done() true on each); idle() runs between polls
    // (journal flushes). Collective over the monitor's communicator.
    void loop(const std::function<bool()>& workers_done, const std::function<void()>& idle);
    // Optional words summed over ranks in every round (after the counters; read after workers_done()), and the
    // callback that receives each round's sums (main thread). Used by the output hasher's "units done" bitmap.
    void set_round_payload(std::function<std::vector<std::uint64_t>()> local,
                           std::function<void(const std::vector<std::uint64_t>&)> result) {
        payload_ = std::move(local);
        on_payload_ = std::move(result);
    }
    // After loop(): the same on every rank.
    [[nodiscard]] bool interrupted() const { return g_interrupted_; }
    [[nodiscard]] bool all_units_done() const { return g_units_ >= total_units_; }
    [[nodiscard]] std::uint64_t units_done() const { return g_units_; }
    [[nodiscard]] static int signal_seen();  // signal number caught in this process (0: none)

private:
    void report(bool final);

    Comm& comm_;
    std::unique_ptr<Comm> own_;  // duplicated communicator (or null: use comm_)
    std::function<std::vector<std::uint64_t>()> payload_;
    std::function<void(const std::vector<std::uint64_t>&)> on_payload_;
    RunOptions opt_;
    std::uint64_t total_units_, total_emits_, total_bytes_;
    std::atomic<std::uint64_t> units_{0}, emits_{0}, bytes_out_{0}, bytes_in_{0}, weights_{0}, resumed_bytes_{0};
    std::atomic<bool> stop_{false}, failed_{false};
    // Agreed values from the latest round.
    std::uint64_t g_units_ = 0, g_emits_ = 0, g_bytes_out_ = 0, g_bytes_in_ = 0, g_weights_ = 0, g_resumed_bytes_ = 0;
    bool g_interrupted_ = false;
    double t0_ = 0, last_plain_ = 0, last_json_ = 0;
    std::FILE* json_ = nullptr;
    bool tty_ = false;
};

}  // namespace shardforge::exec
