// exec::run(): a plan executed by every rank as a short sequence of named phases (docs/engine.md):
//   open_backend -> prepare_or_resume -> UnitPhase (the unit pipeline on a pool of workers, pipeline.hpp; bytes to
//   the partials directly or through rank 0, transport.hpp) -> finalize (fsync, rename) -> reduce_stats -> report.
// Each collective step ends with agree_on_error, so every rank throws the same error and no rank waits in a
// collective for a rank that has stopped.
#include <shardforge/exec.hpp>

#include "fault.hpp"
#include "gpu.hpp"
#include "hasher.hpp"
#include "journal.hpp"
#include "outputs.hpp"
#include "pipeline.hpp"
#include "placement.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "stats.hpp"
#include "transport.hpp"

#include <fcntl.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace shardforge::exec {

// The cores the launcher gave this rank (placement.cpp).
int default_threads() { return placement().threads; }

namespace {

using Journaled = std::map<std::uint32_t, resume::UnitRecord>;

// The rank's compute backend (--device) and how bytes travel to rank 0 (--write gather).
struct Setup {
    std::unique_ptr<quant::gpu::Device> device;  // --device cuda|auto with a visible GPU, else null
    std::unique_ptr<Backend> backend;            // CPU, or CUDA on `device`
    bool gather = false;                         // --write gather on more than one rank
    std::unique_ptr<Comm> nccl;  // gather mode with a GPU on every rank: the row blocks travel through NCCL
};

// collective
void open_backend(Setup& be, Comm& comm, const RunOptions& opt) {
    be.gather = opt.write == WriteMode::Gather && comm.size() > 1;
    auto err = capture([&] { be.device = select_device(opt.device, opt.max_gpu_memory); });
    if (auto e = agree_on_error(comm, err)) throw *e;
    be.backend = be.device ? make_cuda_backend(*be.device, opt.max_gpu_memory) : make_cpu_backend();
    const bool all_gpu = comm.sum(be.device ? 1 : 0) == static_cast<std::uint64_t>(comm.size());
    if (be.device && comm.rank() == 0)
        core::log::info(core::cat("GPU: ", be.device->name(), all_gpu ? "" : " (some ranks have no GPU)"));
    if (be.gather && all_gpu && !exec::gpu::nccl_info().empty()) {
        err = capture([&] { be.nccl = make_nccl_comm(make_mpi_comm(), be.device->index()); });
        if (auto e = agree_on_error(comm, err)) throw *e;
        if (be.nccl && comm.rank() == 0) core::log::info("gather mode: row blocks via NCCL");
    }
}

// collective: rank 0 prepares the partials (fresh run) or checks the resume state and reads the journals
// (--resume), then every rank receives the journaled units it may skip. Gather mode: the partials live on rank 0
// only, so rank 0 verifies every journaled unit now (direct mode: each rank verifies its own units as it reaches
// them).
Journaled prepare_or_resume(const plan::Plan& p, Comm& comm, const RunOptions& opt, const std::vector<plan::Unit>& all,
                            bool gather) {
    Journaled journaled;
    auto err = capture([&] {
        fault::set_rank(comm.rank());
        if (comm.rank() != 0) return;
        bool resuming = false;
        if (opt.resume) journaled = resume::load(p, resuming);
        if (resuming) {
            if (const std::string phase = resume::read_phase(p); !phase.empty())
                core::log::info("resume: the interrupted run had reached its finishing phase (" + phase +
                                "); completing it");
            prepare_resumed_outputs(p);
            return;
        }
        if (opt.resume) core::log::info("resume: no interrupted run in " + p.out_dir + "; starting from the beginning");
        prepare_outputs(p);
        resume::write_state(p);
    });
    if (auto e = agree_on_error(comm, err)) {
        if (comm.rank() == 0 && !opt.resume) {
            remove_partials(p);
            resume::remove_dir(p);
        }
        throw *e;
    }
    if (gather && comm.rank() == 0)
        for (auto it = journaled.begin(); it != journaled.end();)
            it = resume::emits_match(p, all[it->first], it->second) ? std::next(it) : journaled.erase(it);
    std::string bytes;
    if (comm.rank() == 0)
        for (const auto& [u, r] : journaled) bytes += resume::encode_record(r);
    comm.broadcast(bytes, 0);
    if (comm.rank() != 0) {
        std::size_t valid = 0;
        for (auto& r : resume::decode_records(std::as_bytes(std::span(bytes.data(), bytes.size())), valid))
            journaled[r.unit] = std::move(r);
    }
    return journaled;
}

// The unit phase on this rank: a pool of workers takes this rank's units (plan::assign_units) in order and runs
// each through the unit pipeline; the main thread runs the progress rounds and journal flushes (direct mode) or
// the gather transport. MPI calls stay on the main thread (MPI_THREAD_FUNNELED).
class UnitPhase {
public:
    // collective (the progress monitor)
    UnitPhase(const plan::Plan& p, Comm& comm, const RunOptions& opt, const Setup& be,
              const std::vector<plan::Unit>& all, const Journaled& journaled, Counters& c);
    // collective: throws this rank's first error, or Interrupted once every rank stopped on a signal.
    void run();

private:
    void make_hasher();
    void worker(const UnitCtx& ctx, QueueSink& queue, int thread);
    bool skip_resumed(std::uint32_t uid, int thread);
    void compute(const UnitCtx& ctx, std::size_t k, int thread);
    void timed(std::uint32_t uid, int thread, Clock::time_point start, bool resumed);
    void fail(const core::Error& e);
    void drive(FileTable& files, QueueSink& queue);
    void unit_done(const plan::Unit& u, bool resumed, std::uint64_t bytes_in, std::uint64_t quantized);
    [[nodiscard]] core::Error interrupted() const;

