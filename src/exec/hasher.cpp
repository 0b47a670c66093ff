// Output hashing while the export runs (see hasher.hpp).
#include "hasher.hpp"

#include "io.hpp"
#include "journal.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <variant>

namespace shardforge::exec {
namespace fs = std::filesystem;

std::vector<WriteRange> unit_write_ranges(const plan::Plan& p, const plan::Unit& u) {
    std::vector<WriteRange> out;
    for (const auto& r : resume::unit_ranges(p, u)) out.push_back({r.file, r.offset, r.nbytes});
    const plan::Item& it = p.items[u.item];
    auto parts = [&](const plan::Emit& e) {  // a bnb4 group's tensors after the packed codes
        if (const auto* b = std::get_if<plan::Bnb4Encoding>(&e.encoding))
            for (const auto& [part, r] : b->parts.list()) out.push_back({e.file, r.offset, r.nbytes});
    };
    for (const auto& e : it.emits)  // a windowed bnb4 group is written whole by the unit holding its window
        if (!e.windowed() || !plan::emit_part(it, e, u.row_begin, u.row_end).empty()) parts(e);
    for (const auto& v : it.variants)  // items with variants are never split: whole emits
        for (const auto& e : v.emits) {
            out.push_back({e.file, e.offset, e.nbytes});
            parts(e);
        }
    return out;
}

struct OutputHasher::File {
    bool owned = false;
    std::string path;  // the *.partial
    const std::string* header = nullptr;
    std::uint64_t size = 0;
    std::mutex mu;
    std::uint64_t cursor = 0;
    std::map<std::uint64_t, Piece> pending;  // by offset, all >= cursor, disjoint
    bool draining = false, broken = false, done = false;
    std::unique_ptr<resume::Sha256> digest;
    std::string sha;
    UniqueFd fd;  // read-backs (one drainer at a time)
};

OutputHasher::OutputHasher(const plan::Plan& p, const std::vector<plan::Unit>& all,
                           const std::vector<int>& owner_of_unit, int rank, bool gather, std::size_t buffer_cap,
                           Done done)
    : p_(p), all_(all), owner_of_unit_(owner_of_unit), rank_(rank), cap_(buffer_cap), done_cb_(std::move(done)),
      done_((all.size() + 63) / 64), seen_((all.size() + 63) / 64, 0) {
    std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> ranges(p.files.size());
    std::vector<std::pair<std::uint64_t, int>> first(p.files.size(), {UINT64_MAX, 0});  // lowest offset, its rank
    for (std::size_t u = 0; u < all.size(); ++u)
        for (const auto& r : unit_write_ranges(p, all[u])) {
            if (r.file >= p.files.size() || r.nbytes == 0) continue;
            ranges[r.file].emplace_back(r.offset, r.nbytes);
            if (r.offset < first[r.file].first) first[r.file] = {r.offset, owner_of_unit[u]};
        }
    for (auto& w : done_) w = 0;
    bool any = false;
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        auto f = std::make_unique<File>();
        const auto& fo = p.files[i];
        f->owned = fo.kind == plan::FileKind::Tensors && (gather ? rank == 0 : first[i].second == rank);
        f->path = (fs::path(p.out_dir) / (fo.name + ".partial")).string();
        f->header = &fo.header;
        f->size = fo.size;
        if (f->owned) {
            any = true;
            f->digest = std::make_unique<resume::Sha256>();
            // What no unit writes comes from the plan: the header, and zeros in the gaps (alignment padding).
            auto& rs = ranges[i];
            std::sort(rs.begin(), rs.end());
            std::uint64_t at = std::min<std::uint64_t>(fo.header.size(), fo.size);
            if (at > 0) f->pending[0] = Piece{Kind::Header, at, {}};
            for (const auto& [off, len] : rs) {
                if (off > at) f->pending[at] = Piece{Kind::Zero, off - at, {}};
                if (off < at) f->broken = true;  // overlapping ranges: hashed by one read at finish()
                at = std::max(at, off + len);
            }
            if (at < fo.size) f->pending[at] = Piece{Kind::Zero, fo.size - at, {}};
        }
        files_.push_back(std::move(f));
    }
    for (std::uint32_t i = 0; i < files_.size(); ++i) {
        File& f = *files_[i];
        if (!f.owned || f.broken) continue;
        std::unique_lock lock(f.mu);
        f.draining = true;
        drain(i, lock, false);
    }
    if (any) bg_ = std::thread([this] { background(); });
}

