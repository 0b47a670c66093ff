// Dequantization throughput (not part of CI): element-range kernels for bitsandbytes NF4 (double quant) and FP8
// 128x128 block-scaled weights against the bf16 -> f32 widening a bf16 base needs, on the same logical tensor,
// single thread and split over N threads (disjoint element ranges). Prints M elements/s and ratios ours / bf16.
//   build/tests/dequant_bench [N_THREADS] [ROWS COLS]
#include <shardforge/formats.hpp>
#include <shardforge/quant.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <thread>
#include <vector>

namespace q = shardforge::quant;
using Kernel = std::function<void(std::int64_t, std::int64_t, float*)>;

static double seconds(const Kernel& k, std::int64_t n, int threads, std::vector<float>& out) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    const std::int64_t chunk = (n + threads - 1) / threads;
    for (int t = 0; t < threads; ++t) {
        const std::int64_t a = std::min(n, t * chunk), b = std::min(n, a + chunk);
        pool.emplace_back([&, a, b] { k(a, b, out.data() + a); });
    }
    for (auto& th : pool) th.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
    const int all = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const std::int64_t rows = argc > 3 ? std::atoll(argv[2]) : 4096, cols = argc > 3 ? std::atoll(argv[3]) : 4096;
    const std::int64_t n = rows * cols;
    std::mt19937 rng(1);
    std::vector<std::byte> bf16(static_cast<std::size_t>(n) * 2);
    for (auto& b : bf16) b = static_cast<std::byte>(rng() & 0x3f);
    std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2)), codes(static_cast<std::size_t>((n + 63) / 64));
    for (auto& b : packed) b = static_cast<std::uint8_t>(rng());
    for (auto& b : codes) b = static_cast<std::uint8_t>(rng());
    std::vector<float> ncode(256, 0.5f), nabs(codes.size() / 256 + 1, 0.01f);
    std::vector<std::uint8_t> f8(static_cast<std::size_t>(n));
    for (auto& b : f8) b = static_cast<std::uint8_t>(rng() & 0x7e);
    std::vector<float> scale(static_cast<std::size_t>(((rows + 127) / 128) * ((cols + 127) / 128)), 0.001f);

    q::Bnb4View v;
    v.packed = packed.data();
    v.code = q::bnb_nf4_code();
    v.blocksize = 64;
    v.absmax_code = codes.data();
    v.nested_code = ncode.data();
    v.nested_absmax = nabs.data();
    v.nested_blocksize = 256;
    v.nested_offset = 0.02f;
    v.out_dtype = shardforge::core::DType::BF16;
    q::Fp8View f;
    f.w = f8.data();
    f.scale = scale.data();
    f.rows = rows;
    f.cols = cols;
    const Kernel k_bf16 = [&](std::int64_t a, std::int64_t b, float* d) {
        shardforge::formats::to_f32(shardforge::core::DType::BF16, bf16.data() + a * 2, d, static_cast<std::size_t>(b - a));
    };
    const Kernel k_nf4 = [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_bnb4(v, a, b, d); };
    const Kernel k_fp8 = [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_fp8(f, a, b, d); };
    std::vector<float> out(static_cast<std::size_t>(n));
    std::printf("tensor [%lld, %lld] (%.1f M elements)\n", static_cast<long long>(rows),
                static_cast<long long>(cols), n / 1e6);
    // The three kernels alternate within each repetition (a shared machine's load hits them alike); best of 9.
    for (int th : {1, all}) {
        double b[3] = {1e30, 1e30, 1e30};
        const Kernel* ks[3] = {&k_bf16, &k_nf4, &k_fp8};
        for (int rep = 0; rep < 9; ++rep)
            for (int i = 0; i < 3; ++i) b[i] = std::min(b[i], seconds(*ks[i], n, th, out));
        std::printf("threads %d: bf16->f32 %.0f M/s, NF4 double-quant %.0f M/s, FP8 block %.0f M/s; "
                    "time ratio NF4/bf16 %.2f, FP8/bf16 %.2f\n",
                    th, n / b[0] / 1e6, n / b[1] / 1e6, n / b[2] / 1e6, b[1] / b[0], b[2] / b[0]);
        if (th == all) break;
    }
    return 0;
}
