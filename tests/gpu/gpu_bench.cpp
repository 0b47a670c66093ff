// gpu.bench: quantization throughput, GPU (quant::gpu::Device, including the host<->device copies) vs CPU
// (quantize_rows_parallel on every core of the process), measured in the same run; prints ours-GPU/CPU ratios.
// Exits 77 (ctest: skipped) without a CUDA device. Usage: gpu_bench [rows] (default 4096 rows of 4096).
#include <shardforge/quant.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
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
    std::printf("%s vs CPU with %d threads, %lld x %lld f32\n", dev->name().c_str(), threads,
                static_cast<long long>(nrows), static_cast<long long>(n));
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_XS,
                       GgmlType::IQ2_XS, GgmlType::IQ3_S}) {
        const float* w = sf::quant::quantize_requires_imatrix(t) || t == GgmlType::IQ3_S ? qw.data() : nullptr;
        std::vector<std::uint8_t> out(sf::quant::row_bytes(t, n) * static_cast<std::size_t>(nrows));
        dev->quantize_rows(t, x.data(), out.data(), 8, n, w);  // warm-up: grids, lanes
        auto t0 = Clock::now();
        dev->quantize_rows(t, x.data(), out.data(), nrows, n, w);
        const double g = std::chrono::duration<double>(Clock::now() - t0).count();
        t0 = Clock::now();
        sf::quant::quantize_rows_parallel(t, x.data(), out.data(), nrows, n, w, threads);
        const double c = std::chrono::duration<double>(Clock::now() - t0).count();
        const double mb = static_cast<double>(x.size()) * 4 / 1e6;
        std::printf("%-8s GPU %9.1f MB/s  CPU %9.1f MB/s  GPU/CPU speed %.2fx\n",
                    sf::quant::type_upper_name(t).c_str(), mb / g, mb / c, c / g);
    }
    return 0;
}
