// Row-level quantize/dequantize entry points: one switch from GgmlType to the SF_HD block kernels
// (src/quant/kernels/), which carry ggml's arithmetic. Which ggml function each type follows, with and without
// imatrix, is llama.cpp's ggml/src/ggml.c.
#include <shardforge/quant.hpp>

#include "iq.hpp"
#include "quantize_at.hpp"
#include "kernels/iq4.hpp"
#include "kernels/k_quants.hpp"
#include "kernels/legacy.hpp"
#include "kernels/ternary.hpp"
#include "simd_legacy.hpp"
#include "simd_x8.hpp"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace shardforge::quant {
namespace {

// Row of n floats -> blocks. Kernel signatures: quantize(x, Block&), quantize_imatrix(x, qw, Block&),
// legacy imatrix: quantize_imatrix(x, qw, sigma2, Block&).
template <class Block, int QK, void (*Q)(const float*, Block&)>
void rows_plain(const float* x, void* dst, std::int64_t nrows, std::int64_t n) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = nrows * (n / QK);  // blocks never straddle rows, so the chunk is one long row
    for (std::int64_t b = 0; b < nb; ++b) Q(x + QK * b, y[b]);
}

template <class Block, int QK, void (*QW)(const float*, const float*, Block&)>
void rows_weighted(const float* x, void* dst, std::int64_t nrows, std::int64_t n, const float* qw) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = n / QK;
    for (std::int64_t r = 0; r < nrows; ++r)
        for (std::int64_t b = 0; b < nb; ++b) QW(x + r * n + QK * b, qw ? qw + QK * b : nullptr, y[r * nb + b]);
}

// Legacy types under an imatrix: sigma2 = mean square of the whole row (quantize_row_q4_0_impl & co).
template <class Block, void (*QW)(const float*, const float*, float, Block&)>
void rows_legacy_imatrix(const float* x, void* dst, std::int64_t nrows, std::int64_t n, const float* qw) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = n / 32;
    for (std::int64_t r = 0; r < nrows; ++r) {
        const float* xr = x + r * n;
        float sum_x2 = 0;
        for (std::int64_t j = 0; j < n; ++j) sum_x2 += xr[j] * xr[j];
        const float sigma2 = sum_x2 / n;
        for (std::int64_t b = 0; b < nb; ++b) QW(xr + 32 * b, qw + 32 * b, sigma2, y[r * nb + b]);
    }
}

template <class Block, int QK, void (*D)(const Block&, float*)>
void dequant_blocks(const void* src, float* y, std::int64_t nb) {
    const auto* x = static_cast<const Block*>(src);
    for (std::int64_t b = 0; b < nb; ++b) D(x[b], y + QK * b);
}

// Q4_K/Q5_K without imatrix with the lane-parallel search (same bytes as the SF_HD kernel, ~4x faster).
template <class Block, int NMax, void (*Finish)(const float*, std::uint8_t*, const float*, const float*, Block&)>
void rows_qk4_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n, float rmin, float rdelta,
                   int nstep) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = nrows * (n / qk_k);
    std::uint8_t L[qk_k];
    float scales[8], mins[8];
    for (std::int64_t b = 0; b < nb; ++b) {
        simd::qk4_ref_search_x8(x + qk_k * b, NMax, rmin, rdelta, nstep, L, scales, mins);
        Finish(x + qk_k * b, L, scales, mins, y[b]);
    }
}

void rows_q6_k_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n) {
    auto* y = static_cast<BlockQ6_K*>(dst);
    const std::int64_t nb = nrows * (n / qk_k);
    std::int8_t L[qk_k];
    float scales[16];
    for (std::int64_t b = 0; b < nb; ++b) {
        simd::q6_ref_search_x8(x + qk_k * b, L, scales);
        finish_block_q6_K(x + qk_k * b, L, scales, y[b]);
    }
}

void rows_q2_k_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n) {
    auto* y = static_cast<BlockQ2_K*>(dst);
    const std::int64_t nb = nrows * (n / qk_k);
    std::uint8_t L[qk_k];
    float scales[16], mins[16];
    for (std::int64_t b = 0; b < nb; ++b) {
        simd::q2_ref_search_x8(x + qk_k * b, L, scales, mins);
        finish_block_q2_K(x + qk_k * b, L, scales, mins, y[b]);
    }
}

