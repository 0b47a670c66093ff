// Where a unit's encoded bytes go, and the gather transport. --write direct: every rank pwrites its bytes at their
// planned offsets of the *.partial files. --write gather: ranks other than 0 queue them (QueueSink), their main
// thread streams the queue to rank 0 (send_chunks) and rank 0 writes what it receives (receive_chunks); MPI calls
// stay on the main thread. The wire format is one message per chunk: a 16-byte ChunkHeader, then the bytes.
#pragma once
#include <shardforge/exec.hpp>
#include <shardforge/plan.hpp>

#include "hasher.hpp"
#include "outputs.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::exec {

// Where a unit's encoded bytes go. Direct: pwrite at the final offset of the *.partial file. Gather (ranks other
// than 0): a bounded queue drained by the rank's main thread, which streams the bytes to rank 0.
class Sink {
public:
    virtual ~Sink() = default;
    virtual void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
                       const std::string& tensor) = 0;
};

class DirectSink final : public Sink {
public:
    DirectSink(const plan::Plan& p, FileTable& files) : p_(p), files_(files) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string& tensor) override {
        pwrite_all(files_.output(file), bytes, offset, p_.files[file].name, tensor);
    }

private:
    const plan::Plan& p_;
    FileTable& files_;
};

// --push-to-hub: every write is also handed to the output hasher (hashed from memory when at the file's cursor).
class HashingSink final : public Sink {
public:
    HashingSink(Sink& inner, OutputHasher& h) : inner_(inner), h_(h) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string& tensor) override {
        inner_.write(file, offset, bytes, tensor);
        h_.wrote(file, offset, bytes);
    }

private:
    Sink& inner_;
    OutputHasher& h_;
};

// Gather wire format: one message per chunk, a 16-byte header then the bytes.
constexpr int kGatherTag = 0x5f01;
constexpr std::uint32_t kEndOfStream = 0xffffffffu;
// A sender's journal record of a unit, queued after the unit's bytes: rank 0 journals it once those are written.
constexpr std::uint32_t kJournalRecord = 0xfffffffeu;
constexpr std::size_t kMaxChunk = 64u << 20;
struct ChunkHeader {
    std::uint32_t file = 0, reserved = 0;
    std::uint64_t offset = 0;
};
static_assert(sizeof(ChunkHeader) == 16);

// One gather message: the header, then `bytes`.
[[nodiscard]] std::vector<std::byte> make_chunk(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes);

class QueueSink final : public Sink {
public:
    explicit QueueSink(std::size_t capacity) : cap_(std::max<std::size_t>(1, capacity)) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string&) override {
        for (std::size_t off = 0; off < bytes.size(); off += kMaxChunk) {
            std::vector<std::byte> m = make_chunk(file, offset + off, bytes.subspan(off, std::min(kMaxChunk, bytes.size() - off)));
            std::unique_lock lock(mu_);
            not_full_.wait(lock, [&] { return q_.size() < cap_; });
            q_.push_back(std::move(m));
            not_empty_.notify_one();
        }
    }
    // Main thread: the next chunk, or nothing once every producer is done and the queue is empty.
    std::optional<std::vector<std::byte>> pop() {
        std::unique_lock lock(mu_);
        not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
        if (q_.empty()) return std::nullopt;
        std::vector<std::byte> m = std::move(q_.front());
        q_.pop_front();
        not_full_.notify_one();
        return m;
    }
    void close() {
        std::lock_guard lock(mu_);
        closed_ = true;
        not_empty_.notify_all();
    }

private:
    std::size_t cap_;
    std::mutex mu_;
    std::condition_variable not_full_, not_empty_;
    std::deque<std::vector<std::byte>> q_;
    bool closed_ = false;
};

// What rank 0 does with the messages it receives: `write` a chunk at its offset of a file (file < number of plan
// files, checked before), `journal` a unit's journal records (sent after all of that unit's chunks).
struct Receiver {
    std::function<void(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes)> write;
    std::function<void(std::span<const std::byte> records)> journal;
};
// Rank 0 in gather mode: hands every message the other ranks send to `r` until each has sent its end of stream.
// Keeps draining after an error (so no sender blocks) and returns the first one.
std::optional<core::Error> receive_chunks(Comm& comm, std::size_t n_files, const Receiver& r);
// Ranks other than 0 in gather mode: stream the queued chunks to rank 0 with at most `window` sends in flight,
// then the end-of-stream marker.
void send_chunks(Comm& comm, QueueSink& q, std::size_t window);

}  // namespace shardforge::exec
