// The NCCL communicator (the only file that includes <nccl.h>): gather mode's point-to-point row blocks GPU to
// GPU, control collectives on the host communicator, which also carries the NCCL unique id from rank 0.
#include <shardforge/exec.hpp>

#include "../gpu.hpp"

#include <cuda_runtime.h>
#if SHARDFORGE_HAVE_NCCL
#include <nccl.h>
#endif

#include <array>
#include <cstring>
#include <map>

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
    }
    ~NcclComm() override {
        cudaSetDevice(device_);
        if (comm_) ncclCommDestroy(comm_);
        for (auto& [id, pd] : pending_) {
            if (pd.done) cudaEventDestroy(pd.done);
            cudaFree(pd.dev);
        }
        if (stream_) cudaStreamDestroy(stream_);
        cudaFree(recv_buf_);
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

    // Header (payload size, 8 bytes) through the host communicator, payload through NCCL on this rank's stream:
    // the receiver learns sender and size from the header, then posts the matching ncclRecv. Messages from one
    // sender keep their order (MPI's non-overtaking headers, NCCL's in-order stream).
    Request isend(std::span<const std::byte> data, int dest, int tag) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        Pending pd;
        const std::uint64_t n = data.size();
        std::memcpy(pd.header.data(), &n, sizeof n);
        if (n > 0) {
            check(cudaMalloc(&pd.dev, n), "cudaMalloc (NCCL send)");
            try {
                check(cudaMemcpy(pd.dev, data.data(), n, cudaMemcpyHostToDevice), "H2D (NCCL send)");
                check(ncclSend(pd.dev, n, ncclUint8, dest, comm_, stream_), "ncclSend");
                check(cudaEventCreateWithFlags(&pd.done, cudaEventDisableTiming), "cudaEventCreate");
                check(cudaEventRecord(pd.done, stream_), "cudaEventRecord");
            } catch (...) {
                cudaFree(pd.dev);
                throw;
            }
        }
        const Request id = next_++;
        auto& slot = pending_[id];
        slot = std::move(pd);
        slot.host = host_->isend(slot.header, dest, tag);
        return id;
    }
    void wait(Request id) override {
        const auto it = pending_.find(id);
        if (it == pending_.end()) return;
        Pending& pd = it->second;
        host_->wait(pd.host);
        if (pd.done) {
            check(cudaEventSynchronize(pd.done), "ncclSend");
            cudaEventDestroy(pd.done);
        }
        cudaFree(pd.dev);
        pending_.erase(it);
    }
    int recv_any(std::vector<std::byte>& out, int tag) override {
        std::vector<std::byte> hdr;
        const int src = host_->recv_any(hdr, tag);
        std::uint64_t n = 0;
        if (hdr.size() != sizeof n)
            throw core::Error(core::ErrorKind::Internal, "", "", core::cat("NCCL header of ", hdr.size(), " bytes"));
        std::memcpy(&n, hdr.data(), sizeof n);
        out.resize(n);
        if (n == 0) return src;
        check(cudaSetDevice(device_), "cudaSetDevice");
        if (n > recv_cap_) {
            cudaFree(recv_buf_);
            recv_buf_ = nullptr;
            recv_cap_ = 0;
            check(cudaMalloc(&recv_buf_, n), "cudaMalloc (NCCL recv)");
            recv_cap_ = n;
        }
        check(ncclRecv(recv_buf_, n, ncclUint8, src, comm_, stream_), "ncclRecv");
        check(cudaStreamSynchronize(stream_), "ncclRecv");
        check(cudaMemcpy(out.data(), recv_buf_, n, cudaMemcpyDeviceToHost), "D2H (NCCL recv)");
        return src;
    }

private:
    struct Pending {
        std::array<std::byte, 8> header{};
        Request host = 0;
        void* dev = nullptr;
        cudaEvent_t done = nullptr;
    };
    std::unique_ptr<Comm> host_;
    int device_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void* recv_buf_ = nullptr;
    std::size_t recv_cap_ = 0;
    Request next_ = 1;
    std::map<Request, Pending> pending_;
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