// IQ4_NL / IQ4_XS with the lane-parallel scale search: eight 32-element sub-blocks at a time (the eight of an
// IQ4_XS super-block, or eight consecutive IQ4_NL blocks of a row); the re-map stays in the SF_HD kernel.
void rows_iq4_xs_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n, const float* qw) {
    auto* y = static_cast<BlockIQ4_XS*>(dst);
    const std::int64_t nb = n / qk_k;
    float w[qk_k], scales[8];
    for (std::int64_t r = 0; r < nrows; ++r)
        for (std::int64_t b = 0; b < nb; ++b) {
            const float* xb = x + r * n + qk_k * b;
            const float* qwb = qw ? qw + qk_k * b : nullptr;
            iq4_weights(8, xb, qwb, w);
            simd::iq4_search_x8(xb, w, scales);
            finish_block_iq4_xs(xb, qwb, scales, y[r * nb + b]);
        }
}
void rows_iq4_nl_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n, const float* qw) {
    auto* y = static_cast<BlockIQ4_NL*>(dst);
    const std::int64_t nb = n / 32;
    float w[qk_k], scales[8];
    for (std::int64_t r = 0; r < nrows; ++r) {
        std::int64_t b = 0;
        for (; b + 8 <= nb; b += 8) {  // sigma2 (imatrix only) is per 32-block, so weights per block
            const float* xb = x + r * n + 32 * b;
            for (int k = 0; k < 8; ++k) iq4_weights(1, xb + 32 * k, qw ? qw + 32 * (b + k) : nullptr, w + 32 * k);
            simd::iq4_search_x8(xb, w, scales);
            for (int k = 0; k < 8; ++k)
                finish_block_iq4_nl(xb + 32 * k, qw ? qw + 32 * (b + k) : nullptr, scales + k, y[r * nb + b + k]);
        }
        for (; b < nb; ++b) quantize_block_iq4_nl(x + r * n + 32 * b, qw ? qw + 32 * b : nullptr, y[r * nb + b]);
    }
}

void rows_q3_k_simd(const float* x, void* dst, std::int64_t nrows, std::int64_t n) {
    simd::quantize_q3_k_blocks(x, dst, nrows * (n / qk_k));  // simd_q3.cpp: search and finish
}

[[noreturn]] void unsupported(GgmlType type, const char* what) {
    throw core::Error(core::ErrorKind::Unsupported, "", "",
                      core::cat(what, " to ggml type ", type_upper_name(type), " is not implemented"));
}

}  // namespace

bool can_quantize(GgmlType type) noexcept {
    switch (type) {
        case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
        case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
        case GgmlType::IQ4_NL: case GgmlType::IQ4_XS: case GgmlType::TQ1_0: case GgmlType::TQ2_0:
        case GgmlType::MXFP4:
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S: case GgmlType::IQ1_S: case GgmlType::IQ1_M:   // src/quant/iq.cpp
            return true;
        default:
            return false;
    }
}

bool needs_imatrix(GgmlType type) noexcept {
    switch (type) {
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ1_S:
        case GgmlType::IQ1_M: case GgmlType::IQ3_XXS:
            return true;
        default:
            return false;
    }
}

void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                   const float* imatrix) {
    quantize_rows_at(core::simd_level(), type, src, dst, nrows, n_per_row, imatrix);
}

