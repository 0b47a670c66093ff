// quant::gpu::Device on CUDA: device selection, the bounded staging buffers and the chunked two-stream pipeline
// (pinned host buffer -> H2D -> kernel -> D2H -> caller's buffer), device copies of the IQ grid tables, and the
// element conversion kernels.
#include <shardforge/quant.hpp>

#include "iq.hpp"
#include "launch.cuh"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace shardforge::quant::gpu {
namespace {

using core::Error;
using core::ErrorKind;

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw Error(ErrorKind::Internal, "", "", core::cat("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}

// ---------------------------------------------------------------- element conversions (core:: SF_HD functions)
template <class Conv>
__global__ void k_convert(const void* src, float* dst, std::int64_t n, Conv conv) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = conv(src, i);
}
struct FromF16 {
    __device__ float operator()(const void* s, std::int64_t i) const {
        return core::f16_to_f32(static_cast<const std::uint16_t*>(s)[i]);
    }
};
struct FromBF16 {
    __device__ float operator()(const void* s, std::int64_t i) const {
        return core::bf16_to_f32(static_cast<const std::uint16_t*>(s)[i]);
    }
};
struct FromF32 {
    __device__ float operator()(const void* s, std::int64_t i) const { return static_cast<const float*>(s)[i]; }
};
struct FromE4M3 {
    __device__ float operator()(const void* s, std::int64_t i) const {
        return core::f8e4m3_to_f32(static_cast<const std::uint8_t*>(s)[i]);
    }
};
struct FromE5M2 {
    __device__ float operator()(const void* s, std::int64_t i) const {
        return core::f8e5m2_to_f32(static_cast<const std::uint8_t*>(s)[i]);
    }
};
__global__ void k_to_half(const float* src, std::uint16_t* dst, std::int64_t n, bool bf16) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = bf16 ? core::f32_to_bf16(src[i]) : core::f32_to_f16(src[i]);
}

constexpr int conv_threads = 256;
unsigned conv_grid(std::int64_t n) { return static_cast<unsigned>((n + conv_threads - 1) / conv_threads); }

// ---------------------------------------------------------------- staging
// One pipeline slot: device input/output buffers, pinned host mirrors, per-row scratch.
struct Slot {
    void* d_in = nullptr;
    void* d_out = nullptr;
    float* d_sigma2 = nullptr;
    void* h_in = nullptr;
    void* h_out = nullptr;
};
// A stream pair with two slots; one caller at a time.
struct Lane {
    cudaStream_t stream[2] = {nullptr, nullptr};
    Slot slot[2];
    float* d_qw = nullptr;  // importance vector of the current call
    std::size_t qw_cap = 0;
};

constexpr int n_lanes = 2;

class CudaDevice final : public Device {
public:
    CudaDevice(int index, std::size_t max_memory) : index_(index) {
        check(cudaSetDevice(index), "cudaSetDevice");
        cudaDeviceProp prop{};
        check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
        name_ = core::cat(prop.name, " (device ", index, ", sm_", prop.major, prop.minor, ")");
        std::size_t free_b = 0, total_b = 0;
        check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
        budget_ = max_memory ? max_memory : std::min<std::size_t>(free_b / 4, std::size_t{1} << 30);
        // 2 lanes x 2 slots x (in + out) buffers share the budget; a sixteenth is kept for grids/imatrix.
        cap_ = (budget_ - budget_ / 16) / (n_lanes * 2 * 2);
        cap_ &= ~std::size_t{255};
        if (cap_ < 4096)
            throw Error(ErrorKind::Usage, "", "",
                        core::cat("--max-gpu-memory ", budget_, " is too small (at least 64 KiB)"));
    }
    ~CudaDevice() override {
        cudaSetDevice(index_);
        for (Lane& l : lanes_) {
            for (int k = 0; k < 2; ++k) {
                if (l.stream[k]) cudaStreamDestroy(l.stream[k]);
                cudaFree(l.slot[k].d_in);
                cudaFree(l.slot[k].d_out);
                cudaFree(l.slot[k].d_sigma2);
                cudaFreeHost(l.slot[k].h_in);
                cudaFreeHost(l.slot[k].h_out);
            }
            cudaFree(l.d_qw);
        }
        for (auto& [id, g] : grids_)
            for (void* p : g.mem) cudaFree(p);
    }

