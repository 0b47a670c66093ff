// The GPU backend's work decomposition on the CPU: the CUDA kernels (src/quant/cuda/) run
// `if (b < nb) Task::run(args, b)` for the Task that tasks::visit_* picks, one thread per ggml block, after the
// per-row sigma2 pass when the task needs it. Here the same visitors and Task::run execute on the host, block by
// block in reverse order (GPU threads have no order), and must give quant::quantize_rows' / dequantize_rows'
// bytes for every type, with and without imatrix. What this cannot check (the nvcc build of the same code with
// --fmad=false on a real device) is tests/gpu/gpu_identity_test.cpp, skipped without a GPU.
#include <shardforge/quant.hpp>

#include "quant/iq.hpp"
#include "quant/kernels/tasks.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;
namespace tasks = sf::quant::tasks;

namespace {

std::vector<float> input(std::int64_t n, std::uint32_t seed) {
    std::vector<float> x(static_cast<std::size_t>(n));
    std::uint32_t s = seed;
    for (std::int64_t i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        float v = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
        if (i % 61 == 0) v *= 9.0f;                 // outliers
        if ((i / 256) % 5 == 2) v *= 0.001f;        // a tiny super-block
        if (i >= 512 && i < 544) v = 0.0f;          // an all-zero 32-block
        x[static_cast<std::size_t>(i)] = v;
    }
    return x;
}

// What the GPU launch does, on the host.
template <class Task>
void host_launch(tasks::QArgs a, std::int64_t nrows) {
    std::vector<float> sigma2;
    if constexpr (Task::needs_sigma2) {
        sigma2.resize(static_cast<std::size_t>(nrows));
        for (std::int64_t r = 0; r < nrows; ++r) sigma2[static_cast<std::size_t>(r)] = tasks::row_mean_square(a.x + r * a.n, a.n);
        a.sigma2 = sigma2.data();
    }
    const std::int64_t nb = nrows * (a.n / Task::qk);
    for (std::int64_t b = nb - 1; b >= 0; --b) Task::run(a, b);
}

bool host_quantize(GgmlType t, const float* x, void* y, std::int64_t nrows, std::int64_t n, const float* qw) {
    tasks::QArgs a;
    a.x = x;
    a.qw = qw;
    a.y = y;
    a.n = n;
    if (tasks::family(t) == tasks::Family::Grid) a.grid = sf::quant::iq::grid(t);
    auto f = [&](auto task) { host_launch<decltype(task)>(a, nrows); };
    const bool im = qw != nullptr;
    return tasks::visit_quantize_legacy(t, im, f) || tasks::visit_quantize_kquant(t, im, f) ||
           tasks::visit_quantize_small(t, im, f) || tasks::visit_quantize_grid(t, im, f);
}

bool host_dequantize(GgmlType t, const void* x, float* y, std::int64_t nb) {
    tasks::DArgs a;
    a.x = x;
    a.y = y;
    if (tasks::family(t) == tasks::Family::Grid) a.grid = sf::quant::iq::grid(t);
    auto f = [&](auto task) {
        for (std::int64_t b = nb - 1; b >= 0; --b) decltype(task)::run(a, b);
    };
    return tasks::visit_dequantize_legacy(t, f) || tasks::visit_dequantize_kquant(t, f) ||
           tasks::visit_dequantize_small(t, f) || tasks::visit_dequantize_grid(t, f);
}

const GgmlType kAll[] = {
    GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::MXFP4,
    GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
    GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0,
    GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S,
    GgmlType::IQ1_M,
};

class GpuTasks : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GpuTasks, SameBytesAsQuantizeRowsWithAndWithoutImatrix) {
    const GgmlType t = GetParam();
    const bool grid = tasks::family(t) == tasks::Family::Grid;
    const std::int64_t n = grid ? 256 : 768, nrows = grid ? 2 : 3;
    const std::vector<float> x = input(n * nrows, 7u + static_cast<std::uint32_t>(t));
    std::vector<float> qw(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) qw[static_cast<std::size_t>(i)] = 0.25f + static_cast<float>((i * 37) % 101) / 25.0f;
    const std::size_t bytes = sf::quant::row_bytes(t, n) * static_cast<std::size_t>(nrows);
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(qw.data())}) {
        if (!w && sf::quant::quantize_requires_imatrix(t)) continue;
        std::vector<std::uint8_t> cpu(bytes, 0xAA), emu(bytes, 0x55);
        sf::quant::quantize_rows(t, x.data(), cpu.data(), nrows, n, w);
        ASSERT_TRUE(host_quantize(t, x.data(), emu.data(), nrows, n, w)) << "no GPU task for " << sf::quant::type_upper_name(t);
        EXPECT_EQ(0, std::memcmp(cpu.data(), emu.data(), bytes))
            << sf::quant::type_upper_name(t) << (w ? " with" : " without") << " imatrix: GPU task bytes differ";

        std::vector<float> back_cpu(static_cast<std::size_t>(n * nrows)), back_emu(back_cpu.size(), -1.0f);
        sf::quant::dequantize_rows(t, cpu.data(), back_cpu.data(), nrows, n);
        const std::int64_t nb = n * nrows / sf::quant::traits(t).block_elems;
        ASSERT_TRUE(host_dequantize(t, cpu.data(), back_emu.data(), nb));
        EXPECT_EQ(0, std::memcmp(back_cpu.data(), back_emu.data(), back_cpu.size() * sizeof(float)))
            << sf::quant::type_upper_name(t) << ": GPU dequantize task differs";
    }
}

INSTANTIATE_TEST_SUITE_P(AllQuantTypes, GpuTasks, ::testing::ValuesIn(kAll),
                         [](const ::testing::TestParamInfo<GgmlType>& p) { return sf::quant::type_upper_name(p.param); });

// Every type quantize_rows implements (except the float copies) has a GPU task: a new type cannot be added to
// the CPU path and silently miss the GPU one.
TEST(GpuTasksCoverage, EveryQuantizableTypeHasAFamily) {
    for (std::uint32_t id = 0; id < sf::quant::ggml_type_count; ++id) {
        if (!sf::quant::type_traits(id)) continue;
        const auto t = static_cast<GgmlType>(id);
        if (!sf::quant::can_quantize(t) || t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) continue;
        EXPECT_NE(tasks::family(t), tasks::Family::None) << sf::quant::type_upper_name(t);
    }
}

// The comparisons above are sensitive: the imatrix path differs from the plain one for a type that uses it.
TEST(GpuTasksCoverage, ImatrixChangesTheBytes) {
    const std::int64_t n = 512;
    const std::vector<float> x = input(n, 3u);
    std::vector<float> qw(static_cast<std::size_t>(n), 1.0f);
    qw[3] = 50.0f;
    std::vector<std::uint8_t> a(sf::quant::row_bytes(GgmlType::Q4_K, n)), b(a.size());
    ASSERT_TRUE(host_quantize(GgmlType::Q4_K, x.data(), a.data(), 1, n, nullptr));
    ASSERT_TRUE(host_quantize(GgmlType::Q4_K, x.data(), b.data(), 1, n, qw.data()));
    EXPECT_NE(0, std::memcmp(a.data(), b.data(), a.size()));
}

}  // namespace
