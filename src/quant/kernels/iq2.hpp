// IQ2_XXS (2.06 bpw), IQ2_XS (2.31 bpw), IQ2_S (2.56 bpw): groups of 8 magnitudes on an E8-like grid of 256/512/
// 1024 points, per-group signs, 4-bit sub-block scales. One super-block of 256 per call, the arithmetic of ggml's
// quantize_row_iq2_{xxs,xs,s}_impl (every state is per super-block, so rows and chunks split anywhere on block
// boundaries give the same bytes). qw: the block's 256 imatrix weights; IQ2_XXS/IQ2_XS require them (ggml
// asserts), IQ2_S falls back to 0.25*sigma2 + x^2. g: the type's grid (iq_grids.hpp). SF_HD, pure.
#pragma once
#include "iq_grids.hpp"

namespace shardforge::quant {
namespace detail {

// Packed 2-bit level vector of a group of 8.
SF_HD int iq2_pack(const std::int8_t* L) {
    int u = 0;
    for (int i = 0; i < 8; ++i) u |= L[i] << 2 * i;
    return u;
}

// Levels of 8 elements at inverse scale id, clamped to [0, kMaxQ-1] = [0, 2].
SF_HD void iq2_levels(float id, const float* xval, std::int8_t* L) {
    for (int i = 0; i < 8; ++i) {
        const int l = nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = static_cast<std::int8_t>(imax(0, imin(2, l)));
    }
}

// The scale search shared by IQ2_XS and IQ2_S for one sub-block of 16 (two groups): fills L, returns scale.
SF_HD float iq2_search16(const IqGrid& g, const float* xval, const float* weight, const float* waux, float max,
                         std::int8_t* L) {
    constexpr int kMaxQ = 3;
    std::int8_t Laux[16];
    bool is_on_grid[2] = {true, true};
    bool is_on_grid_aux[2];
    float best = 0;
    float scale = max / (2 * kMaxQ - 1);
    for (int is = -9; is <= 9; ++is) {
        const float id = (2 * kMaxQ - 1 + is * 0.1f) / max;
        const float this_scale = 1 / id;
        for (int k = 0; k < 2; ++k) {
            iq2_levels(id, xval + 8 * k, Laux + 8 * k);
            const int u = iq2_pack(Laux + 8 * k);
            is_on_grid_aux[k] = true;
            if (g.map[u] < 0) {
                is_on_grid_aux[k] = false;
                grid_best_neighbour<8>(g, g.neighbours - g.map[u] - 1, xval + 8 * k, waux + 8 * k, this_scale,
                                       Laux + 8 * k);
            }
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < 16; ++i) {
            const float w = weight[i];
            const float q = 2 * Laux[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            for (int i = 0; i < 16; ++i) L[i] = Laux[i];
            for (int k = 0; k < 2; ++k) is_on_grid[k] = is_on_grid_aux[k];
        }
    }
    int n_not_ongrid = 0;
    for (int k = 0; k < 2; ++k)
        if (!is_on_grid[k]) ++n_not_ongrid;
    if (n_not_ongrid > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < 2; ++k) {
            if (is_on_grid[k]) continue;
            iq2_levels(id, xval + 8 * k, L + 8 * k);
            const int u = iq2_pack(L + 8 * k);
            if (g.map[u] < 0)
                grid_best_neighbour<8>(g, g.neighbours - g.map[u] - 1, xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
        }
        float sumqx = 0, sumq2 = 0;
        for (int i = 0; i < 16; ++i) {
            const float w = weight[i];
            const float q = 2 * L[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

// Grid index of an 8-level vector that the search left on the grid (ggml aborts otherwise; cannot happen).
SF_HD int iq2_grid_index(const IqGrid& g, const std::int8_t* L) {
    const int gi = g.map[iq2_pack(L)];
    return gi < 0 ? 0 : gi;
}

}  // namespace detail

SF_HD void quantize_block_iq2_xxs(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ2_XXS& y) {
    using namespace detail;
    constexpr int kMaxQ = 3;
    float scales[qk_k / 32];
    float weight[32], xval[32], waux[32];
    std::int8_t L[32], Laux[32];
    int block_signs[4];
    std::uint32_t q2[2 * (qk_k / 32)];

    y.d = to_f16(0.f);
    for (auto& v : q2) v = 0;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const float* xb = xbl + 32 * ib;
        const float* qw = qwb + 32 * ib;
        for (int i = 0; i < 32; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
        for (int k = 0; k < 4; ++k) block_signs[k] = fold_signs_even(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 32; ++i) max = fmax_ggml(max, xval[i]);
        if (max < group_max_eps) {
            scales[ib] = 0;
            continue;
        }
        std::uint8_t Lq[32];
        float scale = make_qp_quants(32, kMaxQ + 1, xval, Lq, weight);
        for (int i = 0; i < 32; ++i) L[i] = static_cast<std::int8_t>(Lq[i]);
        const float eff_max = scale * kMaxQ;
        if (eff_max <= 0) {
            scales[ib] = 0;
            continue;
        }
        float best = 0;
        for (int is = -6; is <= 6; ++is) {
            const float id = (2 * kMaxQ - 1 + is * 0.1f) / eff_max;
            const float this_scale = 1 / id;
            for (int k = 0; k < 4; ++k) {
                iq2_levels(id, xval + 8 * k, Laux + 8 * k);
                const int u = iq2_pack(Laux + 8 * k);
                if (g.map[u] < 0)
                    grid_best_neighbour<8>(g, g.neighbours - g.map[u] - 1, xval + 8 * k, waux + 8 * k, this_scale,
                                           Laux + 8 * k);
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; ++i) {
                const float w = weight[i];
                const float q = 2 * Laux[i] + 1;
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                for (int i = 0; i < 32; ++i) L[i] = Laux[i];
            }
        }
        if (scale > 0) {
            const float id = 1 / scale;
            for (int k = 0; k < 4; ++k) {
                std::int8_t Lt[8];
                iq2_levels(id, xval + 8 * k, Lt);
                const int u = iq2_pack(Lt);
                int grid_index = g.map[u];
                if (grid_index < 0)
                    grid_index = grid_best_neighbour<8>(g, g.neighbours - g.map[u] - 1, xval + 8 * k, waux + 8 * k,
                                                        scale, L + 8 * k);
                const std::int8_t* pg = g.pos + 8 * grid_index;
                for (int i = 0; i < 8; ++i) L[8 * k + i] = static_cast<std::int8_t>((pg[i] - 1) / 2);
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; ++i) {
                const float w = weight[i];
                const float q = 2 * L[i] + 1;
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; ++k) block_signs[k] = (~block_signs[k]) & 127;
        }
        for (int k = 0; k < 4; ++k) {
            const int grid_index = iq2_grid_index(g, L + 8 * k);
            q2[2 * ib + 0] |= static_cast<std::uint32_t>(grid_index) << 8 * k;
            q2[2 * ib + 1] |= static_cast<std::uint32_t>(block_signs[k]) << 7 * k;
        }
        scales[ib] = scale;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) {
        for (auto& v : y.qs) v = 0;
        return;
    }
    const float d = max_scale / 31;
    y.d = to_f16(d);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / 32; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib] - 1));
        l = imax(0, imin(15, l));
        q2[2 * ib + 1] |= static_cast<std::uint32_t>(l) << 28;
    }
    for (int j = 0; j < 2 * (qk_k / 32); ++j) {
        y.qs[2 * j] = static_cast<std::uint16_t>(q2[j]);
        y.qs[2 * j + 1] = static_cast<std::uint16_t>(q2[j] >> 16);
    }
}

// IQ2_XS and IQ2_S share the search; they differ in the weights without imatrix, sign handling, eps and packing.
SF_HD void quantize_block_iq2_xs(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ2_XS& y) {
    using namespace detail;
    float scales[qk_k / 16];
    float weight[16], xval[16], waux[16];
    std::int8_t L[16];
    std::uint16_t q2[2 * (qk_k / 16)];

    y.d = to_f16(0.f);
    for (auto& v : q2) v = 0;
    for (auto& v : y.scales) v = 0;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / 16; ++ib) {
        const float* xb = xbl + 16 * ib;
        const float* qw = qwb + 16 * ib;
        for (int i = 0; i < 16; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        for (int i = 0; i < 16; ++i) waux[i] = sqrtf(weight[i]);
        int block_signs[2];
        for (int k = 0; k < 2; ++k) block_signs[k] = fold_signs_even(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 16; ++i) max = fmax_ggml(max, xval[i]);
        for (auto& v : L) v = 0;
        if (max < group_max_eps) {
            scales[ib] = 0;
            continue;
        }
        float scale = iq2_search16(g, xval, weight, waux, max, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 2; ++k) block_signs[k] = (~block_signs[k]) & 127;
        }
        for (int k = 0; k < 2; ++k)
            q2[2 * ib + k] = static_cast<std::uint16_t>(iq2_grid_index(g, L + 8 * k) | (block_signs[k] << 9));
        scales[ib] = scale;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) {
        for (auto& v : y.qs) v = 0;
        return;
    }
    const float d = max_scale / 31;
    y.d = to_f16(d);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / 16; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib] - 1));
        l = imax(0, imin(15, l));
        if (ib % 2 == 0) y.scales[ib / 2] = static_cast<std::uint8_t>(l);
        else y.scales[ib / 2] = static_cast<std::uint8_t>(y.scales[ib / 2] | (l << 4));
    }
    for (int j = 0; j < qk_k / 8; ++j) y.qs[j] = q2[j];
}

