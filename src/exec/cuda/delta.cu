// The LoRA delta C = B @ A on the GPU: one thread per element of C running lora::kernels::delta_element, the CPU's
// function (k ascending, __fmul_rn then __fadd_rn, no FMA), so the result is bit-identical to lora::delta_f32 on any
// CPU. Rows of C are computed in blocks so the device buffers stay under the memory budget; the blocking changes
// nothing in the bits (each element is computed whole).
#include <shardforge/core.hpp>

#include "../../lora/kernels/delta.hpp"
#include "../gpu.hpp"
#include "dev_floats.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>

namespace shardforge::exec::gpu {
namespace {

__global__ void k_delta(lora::kernels::DeltaArgs d) {
    const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    lora::kernels::run_delta(d, t);
}

constexpr int delta_threads = 256;

// One GEMM or DoRA temporary on the devices at a time (the delta is rarely the bottleneck next to reading the base).
std::mutex g_mu;

}  // namespace

std::mutex& op_mutex() { return g_mu; }

void matmul(int device, const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c,
            std::size_t max_bytes) {
    if (m == 0 || n == 0) return;
    std::lock_guard lock(g_mu);
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    const std::size_t budget = max_bytes ? max_bytes : std::size_t{256} << 20;
    // Floats for A (k x n) plus per C row: one row of B (k) and one of C (n).
    const std::size_t a_f = static_cast<std::size_t>(k * n);
    const std::size_t per_row = static_cast<std::size_t>(k + n);
    const std::int64_t rows = budget / 4 > a_f ? std::max<std::int64_t>(1, static_cast<std::int64_t>((budget / 4 - a_f) / per_row)) : 1;
    const std::int64_t mb = std::min(m, rows);
    DevFloats da, db, dc;
    da.alloc(a_f, "cudaMalloc (delta)");
    db.alloc(static_cast<std::size_t>(mb * k), "cudaMalloc (delta)");
    dc.alloc(static_cast<std::size_t>(mb * n), "cudaMalloc (delta)");
    // Synchronous copies on the legacy default stream; the kernel runs on that stream too, so every copy is ordered
    // with it (and the D2H copy waits for it).
    check_cuda(cudaMemcpy(da.p, a, a_f * 4, cudaMemcpyHostToDevice), "H2D (lora_A)");
    for (std::int64_t r0 = 0; r0 < m; r0 += mb) {
        const std::int64_t nr = std::min(mb, m - r0);
        check_cuda(cudaMemcpy(db.p, b + r0 * k, static_cast<std::size_t>(nr * k) * 4, cudaMemcpyHostToDevice), "H2D (lora_B)");
        lora::kernels::DeltaArgs d;
        d.b = db.p;
        d.a = da.p;
        d.c = dc.p;
        d.m = nr;
        d.k = k;
        d.n = n;
        const std::int64_t n_el = nr * n;
        k_delta<<<static_cast<unsigned>((n_el + delta_threads - 1) / delta_threads), delta_threads>>>(d);
        check_cuda(cudaGetLastError(), "delta kernel launch");
        check_cuda(cudaMemcpy(c + r0 * n, dc.p, static_cast<std::size_t>(n_el) * 4, cudaMemcpyDeviceToHost), "D2H (delta)");
    }
}

}  // namespace shardforge::exec::gpu
