// Run report (docs/engine.md, "Resume, progress and run report"): per-output-tensor facts gathered while running and the collective HDF5 writer.
// Layout: docs/engine.md, "Resume, progress and run report". Private to exec.
#pragma once
#include <shardforge/exec.hpp>

#include "journal.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace shardforge::exec {

[[nodiscard]] std::uint64_t count_nans(const std::vector<float>& v);
// NaNs among raw values of a floating dtype (F32/F16/BF16 bit patterns); 0 for other dtypes.
[[nodiscard]] std::uint64_t count_nans_raw(core::DType t, std::span<const std::byte> bytes);
// Adds ||after - before||^2 to dw2 and ||before||^2 to w2.
void accumulate_delta(const std::vector<float>& before, const std::vector<float>& after, double& dw2, double& w2);

struct ReportInfo {
    double seconds = 0;
    std::uint64_t bytes_read = 0, bytes_written = 0, units_resumed = 0;
    int threads = 0;
    bool resumed = false;
};
// Rows of the report (one per output tensor, plan order) that this rank hashes and writes: a contiguous share in
// direct mode; all of them on rank 0 in gather mode (the outputs, and the report, are on rank 0's disk only).
struct RowRange {
    std::uint64_t begin = 0, end = 0;
};
[[nodiscard]] RowRange report_rows(const plan::Plan& p, const Comm& comm, bool gather);
// collective: SHA-256 of each of this rank's rows' final bytes, read back from the *.partial files.
[[nodiscard]] std::vector<resume::Digest> hash_tensors(const plan::Plan& p, const Comm& comm, bool gather);
// collective: every rank passes the records of the units it computed or verified (together they cover the plan)
// and the digests of its rows; the row figures are summed over each tensor's row blocks.
void write_report(const std::string& path, const plan::Plan& p, Comm& comm,
                  const std::vector<resume::UnitRecord>& records, const std::vector<resume::Digest>& my_sha,
                  const ReportInfo& info, bool gather);

// HDF5 file access property list for a collective file on comm's ranks (MPI-IO); implemented in mpi_comm.cpp,
// the one file that sees MPI types. Serial communicators get the default (POSIX) driver.
[[nodiscard]] std::int64_t make_h5_file_access(Comm& comm);

}  // namespace shardforge::exec
