// gpu.bench: quantization throughput, GPU (quant::gpu::Device, including the host<->device copies) vs CPU
// (quantize_rows_parallel on every core of the process), measured in the same run; prints ours-GPU/CPU ratios.
// Also the quantized-input dequantizers (NF4 double quant, FP8 128x128 blocks): GPU (with copies) vs one CPU
// thread (run.cpp dequantizes one tensor per worker thread).
// As a test it asserts what it measures: the GPU's bytes equal the CPU's for every quantized type and both
// dequantizers (exit 1 otherwise; a speed ratio between two computations that disagree measures nothing).
// Exits 77 (ctest: skipped) without a CUDA device. Usage: gpu_bench [rows] (default 4096 rows of 4096).
#include <shardforge/quant.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    std::string why;
    if (sf::quant::gpu::device_count(&why) == 0) {
        std::printf("SKIP: no CUDA device (%s): no GPU throughput to measure\n", why.c_str());
        return 77;
    }
    const std::int64_t n = 4096, nrows = argc > 1 ? std::atoll(argv[1]) : 4096;
    std::vector<float> x(static_cast<std::size_t>(n * nrows));
    std::uint32_t s = 1;
    for (auto& v : x) {
        s = s * 1664525u + 1013904223u;
        v = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
    }
    std::vector<float> qw(static_cast<std::size_t>(n), 1.0f);
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto dev = sf::quant::gpu::Device::open(0, 0);
    int differ = 0;
    std::printf("%s vs CPU with %d threads, %lld x %lld f32\n", dev->name().c_str(), threads,
                static_cast<long long>(nrows), static_cast<long long>(n));
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_XS,
                       GgmlType::IQ2_XS, GgmlType::IQ3_S}) {
        const float* w = sf::quant::quantize_requires_imatrix(t) || t == GgmlType::IQ3_S ? qw.data() : nullptr;
        std::vector<std::uint8_t> out(sf::quant::row_bytes(t, n) * static_cast<std::size_t>(nrows)), ref(out.size());
        dev->quantize_rows(t, x.data(), out.data(), 8, n, w);  // warm-up: grids, lanes
        auto t0 = Clock::now();
        dev->quantize_rows(t, x.data(), out.data(), nrows, n, w);
        const double g = std::chrono::duration<double>(Clock::now() - t0).count();
        t0 = Clock::now();
        sf::quant::quantize_rows_parallel(t, x.data(), ref.data(), nrows, n, w, threads);
        const double c = std::chrono::duration<double>(Clock::now() - t0).count();
        if (std::memcmp(out.data(), ref.data(), out.size()) != 0) {
            std::printf("FAIL: %s: the GPU's bytes differ from the CPU's\n", sf::quant::type_upper_name(t).c_str());
            ++differ;
        }
        const double mb = static_cast<double>(x.size()) * 4 / 1e6;
        std::printf("%-8s GPU %9.1f MB/s  CPU %9.1f MB/s  GPU/CPU speed %.2fx\n",
                    sf::quant::type_upper_name(t).c_str(), mb / g, mb / c, c / g);
    }
    {  // quantized inputs: the same rows x 4096 elements
        const std::int64_t ne = n * nrows;
        std::vector<std::uint8_t> packed(static_cast<std::size_t>(ne / 2)), codes(static_cast<std::size_t>(ne / 64)), w8(static_cast<std::size_t>(ne));
        for (std::size_t i = 0; i < w8.size(); ++i) w8[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13) & 0x7e;
        for (std::size_t i = 0; i < packed.size(); ++i) packed[i] = static_cast<std::uint8_t>(i * 37u);
        for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>(i * 11u);
        std::vector<float> nabs(codes.size() / 256 + 1, 0.01f), ncode(256), scale(static_cast<std::size_t>((nrows + 127) / 128 * (n / 128)), 0.5f);
        sf::quant::bnb_dynamic_map(ncode.data());
        sf::quant::Bnb4View v;
        v.packed = packed.data();
        v.code = sf::quant::bnb_nf4_code();
        v.absmax_code = codes.data();
        v.nested_code = ncode.data();
        v.nested_absmax = nabs.data();
        v.out_dtype = sf::core::DType::BF16;
        sf::quant::Fp8View f;
        f.w = w8.data();
        f.scale = scale.data();
        f.rows = nrows;
        f.cols = n;
        std::vector<float> y(static_cast<std::size_t>(ne));
        auto bench = [&](const char* what, auto&& gpu_f, auto&& cpu_f) {
            gpu_f(0, 4096, x.data());  // warm-up
            auto t0 = Clock::now();
            gpu_f(0, ne, x.data());
            const double g = std::chrono::duration<double>(Clock::now() - t0).count();
            t0 = Clock::now();
            cpu_f(0, ne, y.data());
            const double c = std::chrono::duration<double>(Clock::now() - t0).count();
            if (std::memcmp(x.data(), y.data(), y.size() * sizeof(float)) != 0) {
                std::printf("FAIL: %s: the GPU's values differ from the CPU's\n", what);
                ++differ;
            }
            const double mb = static_cast<double>(ne) * 4 / 1e6;
            std::printf("%-16s GPU %9.1f MB/s  CPU(1 thread) %9.1f MB/s  GPU/CPU speed %.2fx\n", what, mb / g, mb / c, c / g);
        };
        bench("dequant NF4+DQ",
              [&](std::int64_t a, std::int64_t b, float* d) { dev->dequant_bnb4(v, a, b, d); },
              [&](std::int64_t a, std::int64_t b, float* d) { sf::quant::dequant_bnb4(v, a, b, d); });
        bench("dequant FP8 blk",
              [&](std::int64_t a, std::int64_t b, float* d) { dev->dequant_fp8(f, a, b, d); },
              [&](std::int64_t a, std::int64_t b, float* d) { sf::quant::dequant_fp8(f, a, b, d); });
    }
    if (differ) std::printf("%d GPU result(s) differ from the CPU's\n", differ);
    return differ ? 1 : 0;
}
