// The link layer: point-to-point messages whose payload travels outside the host communicator (GPU to GPU through
// NCCL, src/exec/cuda/nccl_comm.cpp). A message is a header (the payload size, 8 bytes) through the host
// communicator, which tells the receiver who sent how much, and a payload through a Transport. The order of the
// steps lives here once, for every transport, and is tested on the CPU with fake transports
// (tests/unit/exec/link_test.cpp).
#pragma once
#include <shardforge/exec.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shardforge::exec::link {

// Moves payload bytes between two ranks whose header has already told the receiver about the message.
// A posted send may block until the receiver posts the matching receive: the NCCL user guide documents ncclSend as
// "blocking for the GPU" until the peer calls ncclRecv, and the host call may wait too (connection setup with the
// peer happens on first use). So a payload is never posted before its header has left, and the receiver posts its
// receive as soon as it has the header (LinkComm in link.cpp). All calls come from the thread that owns the
// communicator.
class Transport {
public:
    virtual ~Transport() = default;
    using Handle = std::uint64_t;
    // Local preparation of a send (device buffer, host-to-device copy); involves no peer, so failing here cannot
    // leave a receiver waiting. `data` stays alive and unchanged until finish(handle) returns.
    virtual Handle stage(std::span<const std::byte> data) = 0;
    // Posts the staged send to `dest`; may block until `dest` posts the matching recv().
    virtual void post(Handle h, int dest) = 0;
    // Blocks until the send has completed (or, never posted, until its staging is done) and frees it.
    virtual void finish(Handle h) = 0;
    // Receives exactly out.size() bytes from `src` into `out`, blocking until they are there.
    virtual void recv(std::span<std::byte> out, int src) = 0;
    [[nodiscard]] virtual std::string name() const = 0;  // Comm::backend() of the link, e.g. "nccl"
};

// A Comm whose isend/recv_any are header-first messages (header through `host`, payload through `transport`);
// every collective is `host`'s. Owns both.
[[nodiscard]] std::unique_ptr<Comm> make_link_comm(std::unique_ptr<Comm> host, std::unique_ptr<Transport> transport);

// Whether NCCL can have one rank per GPU: `device_ids[r]` names rank r's GPU as NCCL tells GPUs apart (its host
// and PCI bus id; NCCL's init refuses two ranks with the same pair: "Duplicate GPU detected"). Pure. Returns ""
// when every rank has a GPU of its own, else the reason it has not, e.g. "ranks 0 and 2 share GPU node1/0000:41:00.0".
[[nodiscard]] std::string shared_device(const std::vector<std::string>& device_ids);

}  // namespace shardforge::exec::link
