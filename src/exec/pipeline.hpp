// The unit pipeline: one unit of work (rows of one plan item) from the input bytes to every emit's bytes in its
// sink, for plain exports, batch variants and pass-through tensors alike (pipeline.cpp). Thread-safe: the workers
// of a rank run units concurrently, sharing the FileTable, the sink and the counters.
#pragma once
#include <shardforge/exec.hpp>
#include <shardforge/plan.hpp>
#include <shardforge/quant.hpp>

#include "backend.hpp"
#include "journal.hpp"
#include "outputs.hpp"
#include "transport.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shardforge::exec {

using Clock = std::chrono::steady_clock;

// This rank's totals, updated by every worker (atomics, or under `mu`); reduced over ranks by stats.hpp.
struct Counters {
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0}, items{0}, units{0};
    std::atomic<std::uint64_t> input_read{0};  // of bytes_read: from plan.input_files (not the merge's adapter reads)
    std::atomic<std::uint64_t> stage_ns[kStages] = {};
    std::mutex mu;
    // Per quantized output tensor: sums of squared error and of squared reference over its row blocks.
    std::map<std::pair<std::uint32_t, std::string>, std::pair<double, double>> quant_err;
    std::vector<BnbStat> bnb_stats;  // per bnb emit of a merged tensor
    std::atomic<std::uint64_t> weights_quantized{0};
    bool want_delta = false;  // --report: ||dW||, ||W|| per merged block (one more f32 copy of it per worker)
};

// Adds the time since construction (or the last lap) to one stage.
class StageTimer {
public:
    explicit StageTimer(Counters& c) : c_(c), t_(Clock::now()) {}
    void lap(Stage s) {
        const auto now = Clock::now();
        c_.stage_ns[s] += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t_).count());
        t_ = now;
    }

private:
    Counters& c_;
    Clock::time_point t_;
};

// What every step of a unit uses.
struct UnitCtx {
    const plan::Plan& p;
    FileTable& files;
    Sink& sink;
    Counters& c;
    Backend& backend;  // --device: where dequantization, the delta and quantization run
};

// One unit of work: rows [u.row_begin, u.row_end) of its item, every emit's matching byte range (the item's own and
// every batch variant's) to ctx.sink; `rec` receives the journal/report facts of the item's own emits.
void run_unit(const UnitCtx& ctx, const plan::Unit& u, resume::UnitRecord& rec);

// Asks the kernel to start reading the unit's source bytes now (posix_fadvise WILLNEED), so that a worker's next
// unit is read while its current one computes. Only a hint: run_unit reads what it needs either way.
void read_ahead(const UnitCtx& ctx, const plan::Unit& u);

}  // namespace shardforge::exec
