// The two commands that run a plan: `export` (plan -> exec, with the Hub and Ollama around it) and `run JOB.toml`
// (a batch plan -> exec). main.cpp maps the command line to these structs; these functions make the plan on rank 0,
// broadcast it and run it on every rank (collective over MPI_COMM_WORLD).
#pragma once
#include <shardforge/hub.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shardforge::cli {

// `shardforge export` options (docs/cli.md).
struct ExportArgs {
    std::string base, out, formats = "safetensors", dtype, max_shard_size = "5GB", split_max_size = "48G";
    std::vector<std::string> adapters;
    std::uint32_t split_max_tensors = 0;
    std::string save_method = "merged", name;
    bool overwrite = false, dry_run = false;
    int threads = 0;
    int dry_run_ranks = 0;     // --dry-run: describe the split for this many ranks (0: the run's)
    std::string device = "cpu", max_gpu_memory;
    std::string write = "direct", max_memory_per_rank, block_size;
    std::string output_tensor_type, token_embedding_type;
    std::vector<std::string> tensor_types;
    bool pure = false, leave_output_tensor = false;
    std::string ollama_create, ollama_host, imatrix;
    std::string merge_into = "dequantized", original_base;
    bool ollama_push = false;
    bool resume = false;
    std::string progress_json, report;
    double progress_interval = 10;
    std::string push_to_hub;   // ORG/NAME (hub::OverlapPush, hub::run_push)
    hub::JobOptions hub;
    bool double_quant = false;
    bool no_mmproj = false;  // --no-mmproj
};
// Collective. Returns the exit status (0); errors are thrown as core::Error, the same on every rank.
int run_export(ExportArgs a);

// `shardforge run JOB.toml`: every variant of the job from one read of the base (plan::make_batch_plan).
struct BatchArgs {
    std::string job;
    int threads = 0;
    bool dry_run = false, overwrite = false;
};
int run_batch(const BatchArgs& a);   // collective, like run_export

}  // namespace shardforge::cli