SF_HD void quantize_block_iq2_s(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ2_S& y) {
    using namespace detail;
    constexpr float group_max_eps_iq2_s = 1e-8f;
    float scales[qk_k / 16];
    float weight[16], xval[16], waux[16];
    std::int8_t L[16];

    y.d = 0;
    for (auto& v : y.qs) v = 0;
    for (auto& v : y.qh) v = 0;
    for (auto& v : y.scales) v = 0;
    y.d = to_f16(0.f);
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / 16; ++ib) {
        const float* xb = xbl + 16 * ib;
        if (qwb) {
            const float* qw = qwb + 16 * ib;
            for (int i = 0; i < 16; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
        }
        for (int i = 0; i < 16; ++i) waux[i] = sqrtf(weight[i]);
        int block_signs[2];
        for (int k = 0; k < 2; ++k) {
            int s = 0;
            for (int i = 0; i < 8; ++i) {
                if (xb[8 * k + i] >= 0) {
                    xval[8 * k + i] = xb[8 * k + i];
                } else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    s |= 1 << i;
                }
            }
            block_signs[k] = s;
        }
        float max = xval[0];
        for (int i = 1; i < 16; ++i) max = fmax_ggml(max, xval[i]);
        for (auto& v : L) v = 0;
        if (max < group_max_eps_iq2_s) {
            scales[ib] = 0;
            continue;
        }
        float scale = iq2_search16(g, xval, weight, waux, max, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 2; ++k) block_signs[k] = ~block_signs[k];
        }
        for (int k = 0; k < 2; ++k) {
            const int grid_index = iq2_grid_index(g, L + 8 * k);
            const int i8 = 2 * ib + k;
            y.qs[i8] = static_cast<std::uint8_t>(grid_index & 255);
            y.qh[i8 / 4] = static_cast<std::uint8_t>(y.qh[i8 / 4] | ((grid_index >> 8) << 2 * (i8 % 4)));
            y.qs[qk_k / 8 + i8] = static_cast<std::uint8_t>(block_signs[k]);
        }
        scales[ib] = scale;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) return;
    const float d = max_scale / 31;
    y.d = to_f16(d * 0.9875f);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / 16; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib] - 1));
        l = imax(0, imin(15, l));
        if (ib % 2 == 0) y.scales[ib / 2] = static_cast<std::uint8_t>(l);
        else y.scales[ib / 2] = static_cast<std::uint8_t>(y.scales[ib / 2] | (l << 4));
    }
}

