// Run report (docs/engine.md, "Resume, progress and run report"): per-output-tensor facts gathered while running and the collective HDF5 writer.
// Layout: docs/engine.md, "Resume, progress and run report". Private to exec.
#pragma once
#include <shardforge/exec.hpp>

#include "journal.hpp"

#include <cstdint>
#include <string>
#include <span>
#include <vector>

namespace shardforge::exec {

[[nodiscard]] std::uint64_t count_nans(const std::vector<float>& v);
// NaNs among raw values of a floating dtype (F32/F16/BF16 bit patterns); 0 for other dtypes.
[[nodiscard]] std::uint64_t count_nans_raw(core::DType t, std::span<const std::byte> bytes);
// Adds ||after - before||^2 to dw2 and ||before||^2 to w2.
void accumulate_delta(const std::vector<float>& before, const std::vector<float>& after, double& dw2, double& w2);

// When and where a unit ran (group /units of the report): seconds since this rank's unit phase began (the ranks
// begin it together, after a collective), the worker thread, and whether it was verified from the journal
// (--resume) instead of computed.
struct UnitTime {
    std::uint32_t unit = 0;
    std::int32_t rank = 0, thread = 0;
    double start_s = 0, end_s = 0;
    std::uint8_t resumed = 0;
};
struct ReportInfo {
    double seconds = 0;
    std::uint64_t bytes_read = 0, bytes_written = 0, units_resumed = 0;
    int threads = 0;
    bool resumed = false;
    double stage_s[kStages] = {};   // this rank's seconds per stage, summed over its threads (group /stages)
    std::vector<UnitTime> units;    // this rank's units (group /units)
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

// A run report read back (`shardforge report`): the root attributes and the datasets the summary and the HTML page
// use. Groups /units and /stages are absent from reports of older versions: has_units / has_stages false.
struct ReportData {
    std::string path, version, out_dir;
    double seconds = 0;
    std::uint64_t ranks = 0, bytes_read = 0, bytes_written = 0, units = 0, units_resumed = 0;
    int threads = 0;
    // /tensors, one entry per output tensor
    std::vector<std::string> names, files, types;
    std::vector<std::uint64_t> nbytes, nans;
    std::vector<double> rmse, delta, seconds_of;
    std::vector<std::int32_t> rank_of;
    // /units, one entry per work unit (plan order)
    bool has_units = false;
    std::vector<UnitTime> unit_times;
    std::vector<std::uint64_t> unit_tensor;            // /tensors row of the unit's item's first output tensor
    std::vector<std::int64_t> unit_row_begin, unit_row_end;
    std::vector<std::uint64_t> unit_nbytes;            // bytes the unit wrote, all outputs
    // /stages, one entry per stage (stage_names order)
    bool has_stages = false;
    std::vector<std::string> stage_names_read;
    std::vector<std::uint64_t> stage_bytes;
    std::vector<double> stage_seconds;                 // [ranks x stages], row-major
};
[[nodiscard]] ReportData read_report(const std::string& path);   // throws Error(BadInput) for a non-report file
// The self-contained HTML page of a report (report_html.cpp): no external resources; every name HTML-escaped.
[[nodiscard]] std::string render_report_html(const ReportData& d);

// HDF5 file access property list for a collective file on comm's ranks (MPI-IO); implemented in mpi_comm.cpp,
// the one file that sees MPI types. Serial communicators get the default (POSIX) driver.
[[nodiscard]] std::int64_t make_h5_file_access(Comm& comm);

}  // namespace shardforge::exec
