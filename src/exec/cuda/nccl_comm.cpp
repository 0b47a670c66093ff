// The NCCL transport (the only file that includes <nccl.h>): gather mode's row blocks GPU to GPU under the link
// layer (../link.hpp: each header goes through the host communicator first, then the payload through NCCL), and
// make_nccl_comm, which sets it up or, when ranks share a GPU, leaves the caller on its MPI communicator.
#include <shardforge/exec.hpp>

#include "../gpu.hpp"
#include "../link.hpp"

#include <cuda_runtime.h>
#if SHARDFORGE_HAVE_NCCL
#include <nccl.h>
#endif
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

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

// The GPU as NCCL's init tells GPUs apart (NCCL src/init.cc, "Duplicate GPU detected"): its host (NCCL_HOSTID
// when set, else the host name; NCCL also folds in the boot id, so this key is never laxer than NCCL's) and its
// PCI bus id, which MIG instances of one GPU share.
std::string device_key(int device) {
    char bus[32] = {};
    check(cudaDeviceGetPCIBusId(bus, sizeof bus, device), "cudaDeviceGetPCIBusId");
    std::string host;
    if (std::string id = core::env("NCCL_HOSTID"); !id.empty()) {
        host = std::move(id);
    } else {
        char name[256] = {};
        if (gethostname(name, sizeof name - 1) != 0) std::strcpy(name, "?");
        host = name;
    }
    return core::cat(host, "/", bus);
}

// Payloads through ncclSend/ncclRecv on one non-blocking stream. In gather mode a rank only sends (ranks > 0) or
// only receives (rank 0), so a receive never waits behind this rank's own pending sends.
class NcclTransport final : public link::Transport {
public:
    // collective over host's ranks: rank 0's NCCL unique id goes out through `host`.
    NcclTransport(Comm& host, int device) : device_(device) {
        check(cudaSetDevice(device_), "cudaSetDevice");
        std::string id(sizeof(ncclUniqueId), '\0');
        if (host.rank() == 0) {
            ncclUniqueId uid;
            check(ncclGetUniqueId(&uid), "ncclGetUniqueId");
            std::memcpy(id.data(), &uid, sizeof uid);
        }
        host.broadcast(id, 0);
        ncclUniqueId uid;
        std::memcpy(&uid, id.data(), sizeof uid);
        check(ncclCommInitRank(&comm_, host.size(), uid, host.rank()), "ncclCommInitRank");
        check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    }
    ~NcclTransport() override {
        cudaSetDevice(device_);
        if (comm_) ncclCommDestroy(comm_);
        for (auto& [h, s] : sends_) release(s);
        if (stream_) cudaStreamDestroy(stream_);
        cudaFree(recv_buf_);
    }
    NcclTransport(const NcclTransport&) = delete;
    NcclTransport& operator=(const NcclTransport&) = delete;

    Handle stage(std::span<const std::byte> data) override {
        check(cudaSetDevice(device_), "cudaSetDevice");
        Send s;
        s.n = data.size();
        try {
            check(cudaMalloc(&s.dev, s.n), "cudaMalloc (NCCL send)");
            check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
            // On the stream the ncclSend runs on: a cudaMemcpy from pageable memory would run on the legacy stream,
            // which does not order with a non-blocking one, and may return before its DMA has landed (CUDA runtime
            // API, "API synchronization behavior"). `data` outlives the copy: finish() waits for s.done.
            check(cudaMemcpyAsync(s.dev, data.data(), s.n, cudaMemcpyHostToDevice, stream_), "H2D (NCCL send)");
            check(cudaEventRecord(s.done, stream_), "cudaEventRecord");
        } catch (...) {
            release(s);
            throw;
        }
        const Handle h = next_++;
        sends_.emplace(h, s);
        return h;
    }
    void post(Handle h, int dest) override {
        const auto it = sends_.find(h);
        SF_CHECK(it != sends_.end(), "NCCL send posted without staging");
        Send& s = it->second;
        check(cudaSetDevice(device_), "cudaSetDevice");
        check(ncclSend(s.dev, s.n, ncclUint8, dest, comm_, stream_), "ncclSend");
        check(cudaEventRecord(s.done, stream_), "cudaEventRecord");  // now behind the send too
    }
    void finish(Handle h) override {
        const auto it = sends_.find(h);
        if (it == sends_.end()) return;
        Send s = it->second;
        sends_.erase(it);
        check(cudaSetDevice(device_), "cudaSetDevice");
        const cudaError_t e = cudaEventSynchronize(s.done);
        release(s);
        check(e, "ncclSend");
    }
    void recv(std::span<std::byte> out, int src) override {
        const std::size_t n = out.size();
        check(cudaSetDevice(device_), "cudaSetDevice");
        if (n > recv_cap_) {
            cudaFree(recv_buf_);
            recv_buf_ = nullptr;
            recv_cap_ = 0;
            check(cudaMalloc(&recv_buf_, n), "cudaMalloc (NCCL recv)");
            recv_cap_ = n;
        }
        check(ncclRecv(recv_buf_, n, ncclUint8, src, comm_, stream_), "ncclRecv");
        check(cudaMemcpyAsync(out.data(), recv_buf_, n, cudaMemcpyDeviceToHost, stream_), "D2H (NCCL recv)");
        check(cudaStreamSynchronize(stream_), "ncclRecv");  // the receive and the copy behind it
    }
    std::string name() const override { return "nccl"; }

private:
    struct Send {
        void* dev = nullptr;
        cudaEvent_t done = nullptr;  // recorded behind the staging copy, then behind the ncclSend
        std::size_t n = 0;
    };
    static void release(Send& s) noexcept {
        if (s.done) cudaEventDestroy(s.done);
        cudaFree(s.dev);  // waits for the device work on it
        s = Send{};
    }

    int device_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void* recv_buf_ = nullptr;
    std::size_t recv_cap_ = 0;
    Handle next_ = 1;
    std::map<Handle, Send> sends_;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host, int device) {
    // Every rank names its GPU (an error is agreed on, so no rank is left in the gather), rank 0 decides.
    std::string key;
    std::optional<core::Error> err;
    try {
        key = device_key(device);
    } catch (const core::Error& e) {
        err = e;
    }
    if (auto e = agree_on_error(*host, err)) throw *e;
    const std::vector<std::string> keys = host->gather(key, 0);
    std::string why;
    if (host->rank() == 0) why = link::shared_device(keys);
    host->broadcast(why, 0);
    if (!why.empty()) {
        if (host->rank() == 0)
            core::log::info("gather mode: " + why + "; row blocks via MPI (NCCL needs a GPU per rank)");
        return nullptr;
    }
    auto transport = std::make_unique<NcclTransport>(*host, device);
    return link::make_link_comm(std::move(host), std::move(transport));
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
