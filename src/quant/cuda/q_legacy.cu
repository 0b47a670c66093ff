// CUDA quantizers of the 32-element legacy family (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4) and every dequantizer
// (dequantization is cheap to compile: one small kernel per type).
#include "launch.cuh"

namespace shardforge::quant::cuda {
namespace {

// One thread per row: the row's mean square in the CPU's order (tasks::row_mean_square).
__global__ void k_row_mean_square(const float* x, std::int64_t n, std::int64_t nrows, float* out) {
    const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r < nrows) out[r] = tasks::row_mean_square(x + r * n, n);
}

}  // namespace

bool launch_quantize_legacy(GgmlType type, tasks::QArgs a, std::int64_t nrows, float* sigma2, cudaStream_t s) {
    return tasks::visit_quantize_legacy(type, a.qw != nullptr, [&](auto task) {
        using Task = decltype(task);
        if constexpr (Task::needs_sigma2) {
            if (nrows > 0) k_row_mean_square<<<grid_for(nrows), threads_per_block, 0, s>>>(a.x, a.n, nrows, sigma2);
            a.sigma2 = sigma2;
        }
        launch_task<Task>(a, nrows, s);
    });
}

bool launch_dequantize(GgmlType type, tasks::DArgs a, std::int64_t nb, cudaStream_t s) {
    auto f = [&](auto task) {
        using Task = decltype(task);
        if (nb > 0) k_dequantize<Task><<<grid_for(nb), threads_per_block, 0, s>>>(a, nb);
    };
    return tasks::visit_dequantize_legacy(type, f) || tasks::visit_dequantize_kquant(type, f) ||
           tasks::visit_dequantize_small(type, f) || tasks::visit_dequantize_grid(type, f);
}

}  // namespace shardforge::quant::cuda
