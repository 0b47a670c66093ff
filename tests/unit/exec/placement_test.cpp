// Rank placement on a node (placement.cpp): local rank/size from Slurm / Open MPI / MPICH variables, the CPU share
// of unbound ranks, threads = the cores Slurm gave the task, GPU index. Expected values follow the launchers'
// documented variables (srun(1) OUTPUT ENVIRONMENT VARIABLES, Open MPI mpirun(1)).
#include <shardforge/exec.hpp>

#include "exec/placement.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <numeric>
#include <string>

namespace sf = shardforge;

namespace {

sf::exec::EnvLookup env_of(const std::map<std::string, std::string>& m) {
    return [m](const char* n) -> const char* {
        const auto it = m.find(n);
        return it == m.end() ? nullptr : it->second.c_str();
    };
}
std::vector<int> cpus(int first, int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), first);
    return v;
}

TEST(Placement, NoLauncherUsesEveryAllowedCpu) {
    const auto pl = sf::exec::compute_placement(env_of({}), cpus(0, 8));
    EXPECT_EQ(pl.local_rank, 0);
    EXPECT_EQ(pl.local_size, 1);
    EXPECT_EQ(pl.cpus, cpus(0, 8));
    EXPECT_EQ(pl.threads, 8);
    EXPECT_FALSE(pl.pin);
}

TEST(Placement, UnboundOpenMpiRanksSplitTheAllowedSet) {
    // mpirun -np 4 without binding: every rank sees CPUs 0..15; each takes a disjoint quarter.
    std::vector<int> all;
    for (int r = 0; r < 4; ++r) {
        const auto pl = sf::exec::compute_placement(
            env_of({{"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(r)}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}),
            cpus(0, 16));
        EXPECT_EQ(pl.local_rank, r);
        EXPECT_EQ(pl.local_size, 4);
        EXPECT_EQ(pl.cpus, cpus(4 * r, 4));
        EXPECT_EQ(pl.threads, 4);
        EXPECT_TRUE(pl.pin);
        all.insert(all.end(), pl.cpus.begin(), pl.cpus.end());
    }
    EXPECT_EQ(all, cpus(0, 16));
}

TEST(Placement, MoreRanksThanCpusStillGetOneCpuEach) {
    for (int r = 0; r < 4; ++r) {
        const auto pl = sf::exec::compute_placement(
            env_of({{"MPI_LOCALRANKID", std::to_string(r)}, {"MPI_LOCALNRANKS", "4"}}), {2, 5});
        ASSERT_EQ(pl.cpus.size(), 1u);
        EXPECT_EQ(pl.cpus[0], r < 2 ? 2 : 5);
        EXPECT_EQ(pl.threads, 1);
    }
}

TEST(Placement, SlurmBoundTaskKeepsItsMaskAndCpusPerTask) {
    // srun --ntasks-per-node=4 --cpus-per-task=6 --cpu-bind=cores: the mask already is the task's 6 cores.
    const auto pl = sf::exec::compute_placement(env_of({{"SLURM_LOCALID", "2"},
                                                        {"SLURM_NODEID", "1"},
                                                        {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                                                        {"SLURM_CPUS_PER_TASK", "6"},
                                                        {"SLURM_CPU_BIND_TYPE", "cores"}}),
                                                cpus(12, 6));
    EXPECT_EQ(pl.local_rank, 2);
    EXPECT_EQ(pl.local_size, 4);
    EXPECT_EQ(pl.cpus, cpus(12, 6));
    EXPECT_EQ(pl.threads, 6);
    EXPECT_FALSE(pl.pin);
}

TEST(Placement, SlurmUnboundTasksPerNodeFromTheCompressedList) {
    // "3(x2),2": nodes 0 and 1 run 3 tasks, node 2 runs 2. Task 1 of node 2 takes the upper half of 8 CPUs.
    const auto pl = sf::exec::compute_placement(env_of({{"SLURM_LOCALID", "1"},
                                                        {"SLURM_NODEID", "2"},
                                                        {"SLURM_STEP_TASKS_PER_NODE", "3(x2),2"},
                                                        {"SLURM_CPU_BIND_TYPE", "none"}}),
                                                cpus(0, 8));
    EXPECT_EQ(pl.local_size, 2);
    EXPECT_EQ(pl.cpus, cpus(4, 4));
    EXPECT_EQ(pl.threads, 4);
    const auto node0 = sf::exec::compute_placement(
        env_of({{"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_TASKS_PER_NODE", "3(x2),2"}}), cpus(0, 9));
    EXPECT_EQ(node0.local_size, 3);
    EXPECT_EQ(node0.cpus, cpus(0, 3));
}

TEST(Placement, MalformedValuesAreIgnored) {
    const auto pl = sf::exec::compute_placement(env_of({{"SLURM_LOCALID", "x1"},
                                                        {"OMPI_COMM_WORLD_LOCAL_RANK", "-3"},
                                                        {"SLURM_STEP_TASKS_PER_NODE", "2(y3)"},
                                                        {"SLURM_CPUS_PER_TASK", "many"}}),
                                                cpus(0, 4));
    EXPECT_EQ(pl.local_rank, 0);
    EXPECT_EQ(pl.local_size, 1);
    EXPECT_EQ(pl.threads, 4);
}

TEST(Placement, GpuIndexFromTheProcessEnvironment) {
    // One GPU per task (--gpus-per-task=1: CUDA_VISIBLE_DEVICES holds one id): every task uses device 0.
    ::setenv("SLURM_LOCALID", "3", 1);
    EXPECT_EQ(sf::exec::local_rank(), 3);
    EXPECT_EQ(sf::exec::device_index(1), 0);
    // All node GPUs visible to every task: round robin on the local rank.
    EXPECT_EQ(sf::exec::device_index(4), 3);
    EXPECT_EQ(sf::exec::device_index(2), 1);
    EXPECT_EQ(sf::exec::device_index(0), -1);
    ::unsetenv("SLURM_LOCALID");
    ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    EXPECT_EQ(sf::exec::local_rank(), 1);
    ::unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    ::setenv("CUDA_VISIBLE_DEVICES", "2,3", 1);
    EXPECT_EQ(sf::exec::visible_device_count([](const char* n) { return std::getenv(n); }), 2);
    ::setenv("CUDA_VISIBLE_DEVICES", "", 1);
    EXPECT_EQ(sf::exec::visible_device_count([](const char* n) { return std::getenv(n); }), 0);
    ::unsetenv("CUDA_VISIBLE_DEVICES");
    EXPECT_EQ(sf::exec::visible_device_count([](const char* n) { return std::getenv(n); }), -1);
}

}  // namespace
