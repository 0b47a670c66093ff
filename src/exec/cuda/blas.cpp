// The LoRA delta GEMM on the GPU (host code): cublasSgemm in pedantic fp32, row blocks of C bounded by the memory budget.
#include <shardforge/exec.hpp>

#include "../gpu.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>

namespace shardforge::exec::gpu {
namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw core::Error(core::ErrorKind::Internal, "", "", core::cat("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}
// cuBLAS is loaded on first use, never at program start: merely mapping libcublasLt costs ~210 MB of resident
// memory, which a CPU-only run (and the --max-memory-per-rank budget) must not pay. The types come from the header;
// only the four entry points we call are resolved.
struct Cublas {
    decltype(&cublasCreate_v2) create = nullptr;
    decltype(&cublasSetMathMode) set_math_mode = nullptr;
    decltype(&cublasSgemm_v2) sgemm = nullptr;
    decltype(&cublasGetStatusString) status_string = nullptr;
};

const Cublas& cublas() {  // called with g_mu held
    static Cublas api;
    static bool loaded = false;
    if (loaded) return api;
    const std::string so = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h)
        throw core::Error(core::ErrorKind::Unsupported, so, "", core::cat("cannot load cuBLAS for the GPU LoRA GEMM: ", dlerror()));
    api.create = reinterpret_cast<decltype(api.create)>(dlsym(h, "cublasCreate_v2"));
    api.set_math_mode = reinterpret_cast<decltype(api.set_math_mode)>(dlsym(h, "cublasSetMathMode"));
    api.sgemm = reinterpret_cast<decltype(api.sgemm)>(dlsym(h, "cublasSgemm_v2"));
    api.status_string = reinterpret_cast<decltype(api.status_string)>(dlsym(h, "cublasGetStatusString"));
    if (!api.create || !api.set_math_mode || !api.sgemm || !api.status_string)
        throw core::Error(core::ErrorKind::Unsupported, so, "", "cuBLAS library lacks an expected entry point");
    loaded = true;
    return api;
}

void check(cublasStatus_t e, const char* what) {
    if (e != CUBLAS_STATUS_SUCCESS)
        throw core::Error(core::ErrorKind::Internal, "", "", core::cat("cuBLAS error in ", what, ": ", cublas().status_string(e)));
}

struct DevBuf {
    float* p = nullptr;
    DevBuf() = default;
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf() { cudaFree(p); }
    void alloc(std::size_t n) { check(cudaMalloc(reinterpret_cast<void**>(&p), std::max<std::size_t>(n, 1) * 4), "cudaMalloc (GEMM)"); }
};

// One handle per device; GEMMs of concurrent worker threads take turns (the GEMM is rarely the bottleneck next
// to reading the base weights).
std::mutex g_mu;
std::map<int, cublasHandle_t> g_handles;

}  // namespace

std::mutex& op_mutex() { return g_mu; }

void matmul(int device, const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c,
            std::size_t max_bytes) {
    if (m == 0 || n == 0) return;
    std::lock_guard lock(g_mu);
    check(cudaSetDevice(device), "cudaSetDevice");
    cublasHandle_t& h = g_handles[device];
    if (!h) {
        check(cublas().create(&h), "cublasCreate");
        check(cublas().set_math_mode(h, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    }
    const std::size_t budget = max_bytes ? max_bytes : std::size_t{256} << 20;
    // Floats for A (k x n) plus per C row: one row of B (k) and one of C (n).
    const std::size_t a_f = static_cast<std::size_t>(k * n);
    const std::size_t per_row = static_cast<std::size_t>(k + n);
    const std::int64_t rows = budget / 4 > a_f ? std::max<std::int64_t>(1, static_cast<std::int64_t>((budget / 4 - a_f) / per_row)) : 1;
    const std::int64_t mb = std::min(m, rows);
    DevBuf da, db, dc;
    da.alloc(a_f);
    db.alloc(static_cast<std::size_t>(mb * k));
    dc.alloc(static_cast<std::size_t>(mb * n));
    check(cudaMemcpy(da.p, a, a_f * 4, cudaMemcpyHostToDevice), "H2D (lora_A)");
    const float one = 1.0f, zero = 0.0f;
    for (std::int64_t r0 = 0; r0 < m; r0 += mb) {
        const std::int64_t nr = std::min(mb, m - r0);
        check(cudaMemcpy(db.p, b + r0 * k, static_cast<std::size_t>(nr * k) * 4, cudaMemcpyHostToDevice), "H2D (lora_B)");
        // Row-major C = B @ A is column-major C^T = A^T @ B^T: (n x nr) = (n x k) (k x nr).
        check(cublas().sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(nr), static_cast<int>(k),
                          &one, da.p, static_cast<int>(n), db.p, static_cast<int>(k), &zero, dc.p, static_cast<int>(n)),
              "cublasSgemm");
        check(cudaMemcpy(c + r0 * n, dc.p, static_cast<std::size_t>(nr * n) * 4, cudaMemcpyDeviceToHost), "D2H (delta)");
    }
}

}  // namespace shardforge::exec::gpu
