// gpu.nccl_gather: row blocks sent to rank 0 through the NCCL communicator arrive exactly as through the MPI
// communicator (gather mode's transfer). One GPU per rank (NCCL refuses two ranks on one device): exits 77
// (ctest: skipped) when a rank sees fewer devices than there are ranks on its node.
#include <shardforge/exec.hpp>
#include <shardforge/quant.hpp>

#include <cstdio>
#include <cstring>
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

std::vector<std::vector<std::uint8_t>> gather(sf::exec::Comm& c, std::size_t n) {
    std::vector<std::vector<std::uint8_t>> out;
    if (c.rank() == 0) {
        out.push_back(block_of(0, n));
        for (int r = 1; r < c.size(); ++r) {
            std::vector<std::uint8_t> v(n + static_cast<std::size_t>(r));
            c.recv_bytes(v.data(), v.size(), r);
            out.push_back(std::move(v));
        }
    } else {
        const auto v = block_of(c.rank(), n + static_cast<std::size_t>(c.rank()));
        c.send_bytes(v.data(), v.size(), 0);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    sf::exec::MpiSession mpi(argc, argv);
    auto mpi_comm = sf::exec::make_mpi_comm();
    std::string why;
    const int ndev = sf::quant::gpu::device_count(&why);
    const std::uint64_t local_ranks = mpi_comm->size();  // the test runs on one node
    const int ok = ndev > 0 && static_cast<std::uint64_t>(ndev) >= local_ranks ? 1 : 0;
    if (mpi_comm->sum(static_cast<std::uint64_t>(ok)) != static_cast<std::uint64_t>(mpi_comm->size())) {
        if (mpi_comm->rank() == 0)
            std::printf("SKIP: NCCL gather needs one CUDA device per rank (%d ranks, %d devices visible%s%s)\n",
                        mpi_comm->size(), ndev, why.empty() ? "" : ": ", why.c_str());
        return 77;
    }
    const std::size_t n = (std::size_t{3} << 20) + 17;  // odd size: no alignment assumptions
    const auto via_mpi = gather(*mpi_comm, n);
    auto nccl = sf::exec::make_nccl_comm(sf::exec::make_mpi_comm(), sf::exec::local_rank() % ndev);
    const auto via_nccl = gather(*nccl, n);
    int bad = 0;
    if (nccl->rank() == 0) {
        for (int r = 0; r < nccl->size(); ++r) {
            const auto expect = block_of(r, n + (r ? static_cast<std::size_t>(r) : 0));
            if (via_mpi[static_cast<std::size_t>(r)] != expect) { std::printf("FAIL: MPI block of rank %d\n", r); bad = 1; }
            if (via_nccl[static_cast<std::size_t>(r)] != via_mpi[static_cast<std::size_t>(r)]) {
                std::printf("FAIL: NCCL block of rank %d differs from the MPI one\n", r);
                bad = 1;
            }
        }
        if (!bad) std::printf("gpu.nccl_gather: %d ranks, NCCL blocks == MPI blocks\n", nccl->size());
    }
    return static_cast<int>(nccl->max(static_cast<std::uint64_t>(bad)));
}
