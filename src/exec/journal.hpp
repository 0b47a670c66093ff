// Preemption-safe resume (docs/engine.md, "Resume, progress and run report"): per-unit records of what a rank finished, the plan digest that pins
// the options/inputs, and the per-output-tensor facts the HDF5 run report needs. Private to exec.
//
// On disk, in OUT/.shardforge-resume/:
//   state.json         {"version":1,"plan_sha256":HEX,"inputs":[{"path","size","mtime_ns"}...]} written once, atomically
//   finish.json        the finishing phase reached (write_phase), once the units are done
//   journal.rank<R>    append-only records, each: "SFJ1" | u32 LE payload length | payload (JSON) | first 8 bytes of
//                      SHA-256(payload). A record is appended only after the bytes it describes were fdatasync'ed;
//                      reading stops at the first bad record (a torn tail after kill -9 or power loss is ignored).
#pragma once
#include <shardforge/exec.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace shardforge::exec::resume {

// SHA-256 is core's (include/shardforge/core.hpp); these names keep exec's call sites short.
using Digest = core::Sha256Digest;
using core::Sha256;
[[nodiscard]] inline std::string to_hex(const Digest& d) { return core::to_hex(d); }
[[nodiscard]] Digest sha256(std::span<const std::byte> b);

// Facts about one output tensor (one emit of a unit) as written.
// Facts about the bytes a unit (a row block of an item) wrote for one emit. Sums, so that the row blocks of one
// tensor add up to the tensor's figures.
struct EmitFacts {
    Digest sha{};                 // SHA-256 of the unit's byte range of the emit (resume verification)
    std::uint64_t nan_count = 0;  // NaNs among the values the range was encoded from
    double q_err2 = -1, q_ref2 = 0;  // quantized emits: ||deq(q) - x||^2 and ||x||^2; q_err2 = -1 otherwise
};
struct UnitRecord {
    std::uint32_t unit = 0;       // index into plan::units(plan)
    int rank = 0;                 // rank that computed it
    double seconds = 0;           // wall time of the unit
    double dw2 = -1, w2 = 0;      // ||dW||^2 and ||W||^2 of the LoRA merge (with --report); dw2 = -1: not measured
    std::vector<EmitFacts> emits; // in Item::emits order
    bool resumed = false;         // taken from the journal (verified), not recomputed in this run
};
// Byte range of each emit of the item that unit u writes: {file, offset, length}. The same ranges run_unit writes.
struct Range {
    std::uint32_t file = 0;
    std::uint64_t offset = 0, nbytes = 0;
};
[[nodiscard]] std::vector<Range> unit_ranges(const plan::Plan& p, const plan::Unit& u);
std::string encode_record(const UnitRecord& r);   // one framed record
// Parses framed records; stops at the first incomplete or corrupt one. valid_bytes: length of the good prefix.
std::vector<UnitRecord> decode_records(std::span<const std::byte> data, std::size_t& valid_bytes);

[[nodiscard]] std::string resume_dir(const plan::Plan& p);
[[nodiscard]] std::string plan_digest(const plan::Plan& p);   // hex SHA-256 of the plan JSON + input identities
// Digest of what the unit's emits must contain: combine per-emit digests (order matters).
[[nodiscard]] bool emits_match(const plan::Plan& p, const plan::Unit& u, const UnitRecord& r);
// The first emit of the unit whose bytes in the partial do not hash to the record's digest (or cannot be read), or
// -1 when every emit matches.
[[nodiscard]] int mismatched_emit(const plan::Plan& p, const plan::Unit& u, const UnitRecord& r);

// The finishing phase (rank 0), in OUT/.shardforge-resume/finish.json: {"phase": TEXT, "plan_sha256": HEX}, written
// durably before each step of the finalisation (docs/engine.md "Crash consistency through finalisation"), e.g.
// "verifying", "verified", "renaming 3 of 8", "renamed", "removing the journal". Every step is idempotent, so the
// record tells a resumed run (and its log) how far the interrupted one got; "" when there is none.
void write_phase(const plan::Plan& p, const std::string& phase);
[[nodiscard]] std::string read_phase(const plan::Plan& p);

// Rank 0, before any output exists (fresh run): create the resume dir and write state.json atomically.
void write_state(const plan::Plan& p);
// Rank 0, --resume: checks state.json against the current plan (throws Usage with a clear message when the options or
// inputs changed), reads every journal.rank* (dropping torn tails: the files are truncated to their valid prefix),
// and returns the journaled units (last record wins). No state.json: returns {} and `found` = false.
std::map<std::uint32_t, UnitRecord> load(const plan::Plan& p, bool& found);
void remove_dir(const plan::Plan& p);

// A rank's journal: units are added when their bytes are written (pwrite returned); flush() makes those bytes
// durable (fdatasync of the output files they touched) and then appends and fdatasyncs their records.
class Journal {
public:
    Journal(const plan::Plan& p, const std::vector<plan::Unit>& units, int rank, bool enabled);
    void add(UnitRecord r);                   // thread-safe
    void flush();                             // thread-safe; throws core::Error(Io)
    bool due() const;                         // enough pending records or time to flush now
    std::size_t n_journaled() const { return n_journaled_; }

private:
    const plan::Plan& p_;
    const std::vector<plan::Unit>& units_;
    bool enabled_;
    std::string path_;
    mutable std::mutex mu_;
    std::vector<UnitRecord> pending_;
    double last_flush_s_ = 0;
    std::size_t n_journaled_ = 0;
};

}  // namespace shardforge::exec::resume
