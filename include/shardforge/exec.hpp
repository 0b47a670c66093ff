// shardforge exec: runs an export plan on MPI ranks. Each rank computes its share of the plan's units of work (row
// blocks of items: read source rows -> f32 -> LoRA merge -> transforms -> output type) and writes the bytes at the
// planned offsets of `*.partial` files, itself (--write direct) or through rank 0 (--write gather); rank 0 renames
// them once every rank has succeeded. <mpi.h> is included only by mpi_comm.cpp.
#pragma once
#include <shardforge/comm.hpp>
#include <shardforge/plan.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::exec {

// The communicator is core's (include/shardforge/comm.hpp), shared with hub; exec spells it without the prefix.
using core::Comm;
using core::agree_on_error;
using core::capture;
using core::make_serial_comm;

// RAII MPI_Init/MPI_Finalize (thread level FUNNELED). Safe to construct when launched without mpirun (singleton).
class MpiSession {
public:
    MpiSession(int& argc, char**& argv);
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    [[noreturn]] static void abort(int code);  // MPI_Abort on the world: last resort when ranks disagree
};
[[nodiscard]] std::unique_ptr<Comm> make_mpi_comm();     // dup of MPI_COMM_WORLD
// NCCL communicator over `host`'s ranks on CUDA device `device` (one per rank): isend/recv_any move the payload
// GPU to GPU through NCCL (ncclSend/ncclRecv via device buffers); a small header (size) goes first through
// `host`, which also runs the control collectives and carries the NCCL unique id from rank 0 (so only
// mpi_comm.cpp sees MPI). See src/exec/link.hpp.
// Collective. nullptr on every rank when two ranks are on one GPU, which NCCL refuses (rank 0 logs which ranks
// and GPU): the caller keeps its MPI communicator. core::Error(Unsupported) when the build has no NCCL.
[[nodiscard]] std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host, int device);

// Worker threads per rank by default: the CPUs in the affinity mask shared by the node's local ranks, or
// SLURM_CPUS_PER_TASK.
[[nodiscard]] int default_threads();

enum class WriteMode {
    Direct,  // every rank pwrites its bytes at their final offsets (shared filesystem)
    Gather,  // only rank 0 writes; other ranks stream encoded row blocks to it through a bounded window
};
struct RunOptions {
    int threads = 0;            // per rank; 0 = cores available to the process (capped by a budgeted plan)
    bool verbose = false;
    WriteMode write = WriteMode::Direct;
    // Resume (docs/engine.md "Resume, progress and run report"): the journal is always written; `resume` continues a
    // run interrupted in out_dir (refused when the plan digest or the inputs changed), skipping verified units.
    bool resume = false;
    std::string progress_json;  // rank 0 appends one JSON line per progress round to this file ("" = none)
    double progress_interval_s = 10;  // plain progress lines when stderr is not a terminal (0 = none)
    std::string report;         // HDF5 run report path ("" = none), written collectively
    std::string device = "cpu";           // --device cpu|cuda|auto (see select_device)
    std::size_t max_gpu_memory = 0;       // --max-gpu-memory in bytes; 0 = a quarter of the free device memory
    // --push-to-hub: SHA-256 of every tensor file computed while it is produced, by one "hash owner" rank per file
    // (src/exec/hasher.hpp). on_file_hashed(file index, sha256 hex, path of the *.partial) runs on the owner as soon
    // as the file is complete and hashed, from a worker or background thread, while the run goes on; the partial
    // is renamed only after run() finished every file. Must not throw.
    bool hash_outputs = false;
    std::function<void(std::uint32_t file, const std::string& sha256_hex, const std::string& partial_path)> on_file_hashed;
    // Rank 0, once every output file has its final name and the directory is synced, before the journal is removed
    // (the CLI records it in the output lock: OutputLock::mark_complete). Must not throw.
    std::function<void(const std::string& plan_sha256)> on_outputs_final;
};
enum Stage { kRead, kDequant, kMerge, kQuantize, kWrite, kStages };
inline constexpr const char* stage_names[kStages] = {"read", "dequant", "merge", "quantize", "write"};

