// Private to src/exec (and its unit tests): where this rank runs on its node (placement.cpp). run() adopts the
// placement; the CLI only sees its effect (threads, pinning).
#pragma once
#include <shardforge/exec.hpp>

#include <functional>
#include <vector>

namespace shardforge::exec {

// Where this rank runs (Slurm, Open MPI, MPICH): its index among the ranks of its node (SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK,
// MPI_LOCALRANKID), how many ranks share the node, its share of the allowed CPU set and its default thread count.
struct Placement {
    int local_rank = 0, local_size = 1;
    std::vector<int> cpus;   // this rank's CPUs: the whole allowed set when bound (srun --cpu-bind, Slurm
                             // --cpus-per-task), else its contiguous slice of the allowed set shared by local_size
    int threads = 1;         // default worker threads: SLURM_CPUS_PER_TASK when set, else cpus.size()
    bool pin = false;        // cpus is a strict subset the process should be restricted to (unbound ranks)
};
using EnvLookup = std::function<const char*(const char*)>;
// Pure: from an environment lookup and the allowed CPU set (sched_getaffinity). Unit-tested.
[[nodiscard]] Placement compute_placement(const EnvLookup& env, const std::vector<int>& allowed_cpus);
// From the process environment and affinity mask.
[[nodiscard]] Placement placement();
// placement(), and, when it says so and SHARDFORGE_PIN is not 0, restricts the process to its CPU share.
Placement adopt_placement();
// The GPU this rank uses among the n_devices the CUDA runtime reports (it already honours CUDA_VISIBLE_DEVICES,
// e.g. one device per task under Slurm --gpus-per-task): local_rank modulo n_devices; -1 when n_devices <= 0.
[[nodiscard]] int device_index(int n_devices);
// Number of devices CUDA_VISIBLE_DEVICES lists (comma-separated), or -1 when it is unset.
[[nodiscard]] int visible_device_count(const EnvLookup& env);

}  // namespace shardforge::exec