void quantize_rows_at(core::SimdLevel level, GgmlType type, const float* src, void* dst, std::int64_t nrows,
                      std::int64_t n_per_row, const float* imatrix) {
    const std::int64_t n = n_per_row;
    const float* qw = imatrix;
    const bool use_simd = level >= core::SimdLevel::Avx2;
    if (use_simd && !qw && simd::has_legacy_simd(type))
        return simd::legacy_blocks(type, level, src, dst, nrows * (n / traits(type).block_elems));
    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, src, static_cast<std::size_t>(nrows * n) * sizeof(float));
            return;
        case GgmlType::F16: {
            auto* y = static_cast<std::uint16_t*>(dst);
            for (std::int64_t i = 0; i < nrows * n; ++i) y[i] = core::f32_to_f16(src[i]);
            return;
        }
        case GgmlType::BF16: {
            auto* y = static_cast<std::uint16_t*>(dst);
            for (std::int64_t i = 0; i < nrows * n; ++i) y[i] = core::f32_to_bf16(src[i]);
            return;
        }
        case GgmlType::Q4_0:
            if (qw) return rows_legacy_imatrix<BlockQ4_0, quantize_block_q4_0_imatrix>(src, dst, nrows, n, qw);
            return rows_plain<BlockQ4_0, 32, quantize_block_q4_0>(src, dst, nrows, n);
        case GgmlType::Q4_1:
            if (qw) return rows_legacy_imatrix<BlockQ4_1, quantize_block_q4_1_imatrix>(src, dst, nrows, n, qw);
            return rows_plain<BlockQ4_1, 32, quantize_block_q4_1>(src, dst, nrows, n);
        case GgmlType::Q5_0:
            if (qw) return rows_legacy_imatrix<BlockQ5_0, quantize_block_q5_0_imatrix>(src, dst, nrows, n, qw);
            return rows_plain<BlockQ5_0, 32, quantize_block_q5_0>(src, dst, nrows, n);
        case GgmlType::Q5_1:
            if (qw) return rows_legacy_imatrix<BlockQ5_1, quantize_block_q5_1_imatrix>(src, dst, nrows, n, qw);
            return rows_plain<BlockQ5_1, 32, quantize_block_q5_1>(src, dst, nrows, n);
        case GgmlType::Q8_0:
            return rows_plain<BlockQ8_0, 32, quantize_block_q8_0>(src, dst, nrows, n);
        case GgmlType::MXFP4:
            return rows_plain<BlockMxfp4, 32, quantize_block_mxfp4>(src, dst, nrows, n);
        case GgmlType::TQ1_0:
            return rows_plain<BlockTQ1_0, qk_k, quantize_block_tq1_0>(src, dst, nrows, n);
        case GgmlType::TQ2_0:
            return rows_plain<BlockTQ2_0, qk_k, quantize_block_tq2_0>(src, dst, nrows, n);
        case GgmlType::Q2_K:
            if (qw && use_simd) return simd::q2_k_imatrix_rows(src, qw, dst, nrows, n);
            if (qw) return rows_weighted<BlockQ2_K, qk_k, quantize_block_q2_K_imatrix>(src, dst, nrows, n, qw);
            if (use_simd) return rows_q2_k_simd(src, dst, nrows, n);
            return rows_plain<BlockQ2_K, qk_k, quantize_block_q2_K>(src, dst, nrows, n);
        case GgmlType::Q3_K:
            if (qw && use_simd) return simd::q3_k_imatrix_rows(src, qw, dst, nrows, n);
            if (qw) return rows_weighted<BlockQ3_K, qk_k, quantize_block_q3_K_imatrix>(src, dst, nrows, n, qw);
            if (use_simd) return rows_q3_k_simd(src, dst, nrows, n);
            return rows_plain<BlockQ3_K, qk_k, quantize_block_q3_K>(src, dst, nrows, n);
        case GgmlType::Q4_K:
            if (qw && use_simd) return simd::q4_k_imatrix_rows(src, qw, dst, nrows, n);
            if (qw) return rows_weighted<BlockQ4_K, qk_k, quantize_block_q4_K_imatrix>(src, dst, nrows, n, qw);
            if (use_simd) return rows_qk4_simd<BlockQ4_K, 15, finish_block_q4_K>(src, dst, nrows, n, -1.f, 0.1f, 20);
            return rows_plain<BlockQ4_K, qk_k, quantize_block_q4_K>(src, dst, nrows, n);
        case GgmlType::Q5_K:
            if (qw && use_simd) return simd::q5_k_imatrix_rows(src, qw, dst, nrows, n);
            if (qw) return rows_weighted<BlockQ5_K, qk_k, quantize_block_q5_K_imatrix>(src, dst, nrows, n, qw);
            if (use_simd) return rows_qk4_simd<BlockQ5_K, 31, finish_block_q5_K>(src, dst, nrows, n, -0.5f, 0.1f, 15);
            return rows_plain<BlockQ5_K, qk_k, quantize_block_q5_K>(src, dst, nrows, n);
        case GgmlType::Q6_K:
            if (qw && use_simd) return simd::q6_k_imatrix_rows(src, qw, dst, nrows, n);
            if (qw) return rows_weighted<BlockQ6_K, qk_k, quantize_block_q6_K_imatrix>(src, dst, nrows, n, qw);
            if (use_simd) return rows_q6_k_simd(src, dst, nrows, n);
            return rows_plain<BlockQ6_K, qk_k, quantize_block_q6_K>(src, dst, nrows, n);
        case GgmlType::IQ4_NL:
            if (use_simd) return rows_iq4_nl_simd(src, dst, nrows, n, qw);
            return rows_weighted<BlockIQ4_NL, 32, quantize_block_iq4_nl>(src, dst, nrows, n, qw);
        case GgmlType::IQ4_XS:
            if (use_simd) return rows_iq4_xs_simd(src, dst, nrows, n, qw);
            return rows_weighted<BlockIQ4_XS, qk_k, quantize_block_iq4_xs>(src, dst, nrows, n, qw);
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S: case GgmlType::IQ1_S: case GgmlType::IQ1_M:
            return iq::quantize_rows(type, src, dst, nrows, n, qw);
        default:
            unsupported(type, "quantization");
    }
}

