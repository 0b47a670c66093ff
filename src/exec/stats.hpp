// A run's statistics: each rank's counters (pipeline.hpp) reduced over the ranks into RunStats. Collective.
#pragma once
#include <shardforge/exec.hpp>

#include "hasher.hpp"
#include "pipeline.hpp"

#include <cstdint>

namespace shardforge::exec {

// What the unit phase measured on this rank besides the counters.
struct RankTimes {
    double busy_s = 0;              // from the first unit to the last worker's end
    std::uint64_t n_resumed = 0;    // units verified from the journal and skipped
};

// collective: sums, maxima and (on rank 0) the quantization errors and bnb statistics of every rank. `hasher`:
// the --push-to-hub output hasher, or null. RunStats::seconds is left to the caller.
[[nodiscard]] RunStats reduce_stats(const Counters& c, const RankTimes& t, const OutputHasher* hasher, Comm& comm);

}  // namespace shardforge::exec
