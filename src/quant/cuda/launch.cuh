// Kernel templates and per-family launchers of the CUDA backend (internal to src/quant/cuda/). Every kernel is
// `if (b < nb) Task::run(args, b)`: one GPU thread per ggml block running the SF_HD task of kernels/tasks.hpp,
// the code the CPU suite checks (tests/unit/quant/gpu_tasks_test.cpp).
#pragma once
#include "kernels/dequant_tasks.hpp"
#include "kernels/tasks.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace shardforge::quant::cuda {

inline constexpr int threads_per_block = 64;  // K-quant/IQ threads use ~2-4 KB of local memory each

[[nodiscard]] inline unsigned grid_for(std::int64_t nb) {
    return static_cast<unsigned>((nb + threads_per_block - 1) / threads_per_block);
}

template <class Task>
__global__ void k_quantize(tasks::QArgs a, std::int64_t nb) {
    const std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b < nb) Task::run(a, b);
}
template <class Task>
__global__ void k_dequantize(tasks::DArgs a, std::int64_t nb) {
    const std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b < nb) Task::run(a, b);
}

// Launches the quantization of a.x (nrows rows of a.n values, device memory) into a.y on `s`. sigma2: device
// buffer of nrows floats for the tasks that need the per-row mean square (computed here first). False if `type`
// is not in the family.
bool launch_quantize_legacy(GgmlType type, tasks::QArgs a, std::int64_t nrows, float* sigma2, cudaStream_t s);
bool launch_quantize_kquant(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s);
bool launch_quantize_small(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s);
bool launch_quantize_grid(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s);
// nb = number of ggml blocks in a.x.
bool launch_dequantize(GgmlType type, tasks::DArgs a, std::int64_t nb, cudaStream_t s);

// Quantized-input dequantization of one staged chunk (dequant.cu): one thread per dtasks::group elements.
void launch_dequant(const dtasks::Bnb4Args& a, cudaStream_t s);
void launch_dequant(const dtasks::Int8Args& a, cudaStream_t s);
void launch_dequant(const dtasks::Fp8Args& a, cudaStream_t s);

// Shared body of the per-family quantization launchers.
template <class Task>
void launch_task(tasks::QArgs a, std::int64_t nrows, cudaStream_t s) {
    const std::int64_t nb = nrows * (a.n / Task::qk);
    if (nb > 0) k_quantize<Task><<<grid_for(nb), threads_per_block, 0, s>>>(a, nb);
}

}  // namespace shardforge::quant::cuda
