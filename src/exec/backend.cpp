// CPU and CUDA compute backends (backend.hpp).
#include "backend.hpp"

#include "gpu.hpp"

namespace shardforge::exec {
namespace {

class CpuBackend final : public Backend {
public:
    void dequant_bnb4(const quant::Bnb4View& v, std::int64_t k0, std::int64_t k1, float* out) override {
        quant::dequant_bnb4(v, k0, k1, out);
    }
    void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                      float* out) override {
        quant::dequant_int8(cb, scb, cols, k0, k1, out);
    }
    void dequant_fp8(const quant::Fp8View& v, std::int64_t k0, std::int64_t k1, float* out) override {
        quant::dequant_fp8(v, k0, k1, out);
    }
    void quantize_rows(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                       const float* imatrix) override {
        quant::quantize_rows(type, src, dst, nrows, n_per_row, imatrix);
    }
    lora::MatmulF32 matmul() const override { return {}; }
    lora::DoraF32 dora() const override { return {}; }
};

class CudaBackend final : public Backend {
public:
    CudaBackend(quant::gpu::Device& dev, std::size_t max_memory) : dev_(dev), max_memory_(max_memory) {}
    void dequant_bnb4(const quant::Bnb4View& v, std::int64_t k0, std::int64_t k1, float* out) override {
        dev_.dequant_bnb4(v, k0, k1, out);
    }
    void dequant_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                      float* out) override {
        dev_.dequant_int8(cb, scb, cols, k0, k1, out);
    }
    void dequant_fp8(const quant::Fp8View& v, std::int64_t k0, std::int64_t k1, float* out) override {
        dev_.dequant_fp8(v, k0, k1, out);
    }
    void quantize_rows(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                       const float* imatrix) override {
        dev_.quantize_rows(type, src, dst, nrows, n_per_row, imatrix);
    }
    lora::MatmulF32 matmul() const override {
        return [this](const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* out) {
            gpu::matmul(dev_.index(), b, a, m, k, n, out, max_memory_);
        };
    }
    lora::DoraF32 dora() const override {
        return [this](float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m) {
            return gpu::dora(dev_.index(), v, rows, cols, per_col, m, max_memory_);
        };
    }

private:
    quant::gpu::Device& dev_;
    std::size_t max_memory_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }
std::unique_ptr<Backend> make_cuda_backend(quant::gpu::Device& dev, std::size_t max_memory) {
    return std::make_unique<CudaBackend>(dev, max_memory);
}

}  // namespace shardforge::exec
