// The gather transport (transport.hpp).
#include "transport.hpp"


#include <cstring>

namespace shardforge::exec {

std::vector<std::byte> make_chunk(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes) {
    std::vector<std::byte> m(sizeof(ChunkHeader) + bytes.size());
    const ChunkHeader h{file, 0, offset};
    std::memcpy(m.data(), &h, sizeof h);
    if (!bytes.empty()) std::memcpy(m.data() + sizeof h, bytes.data(), bytes.size());
    return m;
}

std::optional<core::Error> receive_chunks(Comm& comm, std::size_t n_files, const Receiver& r) {
    std::optional<core::Error> err;
    std::vector<std::byte> buf;
    int ends = 0;
    while (ends < comm.size() - 1) {
        comm.recv_any(buf, kGatherTag);
        ChunkHeader h;
        if (buf.size() < sizeof h) {
            if (!err) err = core::Error(core::ErrorKind::Internal, "", "", "short gather message");
            continue;
        }
        std::memcpy(&h, buf.data(), sizeof h);
        if (h.file == kEndOfStream) {
            ++ends;
            continue;
        }
        if (err) continue;
        const auto payload = std::span<const std::byte>(buf).subspan(sizeof h);
        err = capture([&] {
            if (h.file == kJournalRecord) return r.journal(payload);  // the unit's chunks were all written before
            if (h.file >= n_files) throw core::Error(core::ErrorKind::Internal, "", "", "bad gather file index");
            r.write(h.file, h.offset, payload);
        });
    }
    return err;
}

void send_chunks(Comm& comm, QueueSink& q, std::size_t window) {
    std::deque<std::pair<Comm::Request, std::vector<std::byte>>> inflight;
    while (auto m = q.pop()) {
        inflight.emplace_back(0, std::move(*m));
        inflight.back().first = comm.isend(inflight.back().second, 0, kGatherTag);
        while (inflight.size() >= window) {
            comm.wait(inflight.front().first);
            inflight.pop_front();
        }
    }
    for (auto& [r, m] : inflight) comm.wait(r);
    const std::vector<std::byte> end = make_chunk(kEndOfStream, 0, {});
    comm.wait(comm.isend(end, 0, kGatherTag));
}

}  // namespace shardforge::exec
