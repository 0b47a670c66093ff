// shardforge exec: runs an export plan on MPI ranks. Each rank computes its share of the plan's work items
// (read sources -> f32 -> LoRA merge -> transforms -> output type) and pwrites the bytes at the planned offsets of
// `*.partial` files; rank 0 renames them once every rank has succeeded. <mpi.h> is included only by mpi_comm.cpp.
#pragma once
#include <shardforge/plan.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::exec {

// Communicator interface (ADIOS2's helper::Comm idea): the rest of exec never sees MPI types.
class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void barrier() = 0;                                          // collective
    virtual void broadcast(std::string& bytes, int root) = 0;            // collective; resizes on receivers
    virtual std::uint64_t max(std::uint64_t local) = 0;                  // collective
    virtual std::uint64_t sum(std::uint64_t local) = 0;                  // collective
    virtual double max(double local) = 0;                                // collective
    virtual std::vector<std::string> gather(const std::string& local, int root) = 0;  // collective; filled on root
};

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
[[nodiscard]] std::unique_ptr<Comm> make_serial_comm();  // one process (tests, demo, inspect)

// collective: every rank passes its local error (or none); every rank returns the error of the lowest failing
// rank (same kind and message everywhere), so all ranks can stop together without hanging in a collective.
[[nodiscard]] std::optional<core::Error> agree_on_error(Comm& comm, const std::optional<core::Error>& local);

struct RunOptions {
    int threads = 0;            // per rank; 0 = cores available to the process
    bool verbose = false;
};
struct RunStats {
    std::uint64_t bytes_read = 0, bytes_written = 0, items = 0;
    // Of bytes_read: tensor bytes read from plan.input_files (the base model; a gguf-lora output also reads its
    // adapter file there); LoRA factors read for merges are not counted. Each base tensor once = its bytes once.
    std::uint64_t input_bytes_read = 0;
    double seconds = 0, max_rank_seconds = 0, mean_rank_seconds = 0;
    // Rank 0 only: one line per quantized output tensor, "file_index\ttensor\trelative RMSE vs merged f32\n".
    std::string quant_errors;
};
// Per output file: tensors quantized, mean and max relative RMSE (and the worst tensor); one line per file.
[[nodiscard]] std::string summarize_quant_errors(const plan::Plan& p, const std::string& quant_errors);

// collective: execute the plan (already identical on every rank), produce every output file under plan.out_dir.
// Throws core::Error (the agreed one) on any rank's failure; nothing is renamed to its final name then.
RunStats run(const plan::Plan& p, Comm& comm, const RunOptions& opt);

}  // namespace shardforge::exec