    int index() const override { return index_; }
    std::string name() const override { return name_; }

    void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n,
                       const float* imatrix) override {
        if (!can_quantize(type))
            throw Error(ErrorKind::Unsupported, "", "",
                        core::cat("quantization to ggml type ", type_upper_name(type), " is not implemented"));
        if (!imatrix && quantize_requires_imatrix(type))
            throw Error(ErrorKind::Usage, "", "",
                        core::cat("quantization to ", type_upper_name(type), " needs an importance matrix (--imatrix)"));
        const tasks::Family fam = tasks::family(type);
        const bool use_qw = imatrix && fam != tasks::Family::None;
        detail::IqGrid grid{};
        if (fam == tasks::Family::Grid) grid = device_grid(type);
        const std::size_t in_row = static_cast<std::size_t>(n) * sizeof(float), out_row = row_bytes(type, n);
        LaneGuard lane(*this);
        if (use_qw) upload_qw(*lane, imatrix, n);
        pipeline(*lane, nrows, in_row, out_row, src, dst, [&](cudaStream_t s, Slot& sl, std::int64_t rows) {
            tasks::QArgs a;
            a.x = static_cast<const float*>(sl.d_in);
            a.qw = use_qw ? lane->d_qw : nullptr;
            a.y = sl.d_out;
            a.n = n;
            a.grid = grid;
            bool ok = true;
            switch (fam) {
                case tasks::Family::Legacy: ok = cuda::launch_quantize_legacy(type, a, rows, sl.d_sigma2, s); break;
                case tasks::Family::KQuant: ok = cuda::launch_quantize_kquant(type, a, rows, s); break;
                case tasks::Family::Small: ok = cuda::launch_quantize_small(type, a, rows, s); break;
                case tasks::Family::Grid: ok = cuda::launch_quantize_grid(type, a, rows, s); break;
                case tasks::Family::None: {
                    const std::int64_t ne = rows * n;
                    if (type == GgmlType::F32) {
                        check(cudaMemcpyAsync(sl.d_out, sl.d_in, static_cast<std::size_t>(ne) * 4,
                                              cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync");
                    } else if (ne > 0) {
                        k_to_half<<<conv_grid(ne), conv_threads, 0, s>>>(a.x, static_cast<std::uint16_t*>(sl.d_out), ne,
                                                                         type == GgmlType::BF16);
                    }
                    break;
                }
            }
            SF_CHECK(ok, core::cat("no CUDA kernel for ", type_upper_name(type)));
        });
    }

    void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows, std::int64_t n) override {
        if (!can_quantize(type))
            throw Error(ErrorKind::Unsupported, "", "",
                        core::cat("dequantization to ggml type ", type_upper_name(type), " is not implemented"));
        detail::IqGrid grid{};
        if (tasks::family(type) == tasks::Family::Grid) grid = device_grid(type);
        const std::size_t in_row = row_bytes(type, n), out_row = static_cast<std::size_t>(n) * sizeof(float);
        const std::int64_t qk = traits(type).block_elems;
        LaneGuard lane(*this);
        pipeline(*lane, nrows, in_row, out_row, src, dst, [&](cudaStream_t s, Slot& sl, std::int64_t rows) {
            const std::int64_t ne = rows * n;
            if (tasks::family(type) == tasks::Family::None) {
                const core::DType dt = type == GgmlType::F32 ? core::DType::F32
                                     : type == GgmlType::F16 ? core::DType::F16 : core::DType::BF16;
                launch_to_f32(dt, sl.d_in, static_cast<float*>(sl.d_out), ne, s);
                return;
            }
            tasks::DArgs a;
            a.x = sl.d_in;
            a.y = static_cast<float*>(sl.d_out);
            a.grid = grid;
            SF_CHECK(cuda::launch_dequantize(type, a, ne / qk, s), core::cat("no CUDA kernel for ", type_upper_name(type)));
        });
    }

    void to_f32(core::DType dtype, const void* src, float* dst, std::size_t n) override {
        switch (dtype) {
            case core::DType::F32: case core::DType::F16: case core::DType::BF16: case core::DType::F8_E4M3:
            case core::DType::F8_E5M2:
                break;
            default:
                throw Error(ErrorKind::Unsupported, "", "",
                            core::cat("GPU conversion of ", core::dtype_name(dtype), " to F32 is not implemented"));
        }
        LaneGuard lane(*this);
        pipeline(*lane, static_cast<std::int64_t>(n), core::dtype_size(dtype), sizeof(float), src, dst,
                 [&](cudaStream_t s, Slot& sl, std::int64_t ne) {
                     launch_to_f32(dtype, sl.d_in, static_cast<float*>(sl.d_out), ne, s);
                 });
    }

    void dequant_bnb4(const Bnb4View& v, std::int64_t k0, std::int64_t k1, float* dst) override {
        dequant_chunks(k0, k1, dtasks::bnb4_unit(v), dst, "a bitsandbytes 4-bit tensor",
                       [&](const dtasks::Chunk& c, dtasks::Blob& b, float* d) { return dtasks::pack_bnb4(v, c, b, d); },
                       [](const dtasks::Bnb4Args& a, cudaStream_t s) { cuda::launch_dequant(a, s); });
    }
    void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                      float* dst) override {
        dequant_chunks(k0, k1, dtasks::int8_unit(cols), dst, "an LLM.int8 tensor",
                       [&](const dtasks::Chunk& c, dtasks::Blob& b, float* d) {
                           return dtasks::pack_int8(cb, scb, cols, c, b, d);
                       },
                       [](const dtasks::Int8Args& a, cudaStream_t s) { cuda::launch_dequant(a, s); });
    }
    void dequant_fp8(const Fp8View& v, std::int64_t k0, std::int64_t k1, float* dst) override {
        dequant_chunks(k0, k1, dtasks::fp8_unit(), dst, "an FP8 tensor",
                       [&](const dtasks::Chunk& c, dtasks::Blob& b, float* d) { return dtasks::pack_fp8(v, c, b, d); },
                       [](const dtasks::Fp8Args& a, cudaStream_t s) { cuda::launch_dequant(a, s); });
    }

private:
    struct DeviceGrid {
        detail::IqGrid view{};
        std::vector<void*> mem;
    };

