// gpu.identity: on a CUDA device, quant::gpu::Device gives the CPU's bytes for every quant type and input layout
// (f32/f16/bf16/fp8 sources converted on the GPU, with and without imatrix, one chunk or many chunks through the
// two-stream pipeline), its dequantizers the CPU's floats, and the cuBLAS LoRA GEMM matches OpenBLAS within fp32
// rounding (not bit-identical: different summation order). Exits 77 (ctest: skipped) without a device.
#include <shardforge/formats.hpp>
#include <shardforge/quant.hpp>

#include "exec/gpu.hpp"

#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

int failures = 0;
void fail(const std::string& m) {
    std::printf("FAIL: %s\n", m.c_str());
    ++failures;
}

std::vector<float> input(std::int64_t n, std::uint32_t s) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (auto& v : x) {
        s = s * 1664525u + 1013904223u;
        v = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    for (std::size_t i = 0; i < x.size(); i += 97) x[i] *= 8.0f;
    return x;
}

}  // namespace

int main() {
    std::string why;
    if (sf::quant::gpu::device_count(&why) == 0) {
        std::printf("SKIP: no CUDA device (%s): GPU bit-identity not checked on this machine\n", why.c_str());
        return 77;
    }
    const GgmlType types[] = {
        GgmlType::F16, GgmlType::BF16, GgmlType::F32,
        GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::MXFP4,
        GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
        GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0,
        GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S,
        GgmlType::IQ1_S, GgmlType::IQ1_M,
    };
    // 256 KiB budget: 7 rows per chunk, so 7 chunks per call through the pipeline; default budget: one chunk.
    for (std::size_t budget : {std::size_t{1} << 18, std::size_t{0}}) {
        auto dev = sf::quant::gpu::Device::open(0, budget);
        std::printf("device: %s, budget %zu\n", dev->name().c_str(), budget);
        const std::int64_t n = 1024, nrows = 48;
        const std::vector<float> base = input(n * nrows, 99u);
        std::vector<float> qw(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) qw[static_cast<std::size_t>(i)] = 0.1f + static_cast<float>((i * 13) % 31);
        for (const auto src_dtype : {sf::core::DType::F32, sf::core::DType::F16, sf::core::DType::BF16,
                                     sf::core::DType::F8_E4M3}) {
            // Input layout: the source dtype's bytes, converted to f32 on the CPU and on the GPU.
            std::vector<std::byte> raw(base.size() * sf::core::dtype_size(src_dtype));
            if (src_dtype == sf::core::DType::F8_E4M3) {
                for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>((i * 37) % 255 & 0x7e);
            } else {
                sf::formats::from_f32(base.data(), src_dtype, raw.data(), base.size());
            }
            std::vector<float> x(base.size()), xg(base.size());
            sf::formats::to_f32(src_dtype, raw.data(), x.data(), x.size());
            dev->to_f32(src_dtype, raw.data(), xg.data(), xg.size());
            if (std::memcmp(x.data(), xg.data(), x.size() * 4) != 0)
                fail(std::string("to_f32 from ") + std::string(sf::core::dtype_name(src_dtype)));
            for (GgmlType t : types) {
                for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(qw.data())}) {
                    if (!w && sf::quant::quantize_requires_imatrix(t)) continue;
                    const std::string what = sf::quant::type_upper_name(t) + " from " +
                                             std::string(sf::core::dtype_name(src_dtype)) + (w ? " +imatrix" : "");
                    const std::size_t bytes = sf::quant::row_bytes(t, n) * nrows;
                    std::vector<std::uint8_t> cpu(bytes), gpu(bytes, 0xEE);
                    sf::quant::quantize_rows(t, x.data(), cpu.data(), nrows, n, w);
                    dev->quantize_rows(t, x.data(), gpu.data(), nrows, n, w);
                    if (std::memcmp(cpu.data(), gpu.data(), bytes) != 0) {
                        std::size_t first = 0;
                        while (cpu[first] == gpu[first]) ++first;
                        fail(what + ": GPU bytes differ from the CPU's (first at byte " + std::to_string(first) + ")");
                    }
                    std::vector<float> dc(x.size()), dg(x.size(), -7.0f);
                    sf::quant::dequantize_rows(t, cpu.data(), dc.data(), nrows, n);
                    dev->dequantize_rows(t, cpu.data(), dg.data(), nrows, n);
                    if (std::memcmp(dc.data(), dg.data(), dc.size() * 4) != 0) fail(what + ": dequantize differs");
                }
            }
        }
    }
    // LoRA delta: cuBLAS vs OpenBLAS (same formula, different summation order).
    {
        const std::int64_t m = 300, k = 16, nn = 700;
        const std::vector<float> b = input(m * k, 5u), a = input(k * nn, 6u);
        std::vector<float> c_cpu(static_cast<std::size_t>(m * nn)), c_gpu(c_cpu.size());
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(nn),
                    static_cast<int>(k), 1.0f, b.data(), static_cast<int>(k), a.data(), static_cast<int>(nn), 0.0f,
                    c_cpu.data(), static_cast<int>(nn));
        sf::exec::gpu::matmul(0, b.data(), a.data(), m, k, nn, c_gpu.data(), std::size_t{1} << 20);  // row blocks
        double worst = 0;
        for (std::size_t i = 0; i < c_cpu.size(); ++i) {
            double bound = 0;  // |sum| <= sum |b||a|: error bound of a k-term fp32 dot product
            const std::int64_t r = static_cast<std::int64_t>(i) / nn, col = static_cast<std::int64_t>(i) % nn;
            for (std::int64_t j = 0; j < k; ++j) bound += std::fabs(b[r * k + j] * a[j * nn + col]);
            const double err = std::fabs(static_cast<double>(c_cpu[i]) - c_gpu[i]);
            if (err > 2.0 * k * 6e-8 * bound + 1e-30) fail("GEMM element " + std::to_string(i) + " off by " + std::to_string(err));
            worst = std::max(worst, err);
        }
        std::printf("LoRA GEMM cuBLAS vs OpenBLAS: max abs difference %.3g\n", worst);
    }
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("gpu.identity: every type and layout bit-identical to the CPU\n");
    return 0;
}