OutputHasher::~OutputHasher() {
    {
        std::lock_guard lock(qmu_);
        stop_ = true;
        qcv_.notify_all();
    }
    if (bg_.joinable()) bg_.join();
}

bool OutputHasher::owns(std::uint32_t file) const { return file < files_.size() && files_[file]->owned; }
const std::string& OutputHasher::sha256(std::uint32_t file) const { return files_[file]->sha; }

void OutputHasher::insert(File& f, std::uint64_t off, Piece pc) {
    bool bad = f.done || off < f.cursor;
    auto next = f.pending.lower_bound(off);
    if (next != f.pending.end() && next->first < off + pc.len) bad = true;
    if (next != f.pending.begin()) {
        const auto prev = std::prev(next);
        if (prev->first + prev->second.len > off) bad = true;
    }
    if (bad) {
        f.broken = true;
        if (pc.kind == Kind::Mem) buffered_ -= pc.len;
        return;
    }
    f.pending.emplace(off, std::move(pc));
}

void OutputHasher::wrote(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes) {
    if (!owns(file) || bytes.empty()) return;
    File& f = *files_[file];
    std::unique_lock lock(f.mu);
    if (f.broken) return;
    if (offset == f.cursor && !f.draining && !f.done) {
        f.draining = true;  // this thread hashes the bytes it holds, then whatever follows them in memory
        lock.unlock();
        f.digest->update(bytes);
        from_memory_ += bytes.size();
        lock.lock();
        f.cursor += bytes.size();
        drain(file, lock, false);
        return;
    }
    Piece pc;
    pc.len = bytes.size();
    if (buffered_.fetch_add(pc.len) + pc.len <= cap_) {
        pc.kind = Kind::Mem;
        pc.mem.assign(bytes.begin(), bytes.end());
    } else {
        buffered_ -= pc.len;
        pc.kind = Kind::Disk;  // over the cap: read back when the cursor gets there
    }
    insert(f, offset, std::move(pc));
}

void OutputHasher::landed(std::uint32_t file, std::uint64_t offset, std::uint64_t len) {
    if (!owns(file) || len == 0) return;
    File& f = *files_[file];
    std::unique_lock lock(f.mu);
    if (f.broken) return;
    insert(f, offset, Piece{Kind::Disk, len, {}});
    if (!f.draining && offset == f.cursor && !f.broken) {
        std::lock_guard q(qmu_);
        queue_.push_back(file);
        qcv_.notify_all();
    }
}

void OutputHasher::unit_landed(std::uint32_t unit) {
    for (const auto& r : unit_write_ranges(p_, all_[unit])) landed(r.file, r.offset, r.nbytes);
}

void OutputHasher::mark_done(std::uint32_t unit) { done_[unit / 64].fetch_or(std::uint64_t{1} << (unit % 64)); }

