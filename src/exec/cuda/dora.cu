// DoRA's norm and magnitude rescale on the GPU (after the delta kernel): one thread per output feature running
// lora::kernels::dora_feature, the CPU merge's function (sum of squares in double in index order), over chunks of
// whole features staged through device memory. Per-column features (fan_in_fan_out, embeddings) are staged as
// column blocks with 2-D copies. The host decomposition is checked by tests/unit/lora/dora_gpu_tasks_test.cpp.
#include <shardforge/core.hpp>

#include "../../lora/kernels/dora.hpp"
#include "../gpu.hpp"
#include "dev_floats.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace shardforge::exec::gpu {
namespace {

__global__ void k_dora(lora::kernels::DoraArgs a) {
    const std::int64_t f = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    lora::kernels::run_dora(a, f);
}

constexpr int dora_threads = 128;

}  // namespace

std::int64_t dora(int device, float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m,
                  std::size_t max_bytes) {
    const std::int64_t n_feat = per_col ? cols : rows, n_red = per_col ? rows : cols;
    if (n_feat <= 0) return -1;
    std::lock_guard lock(op_mutex());
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    const std::int64_t fc = std::min(n_feat, lora::kernels::features_per_chunk(n_red, max_bytes));
    DevFloats dv, dm, dn;
    dv.alloc(static_cast<std::size_t>(fc * n_red), "cudaMalloc (DoRA)");
    dm.alloc(static_cast<std::size_t>(fc), "cudaMalloc (DoRA)");
    dn.alloc(static_cast<std::size_t>(fc), "cudaMalloc (DoRA)");
    std::vector<float> norms(static_cast<std::size_t>(n_feat));
    const std::size_t fsz = sizeof(float);
    for (std::int64_t f0 = 0; f0 < n_feat; f0 += fc) {
        const std::int64_t nf = std::min(fc, n_feat - f0);
        // Device layout: row-major features (per-row) or a rows x nf column block (per-column).
        if (per_col)
            check_cuda(cudaMemcpy2D(dv.p, static_cast<std::size_t>(nf) * fsz, v + f0, static_cast<std::size_t>(cols) * fsz,
                               static_cast<std::size_t>(nf) * fsz, static_cast<std::size_t>(rows), cudaMemcpyHostToDevice),
                  "H2D (DoRA columns)");
        else
            check_cuda(cudaMemcpy(dv.p, v + f0 * cols, static_cast<std::size_t>(nf * cols) * fsz, cudaMemcpyHostToDevice),
                  "H2D (DoRA rows)");
        check_cuda(cudaMemcpy(dm.p, m + f0, static_cast<std::size_t>(nf) * fsz, cudaMemcpyHostToDevice), "H2D (magnitude)");
        const lora::kernels::DoraArgs a = lora::kernels::chunk_args(dv.p, dm.p, dn.p, nf, n_red, per_col);
        k_dora<<<static_cast<unsigned>((nf + dora_threads - 1) / dora_threads), dora_threads>>>(a);
        check_cuda(cudaGetLastError(), "DoRA kernel launch");
        check_cuda(cudaMemcpy(norms.data() + f0, dn.p, static_cast<std::size_t>(nf) * fsz, cudaMemcpyDeviceToHost),
              "D2H (DoRA norms)");
        if (per_col)
            check_cuda(cudaMemcpy2D(v + f0, static_cast<std::size_t>(cols) * fsz, dv.p, static_cast<std::size_t>(nf) * fsz,
                               static_cast<std::size_t>(nf) * fsz, static_cast<std::size_t>(rows), cudaMemcpyDeviceToHost),
                  "D2H (DoRA columns)");
        else
            check_cuda(cudaMemcpy(v + f0 * cols, dv.p, static_cast<std::size_t>(nf * cols) * fsz, cudaMemcpyDeviceToHost),
                  "D2H (DoRA rows)");
    }
    for (std::int64_t f = 0; f < n_feat; ++f)
        if (norms[static_cast<std::size_t>(f)] == 0.0f) return f;
    return -1;
}

}  // namespace shardforge::exec::gpu