void quantize_rows_parallel(GgmlType type, const float* src, void* dst, std::int64_t nrows,
                            std::int64_t n_per_row, const float* imatrix, int n_threads) {
    const std::int64_t nt = std::min<std::int64_t>(std::max(n_threads, 1), nrows);
    if (nt <= 1) return quantize_rows(type, src, dst, nrows, n_per_row, imatrix);
    if (!can_quantize(type)) unsupported(type, "quantization");
    if (iq::is_grid_type(type)) {  // throw (missing imatrix) and build the grid here, not in a worker
        if (!imatrix && iq::imatrix_mandatory(type)) return quantize_rows(type, src, dst, nrows, n_per_row, imatrix);
        (void)iq::grid(type);
    }
    const std::size_t rb = row_bytes(type, n_per_row);
    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(nt - 1));
    auto part = [&](std::int64_t t) {
        const std::int64_t r0 = nrows * t / nt, r1 = nrows * (t + 1) / nt;
        quantize_rows(type, src + r0 * n_per_row, static_cast<std::uint8_t*>(dst) + static_cast<std::size_t>(r0) * rb,
                      r1 - r0, n_per_row, imatrix);
    };
    for (std::int64_t t = 1; t < nt; ++t) {
        try {
            workers.emplace_back(part, t);
        } catch (const std::system_error&) {  // no thread available: do that share here
            part(t);
        }
    }
    part(0);  // cannot throw: the type was checked above
    for (auto& w : workers) w.join();
}

void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    const std::int64_t n = nrows * n_per_row;
    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
            return;
        case GgmlType::F16: {
            const auto* x = static_cast<const std::uint16_t*>(src);
            for (std::int64_t i = 0; i < n; ++i) dst[i] = core::f16_to_f32(x[i]);
            return;
        }
        case GgmlType::BF16: {
            const auto* x = static_cast<const std::uint16_t*>(src);
            for (std::int64_t i = 0; i < n; ++i) dst[i] = core::bf16_to_f32(x[i]);
            return;
        }
        case GgmlType::Q4_0: return dequant_blocks<BlockQ4_0, 32, dequantize_block_q4_0>(src, dst, n / 32);
        case GgmlType::Q4_1: return dequant_blocks<BlockQ4_1, 32, dequantize_block_q4_1>(src, dst, n / 32);
        case GgmlType::Q5_0: return dequant_blocks<BlockQ5_0, 32, dequantize_block_q5_0>(src, dst, n / 32);
        case GgmlType::Q5_1: return dequant_blocks<BlockQ5_1, 32, dequantize_block_q5_1>(src, dst, n / 32);
        case GgmlType::Q8_0: return dequant_blocks<BlockQ8_0, 32, dequantize_block_q8_0>(src, dst, n / 32);
        case GgmlType::MXFP4: return dequant_blocks<BlockMxfp4, 32, dequantize_block_mxfp4>(src, dst, n / 32);
        case GgmlType::IQ4_NL: return dequant_blocks<BlockIQ4_NL, 32, dequantize_block_iq4_nl>(src, dst, n / 32);
        case GgmlType::Q2_K: return dequant_blocks<BlockQ2_K, qk_k, dequantize_block_q2_K>(src, dst, n / qk_k);
        case GgmlType::Q3_K: return dequant_blocks<BlockQ3_K, qk_k, dequantize_block_q3_K>(src, dst, n / qk_k);
        case GgmlType::Q4_K: return dequant_blocks<BlockQ4_K, qk_k, dequantize_block_q4_K>(src, dst, n / qk_k);
        case GgmlType::Q5_K: return dequant_blocks<BlockQ5_K, qk_k, dequantize_block_q5_K>(src, dst, n / qk_k);
        case GgmlType::Q6_K: return dequant_blocks<BlockQ6_K, qk_k, dequantize_block_q6_K>(src, dst, n / qk_k);
        case GgmlType::IQ4_XS: return dequant_blocks<BlockIQ4_XS, qk_k, dequantize_block_iq4_xs>(src, dst, n / qk_k);
        case GgmlType::TQ1_0: return dequant_blocks<BlockTQ1_0, qk_k, dequantize_block_tq1_0>(src, dst, n / qk_k);
        case GgmlType::TQ2_0: return dequant_blocks<BlockTQ2_0, qk_k, dequantize_block_tq2_0>(src, dst, n / qk_k);
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S: case GgmlType::IQ1_S: case GgmlType::IQ1_M:
            return iq::dequantize_rows(type, src, dst, nrows, n_per_row);
        default:
            unsupported(type, "dequantization");
    }
}

}  // namespace shardforge::quant
