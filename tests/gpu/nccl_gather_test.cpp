// gpu.nccl_gather: row blocks sent to rank 0 through the NCCL communicator arrive exactly as through the MPI
// communicator (gather mode's isend/recv_any transfer). With fewer GPUs than ranks on the node (ranks share a GPU,
// which NCCL refuses), make_nccl_comm must decline on every rank, leaving gather mode on MPI. Exits 77 (ctest:
// skipped) when a rank sees no CUDA device.
#include <shardforge/exec.hpp>
#include <shardforge/quant.hpp>

#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace sf = shardforge;

namespace {

std::vector<std::uint8_t> block_of(int rank, std::size_t n) {
    std::vector<std::uint8_t> v(n);
    std::uint32_t s = 2166136261u ^ static_cast<std::uint32_t>(rank);
    for (auto& b : v) {
        s = s * 1664525u + 1013904223u;
        b = static_cast<std::uint8_t>(s >> 24);
    }
    return v;
}

// Gather mode's pattern: every rank but 0 isends its blocks (several in flight), rank 0 takes them with
// recv_any in arrival order; blocks are ordered per sender.
constexpr int kTag = 0x5f77;
std::vector<std::vector<std::uint8_t>> gather(sf::core::Comm& c, std::size_t n) {
    std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(c.size()));
    if (c.rank() == 0) {
        out[0] = block_of(0, n);
        std::vector<std::byte> buf;
        for (int k = 0; k < 2 * (c.size() - 1); ++k) {
            const int src = c.recv_any(buf, kTag);
            auto& v = out[static_cast<std::size_t>(src)];
            v.insert(v.end(), reinterpret_cast<const std::uint8_t*>(buf.data()),
                     reinterpret_cast<const std::uint8_t*>(buf.data()) + buf.size());
        }
    } else {
        const auto v = block_of(c.rank(), n + static_cast<std::size_t>(c.rank()));
        const std::size_t half = v.size() / 2;  // two messages in flight, then wait for both
        const auto* p = reinterpret_cast<const std::byte*>(v.data());
        const auto r1 = c.isend(std::span(p, half), 0, kTag);
        const auto r2 = c.isend(std::span(p + half, v.size() - half), 0, kTag);
        c.wait(r1);
        c.wait(r2);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    sf::exec::MpiSession mpi(argc, argv);
    auto mpi_comm = sf::exec::make_mpi_comm();
    std::string why;
    const int ndev = sf::quant::gpu::device_count(&why);
    if (mpi_comm->sum(ndev > 0 ? 1u : 0u) != static_cast<std::uint64_t>(mpi_comm->size())) {
        if (mpi_comm->rank() == 0)
            std::printf("SKIP: NCCL gather needs a CUDA device on every rank (%d ranks, %d devices visible%s%s)\n",
                        mpi_comm->size(), ndev, why.empty() ? "" : ": ", why.c_str());
        return 77;
    }
    // The test runs on one node, with run()'s placement: local rank mod device count.
    const bool shared = static_cast<std::uint64_t>(ndev) < static_cast<std::uint64_t>(mpi_comm->size());
    const std::size_t n = (std::size_t{3} << 20) + 17;  // odd size: no alignment assumptions
    const auto via_mpi = gather(*mpi_comm, n);
    int bad = 0;
    if (mpi_comm->rank() == 0)
        for (int r = 0; r < mpi_comm->size(); ++r)
            if (via_mpi[static_cast<std::size_t>(r)] != block_of(r, n + static_cast<std::size_t>(r))) {
                std::printf("FAIL: MPI block of rank %d\n", r);
                bad = 1;
            }
    auto nccl = sf::exec::make_nccl_comm(sf::exec::make_mpi_comm(), sf::exec::local_rank() % ndev);
    if (shared) {  // the MPI gather above is what run() does then
        if (nccl) {
            std::printf("FAIL: rank %d got an NCCL communicator on a GPU shared with another rank\n", mpi_comm->rank());
            bad = 1;
        } else if (mpi_comm->rank() == 0 && !bad) {
            std::printf("gpu.nccl_gather: %d ranks on %d GPU(s): NCCL declined, gather stays on MPI\n",
                        mpi_comm->size(), ndev);
        }
        return static_cast<int>(mpi_comm->max(static_cast<std::uint64_t>(bad)));
    }
    if (!nccl) {
        std::printf("FAIL: rank %d: no NCCL communicator although every rank has its own GPU\n", mpi_comm->rank());
        return 1;  // every rank took this branch: the decision is broadcast
    }
    const auto via_nccl = gather(*nccl, n);
    if (nccl->rank() == 0) {
        for (int r = 0; r < nccl->size(); ++r)
            if (via_nccl[static_cast<std::size_t>(r)] != via_mpi[static_cast<std::size_t>(r)]) {
                std::printf("FAIL: NCCL block of rank %d differs from the MPI one\n", r);
                bad = 1;
            }
        if (!bad) std::printf("gpu.nccl_gather: %d ranks, NCCL blocks == MPI blocks\n", nccl->size());
    }
    return static_cast<int>(nccl->max(static_cast<std::uint64_t>(bad)));
}
