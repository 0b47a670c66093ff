// The NCCL communicator (the only file that includes <nccl.h>): point-to-point row blocks GPU to GPU, control
// collectives on the host communicator, which also carries the NCCL unique id from rank 0.
#include <shardforge/exec.hpp>

#include "../gpu.hpp"

#include <cuda_runtime.h>
#if SHARDFORGE_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <cstring>

namespace shardforge::exec {

#if SHARDFORGE_HAVE_NCCL
namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw core::Error(core::ErrorKind::Internal, "", "", core::cat("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}
void check(ncclResult_t e, const char* what) {
    if (e != ncclSuccess)
        throw core::Error(core::ErrorKind::Io, "", "", core::cat("NCCL error in ", what, ": ", ncclGetErrorString(e)));
}

class NcclComm final : public Comm {
public:
    NcclComm(std::unique_ptr<Comm> host, int device) : host_(std::move(host)), device_(device) {
        check(cudaSetDevice(device_), "cudaSetDevice");
        std::string id(sizeof(ncclUniqueId), '\0');
        if (host_->rank() == 0) {
            ncclUniqueId uid;
            check(ncclGetUniqueId(&uid), "ncclGetUniqueId");
            std::memcpy(id.data(), &uid, sizeof uid);
        }
        host_->broadcast(id, 0);
        ncclUniqueId uid;
        std::memcpy(&uid, id.data(), sizeof uid);
        check(ncclCommInitRank(&comm_, host_->size(), uid, host_->rank()), "ncclCommInitRank");
        check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
        check(cudaMalloc(&staging_, chunk), "cudaMalloc (NCCL staging)");
        check(cudaHostAlloc(&pinned_, chunk, cudaHostAllocDefault), "cudaHostAlloc (NCCL staging)");
    }
    ~NcclComm() override {
        cudaSetDevice(device_);
        if (comm_) ncclCommDestroy(comm_);
        if (stream_) cudaStreamDestroy(stream_);
        cudaFree(staging_);
        cudaFreeHost(pinned_);
    }
    int rank() const override { return host_->rank(); }
    int size() const override { return host_->size(); }
    void barrier() override { host_->barrier(); }
    void broadcast(std::string& bytes, int root) override { host_->broadcast(bytes, root); }
    std::uint64_t max(std::uint64_t local) override { return host_->max(local); }
    std::uint64_t sum(std::uint64_t local) override { return host_->sum(local); }
    double max(double local) override { return host_->max(local); }
    std::vector<std::string> gather(const std::string& local, int root) override { return host_->gather(local, root); }
    std::string backend() const override { return "nccl"; }

    void send_bytes(const void* data, std::size_t n, int dest) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        const auto* p = static_cast<const char*>(data);
        for (std::size_t off = 0; off < n; off += chunk) {
            const std::size_t len = std::min(chunk, n - off);
            std::memcpy(pinned_, p + off, len);
            check(cudaMemcpyAsync(staging_, pinned_, len, cudaMemcpyHostToDevice, stream_), "H2D (NCCL send)");
            check(ncclSend(staging_, len, ncclUint8, dest, comm_, stream_), "ncclSend");
            check(cudaStreamSynchronize(stream_), "ncclSend");
        }
    }
    void recv_bytes(void* data, std::size_t n, int src) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        auto* p = static_cast<char*>(data);
        for (std::size_t off = 0; off < n; off += chunk) {
            const std::size_t len = std::min(chunk, n - off);
            check(ncclRecv(staging_, len, ncclUint8, src, comm_, stream_), "ncclRecv");
            check(cudaMemcpyAsync(pinned_, staging_, len, cudaMemcpyDeviceToHost, stream_), "D2H (NCCL recv)");
            check(cudaStreamSynchronize(stream_), "ncclRecv");
            std::memcpy(p + off, pinned_, len);
        }
    }

private:
    static constexpr std::size_t chunk = std::size_t{64} << 20;
    std::unique_ptr<Comm> host_;
    int device_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void* staging_ = nullptr;
    void* pinned_ = nullptr;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host, int device) {
    return std::make_unique<NcclComm>(std::move(host), device);
}

namespace gpu {
std::string nccl_info() {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) return "NCCL";
    return core::cat("NCCL ", v / 10000, ".", (v / 100) % 100, ".", v % 100);
}
}  // namespace gpu

#else  // CUDA without NCCL

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm>, int) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "this shardforge was built without NCCL");
}
namespace gpu {
std::string nccl_info() { return ""; }
}  // namespace gpu

#endif

}  // namespace shardforge::exec