    class LaneGuard {
    public:
        explicit LaneGuard(CudaDevice& d) : d_(d) {
            check(cudaSetDevice(d.index_), "cudaSetDevice");
            std::unique_lock lock(d.mu_);
            d.cv_.wait(lock, [&] { return d.free_lanes_ != 0; });
            for (k_ = 0; k_ < n_lanes; ++k_)
                if (d.free_lanes_ & (1u << k_)) break;
            d.free_lanes_ &= ~(1u << k_);
            lock.unlock();
            try {
                d.init_lane(d.lanes_[k_]);
            } catch (...) {
                release();
                throw;
            }
        }
        ~LaneGuard() { release(); }
        LaneGuard(const LaneGuard&) = delete;
        LaneGuard& operator=(const LaneGuard&) = delete;
        Lane& operator*() { return d_.lanes_[k_]; }
        Lane* operator->() { return &d_.lanes_[k_]; }

    private:
        void release() {
            {
                std::lock_guard lock(d_.mu_);
                d_.free_lanes_ |= 1u << k_;
            }
            d_.cv_.notify_one();
        }
        CudaDevice& d_;
        int k_ = 0;
    };

    void init_lane(Lane& l) {
        if (l.stream[0]) return;
        for (int k = 0; k < 2; ++k) {
            check(cudaStreamCreateWithFlags(&l.stream[k], cudaStreamNonBlocking), "cudaStreamCreate");
            Slot& s = l.slot[k];
            check(cudaMalloc(&s.d_in, cap_), "cudaMalloc (staging)");
            check(cudaMalloc(&s.d_out, cap_), "cudaMalloc (staging)");
            check(cudaMalloc(reinterpret_cast<void**>(&s.d_sigma2), cap_ / 32), "cudaMalloc (row scratch)");
            check(cudaHostAlloc(&s.h_in, cap_, cudaHostAllocDefault), "cudaHostAlloc (pinned staging)");
            check(cudaHostAlloc(&s.h_out, cap_, cudaHostAllocDefault), "cudaHostAlloc (pinned staging)");
        }
    }

