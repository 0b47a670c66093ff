// exec's CUDA pieces (src/exec/cuda/; stubs in gpu_stub.cpp without CUDA): the LoRA delta kernel, DoRA and the
// NCCL version string. Internal to exec.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace shardforge::exec::gpu {

// C (m x n) = B (m x k) @ A (k x n), row-major f32, on CUDA device `device`: lora::kernels::delta_element per
// element, bit-identical to lora::delta_f32. C is computed in row blocks so the device buffers stay under max_bytes
// (0: 256 MiB).
void matmul(int device, const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* c,
            std::size_t max_bytes);
// Held by matmul() and dora() for their whole call: one GEMM or DoRA temporary on the devices at a time.
std::mutex& op_mutex();

// DoRA renormalisation of v (rows x cols, row-major, host memory) on CUDA device `device` with lora::DoraF32's
// contract: one thread per output feature (rows, or columns when per_col) running lora::kernels::dora_feature,
// features in chunks of whole features under max_bytes (0: 256 MiB), one call at a time (op_mutex). Bit-identical
// to the CPU loop.
[[nodiscard]] std::int64_t dora(int device, float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m,
                                std::size_t max_bytes);
[[nodiscard]] std::string nccl_info();  // "NCCL 2.27.7" or "" without NCCL

}  // namespace shardforge::exec::gpu