// ---------------------------------------------------------------- GPU (src/exec/device.cpp, src/exec/cuda/)
// This rank's index among the ranks of its node: SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID
// (first set), else 0.
[[nodiscard]] int local_rank() noexcept;
// --device: "cpu" -> null. "cuda" -> visible device local_rank() % device_count (CUDA_VISIBLE_DEVICES applies;
// with one GPU bound per task that is device 0); core::Error(Unsupported) when the build has no CUDA or the rank
// sees no device. "auto" -> as "cuda" when a device is visible, else null (CPU). Other values: Usage.
[[nodiscard]] std::unique_ptr<quant::gpu::Device> select_device(const std::string& device, std::size_t max_gpu_memory);
// "--max-gpu-memory" value: bytes with an optional K/M/G/T (binary: GiB) suffix, e.g. "4G", "512M". Usage on error.
[[nodiscard]] std::size_t parse_memory_size(const std::string& s);
// Linked backends for --version: "CUDA 13.0 (...), NCCL 2.x" or "CPU only".
[[nodiscard]] std::string gpu_backend_info();
// A quantized output tensor: relative RMSE of its dequantized bytes against the merged f32 values it was made from.
struct QuantError {
    std::uint32_t file = 0;   // index into plan::Plan::files
    std::string tensor;
    double rel_rmse = 0;
};
// A bnb 4-bit weight whose tensor a LoRA changed (definitions in docs/formats.md, "bitsandbytes 4-bit output"): 4-bit codes that differ
// between Q(W) and Q(W + dW), and ||deq(Q(W + dW)) - deq(Q(W)) - dW|| / ||dW||.
struct BnbStat {
    std::uint32_t file = 0;
    std::string tensor;
    std::int64_t elements = 0, changed_codes = 0;
    double delta_rel_err = 0;
    // An MXFP4 emit of merged MXFP4 experts (gpt-oss): changed_codes counts values written differently from the
    // unmerged ones, and the squared error of the applied delta and the squared delta are sums, so that the row
    // blocks of one tensor add up (delta_rel_err = sqrt(delta_err2 / delta_ref2)).
    bool mxfp4 = false;
    double delta_err2 = 0, delta_ref2 = 0;
};
// One rank's share of a run (RunStats::ranks): its busy time, work units, bytes read and written, peak RSS.
struct RankStat {
    double busy_s = 0;
    std::uint64_t units = 0, bytes_read = 0, bytes_written = 0, peak_rss = 0;
};
struct RunStats {
    std::uint64_t bytes_read = 0, bytes_written = 0, items = 0, units = 0;
    // Of bytes_read: tensor bytes read from plan.input_files (the base model; a gguf-lora output also reads its
    // adapter file there); LoRA factors read for merges are not counted. Each base tensor once = its bytes once.
    std::uint64_t input_bytes_read = 0;
    double seconds = 0, max_rank_seconds = 0, mean_rank_seconds = 0;  // rank busy time: its units' phase
    double stage_seconds[kStages] = {};  // summed over ranks and threads
    std::uint64_t max_rank_peak_rss = 0;  // bytes, VmHWM of the largest rank (0 if unknown)
    std::vector<RankStat> ranks;          // rank 0 only: one per rank, in rank order
    std::vector<QuantError> quant_errors;  // rank 0 only: per quantized output tensor, by file and name
    std::vector<BnbStat> bnb_stats;        // rank 0 only: per bnb 4-bit weight of a merged tensor
    std::uint64_t units_resumed = 0;  // units verified from the journal and skipped (--resume)
    // hash_outputs: bytes of tensor files hashed from memory (as written, headers and padding from the plan) vs
    // read back from the partials (other ranks' ranges, resumed units, reorder buffer overflow); files hashed.
    std::uint64_t hashed_from_memory = 0, hashed_read_back = 0, files_hashed = 0;
};
// Per output file: tensors quantized, mean and max relative RMSE (and the worst tensor); one line per file.
[[nodiscard]] std::string summarize_quant_errors(const plan::Plan& p, const std::vector<QuantError>& errors);