    void upload_qw(Lane& l, const float* qw, std::int64_t n) {
        const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
        if (bytes > l.qw_cap) {
            cudaFree(l.d_qw);
            l.d_qw = nullptr;
            l.qw_cap = 0;
            check(cudaMalloc(reinterpret_cast<void**>(&l.d_qw), bytes), "cudaMalloc (imatrix)");
            l.qw_cap = bytes;
        }
        // On the lane's stream, then waited for: both lane streams read d_qw. A plain cudaMemcpy from pageable memory
        // would run on the legacy stream, which does not order with the lanes' non-blocking streams, and may return
        // before its DMA has landed (CUDA runtime API, "API synchronization behavior").
        check(cudaMemcpyAsync(l.d_qw, qw, bytes, cudaMemcpyHostToDevice, l.stream[0]), "cudaMemcpyAsync (imatrix)");
        check(cudaStreamSynchronize(l.stream[0]), "cudaMemcpyAsync (imatrix)");
    }

    void launch_to_f32(core::DType dt, const void* in, float* out, std::int64_t ne, cudaStream_t s) {
        if (ne <= 0) return;
        switch (dt) {
            case core::DType::F16: k_convert<<<conv_grid(ne), conv_threads, 0, s>>>(in, out, ne, FromF16{}); break;
            case core::DType::BF16: k_convert<<<conv_grid(ne), conv_threads, 0, s>>>(in, out, ne, FromBF16{}); break;
            case core::DType::F8_E4M3: k_convert<<<conv_grid(ne), conv_threads, 0, s>>>(in, out, ne, FromE4M3{}); break;
            case core::DType::F8_E5M2: k_convert<<<conv_grid(ne), conv_threads, 0, s>>>(in, out, ne, FromE5M2{}); break;
            default: k_convert<<<conv_grid(ne), conv_threads, 0, s>>>(in, out, ne, FromF32{}); break;
        }
    }

    // Units (rows or elements) stream through the lane's two slots in chunks of equal size (pipeline_chunks).
    template <class Launch>
    void pipeline(Lane& l, std::int64_t units, std::size_t in_per, std::size_t out_per, const void* src, void* dst,
                  Launch&& launch) {
        if (units <= 0) return;
        const std::size_t per = std::max(in_per, out_per);
        // Rows of quantizable types have >= 32 values, so a chunk never has more rows than d_sigma2 holds.
        const std::int64_t chunk = static_cast<std::int64_t>(cap_ / std::max<std::size_t>(per, 1));
        if (chunk < 1)
            throw Error(ErrorKind::Usage, "", "",
                        core::cat("--max-gpu-memory ", budget_, " is too small for one row of ", per,
                                  " bytes (needs about ", per * n_lanes * 4 * 17 / 16, ")"));
        const auto* in = static_cast<const std::byte*>(src);
        auto* out = static_cast<std::byte*>(dst);
        const auto n_chunks = static_cast<std::size_t>((units + chunk - 1) / chunk);
        auto count = [&](std::size_t c) { return std::min(chunk, units - static_cast<std::int64_t>(c) * chunk); };
        pipeline_chunks(
            l, n_chunks,
            [&](std::size_t c, Slot& sl) {
                const std::size_t in_b = static_cast<std::size_t>(count(c)) * in_per;
                std::memcpy(sl.h_in, in + c * static_cast<std::size_t>(chunk) * in_per, in_b);
                return in_b;
            },
            [&](cudaStream_t s, Slot& sl, std::size_t c) { launch(s, sl, count(c)); },
            [&](std::size_t c) {
                return std::pair{out + c * static_cast<std::size_t>(chunk) * out_per,
                                 static_cast<std::size_t>(count(c)) * out_per};
            });
    }

