// LoRA delta throughput (not part of CI's pass count): our lora::delta_f32 (defined order, docs/engine.md
// "Determinism") against OpenBLAS's cblas_sgemm on one thread, same shapes, same run. C (rows x cols) = B (rows x r)
// @ A (r x cols) for r in {8, 16, 64, 256} and rows x cols in {4096 x 4096, 14336 x 4096}. Prints seconds (best of
// REPS) and the ratio ours / OpenBLAS (lower is better; the goal is <= 1.5), per SIMD path the CPU has.
//   build/tests/delta_bench [REPS]
#include <shardforge/lora.hpp>

#include "lora/delta.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace sf = shardforge;

namespace {
double best_of(int reps, const std::function<void()>& f) {
    double best = 1e30;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}
std::vector<float> values(std::size_t n, unsigned seed) {
    std::vector<float> v(n);
    for (auto& x : v) {
        seed = seed * 1103515245u + 12345u;
        x = static_cast<float>(static_cast<int>(seed >> 16) % 2001 - 1000) / 1000.0f;
    }
    return v;
}
}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
    if (argc > 2 || reps < 1) {
        std::fprintf(stderr, "usage: delta_bench [REPS >= 1]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    std::vector<sf::core::SimdLevel> levels{sf::core::SimdLevel::Scalar};
    if (sf::core::simd_level() >= sf::core::SimdLevel::Avx2) levels.push_back(sf::core::SimdLevel::Avx2);
    if (sf::core::simd_level() >= sf::core::SimdLevel::Avx512) levels.push_back(sf::core::SimdLevel::Avx512);
    std::printf("%-6s %-12s %10s", "r", "rows x cols", "sgemm s");
    for (auto l : levels) std::printf(" %10s %6s", std::string(sf::core::to_string(l)).c_str(), "ratio");
    std::printf("\n");
    const std::int64_t shapes[][2] = {{4096, 4096}, {14336, 4096}};
    for (const auto& s : shapes)
        for (const std::int64_t r : {8, 16, 64, 256}) {
            const std::int64_t m = s[0], n = s[1];
            const std::vector<float> b = values(static_cast<std::size_t>(m * r), 1u), a = values(static_cast<std::size_t>(r * n), 2u);
            std::vector<float> c(static_cast<std::size_t>(m * n));
            const double t_blas = best_of(reps, [&] {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                            static_cast<int>(r), 1.0f, b.data(), static_cast<int>(r), a.data(), static_cast<int>(n), 0.0f,
                            c.data(), static_cast<int>(n));
            });
            std::printf("%-6lld %5lldx%-6lld %10.4f", static_cast<long long>(r), static_cast<long long>(m),
                        static_cast<long long>(n), t_blas);
            for (auto l : levels) {
                const double t = best_of(reps, [&] { sf::lora::delta_f32_at(l, b.data(), a.data(), m, r, n, c.data()); });
                std::printf(" %10.4f %6.2f", t, t / t_blas);
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    return 0;
}