// Rank 0, before any tensor I/O: the output directory (or its nearest existing parent) is writable and has room
// for the plan's exact output size (statvfs; SHARDFORGE_FAULT=statvfs_free:BYTES overrides the free space in
// tests). Throws Error(Io). Returns a one-line summary (needed / free) for --dry-run; with dry_run, too little free
// space is reported in that line instead of thrown (the plan may be for another machine's disk).
std::string preflight(const plan::Plan& p, bool dry_run = false);

// Re-quantization report of merged tensors written quantized again (bnb 4-bit outputs, gpt-oss's MXFP4 experts):
// writes <out>/bnb_requant.tsv and <out>/mxfp4_requant.tsv for the kinds present (sorted by tensor name; header
// line; via a .partial and a rename) and returns a summary for the log (totals and the `worst` tensors by delta
// error). Empty input: returns "" and writes nothing.
std::string report_bnb_requant(const plan::Plan& p, const std::vector<BnbStat>& stats, std::size_t worst = 5);

// One writer per output directory (docs/engine.md, "One writer per output directory"): OUT/.shardforge.lock, created
// with O_EXCL, names its holder (host, pid, Slurm job and step) and carries a heartbeat that a thread refreshes
// (write + rename) while the run lasts. No flock/fcntl: on Lustre and GPFS those can be no-ops or node-local.
// A lock whose heartbeat is older than SHARDFORGE_LOCK_STALE_S seconds (default 120), or whose pid is gone on this
// host, is stale and taken over (logged). Rank 0 only; the CLI takes it before anything in OUT is created or removed.
inline constexpr const char* lock_file_name = ".shardforge.lock";
class OutputLock {
public:
    // Throws Error(Usage, exit 2) naming the holder when a live run holds out_dir. Creates nothing.
    static void check_free(const std::string& out_dir);
    // Creates out_dir if needed and takes the lock; `resume` only changes how a takeover is logged.
    OutputLock(const std::string& out_dir, bool resume);
    ~OutputLock();  // release()
    OutputLock(const OutputLock&) = delete;
    OutputLock& operator=(const OutputLock&) = delete;
    // Stops the heartbeat and removes the lock file (if it is still ours). Idempotent, never throws.
    void release() noexcept;
    // Once every output has its final name (durably), the lock records the plan it completed (plan_digest), so that
    // a run killed afterwards (removing its journal, its lock, during the Hub push) is known complete to --resume.
    void mark_complete(const std::string& plan_sha256);
    // The plan digest recorded by mark_complete in the stale lock this one took over, or "".
    [[nodiscard]] std::string took_over_complete() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Hex SHA-256 of what fixes the plan's output bytes (the resume journal's digest; not the rank-dependent sizing).
[[nodiscard]] std::string plan_digest(const plan::Plan& p);

// collective: execute the plan (already identical on every rank), produce every output file under plan.out_dir.
// Throws core::Error (the agreed one) on any rank's failure; nothing is renamed to its final name then. Before the
// renames every rank re-hashes its units in the partials: bytes that no longer match the journal are Error(Verify)
// (exit 7; partials and journal kept for --resume). The finishing steps are recorded in the journal directory so
// that kill -9 at any of them leaves a directory --resume completes (docs/engine.md, "Crash consistency through
// finalisation").
// An interrupt (SIGTERM, SIGUSR1, SIGINT on any rank) makes every rank finish its in-flight units, journal them
// and throw Error(Interrupted) (exit 75); partial files and the journal stay for --resume.
RunStats run(const plan::Plan& p, Comm& comm, const RunOptions& opt);

// `shardforge report RUN.h5`: a text summary of an HDF5 run report (layout in docs/engine.md "Resume, progress and run
// report").
[[nodiscard]] std::string summarize_report(const std::string& path);
// `shardforge report RUN.h5 --html FILE`: one self-contained HTML page (inline CSS and SVG, no external resources)
// with the per-rank timeline of work units, bytes and time per stage, and quantization error by layer and tensor
// kind. Written to FILE.partial, then renamed. Throws Error(BadInput) for a non-report input, Error(Io) on write.
void write_report_html(const std::string& report_path, const std::string& html_path);

}  // namespace shardforge::exec
