// Quantization throughput: our quantize_rows against ggml's ggml_quantize_chunk (dlopen'ed from the prebuilt
// libggml-base.so) on the same data, same thread. Report elements/s; the ratio ours/ggml is the figure of merit.
//   quant_bench --benchmark_filter='Q4_K'
// As the ctest bench.quant it is also a test: before timing anything it asserts that both sides write the same
// bytes for every benchmarked type (with and without an importance matrix), and exits 1 when one differs or
// libggml-base.so cannot be loaded: a ratio between two computations that disagree measures nothing.
// SF_SELFTEST_WRONG=1 flips one byte of our output first (bench.quant.selftest: must exit 1).
#include <shardforge/quant.hpp>

#include <benchmark/benchmark.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

using QuantizeChunkFn = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t, std::int64_t,
                                        const float*);

QuantizeChunkFn ggml_chunk() {
    static QuantizeChunkFn fn = [] {
        std::string root = std::getenv("SHARDFORGE_SOURCE_DIR") ? std::getenv("SHARDFORGE_SOURCE_DIR") : "";
#ifdef SHARDFORGE_BENCH_SOURCE_DIR
        if (root.empty()) root = SHARDFORGE_BENCH_SOURCE_DIR;
#endif
        const std::string p =
            root + "/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
        void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
        return h ? reinterpret_cast<QuantizeChunkFn>(dlsym(h, "ggml_quantize_chunk")) : nullptr;
    }();
    return fn;
}

constexpr std::int64_t kRows = 16, kCols = 4096;

const std::vector<float>& data() {
    static const std::vector<float> x = [] {
        std::vector<float> v(static_cast<std::size_t>(kRows * kCols));
        std::uint64_t s = 1;
        for (auto& f : v) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const double u1 = ((s >> 40) + 1.0) / 16777217.0;
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const double u2 = (s >> 40) / 16777216.0;
            f = static_cast<float>(0.02 * std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        }
        return v;
    }();
    return x;
}

// A positive importance vector for one row (what llama-quantize passes per tensor).
const std::vector<float>& imatrix() {
    static const std::vector<float> w = [] {
        std::vector<float> v(static_cast<std::size_t>(kCols));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + static_cast<float>((i * 2654435761u) % 1000) / 250.0f;
        return v;
    }();
    return w;
}

void run(benchmark::State& state, GgmlType t, bool ours, bool with_imatrix = false) {
    const auto& x = data();
    const float* qw = with_imatrix ? imatrix().data() : nullptr;
    std::vector<std::uint8_t> out(sf::quant::row_bytes(t, kCols) * kRows);
    auto fn = ggml_chunk();
    if (!ours && !fn) {
        state.SkipWithError("libggml-base.so not found");
        return;
    }
    for (auto _ : state) {
        if (ours) sf::quant::quantize_rows(t, x.data(), out.data(), kRows, kCols, qw);
        else fn(static_cast<int>(t), x.data(), out.data(), 0, kRows, kCols, qw);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * kRows * kCols);
}

const GgmlType kTypes[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,  GgmlType::Q5_0,
                           GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,  GgmlType::Q4_K,
                           GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::TQ1_0,
                           GgmlType::TQ2_0, GgmlType::MXFP4};
// With an importance matrix: the K-quants, and the IQ grid types (three of which cannot quantize without one).
const GgmlType kImatrixTypes[] = {GgmlType::Q2_K,    GgmlType::Q3_K,   GgmlType::Q4_K,  GgmlType::Q5_K,
                                  GgmlType::Q6_K,    GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,
                                  GgmlType::IQ3_XXS, GgmlType::IQ3_S,  GgmlType::IQ1_S, GgmlType::IQ1_M};

const int registered = [] {
    for (GgmlType t : kTypes) {
        const std::string n = sf::quant::type_upper_name(t);
        benchmark::RegisterBenchmark(("quantize/" + n + "/ours").c_str(), [t](benchmark::State& s) { run(s, t, true); })
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("quantize/" + n + "/ggml").c_str(), [t](benchmark::State& s) { run(s, t, false); })
            ->Unit(benchmark::kMillisecond);
    }
    for (GgmlType t : kImatrixTypes) {
        const std::string n = sf::quant::type_upper_name(t);
        benchmark::RegisterBenchmark(("quantize_imatrix/" + n + "/ours").c_str(),
                                     [t](benchmark::State& s) { run(s, t, true, true); })
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("quantize_imatrix/" + n + "/ggml").c_str(),
                                     [t](benchmark::State& s) { run(s, t, false, true); })
            ->Unit(benchmark::kMillisecond);
    }
    // Thread scaling of quantize_rows_parallel (wall time: UseRealTime), Q4_K, 1 and 2 threads.
    for (int nt : {1, 2}) {
        auto fn = [nt](benchmark::State& state) {
            const auto& x = data();
            std::vector<std::uint8_t> out(sf::quant::row_bytes(GgmlType::Q4_K, kCols) * kRows);
            for (auto _ : state) {
                sf::quant::quantize_rows_parallel(GgmlType::Q4_K, x.data(), out.data(), kRows, kCols, nullptr, nt);
                benchmark::DoNotOptimize(out.data());
            }
            state.SetItemsProcessed(state.iterations() * kRows * kCols);
        };
        benchmark::RegisterBenchmark(("parallel/Q4_K/threads:" + std::to_string(nt)).c_str(), fn)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    return 0;
}();

// 0 when ours and ggml write identical bytes for every benchmarked type, else 1 (each difference printed).
int check_identical() {
    auto fn = ggml_chunk();
    if (!fn) {
        std::fprintf(stderr, "FAIL: libggml-base.so (tests/conformance/node_modules) could not be loaded\n");
        return 1;
    }
    const bool wrong = std::getenv("SF_SELFTEST_WRONG") && std::string(std::getenv("SF_SELFTEST_WRONG")) == "1";
    const auto& x = data();
    int bad = 0, n = 0;
    auto compare = [&](GgmlType t, const float* qw, const char* what) {
        const std::size_t bytes = sf::quant::row_bytes(t, kCols) * kRows;
        std::vector<std::uint8_t> ours(bytes), ref(bytes);
        sf::quant::quantize_rows(t, x.data(), ours.data(), kRows, kCols, qw);
        fn(static_cast<int>(t), x.data(), ref.data(), 0, kRows, kCols, qw);
        if (wrong && n == 0) ours[bytes / 2] ^= 1;
        ++n;
        if (std::memcmp(ours.data(), ref.data(), bytes) != 0) {
            std::fprintf(stderr, "FAIL: %s%s: our bytes differ from ggml_quantize_chunk's\n",
                         sf::quant::type_upper_name(t).c_str(), what);
            ++bad;
        }
    };
    for (GgmlType t : kTypes) compare(t, nullptr, "");
    for (GgmlType t : kImatrixTypes) compare(t, imatrix().data(), " with an importance matrix");
    std::printf("%d of %d type/imatrix cases byte-identical to ggml\n", n - bad, n);
    return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (check_identical() != 0) return 1;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
