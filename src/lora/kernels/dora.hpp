// DoRA's per-output-feature math (PEFT's tuners/lora/dora.py), shared by the CPU merge (src/lora/merge.cpp) and the
// CUDA kernel (src/exec/cuda/dora.cu): one feature's norm ||W + dW|| as a sum of squares in double in index order, sqrt
// in double, rounded to f32, then the factor m / norm in f32 and one f32 multiply per value. SF_HD and pure; with
// nvcc's --fmad=false (and IEEE sqrt / division, the nvcc defaults) the device computes the same bits. The GPU runs one
// thread per feature over chunks of whole features (DoraArgs / features_per_chunk); the CPU test
// tests/unit/lora/dora_gpu_tasks_test.cpp runs that decomposition on the host against lora::apply.
#pragma once
#include <shardforge/core.hpp>

#include <math.h>

#include <cstddef>
#include <cstdint>

namespace shardforge::lora::kernels {

// ||x|| of x[j * stride], j < n, as f32.
SF_HD float dora_norm(const float* x, std::int64_t n, std::int64_t stride) {
    double ss = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
        const double v = x[j * stride];
        ss += v * v;
    }
    return static_cast<float>(::sqrt(ss));
}

// Rescales feature x[j * stride] to magnitude m (x *= f32(m / norm)) and returns the norm; a zero norm leaves x
// unchanged (the caller reports it: PEFT would divide by zero).
SF_HD float dora_feature(float* x, std::int64_t n, std::int64_t stride, float m) {
    const float norm = dora_norm(x, n, stride);
    if (norm == 0.0f) return norm;
    const float factor = m / norm;
    for (std::int64_t j = 0; j < n; ++j) x[j * stride] = factor * x[j * stride];
    return norm;
}

// One GPU launch over a chunk of features: feature f's values start at v + f * feat_stride, n_red of them
// red_stride apart; m[f] its magnitude; norms[f] receives its norm.
struct DoraArgs {
    float* v = nullptr;
    const float* m = nullptr;
    float* norms = nullptr;
    std::int64_t n_feat = 0, n_red = 0, feat_stride = 0, red_stride = 1;
};
SF_HD void run_dora(const DoraArgs& a, std::int64_t f) {
    if (f < a.n_feat) a.norms[f] = dora_feature(a.v + f * a.feat_stride, a.n_red, a.red_stride, a.m[f]);
}

// The launch arguments of a chunk of nf features staged as the GPU stages them: per-row features as nf whole rows
// (row-major, n_red = cols values each); per-column features as a rows x nf column block (row pitch nf).
[[nodiscard]] inline DoraArgs chunk_args(float* v, const float* m, float* norms, std::int64_t nf, std::int64_t n_red,
                                         bool per_col) {
    DoraArgs a;
    a.v = v;
    a.m = m;
    a.norms = norms;
    a.n_feat = nf;
    a.n_red = n_red;
    a.feat_stride = per_col ? 1 : n_red;
    a.red_stride = per_col ? nf : 1;
    return a;
}

// Whole features per device chunk under max_bytes (0: 256 MiB): each needs n_red values, its magnitude and norm.
// At least one feature.
[[nodiscard]] inline std::int64_t features_per_chunk(std::int64_t n_red, std::size_t max_bytes) {
    const std::size_t budget = (max_bytes ? max_bytes : std::size_t{256} << 20) / sizeof(float);
    const std::int64_t per = n_red + 2;
    const auto k = static_cast<std::int64_t>(budget / static_cast<std::size_t>(per));
    return k > 0 ? k : 1;
}

}  // namespace shardforge::lora::kernels