    const plan::Plan& p_;
    Comm& comm_;
    const RunOptions& opt_;
    const Setup& be_;
    const std::vector<plan::Unit>& all_;
    const Journaled& journaled_;
    Counters& c_;
    std::vector<std::uint32_t> mine_;
    std::vector<int> owner_of_unit_;  // --push-to-hub: the rank of every unit (the hasher keeps a reference)
    Clock::time_point t_units_;
    std::unique_ptr<resume::Journal> journal_;
    std::unique_ptr<Monitor> mon_;
    std::atomic<std::size_t> next_{0};
    std::atomic<bool> failed_{false};
    std::atomic<int> live_{0};
    std::atomic<std::uint64_t> n_resumed_{0};
    std::mutex mu_;
    std::optional<core::Error> first_, recv_err_;

public:  // results, declared last: the hasher keeps references to the members above and goes first
    std::vector<resume::UnitRecord> records;  // this rank's units (computed or verified), for the run report
    std::vector<resume::UnitRecord> gathered; // gather mode, rank 0: the other ranks' units it wrote and journaled
    std::vector<UnitTime> unit_times;         // this rank's units (computed or verified): when and on which thread
    RankTimes times;
    int n_threads = 1;
    std::unique_ptr<OutputHasher> hasher;     // --push-to-hub
};

UnitPhase::UnitPhase(const plan::Plan& p, Comm& comm, const RunOptions& opt, const Setup& be,
                     const std::vector<plan::Unit>& all, const Journaled& journaled, Counters& c)
    : p_(p), comm_(comm), opt_(opt), be_(be), all_(all), journaled_(journaled), c_(c),
      mine_(plan::assign_units(all, p, comm.rank(), comm.size())) {
    // Unbound ranks of a node pin themselves to their CPU share (placement.cpp; SHARDFORGE_PIN=0 disables).
    const Placement placed = adopt_placement();
    int want = opt.threads > 0 ? opt.threads : placed.threads;
    if (p.max_memory_per_rank > 0) want = std::min(want, p.threads);  // the budget was sized for p.threads
    n_threads = std::max(1, std::min<int>(want, static_cast<int>(std::max<std::size_t>(1, mine_.size()))));
    t_units_ = Clock::now();
    std::uint64_t total_emits = 0, total_bytes = 0;
    for (const auto& it : p.items)
        for (const auto& e : it.emits) ++total_emits, total_bytes += e.nbytes;
    journal_ = std::make_unique<resume::Journal>(p, all, comm.rank(), !be.gather || comm.rank() == 0);
    mon_ = std::make_unique<Monitor>(comm, opt, all.size(), total_emits, total_bytes);  // collective
    if (opt.hash_outputs) make_hasher();
}

// --push-to-hub: each tensor file hashed by its owner rank while it is produced (hasher.hpp).
void UnitPhase::make_hasher() {
    owner_of_unit_.assign(all_.size(), 0);
    for (int r = 0; r < comm_.size(); ++r)
        for (const auto u : r == comm_.rank() ? mine_ : plan::assign_units(all_, p_, r, comm_.size()))
            owner_of_unit_[u] = r;
    // Row blocks finished ahead of a file's cursor wait in memory up to this cap (within the budget's slack).
    std::uint64_t cap = 64u << 20;
    if (p_.max_memory_per_rank > 0)
        cap = std::min(cap, p_.max_memory_per_rank > p_.peak_rank_bytes ? p_.max_memory_per_rank - p_.peak_rank_bytes : 0);
    hasher = std::make_unique<OutputHasher>(
        p_, all_, owner_of_unit_, comm_.rank(), be_.gather, static_cast<std::size_t>(cap),
        [this](std::uint32_t f, const std::string& sha) {
            if (opt_.on_file_hashed) opt_.on_file_hashed(f, sha, partial_path(p_, p_.files[f]));
        });
    if (be_.gather && comm_.rank() == 0)  // verified in prepare_or_resume; their senders skip them
        for (const auto& [u, r] : journaled_) hasher->unit_landed(u);
    if (!be_.gather && comm_.size() > 1)
        mon_->set_round_payload([this] { return hasher->done_bits(); },
                                [this](const std::vector<std::uint64_t>& v) { hasher->on_round(v); });
}

void UnitPhase::fail(const core::Error& e) {
    std::lock_guard lock(mu_);
    if (!first_) first_ = e;
    failed_ = true;
    mon_->failed();
}

// A tensor counts once (with its first row block); bytes count per block.
void UnitPhase::unit_done(const plan::Unit& u, bool resumed, std::uint64_t bytes_in, std::uint64_t quantized) {
    std::uint64_t nbytes = 0;
    for (const auto& r : resume::unit_ranges(p_, u)) nbytes += r.nbytes;
    mon_->unit_done(u.row_begin == 0 ? p_.items[u.item].emits.size() : 0, nbytes, bytes_in, quantized, resumed);
}

// The run report's timeline (group /units): the unit ran on `thread` from `start` until now.
void UnitPhase::timed(std::uint32_t uid, int thread, Clock::time_point start, bool resumed) {
    const auto since = [this](Clock::time_point t) { return std::chrono::duration<double>(t - t_units_).count(); };
    const double end_s = since(Clock::now());
    std::lock_guard lock(mu_);
    unit_times.push_back(UnitTime{uid, comm_.rank(), thread, since(start), end_s, resumed ? std::uint8_t{1} : std::uint8_t{0}});
}

// --resume: a journaled unit whose bytes still hash to the journal's digests is done (gather mode: rank 0
// verified them all already). Returns whether the unit was skipped.
bool UnitPhase::skip_resumed(std::uint32_t uid, int thread) {
    const auto t0 = Clock::now();
    const auto j = journaled_.find(uid);
    if (j == journaled_.end() || !(be_.gather || resume::emits_match(p_, all_[uid], j->second))) return false;
    resume::UnitRecord rec = j->second;
    rec.resumed = true;
    {
        std::lock_guard lock(mu_);
        records.push_back(std::move(rec));
    }
    ++n_resumed_;
    if (hasher) {
        if (!be_.gather) hasher->unit_landed(uid);  // read back for the digest (gather: done already)
        hasher->mark_done(uid);
    }
    unit_done(all_[uid], true, 0, 0);
    timed(uid, thread, t0, true);
    return true;
}

void UnitPhase::compute(const UnitCtx& ctx, std::size_t k, int thread) {
    const std::uint32_t uid = mine_[k];
    resume::UnitRecord rec;
    rec.unit = uid;
    rec.rank = comm_.rank();
    const std::uint64_t in0 = c_.bytes_read, q0 = c_.weights_quantized;
    const auto ts = Clock::now();
    if (auto e = capture([&] {
            if (k + 1 < mine_.size()) read_ahead(ctx, all_[mine_[k + 1]]);  // read while this unit computes
            if (k + 1 == mine_.size()) fault::before_last_item();
            fault::before_item();
            run_unit(ctx, all_[uid], rec);
            rec.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
            fault::after_item();
        })) {
        fail(*e);
        return;
    }
    if (hasher) hasher->mark_done(uid);
    journal_->add(rec);  // no-op where this rank keeps no journal (gather mode, ranks != 0) ...
    if (be_.gather && comm_.rank() != 0) {  // ... where rank 0 journals it once it has written the bytes
        const std::string jr = resume::encode_record(rec);
        ctx.sink.write(kJournalRecord, 0, std::as_bytes(std::span(jr.data(), jr.size())), "");
    }
    {
        std::lock_guard lock(mu_);
        records.push_back(std::move(rec));
    }
    unit_done(all_[uid], false, c_.bytes_read - in0, c_.weights_quantized - q0);
    timed(uid, thread, ts, false);
}

void UnitPhase::worker(const UnitCtx& ctx, QueueSink& queue, int thread) {
    while (!failed_ && !mon_->should_stop()) {
        const std::size_t k = next_++;
        if (k >= mine_.size()) break;
        if (!skip_resumed(mine_[k], thread)) compute(ctx, k, thread);
    }
    if (--live_ == 0) {
        times.busy_s = std::chrono::duration<double>(Clock::now() - t_units_).count();
        queue.close();
    }
}

// The main thread while the workers run. Direct mode: the progress rounds (which also carry a stop signal to every
// rank) and the journal flushes. Gather mode: the chunks move to rank 0; one round afterwards agrees on an
// interrupt (each rank stops on its own signal).
void UnitPhase::drive(FileTable& files, QueueSink& queue) {
    Comm& p2p = be_.nccl ? *be_.nccl : comm_;
    if (!be_.gather) {
        mon_->loop([this] { return live_.load() == 0; }, [this] {
            if (!journal_->due()) return;
            if (auto fe = capture([this] { journal_->flush(); })) fail(*fe);
        });
    } else if (comm_.rank() == 0) {
        Receiver r;
        r.write = [&](std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes) {
            StageTimer tm(c_);
            pwrite_all(files.output(file), bytes, offset, p_.files[file].name, "");
            if (hasher) hasher->wrote(file, offset, bytes);
            tm.lap(kWrite);
        };
        r.journal = [this](std::span<const std::byte> bytes) {
            std::size_t valid = 0;
            for (auto& rec : resume::decode_records(bytes, valid)) {
                gathered.push_back(rec);
                journal_->add(std::move(rec));
            }
            if (journal_->due()) journal_->flush();
        };
        recv_err_ = receive_chunks(p2p, p_.files.size(), r);
    } else {
        send_chunks(p2p, queue, static_cast<std::size_t>(p_.gather_window));
    }
}

core::Error UnitPhase::interrupted() const {
    const int sig = Monitor::signal_seen();
    return core::Error(core::ErrorKind::Interrupted, p_.out_dir, "",
                       core::cat("interrupted", sig ? core::cat(" by signal ", sig) : std::string(), " after ",
                                 mon_->units_done(), " of ", all_.size(),
                                 " work units; rerun the same command with --resume"));
}

void UnitPhase::run() {
    FileTable files(p_);
    DirectSink direct(p_, files);
    QueueSink queue(static_cast<std::size_t>(p_.gather_window));
    std::optional<HashingSink> hashing;
    if (hasher) hashing.emplace(direct, *hasher);
    Sink& sink = be_.gather && comm_.rank() != 0 ? static_cast<Sink&>(queue)
                 : hashing                       ? static_cast<Sink&>(*hashing)
                                                 : static_cast<Sink&>(direct);
    const UnitCtx ctx{p_, files, sink, c_, *be_.backend};
    live_ = n_threads;
    std::vector<std::thread> pool;
    for (int i = 0; i < n_threads; ++i) pool.emplace_back([&, i] { worker(ctx, queue, i); });
    drive(files, queue);
    for (auto& t : pool) t.join();
    if (be_.gather) mon_->loop([] { return true; }, [] {});
    if (auto fe = capture([this] { journal_->flush(); })) fail(*fe);  // finished units are durable and journaled
    times.n_resumed = n_resumed_;
    if (first_) throw *first_;
    if (recv_err_) throw *recv_err_;
    if (mon_->interrupted() && !mon_->all_units_done()) throw interrupted();
    if (hasher) hasher->finish();  // every byte has landed (last progress round / gather stream)
}

// collective, after a failed unit phase: transient causes (I/O, a signal) keep the partials and the journal for
// --resume; a bad input cannot be resumed (its change is refused), so nothing is left behind then.
[[noreturn]] void abandon(const plan::Plan& p, Comm& comm, const core::Error& e) {
    comm.barrier();
    const bool resumable = e.kind() == core::ErrorKind::Io || e.kind() == core::ErrorKind::Interrupted;
    if (comm.rank() == 0 && !resumable) {
        remove_partials(p);
        resume::remove_dir(p);
    }
    if (comm.rank() == 0 && e.kind() == core::ErrorKind::Io)
        core::log::info("partial outputs and the resume journal are kept in " + p.out_dir +
                        "; once the cause is fixed, rerun the same command with --resume");
    throw e;
}

// The units whose bytes this rank checks before the renames: the ones it wrote or verified (direct mode), every unit
// (gather mode, rank 0: the partials are on its disk), none (gather mode, other ranks).
std::vector<const resume::UnitRecord*> units_to_verify(const UnitPhase& units, const Journaled& journaled, Comm& comm,
                                                       bool gather) {
    std::map<std::uint32_t, const resume::UnitRecord*> by_unit;
    if (gather && comm.rank() != 0) return {};
    for (const auto& r : units.records) by_unit[r.unit] = &r;
    if (gather) {
        for (const auto& r : units.gathered) by_unit[r.unit] = &r;
        for (const auto& [u, r] : journaled) by_unit.emplace(u, &r);
    }
    std::vector<const resume::UnitRecord*> out;
    for (const auto& [u, r] : by_unit) out.push_back(r);
    return out;
}

// Test-only (SHARDFORGE_FAULT=corrupt_partial): one byte of the first listed unit changes in its partial, as if
// another writer or the storage had altered it after the journal recorded it.
void corrupt_for_test(const plan::Plan& p, const std::vector<plan::Unit>& all,
                      const std::vector<const resume::UnitRecord*>& list) {
    for (const auto* r : list)
        for (const auto& range : resume::unit_ranges(p, all[r->unit])) {
            if (range.nbytes == 0) continue;
            const std::string path = partial_path(p, p.files[range.file]);
            UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
            std::byte b{};
            const auto off = static_cast<off_t>(range.offset);
            if (fd && ::pread(fd.get(), &b, 1, off) == 1) {
                b ^= std::byte{0x5a};
                if (::pwrite(fd.get(), &b, 1, off) == 1) return;
            }
        }
}

// This rank's units, re-hashed in the partials on `n_threads` threads: the first whose bytes differ from the
// journaled digests is a Verify error (exit 7) naming its partial and tensor.
std::optional<core::Error> verify_units(const plan::Plan& p, const std::vector<plan::Unit>& all,
                                        const std::vector<const resume::UnitRecord*>& list, int n_threads) {
    std::atomic<std::size_t> next{0};
    std::mutex mu;
    std::optional<core::Error> bad;
    auto work = [&] {
        for (std::size_t k = next++; k < list.size(); k = next++) {
            const resume::UnitRecord& r = *list[k];
            const plan::Unit& u = all[r.unit];
            const int e = resume::mismatched_emit(p, u, r);
            if (e < 0) continue;
            const plan::Emit& em = p.items[u.item].emits[static_cast<std::size_t>(e)];
            std::lock_guard lock(mu);
            if (!bad)
                bad = core::Error(core::ErrorKind::Verify, partial_path(p, p.files[em.file]), em.name,
                                  core::cat("rows ", u.row_begin, "-", u.row_end, " no longer hash to what this run "
                                            "wrote and journaled (the partial changed under it); nothing was "
                                            "renamed; rerun with --resume to recompute them"));
            return;
        }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < std::max(1, n_threads); ++i) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return bad;
}

// collective: every rank's pwrites are complete; every rank verifies the bytes of its units in the partials (a
// mismatch: exit 7, nothing renamed); then rank 0 writes the text files, fsyncs and renames (outputs.cpp) and
// removes the journal. Each step is recorded in the journal directory first (resume::write_phase) and can be cut
// short and redone by --resume. With --report, each tensor's final bytes are hashed in the partials first (direct
// mode: any rank; gather: rank 0's disk).
std::vector<resume::Digest> finalize(const plan::Plan& p, Comm& comm, const RunOptions& opt, bool gather,
                                     const std::vector<plan::Unit>& all, const UnitPhase& units,
                                     const Journaled& journaled) {
    comm.barrier();
    std::vector<resume::Digest> tensor_sha;
    if (!opt.report.empty()) {
        auto err = capture([&] { tensor_sha = hash_tensors(p, comm, gather); });
        if (auto e = agree_on_error(comm, err)) throw *e;
    }
    auto err = capture([&] {
        if (comm.rank() == 0) resume::write_phase(p, "verifying");
    });
    if (auto e = agree_on_error(comm, err)) throw *e;
    const std::vector<const resume::UnitRecord*> mine = units_to_verify(units, journaled, comm, gather);
    if (fault::corrupt_partial()) corrupt_for_test(p, all, mine);
    fault::point("verify");
    err = capture([&] {
        if (auto bad = verify_units(p, all, mine, units.n_threads)) throw *bad;
    });
    if (auto e = agree_on_error(comm, err)) throw *e;
    err = capture([&] {
        if (comm.rank() != 0) return;
        resume::write_phase(p, "verified");
        fault::point("verified");
        finish_outputs(p);
        if (opt.on_outputs_final) opt.on_outputs_final(resume::plan_digest(p));
        resume::write_phase(p, "removing the journal");
        resume::remove_dir(p);
        fault::point("unjournaled");
    });
    if (auto e = agree_on_error(comm, err)) throw *e;
    return tensor_sha;
}

// Every unit allocates its buffers afresh (stored bytes, f32 values, encoded bytes: megabytes each). glibc's
// defaults hand such blocks back to the kernel on free (mmap above a moving threshold, trimming of a thread arena's
// top), so every unit paid page faults and zeroing of fresh pages again: half the system time of a 16-bit export.
// Blocks up to glibc's largest mmap threshold (32 MiB) now stay in the arenas once freed. The peak stays what the
// plan budgets (threads x a unit's working set): a thread's arena only keeps what that thread had in use at once.
void keep_unit_buffers() {
#if defined(__GLIBC__)
    static const bool once = [] {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
        return true;
    }();
    (void)once;
#endif
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

RunStats run(const plan::Plan& p, Comm& comm, const RunOptions& opt) {
    const auto t0 = Clock::now();
    keep_unit_buffers();
    const SignalScope signals;  // a stop signal from here on ends the run with exit 75 (resumable), not a kill
    Setup be;
    open_backend(be, comm, opt);
    const std::vector<plan::Unit> all = plan::units(p);
    const Journaled journaled = prepare_or_resume(p, comm, opt, all, be.gather);
    core::log::debug(core::cat("prepare: ", seconds_since(t0), " s"));

    Counters c;
    c.want_delta = !opt.report.empty();
    UnitPhase units(p, comm, opt, be, all, journaled, c);
    if (auto e = agree_on_error(comm, capture([&] { units.run(); }))) abandon(p, comm, *e);
    core::log::debug(core::cat("units: ", seconds_since(t0), " s (busy ", units.times.busy_s, " s)"));

    const std::vector<resume::Digest> tensor_sha = finalize(p, comm, opt, be.gather, all, units, journaled);
    core::log::debug(core::cat("finish: ", seconds_since(t0), " s"));
    RunStats st = reduce_stats(c, units.times, units.hasher.get(), comm);
    st.seconds = seconds_since(t0);
    if (!opt.report.empty()) {
        ReportInfo info{st.seconds, st.bytes_read, st.bytes_written, st.units_resumed, units.n_threads, opt.resume, {}, {}};
        for (int k = 0; k < kStages; ++k) info.stage_s[k] = static_cast<double>(c.stage_ns[k].load()) * 1e-9;
        info.units = std::move(units.unit_times);
        auto err = capture([&] { write_report(opt.report, p, comm, units.records, tensor_sha, info, be.gather); });
        if (auto e = agree_on_error(comm, err)) throw *e;
    }
    return st;
}

}  // namespace shardforge::exec
