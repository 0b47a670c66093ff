// The rank's compute backend (--device): where input dequantization, the LoRA delta, DoRA and quantization run.
// Every backend writes the CPU's bits (the delta's defined order, docs/engine.md "Determinism"), so any mix of ranks
// with and without a GPU writes the same bytes; the unit pipeline calls the interface and never asks which it has.
#pragma once
#include <shardforge/lora.hpp>
#include <shardforge/quant.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shardforge::exec {

class Backend {
public:
    virtual ~Backend() = default;
    // Same contracts and bits as quant::dequant_bnb4 / dequant_int8 / dequant_fp8 / quantize_rows. Thread-safe.
    virtual void dequant_bnb4(const quant::Bnb4View& v, std::int64_t k0, std::int64_t k1, float* out) = 0;
    virtual void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0,
                              std::int64_t k1, float* out) = 0;
    virtual void dequant_fp8(const quant::Fp8View& v, std::int64_t k0, std::int64_t k1, float* out) = 0;
    virtual void quantize_rows(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows,
                               std::int64_t n_per_row, const float* imatrix) = 0;
    // The delta and DoRA steps lora::apply takes (empty: lora's own CPU loops).
    [[nodiscard]] virtual lora::MatmulF32 matmul() const = 0;
    [[nodiscard]] virtual lora::DoraF32 dora() const = 0;
};

[[nodiscard]] std::unique_ptr<Backend> make_cpu_backend();
// The kernels of `dev` (quant::gpu::Device) and exec's CUDA delta and DoRA (gpu.hpp), with device buffers under
// max_memory (0: the defaults). `dev` must outlive the backend.
[[nodiscard]] std::unique_ptr<Backend> make_cuda_backend(quant::gpu::Device& dev, std::size_t max_memory);

}  // namespace shardforge::exec