// ---------------------------------------------------------------- dequantization (dequantize_row_iq2_*)

SF_HD void dequantize_block_iq2_xxs(const BlockIQ2_XXS& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    for (int ib32 = 0; ib32 < qk_k / 32; ++ib32) {
        const std::uint32_t a0 = x.qs[4 * ib32] | static_cast<std::uint32_t>(x.qs[4 * ib32 + 1]) << 16;
        const std::uint32_t a1 = x.qs[4 * ib32 + 2] | static_cast<std::uint32_t>(x.qs[4 * ib32 + 3]) << 16;
        const float db = d * (0.5f + (a1 >> 28)) * 0.25f;
        for (int l = 0; l < 4; ++l) {
            const std::int8_t* grid = g.values + 8 * ((a0 >> 8 * l) & 255);
            const int signs = ksigns_iq2xs(static_cast<int>((a1 >> 7 * l) & 127));
            for (int j = 0; j < 8; ++j) y[j] = db * grid[j] * (signs & (1 << j) ? -1.f : 1.f);
            y += 8;
        }
    }
}

SF_HD void dequantize_block_iq2_xs(const BlockIQ2_XS& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    for (int ib32 = 0; ib32 < qk_k / 32; ++ib32) {
        const float db[2] = {d * (0.5f + (x.scales[ib32] & 0xf)) * 0.25f, d * (0.5f + (x.scales[ib32] >> 4)) * 0.25f};
        for (int l = 0; l < 4; ++l) {
            const std::int8_t* grid = g.values + 8 * (x.qs[4 * ib32 + l] & 511);
            const int signs = ksigns_iq2xs(x.qs[4 * ib32 + l] >> 9);
            for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * (signs & (1 << j) ? -1.f : 1.f);
            y += 8;
        }
    }
}

SF_HD void dequantize_block_iq2_s(const BlockIQ2_S& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    const std::uint8_t* qs = x.qs;
    const std::uint8_t* signs = x.qs + qk_k / 8;
    for (int ib32 = 0; ib32 < qk_k / 32; ++ib32) {
        const float db[2] = {d * (0.5f + (x.scales[ib32] & 0xf)) * 0.25f, d * (0.5f + (x.scales[ib32] >> 4)) * 0.25f};
        for (int l = 0; l < 4; ++l) {
            const float dl = db[l / 2];
            const std::int8_t* grid = g.values + 8 * (qs[l] | ((x.qh[ib32] << (8 - 2 * l)) & 0x300));
            for (int j = 0; j < 8; ++j) y[j] = dl * grid[j] * (signs[l] & (1 << j) ? -1.f : 1.f);
            y += 8;
        }
        qs += 4;
        signs += 4;
    }
}

}  // namespace shardforge::quant
