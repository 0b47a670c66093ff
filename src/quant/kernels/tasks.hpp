// One ggml block of work as the GPU backend launches it: which SF_HD block kernel runs for a (type, imatrix?)
// pair and with which slice of the input, importance vector and per-row sigma2. The CUDA kernels
// (src/quant/cuda/) are `if (b < nb) Task::run(args, b)` over these tasks, one thread per ggml block; the CPU unit
// test tests/unit/quant/gpu_tasks_test.cpp runs the same Task::run for every b on the host and checks the bytes
// against quant::quantize_rows / dequantize_rows. So the dispatch and the arithmetic the GPU runs are the code the
// CPU suite checks. The mapping must follow quantize.cpp's switch (which ggml function each type uses).
// SF_HD, pure; no files, no threads.
#pragma once
#include <shardforge/quant.hpp>

#include "iq1.hpp"
#include "iq2.hpp"
#include "iq3.hpp"
#include "iq4.hpp"
#include "iq_grids.hpp"
#include "k_quants.hpp"
#include "legacy.hpp"
#include "ternary.hpp"

#include <cstdint>

namespace shardforge::quant::tasks {

// Arguments of a quantization launch over nrows rows of n floats (row-major, contiguous).
struct QArgs {
    const float* x = nullptr;       // nrows * n values
    const float* qw = nullptr;      // n importance weights, or null
    const float* sigma2 = nullptr;  // nrows per-row mean squares (tasks with needs_sigma2), else null
    void* y = nullptr;              // nrows * row_bytes(type, n) bytes
    std::int64_t n = 0;             // values per row
    detail::IqGrid grid{};          // the type's grid (IQ grid types); device pointers on the GPU
};
// Arguments of a dequantization launch.
struct DArgs {
    const void* x = nullptr;
    float* y = nullptr;
    detail::IqGrid grid{};
};

// Mean square of a row, as quantize.cpp's rows_legacy_imatrix computes it (sequential f32 sum, / n).
SF_HD float row_mean_square(const float* xr, std::int64_t n) {
    float sum_x2 = 0;
    for (std::int64_t j = 0; j < n; ++j) sum_x2 += xr[j] * xr[j];
    return sum_x2 / n;
}

template <class B, int QK, void (*Q)(const float*, B&)>
struct Plain {
    using Block = B;
    static constexpr int qk = QK;
    static constexpr bool needs_sigma2 = false;
    SF_HD static void run(const QArgs& a, std::int64_t b) { Q(a.x + std::int64_t{QK} * b, static_cast<B*>(a.y)[b]); }
};

// qw (may be null) indexed by the block's position inside its row.
template <class B, int QK, void (*Q)(const float*, const float*, B&)>
struct Weighted {
    using Block = B;
    static constexpr int qk = QK;
    static constexpr bool needs_sigma2 = false;
    SF_HD static void run(const QArgs& a, std::int64_t b) {
        const std::int64_t j = b % (a.n / QK);
        Q(a.x + std::int64_t{QK} * b, a.qw ? a.qw + std::int64_t{QK} * j : nullptr, static_cast<B*>(a.y)[b]);
    }
};

template <class B, void (*Q)(const float*, const float*, float, B&)>
struct LegacyImatrix {
    using Block = B;
    static constexpr int qk = 32;
    static constexpr bool needs_sigma2 = true;
    SF_HD static void run(const QArgs& a, std::int64_t b) {
        const std::int64_t nb = a.n / 32;
        Q(a.x + 32 * b, a.qw + 32 * (b % nb), a.sigma2[b / nb], static_cast<B*>(a.y)[b]);
    }
};

template <class B, void (*Q)(const float*, const float*, const detail::IqGrid&, B&)>
struct Grid {
    using Block = B;
    static constexpr int qk = qk_k;
    static constexpr bool needs_sigma2 = false;
    SF_HD static void run(const QArgs& a, std::int64_t b) {
        const std::int64_t j = b % (a.n / qk_k);
        Q(a.x + std::int64_t{qk_k} * b, a.qw ? a.qw + std::int64_t{qk_k} * j : nullptr, a.grid,
          static_cast<B*>(a.y)[b]);
    }
};

template <class B, int QK, void (*D)(const B&, float*)>
struct Deq {
    using Block = B;
    static constexpr int qk = QK;
    SF_HD static void run(const DArgs& a, std::int64_t b) { D(static_cast<const B*>(a.x)[b], a.y + std::int64_t{QK} * b); }
};
template <class B, void (*D)(const B&, const detail::IqGrid&, float*)>
struct DeqGrid {
    using Block = B;
    static constexpr int qk = qk_k;
    SF_HD static void run(const DArgs& a, std::int64_t b) {
        D(static_cast<const B*>(a.x)[b], a.grid, a.y + std::int64_t{qk_k} * b);
    }
};

// Kernel families, each compiled in its own CUDA translation unit (compile time stays per family).
enum class Family { None, Legacy, KQuant, Small, Grid };

[[nodiscard]] inline Family family(GgmlType t) noexcept {
    switch (t) {
        case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
        case GgmlType::MXFP4:
            return Family::Legacy;
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
            return Family::KQuant;
        case GgmlType::IQ4_NL: case GgmlType::IQ4_XS: case GgmlType::TQ1_0: case GgmlType::TQ2_0:
            return Family::Small;
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S: case GgmlType::IQ1_S: case GgmlType::IQ1_M:
            return Family::Grid;
        default:
            return Family::None;
    }
}

// visit_quantize_<family>(type, has_imatrix, f) calls f(Task{}) with the task quantize_rows runs for the type
// (the scalar SF_HD kernel; the host SIMD variants give the same bytes, see kernels_test.cpp); false if the type
// is not in the family. Q8_0, MXFP4, TQ1_0 and TQ2_0 ignore the imatrix, as in ggml.
template <class F>
bool visit_quantize_legacy(GgmlType t, bool imatrix, F&& f) {
    switch (t) {
        case GgmlType::Q4_0:
            if (imatrix) f(LegacyImatrix<BlockQ4_0, quantize_block_q4_0_imatrix>{});
            else f(Plain<BlockQ4_0, 32, quantize_block_q4_0>{});
            return true;
        case GgmlType::Q4_1:
            if (imatrix) f(LegacyImatrix<BlockQ4_1, quantize_block_q4_1_imatrix>{});
            else f(Plain<BlockQ4_1, 32, quantize_block_q4_1>{});
            return true;
        case GgmlType::Q5_0:
            if (imatrix) f(LegacyImatrix<BlockQ5_0, quantize_block_q5_0_imatrix>{});
            else f(Plain<BlockQ5_0, 32, quantize_block_q5_0>{});
            return true;
        case GgmlType::Q5_1:
            if (imatrix) f(LegacyImatrix<BlockQ5_1, quantize_block_q5_1_imatrix>{});
            else f(Plain<BlockQ5_1, 32, quantize_block_q5_1>{});
            return true;
        case GgmlType::Q8_0: f(Plain<BlockQ8_0, 32, quantize_block_q8_0>{}); return true;
        case GgmlType::MXFP4: f(Plain<BlockMxfp4, 32, quantize_block_mxfp4>{}); return true;
        default: return false;
    }
}

template <class F>
bool visit_quantize_kquant(GgmlType t, bool imatrix, F&& f) {
    switch (t) {
        case GgmlType::Q2_K:
            if (imatrix) f(Weighted<BlockQ2_K, qk_k, quantize_block_q2_K_imatrix>{});
            else f(Plain<BlockQ2_K, qk_k, quantize_block_q2_K>{});
            return true;
        case GgmlType::Q3_K:
            if (imatrix) f(Weighted<BlockQ3_K, qk_k, quantize_block_q3_K_imatrix>{});
            else f(Plain<BlockQ3_K, qk_k, quantize_block_q3_K>{});
            return true;
        case GgmlType::Q4_K:
            if (imatrix) f(Weighted<BlockQ4_K, qk_k, quantize_block_q4_K_imatrix>{});
            else f(Plain<BlockQ4_K, qk_k, quantize_block_q4_K>{});
            return true;
        case GgmlType::Q5_K:
            if (imatrix) f(Weighted<BlockQ5_K, qk_k, quantize_block_q5_K_imatrix>{});
            else f(Plain<BlockQ5_K, qk_k, quantize_block_q5_K>{});
            return true;
        case GgmlType::Q6_K:
            if (imatrix) f(Weighted<BlockQ6_K, qk_k, quantize_block_q6_K_imatrix>{});
            else f(Plain<BlockQ6_K, qk_k, quantize_block_q6_K>{});
            return true;
        default: return false;
    }
}

template <class F>
bool visit_quantize_small(GgmlType t, bool /*imatrix*/, F&& f) {
    switch (t) {
        case GgmlType::IQ4_NL: f(Weighted<BlockIQ4_NL, 32, quantize_block_iq4_nl>{}); return true;
        case GgmlType::IQ4_XS: f(Weighted<BlockIQ4_XS, qk_k, quantize_block_iq4_xs>{}); return true;
        case GgmlType::TQ1_0: f(Plain<BlockTQ1_0, qk_k, quantize_block_tq1_0>{}); return true;
        case GgmlType::TQ2_0: f(Plain<BlockTQ2_0, qk_k, quantize_block_tq2_0>{}); return true;
        default: return false;
    }
}

// The caller checks quantize_requires_imatrix() first (quant::quantize_rows throws there).
template <class F>
bool visit_quantize_grid(GgmlType t, bool /*imatrix*/, F&& f) {
    switch (t) {
        case GgmlType::IQ2_XXS: f(Grid<BlockIQ2_XXS, quantize_block_iq2_xxs>{}); return true;
        case GgmlType::IQ2_XS: f(Grid<BlockIQ2_XS, quantize_block_iq2_xs>{}); return true;
        case GgmlType::IQ2_S: f(Grid<BlockIQ2_S, quantize_block_iq2_s>{}); return true;
        case GgmlType::IQ3_XXS: f(Grid<BlockIQ3_XXS, quantize_block_iq3_xxs>{}); return true;
        case GgmlType::IQ3_S: f(Grid<BlockIQ3_S, quantize_block_iq3_s>{}); return true;
        case GgmlType::IQ1_S: f(Grid<BlockIQ1_S, quantize_block_iq1_s>{}); return true;
        case GgmlType::IQ1_M: f(Grid<BlockIQ1_M, quantize_block_iq1_m>{}); return true;
        default: return false;
    }
}

template <class F>
bool visit_dequantize_legacy(GgmlType t, F&& f) {
    switch (t) {
        case GgmlType::Q4_0: f(Deq<BlockQ4_0, 32, dequantize_block_q4_0>{}); return true;
        case GgmlType::Q4_1: f(Deq<BlockQ4_1, 32, dequantize_block_q4_1>{}); return true;
        case GgmlType::Q5_0: f(Deq<BlockQ5_0, 32, dequantize_block_q5_0>{}); return true;
        case GgmlType::Q5_1: f(Deq<BlockQ5_1, 32, dequantize_block_q5_1>{}); return true;
        case GgmlType::Q8_0: f(Deq<BlockQ8_0, 32, dequantize_block_q8_0>{}); return true;
        case GgmlType::MXFP4: f(Deq<BlockMxfp4, 32, dequantize_block_mxfp4>{}); return true;
        default: return false;
    }
}
template <class F>
bool visit_dequantize_kquant(GgmlType t, F&& f) {
    switch (t) {
        case GgmlType::Q2_K: f(Deq<BlockQ2_K, qk_k, dequantize_block_q2_K>{}); return true;
        case GgmlType::Q3_K: f(Deq<BlockQ3_K, qk_k, dequantize_block_q3_K>{}); return true;
        case GgmlType::Q4_K: f(Deq<BlockQ4_K, qk_k, dequantize_block_q4_K>{}); return true;
        case GgmlType::Q5_K: f(Deq<BlockQ5_K, qk_k, dequantize_block_q5_K>{}); return true;
        case GgmlType::Q6_K: f(Deq<BlockQ6_K, qk_k, dequantize_block_q6_K>{}); return true;
        default: return false;
    }
}
template <class F>
bool visit_dequantize_small(GgmlType t, F&& f) {
    switch (t) {
        case GgmlType::IQ4_NL: f(Deq<BlockIQ4_NL, 32, dequantize_block_iq4_nl>{}); return true;
        case GgmlType::IQ4_XS: f(Deq<BlockIQ4_XS, qk_k, dequantize_block_iq4_xs>{}); return true;
        case GgmlType::TQ1_0: f(Deq<BlockTQ1_0, qk_k, dequantize_block_tq1_0>{}); return true;
        case GgmlType::TQ2_0: f(Deq<BlockTQ2_0, qk_k, dequantize_block_tq2_0>{}); return true;
        default: return false;
    }
}
template <class F>
bool visit_dequantize_grid(GgmlType t, F&& f) {
    switch (t) {
        case GgmlType::IQ2_XXS: f(DeqGrid<BlockIQ2_XXS, dequantize_block_iq2_xxs>{}); return true;
        case GgmlType::IQ2_XS: f(DeqGrid<BlockIQ2_XS, dequantize_block_iq2_xs>{}); return true;
        case GgmlType::IQ2_S: f(DeqGrid<BlockIQ2_S, dequantize_block_iq2_s>{}); return true;
        case GgmlType::IQ3_XXS: f(DeqGrid<BlockIQ3_XXS, dequantize_block_iq3_xxs>{}); return true;
        case GgmlType::IQ3_S: f(DeqGrid<BlockIQ3_S, dequantize_block_iq3_s>{}); return true;
        case GgmlType::IQ1_S: f(DeqGrid<BlockIQ1_S, dequantize_block_iq1_s>{}); return true;
        case GgmlType::IQ1_M: f(DeqGrid<BlockIQ1_M, dequantize_block_iq1_m>{}); return true;
        default: return false;
    }
}

}  // namespace shardforge::quant::tasks
