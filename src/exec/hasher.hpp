// SHA-256 of the output files while they are produced (--push-to-hub, docs/hub.md). Private to exec.
//
// SHA-256 cannot be combined from pieces, so each tensor file has one "hash owner" rank that feeds the file's bytes
// to one incremental digest in offset order, with a cursor:
//   - bytes this process writes at the cursor are hashed from memory right after the pwrite (by the writing thread);
//   - bytes it writes ahead of the cursor (another worker's later row block) are kept in memory, up to a byte cap,
//     and hashed when the cursor reaches them; over the cap they are read back once the cursor gets there;
//   - the header (plan::FileOut::header) and the alignment gaps no unit writes (zeros: the partial was sized with
//     ftruncate) come from the plan, never from the disk;
//   - ranges other ranks write (direct mode) are read back once they have landed — the owner learns that from the
//     "units done" bitmap carried by the progress rounds — by a background thread, during the export;
//   - units verified from the resume journal (--resume) are read back.
// Owner: rank 0 in gather mode (every byte passes through it), else the rank that writes the file's first data
// range (units are assigned in plan order, so its own bytes arrive in order). A file whose pieces do not tile it
// exactly falls back to one sequential read at finish() (counted as read back). When a file's digest is complete
// the `done` callback runs (on the thread that completed it, no lock held), while the run goes on.
#pragma once
#include <shardforge/exec.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace shardforge::exec {

// Every byte range unit u writes (each emit's rows, bnb 4-bit group parts, batch variants' emits), as
// {file, offset, length}.
struct WriteRange {
    std::uint32_t file = 0;
    std::uint64_t offset = 0, nbytes = 0;
};
[[nodiscard]] std::vector<WriteRange> unit_write_ranges(const plan::Plan& p, const plan::Unit& u);

class OutputHasher {
public:
    using Done = std::function<void(std::uint32_t file, const std::string& sha256_hex)>;
    // owner_of_unit[u]: the rank that executes unit u (plan::assign_units).
    OutputHasher(const plan::Plan& p, const std::vector<plan::Unit>& all, const std::vector<int>& owner_of_unit,
                 int rank, bool gather, std::size_t buffer_cap, Done done);
    ~OutputHasher();
    OutputHasher(const OutputHasher&) = delete;
    OutputHasher& operator=(const OutputHasher&) = delete;

    [[nodiscard]] bool owns(std::uint32_t file) const;
    // The bytes at `offset` of the file were just written by this process. Any thread. Ignored for files not owned.
    void wrote(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes);
    // The range is on disk but its bytes are not at hand (resumed unit): read back when the cursor gets there.
    void landed(std::uint32_t file, std::uint64_t offset, std::uint64_t len);
    // Every owned range of unit u, as landed().
    void unit_landed(std::uint32_t unit);
    // Direct mode, several ranks: this rank finished unit u (any thread) ...
    void mark_done(std::uint32_t unit);
    [[nodiscard]] std::vector<std::uint64_t> done_bits() const;
    // ... and the sum over ranks of done_bits() from a progress round (main thread): units of other ranks seen for
    // the first time have landed.
    void on_round(const std::vector<std::uint64_t>& all_bits);
    [[nodiscard]] std::size_t bitmap_words() const { return done_.size(); }
    // Waits until every owned file is hashed (reading back, as a last resort, a file whose pieces never tiled it).
    // Call once every byte has landed, before the partials are renamed.
    void finish();

    [[nodiscard]] std::uint64_t from_memory() const { return from_memory_; }
    [[nodiscard]] std::uint64_t read_back() const { return read_back_; }
    [[nodiscard]] std::uint64_t files_hashed() const { return files_hashed_; }
    [[nodiscard]] const std::string& sha256(std::uint32_t file) const;

private:
    enum class Kind { Mem, Zero, Header, Disk };
    struct Piece {
        Kind kind = Kind::Disk;
        std::uint64_t len = 0;
        std::vector<std::byte> mem;
    };
    struct File;
    void insert(File& f, std::uint64_t off, Piece pc);
    void drain(std::uint32_t idx, std::unique_lock<std::mutex>& lock, bool may_read);
    void hash_piece(File& f, std::uint64_t off, const Piece& pc);
    void complete(std::uint32_t idx, std::unique_lock<std::mutex>& lock);
    void background();

    const plan::Plan& p_;
    const std::vector<plan::Unit>& all_;
    const std::vector<int>& owner_of_unit_;
    int rank_;
    std::size_t cap_;
    Done done_cb_;
    std::vector<std::unique_ptr<File>> files_;
    std::vector<std::atomic<std::uint64_t>> done_;
    std::vector<std::uint64_t> seen_;
    std::atomic<std::uint64_t> buffered_{0}, from_memory_{0}, read_back_{0}, files_hashed_{0};
    std::mutex qmu_;
    std::condition_variable qcv_;
    std::deque<std::uint32_t> queue_;  // files whose cursor waits on a read-back
    std::size_t busy_ = 0;              // background drains in progress
    bool stop_ = false;
    std::thread bg_;
};

}  // namespace shardforge::exec
