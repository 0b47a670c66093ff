// The LoRA delta C = B @ A with one defined arithmetic order, shared by the CPU merge (src/lora/delta.cpp) and the
// CUDA kernel (src/exec/cuda/delta.cu). docs/engine.md ("Determinism") states the order:
//
//     C[i, j] = fl(... fl(fl(0 + fl(B[i,0] * A[0,j])) + fl(B[i,1] * A[1,j])) ... + fl(B[i,r-1] * A[r-1,j]))
//
// in f32: one rounded multiply and one rounded add per k, k ascending, no fused multiply-add. The result depends only
// on B, A and the shapes: not on threads, ranks, row blocks, SIMD width, BLAS or device. The numpy reference
// (tests/reference/merge_ref.py, `acc = acc + B[:, k:k+1] * A[k:k+1, :]` in float32) computes the same bits.
// Host builds use -ffp-contract=off; the device spells out __fmul_rn / __fadd_rn (never contracted).
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>

namespace shardforge::lora::kernels {

SF_HD float mul_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(x, y);
#else
    return x * y;
#endif
}
SF_HD float add_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(x, y);
#else
    return x + y;
#endif
}

// C[i, j] of B (m x k, row-major) @ A (k x n, row-major): `b_row` is B's row i.
SF_HD float delta_element(const float* b_row, const float* a, std::int64_t k, std::int64_t n, std::int64_t j) {
    float acc = 0.0f;
    for (std::int64_t q = 0; q < k; ++q) acc = add_rn(acc, mul_rn(b_row[q], a[q * n + j]));
    return acc;
}

// One GPU launch: rows [0, m) of C for B's rows staged at b; thread t computes C[t / n, t % n].
struct DeltaArgs {
    const float* b = nullptr;
    const float* a = nullptr;
    float* c = nullptr;
    std::int64_t m = 0, k = 0, n = 0;
};
SF_HD void run_delta(const DeltaArgs& d, std::int64_t t) {
    if (t >= d.m * d.n) return;
    const std::int64_t i = t / d.n, j = t % d.n;
    d.c[t] = delta_element(d.b + i * d.k, d.a, d.k, d.n, j);
}

}  // namespace shardforge::lora::kernels