std::vector<std::uint64_t> OutputHasher::done_bits() const {
    std::vector<std::uint64_t> v(done_.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = done_[i].load();
    return v;
}

void OutputHasher::on_round(const std::vector<std::uint64_t>& all_bits) {
    for (std::size_t w = 0; w < seen_.size() && w < all_bits.size(); ++w) {
        std::uint64_t fresh = all_bits[w] & ~seen_[w];  // bits are disjoint between ranks: the sum is the union
        seen_[w] |= fresh;
        while (fresh) {
            const int b = __builtin_ctzll(fresh);
            fresh &= fresh - 1;
            const auto u = static_cast<std::uint32_t>(w * 64 + static_cast<std::size_t>(b));
            if (u < all_.size() && owner_of_unit_[u] != rank_) unit_landed(u);
        }
    }
}

// Caller holds the lock and has set f.draining. Hashes the pieces that follow the cursor contiguously; stops at
// a piece on disk unless may_read (then hands the file to the background thread).
void OutputHasher::drain(std::uint32_t idx, std::unique_lock<std::mutex>& lock, bool may_read) {
    File& f = *files_[idx];
    bool queued = false;
    while (!f.broken) {
        auto it = f.pending.find(f.cursor);
        if (it == f.pending.end()) break;
        if (it->second.kind == Kind::Disk && !may_read) {
            std::lock_guard q(qmu_);
            queue_.push_back(idx);
            qcv_.notify_all();
            queued = true;
            break;
        }
        const std::uint64_t off = it->first;
        Piece pc = std::move(it->second);
        f.pending.erase(it);
        lock.unlock();
        std::optional<core::Error> err;
        try {
            hash_piece(f, off, pc);
        } catch (const core::Error& e) {
            err = e;
        }
        lock.lock();
        if (pc.kind == Kind::Mem) buffered_ -= pc.len;
        if (err) {
            f.broken = true;  // finish() retries with one read and reports a persistent error
            break;
        }
        f.cursor += pc.len;
    }
    f.draining = false;
    if (!queued && !f.broken && !f.done && f.cursor == f.size) complete(idx, lock);
}

void OutputHasher::hash_piece(File& f, std::uint64_t off, const Piece& pc) {
    switch (pc.kind) {
        case Kind::Mem:
            f.digest->update(pc.mem);
            from_memory_ += pc.len;
            return;
        case Kind::Header:
            f.digest->update(std::as_bytes(std::span(f.header->data() + off, pc.len)));
            from_memory_ += pc.len;
            return;
        case Kind::Zero: {
            static const std::vector<std::byte> zeros(1 << 20);
            for (std::uint64_t done = 0; done < pc.len;) {
                const std::uint64_t n = std::min<std::uint64_t>(zeros.size(), pc.len - done);
                f.digest->update(std::span(zeros.data(), n));
                done += n;
            }
            from_memory_ += pc.len;
            return;
        }
        case Kind::Disk: {
            if (!f.fd) f.fd = open_read(f.path);
            std::vector<std::byte> buf(std::min<std::uint64_t>(pc.len, 8u << 20));
            for (std::uint64_t done = 0; done < pc.len;) {
                const std::uint64_t n = std::min<std::uint64_t>(buf.size(), pc.len - done);
                pread_all(f.fd.get(), std::span(buf.data(), n), off + done, f.path, "");
                f.digest->update(std::span(buf.data(), n));
                done += n;
            }
            read_back_ += pc.len;
            return;
        }
    }
}

void OutputHasher::complete(std::uint32_t idx, std::unique_lock<std::mutex>& lock) {
    File& f = *files_[idx];
    if (!f.pending.empty()) {
        f.broken = true;
        return;
    }
    f.sha = resume::to_hex(f.digest->final());
    f.done = true;
    f.fd = UniqueFd();
    ++files_hashed_;
    const std::string sha = f.sha;
    lock.unlock();
    if (done_cb_) done_cb_(idx, sha);
    lock.lock();
}

void OutputHasher::background() {
    for (;;) {
        std::uint32_t idx = 0;
        {
            std::unique_lock q(qmu_);
            qcv_.wait(q, [&] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            idx = queue_.front();
            queue_.pop_front();
            ++busy_;
        }
        {
            File& f = *files_[idx];
            std::unique_lock lock(f.mu);
            if (!f.draining && !f.done) {
                f.draining = true;
                drain(idx, lock, true);
            }
        }
        std::lock_guard q(qmu_);
        --busy_;
        qcv_.notify_all();
    }
}

void OutputHasher::finish() {
    {
        std::unique_lock q(qmu_);
        qcv_.wait(q, [&] { return (queue_.empty() && busy_ == 0) || stop_; });
    }
    for (std::uint32_t i = 0; i < files_.size(); ++i) {
        File& f = *files_[i];
        std::unique_lock lock(f.mu);
        if (!f.owned) continue;
        if (f.done && f.broken)
            throw core::Error(core::ErrorKind::Internal, f.path, "", "output bytes written after the file was hashed");
        if (f.done) continue;
        // Pieces that did not tile the file (or a failed read-back): one sequential read of the final bytes.
        f.pending.clear();
        f.digest = std::make_unique<resume::Sha256>();
        f.cursor = 0;
        f.broken = false;
        f.draining = true;
        lock.unlock();
        hash_piece(f, 0, Piece{Kind::Disk, f.size, {}});
        lock.lock();
        f.cursor = f.size;
        f.draining = false;
        complete(i, lock);
        if (!f.done) throw core::Error(core::ErrorKind::Internal, f.path, "", "output file could not be hashed");
    }
}

}  // namespace shardforge::exec