    // Chunks stream through the lane's two slots: while the GPU works on chunk c on one stream, the host fills the
    // other slot's pinned buffer with chunk c+1 (fill(c, slot) -> input bytes, at most cap_) and its H2D copy and
    // kernel queue behind it; a slot's results (out_of(c) -> {destination, bytes <= cap_}) are copied out of the
    // pinned buffer when the slot comes round again.
    template <class Fill, class Launch, class OutOf>
    void pipeline_chunks(Lane& l, std::size_t n_chunks, Fill&& fill, Launch&& launch, OutOf&& out_of) {
        bool pending[2] = {false, false};
        std::size_t pending_chunk[2] = {0, 0};
        auto drain = [&](int k) {
            if (!pending[k]) return;
            check(cudaStreamSynchronize(l.stream[k]), "kernel or copy");
            const auto [ptr, bytes] = out_of(pending_chunk[k]);
            std::memcpy(ptr, l.slot[k].h_out, bytes);
            pending[k] = false;
        };
        int k = 0;
        try {
            for (std::size_t c = 0; c < n_chunks; ++c, k ^= 1) {
                drain(k);
                Slot& sl = l.slot[k];
                const std::size_t in_b = fill(c, sl);
                SF_CHECK(in_b <= cap_ && out_of(c).second <= cap_, "GPU chunk larger than its staging buffer");
                check(cudaMemcpyAsync(sl.d_in, sl.h_in, in_b, cudaMemcpyHostToDevice, l.stream[k]), "H2D copy");
                launch(l.stream[k], sl, c);
                check(cudaGetLastError(), "kernel launch");
                check(cudaMemcpyAsync(sl.h_out, sl.d_out, out_of(c).second, cudaMemcpyDeviceToHost, l.stream[k]),
                      "D2H copy");
                pending_chunk[k] = c;
                pending[k] = true;
            }
            drain(k);
            drain(k ^ 1);
        } catch (...) {
            cudaStreamSynchronize(l.stream[0]);
            cudaStreamSynchronize(l.stream[1]);
            throw;
        }
    }

    // Quantized-input dequantization: dtasks' chunk plan for the staging size, one packed blob per chunk (the
    // pointers rebased to the slot's device buffer), one launch of `launch(args, stream)` per chunk.
    template <class Pack, class Launch>
    void dequant_chunks(std::int64_t k0, std::int64_t k1, std::int64_t unit, float* dst, const char* what, Pack&& pack,
                        Launch&& launch) {
        if (k1 <= k0) return;
        const std::vector<dtasks::Chunk> chunks =
            dtasks::plan_chunks(k0, k1, unit, static_cast<std::int64_t>(cap_ / sizeof(float)));
        for (const dtasks::Chunk& c : chunks) {  // every chunk must fit: inputs and outputs
            dtasks::Blob sizing(nullptr, nullptr);
            (void)pack(c, sizing, nullptr);
            const std::size_t need = std::max(sizing.size(), static_cast<std::size_t>(c.k1 - c.base) * sizeof(float));
            if (need > cap_)
                throw Error(ErrorKind::Usage, "", "",
                            core::cat("--max-gpu-memory ", budget_, " is too small to dequantize ", what, " on the GPU ",
                                      "(a chunk needs ", need, " bytes per staging buffer, ", cap_, " available)"));
        }
        LaneGuard lane(*this);
        pipeline_chunks(
            *lane, chunks.size(),
            [&](std::size_t i, Slot& sl) {
                dtasks::Blob b(static_cast<std::byte*>(sl.h_in), static_cast<const std::byte*>(sl.d_in));
                (void)pack(chunks[i], b, static_cast<float*>(sl.d_out));
                return b.size();
            },
            [&](cudaStream_t s, Slot& sl, std::size_t i) {
                dtasks::Blob b(nullptr, static_cast<const std::byte*>(sl.d_in));  // the same pointers, no copy
                launch(pack(chunks[i], b, static_cast<float*>(sl.d_out)), s);
            },
            [&](std::size_t i) {
                return std::pair{reinterpret_cast<std::byte*>(dst + (chunks[i].k0 - k0)),
                                 static_cast<std::size_t>(chunks[i].k1 - chunks[i].k0) * sizeof(float)};
            });
    }

