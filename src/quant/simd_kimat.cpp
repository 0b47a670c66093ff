// K-quants under an imatrix with the per-sub-block searches in lanes (simd_x8.cpp: qkx_search_x8 for
// make_qkx3_quants, which equals make_qkx2_quants when weights are given; qx_search_x8 for make_qx_quants).
// Everything else is the SF_HD kernel's code (k_quants.hpp quantize_block_*_imatrix) with the same
// expressions, so the bytes are the same (tests/unit/quant/simd_kimat_test.cpp).
#include "simd_x8.hpp"

#include "kernels/k_quants.hpp"

namespace shardforge::quant::simd {
namespace {

// weights[l] = qw[l] * sqrtf(sigma2 + x[l]^2) over the block, and their per-sub-block sums (sub-blocks of n).
void impl_weights(const float* x, const float* qw, float sigma2, int n, float* weights, float* sw) {
    for (int j = 0; j < qk_k / n; ++j) {
        const float* w = qw + n * j;
        for (int l = 0; l < n; ++l) weights[n * j + l] = w[l] * sqrtf(sigma2 + x[n * j + l] * x[n * j + l]);
        float sumw = 0;
        for (int l = 0; l < n; ++l) sumw += weights[n * j + l];
        sw[j] = sumw;
    }
}

float block_sum_x2(const float* x) {
    float sum_x2 = 0;
    for (int l = 0; l < qk_k; ++l) sum_x2 += x[l] * x[l];
    return sum_x2;
}

// detail::qk4_impl_scales with the make_qkx3 searches in lanes.
void qk4_impl_scales_x8(const float* x, const float* qw, int nmax, bool clamp_ls, std::uint8_t* L,
                        std::uint8_t* scales_out, std::uint16_t& dh, std::uint16_t& dminh) {
    float weights[qk_k], sw[8], mins[8], scales[8];
    std::uint8_t Ls[8], Lm[8];
    const float sigma2 = 2 * block_sum_x2(x) / qk_k;
    impl_weights(x, qw, sigma2, 32, weights, sw);
    qkx_search_x8(32, x, weights, nmax, -0.9f, 0.05f, 36, L, scales, mins);
    const float d_block = detail::make_qp_quants(8, 63, scales, Ls, sw);
    const float m_block = detail::make_qp_quants(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t ls = Ls[j];
        std::uint8_t lm = Lm[j];
        if (clamp_ls) {
            ls = ls < 63 ? ls : std::uint8_t{63};
            lm = lm < 63 ? lm : std::uint8_t{63};
        }
        detail::pack_scales_k4(j, ls, lm, scales_out);
    }
    dh = detail::to_f16(d_block);
    dminh = detail::to_f16(m_block);
}

void q4_k_block(const float* x, const float* qw, BlockQ4_K& y) {
    std::uint8_t L[qk_k];
    qk4_impl_scales_x8(x, qw, 15, false, L, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 15, L);
    detail::q4_k_pack(L, y);
}

void q5_k_block(const float* x, const float* qw, BlockQ5_K& y) {
    std::uint8_t L[qk_k];
    qk4_impl_scales_x8(x, qw, 31, true, L, y.scales, y.d, y.dmin);
    detail::qk4_requantize(x, y.scales, y.d, y.dmin, 31, L);
    detail::q5_k_pack(L, y);
}

void q2_k_block(const float* x, const float* qw, BlockQ2_K& y) {
    std::uint8_t L[qk_k];
    float weights[qk_k], sw[16], mins[16], scales[16];
    std::uint8_t Ls[16], Lm[16];
    const float sigma2 = block_sum_x2(x) / qk_k;
    // quantize_block_q2_K_imatrix sums sw[j] from 0 in element order: the same as impl_weights' sumw.
    impl_weights(x, qw, sigma2, 16, weights, sw);
    for (int g = 0; g < 2; ++g)
        qkx_search_x8(16, x + 128 * g, weights + 128 * g, 3, -0.9f, 0.05f, 36, L + 128 * g, scales + 8 * g,
                      mins + 8 * g);
    const float dm = detail::make_qp_quants(16, 15, scales, Ls, sw);
    const float mm = detail::make_qp_quants(16, 15, mins, Lm, sw);
    y.d = detail::to_f16(dm);
    y.dmin = detail::to_f16(mm);
    for (int j = 0; j < 16; ++j) y.scales[j] = static_cast<std::uint8_t>(Ls[j] | (Lm[j] << 4));
    detail::q2_k_finish(x, L, y);
}

void q3_k_block(const float* x, const float* qw, BlockQ3_K& y) {
    std::int8_t L[qk_k];
    float weights[qk_k], sw[16], scales[16];
    std::int8_t Ls[16];
    const float sigma2 = 2 * block_sum_x2(x) / qk_k;
    impl_weights(x, qw, sigma2, 16, weights, sw);
    for (int g = 0; g < 2; ++g) qx_search_x8(x + 128 * g, weights + 128 * g, 4, L + 128 * g, scales + 8 * g);
    for (int j = 0; j < 12; ++j) y.scales[j] = 0;
    const float d_block = detail::make_qx_quants(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) detail::q3_k_pack_scale(j, Ls[j], y.scales);
    y.d = detail::to_f16(d_block);
    detail::q3_k_finish(x, L, y);
}

void q6_k_block(const float* x, const float* qw, BlockQ6_K& y) {
    std::int8_t L[qk_k];
    float scales[16];
    for (int g = 0; g < 2; ++g) qx_search_x8(x + 128 * g, qw + 128 * g, 32, L + 128 * g, scales + 8 * g);
    finish_block_q6_K(x, L, scales, y);
}

template <class Block, void (*F)(const float*, const float*, Block&)>
void rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = n / qk_k;
    for (std::int64_t r = 0; r < nrows; ++r)
        for (std::int64_t b = 0; b < nb; ++b) F(x + r * n + qk_k * b, qw + qk_k * b, y[r * nb + b]);
}

}  // namespace

void q2_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    rows<BlockQ2_K, q2_k_block>(x, qw, dst, nrows, n);
}
void q3_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    rows<BlockQ3_K, q3_k_block>(x, qw, dst, nrows, n);
}
void q4_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    rows<BlockQ4_K, q4_k_block>(x, qw, dst, nrows, n);
}
void q5_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    rows<BlockQ5_K, q5_k_block>(x, qw, dst, nrows, n);
}
void q6_k_imatrix_rows(const float* x, const float* qw, void* dst, std::int64_t nrows, std::int64_t n) {
    rows<BlockQ6_K, q6_k_block>(x, qw, dst, nrows, n);
}

}  // namespace shardforge::quant::simd
