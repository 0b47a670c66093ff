// CUDA kernels of the quantized-input dequantizers (bitsandbytes NF4/FP4 with or without double quantization,
// LLM.int8, FP8 with block / per-channel / per-tensor scales): `if (g < ng) dtasks::run_*(args, g)`, one thread per
// dtasks::group elements of a staged chunk, running the SF_HD range functions of kernels/dequant.hpp (the CPU's
// code; the host decomposition is checked by tests/unit/quant/gpu_dequant_tasks_test.cpp).
#include "launch.cuh"

namespace shardforge::quant::cuda {
namespace {

constexpr int dequant_threads = 128;

template <class Args, void (*Run)(const Args&, std::int64_t)>
__global__ void k_dequant(Args a, std::int64_t ng) {
    const std::int64_t g = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g < ng) Run(a, g);
}

template <class Args, void (*Run)(const Args&, std::int64_t)>
void launch(const Args& a, cudaStream_t s) {
    const std::int64_t ng = dtasks::n_groups(a.k0, a.k1);
    if (ng <= 0) return;
    const auto blocks = static_cast<unsigned>((ng + dequant_threads - 1) / dequant_threads);
    k_dequant<Args, Run><<<blocks, dequant_threads, 0, s>>>(a, ng);
}

}  // namespace

void launch_dequant(const dtasks::Bnb4Args& a, cudaStream_t s) { launch<dtasks::Bnb4Args, dtasks::run_bnb4>(a, s); }
void launch_dequant(const dtasks::Int8Args& a, cudaStream_t s) { launch<dtasks::Int8Args, dtasks::run_int8>(a, s); }
void launch_dequant(const dtasks::Fp8Args& a, cudaStream_t s) { launch<dtasks::Fp8Args, dtasks::run_fp8>(a, s); }

}  // namespace shardforge::quant::cuda