    detail::IqGrid device_grid(GgmlType type) {
        std::lock_guard lock(grid_mu_);
        const int id = static_cast<int>(type);
        if (auto it = grids_.find(id); it != grids_.end()) return it->second.view;
        const detail::IqGrid& h = iq::grid(type);
        const bool iq3 = type == GgmlType::IQ3_XXS || type == GgmlType::IQ3_S;
        const std::size_t dim = iq3 ? 4 : 8, kmap = iq3 ? 4096 : 43692;
        std::size_t n_neigh = 0;
        for (std::size_t u = 0; u < kmap; ++u)
            if (h.map[u] < 0) {
                const std::size_t o = static_cast<std::size_t>(-h.map[u] - 1);
                n_neigh = std::max(n_neigh, o + 1 + h.neighbours[o]);
            }
        DeviceGrid g;
        // The tables are read by kernels on every lane's non-blocking stream, so they are copied on a stream of their
        // own and waited for before anyone gets the view: a plain cudaMemcpy from pageable memory would run on the
        // legacy stream, which does not order with non-blocking streams, and may return before its DMA has landed
        // (CUDA runtime API, "API synchronization behavior").
        check(cudaSetDevice(index_), "cudaSetDevice");
        CopyStream cs;
        const cudaStream_t s = cs.s;
        auto copy = [&](const void* p, std::size_t bytes) -> void* {
            void* d = nullptr;
            check(cudaMalloc(&d, std::max<std::size_t>(bytes, 1)), "cudaMalloc (grid)");
            g.mem.push_back(d);
            check(cudaMemcpyAsync(d, p, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync (grid)");
            return d;
        };
        try {
            const std::size_t pts = static_cast<std::size_t>(h.size) * dim;
            g.view.pos = static_cast<const std::int8_t*>(copy(h.pos, pts));
            g.view.values = static_cast<const std::int8_t*>(copy(h.values, pts));
            g.view.map = static_cast<const int*>(copy(h.map, kmap * sizeof(int)));
            g.view.neighbours = static_cast<const std::uint16_t*>(copy(h.neighbours, n_neigh * sizeof(std::uint16_t)));
            g.view.size = h.size;
            check(cudaStreamSynchronize(s), "cudaMemcpyAsync (grid)");
        } catch (...) {
            cudaStreamSynchronize(s);
            for (void* p : g.mem) cudaFree(p);
            throw;
        }
        return grids_.emplace(id, std::move(g)).first->second.view;
    }

    // A non-blocking stream for one-off uploads, destroyed (after its work) with the scope.
    struct CopyStream {
        cudaStream_t s = nullptr;
        CopyStream() { check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"); }
        ~CopyStream() {
            cudaStreamSynchronize(s);
            cudaStreamDestroy(s);
        }
        CopyStream(const CopyStream&) = delete;
        CopyStream& operator=(const CopyStream&) = delete;
    };

    int index_;
    std::string name_;
    std::size_t budget_ = 0, cap_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    unsigned free_lanes_ = (1u << n_lanes) - 1;
    Lane lanes_[n_lanes];
    std::mutex grid_mu_;
    std::map<int, DeviceGrid> grids_;
};

}  // namespace

bool compiled() noexcept { return true; }

std::string build_info() {
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    return core::cat("CUDA ", CUDART_VERSION / 1000, ".", (CUDART_VERSION % 1000) / 10, " (sm_80 sm_90; runtime ",
                     rt / 1000, ".", (rt % 1000) / 10, ")");
}

int device_count(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no device" state
        if (why) *why = core::cat("cudaGetDeviceCount: ", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device visible (CUDA_VISIBLE_DEVICES?)";
    return n;
}

std::unique_ptr<Device> Device::open(int index, std::size_t max_memory) {
    std::string why;
    const int n = device_count(&why);
    if (n == 0) throw Error(ErrorKind::Unsupported, "", "", core::cat("no CUDA device: ", why));
    if (index < 0 || index >= n)
        throw Error(ErrorKind::Usage, "", "", core::cat("CUDA device ", index, " does not exist (", n, " visible)"));
    return std::make_unique<CudaDevice>(index, max_memory);
}

}  // namespace shardforge::quant::gpu
