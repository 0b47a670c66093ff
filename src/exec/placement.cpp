// Placement of a rank on its node: local rank/size from the launcher's environment, its share of the allowed CPU
// set and its default thread count. Slurm: SLURM_LOCALID, SLURM_CPUS_PER_TASK, SLURM_CPU_BIND_TYPE,
// SLURM_STEP_TASKS_PER_NODE ("2(x3),1") with SLURM_NODEID; Open MPI: OMPI_COMM_WORLD_LOCAL_RANK/_SIZE; MPICH/Hydra:
// MPI_LOCALRANKID/MPI_LOCALNRANKS.
#include <shardforge/exec.hpp>

#include "placement.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace shardforge::exec {
namespace {

// A non-negative integer, or -1 when unset or not a plain number.
int env_int(const EnvLookup& env, const char* name) {
    const char* s = env(name);
    if (!s || !*s) return -1;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 1'000'000) return -1;
    return static_cast<int>(v);
}

// Slurm's compressed per-node task counts, "2(x3),1" = 2,2,2,1: the count of node `node`, or -1.
int tasks_on_node(const std::string& spec, int node) {
    int index = 0;
    std::size_t pos = 0;
    while (pos < spec.size()) {
        const std::size_t comma = std::min(spec.find(',', pos), spec.size());
        const std::string part = spec.substr(pos, comma - pos);
        pos = comma + 1;
        char* end = nullptr;
        const long count = std::strtol(part.c_str(), &end, 10);
        if (end == part.c_str() || count < 0) return -1;
        long repeat = 1;
        if (*end == '(') {
            if (end[1] != 'x') return -1;
            char* end2 = nullptr;
            repeat = std::strtol(end + 2, &end2, 10);
            if (end2 == end + 2 || *end2 != ')' || end2[1] != '\0' || repeat < 1) return -1;
        } else if (*end != '\0') {
            return -1;
        }
        if (node < index + repeat) return static_cast<int>(count);
        index += static_cast<int>(repeat);
    }
    return -1;
}

std::vector<int> affinity() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

EnvLookup process_env() {
    return [](const char* n) -> const char* { return std::getenv(n); };
}

}  // namespace

Placement compute_placement(const EnvLookup& env, const std::vector<int>& allowed) {
    Placement pl;
    for (const char* v : {"SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"})
        if (const int r = env_int(env, v); r >= 0) {
            pl.local_rank = r;
            break;
        }
    int size = -1;
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
        if ((size = env_int(env, v)) > 0) break;
    if (size <= 0) {
        const int node = std::max(0, env_int(env, "SLURM_NODEID"));
        for (const char* v : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"})
            if (const char* s = env(v); s && (size = tasks_on_node(s, node)) > 0) break;
    }
    pl.local_size = std::max({1, size, pl.local_rank + 1});

    // Bound: Slurm (or the user) already restricted this task's affinity to its own CPUs.
    const char* bind = env("SLURM_CPU_BIND_TYPE");
    const std::string bind_type = bind ? bind : "";
    const bool bound = (!bind_type.empty() && bind_type.find("none") == std::string::npos) || pl.local_size == 1;
    if (allowed.empty()) {
        pl.cpus.clear();
    } else if (bound) {
        pl.cpus = allowed;
    } else {
        // Unbound ranks share the allowed set: each takes a contiguous slice (at least one CPU).
        const std::size_t n = allowed.size(), ls = static_cast<std::size_t>(pl.local_size);
        const std::size_t lr = static_cast<std::size_t>(pl.local_rank) % ls;
        std::size_t b = lr * n / ls, e = (lr + 1) * n / ls;
        if (e <= b) {
            b = std::min(b, n - 1);
            e = b + 1;
        }
        pl.cpus.assign(allowed.begin() + static_cast<std::ptrdiff_t>(b), allowed.begin() + static_cast<std::ptrdiff_t>(e));
        pl.pin = pl.cpus.size() < n;
    }
    const int per_task = env_int(env, "SLURM_CPUS_PER_TASK");
    pl.threads = per_task > 0 ? per_task : std::max<int>(1, static_cast<int>(pl.cpus.size()));
    return pl;
}

Placement placement() { return compute_placement(process_env(), affinity()); }

Placement adopt_placement() {
    Placement pl = placement();
    if (pl.pin && core::env("SHARDFORGE_PIN") != "0") {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c : pl.cpus) CPU_SET(c, &set);
        (void)sched_setaffinity(0, sizeof(set), &set);  // best effort: threads created later inherit it
    }
    return pl;
}

int device_index(int n_devices) { return n_devices <= 0 ? -1 : local_rank() % n_devices; }

int visible_device_count(const EnvLookup& env) {
    const char* s = env("CUDA_VISIBLE_DEVICES");
    if (!s) return -1;
    const std::string v = s;
    if (v.empty() || v == "-1" || v == "none" || v == "NoDevFiles") return 0;
    return static_cast<int>(std::count(v.begin(), v.end(), ',')) + 1;
}

}  // namespace shardforge::exec
