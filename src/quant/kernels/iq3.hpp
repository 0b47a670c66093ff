// IQ3_XXS (3.06 bpw) and IQ3_S (3.44 bpw): groups of 4 magnitudes on a 256/512-point grid (3-bit levels),
// signs per 8, 4-bit sub-block scales. One super-block of 256 per call with the arithmetic of ggml's
// quantize_row_iq3_xxs_impl(256, ...) / quantize_row_iq3_s_impl(32, ...). qw: the block's 256 imatrix weights, or
// null (then x^2, as ggml). g: the type's grid (iq_grids.hpp). SF_HD, pure.
#pragma once
#include "iq_grids.hpp"

namespace shardforge::quant {
namespace detail {

SF_HD int iq3_pack(const std::int8_t* L) {
    int u = 0;
    for (int i = 0; i < 4; ++i) u |= L[i] << 3 * i;
    return u;
}
SF_HD void iq3_levels(float id, const float* xval, std::int8_t* L) {
    for (int i = 0; i < 4; ++i) {
        const int l = nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = static_cast<std::int8_t>(imax(0, imin(7, l)));
    }
}
SF_HD int iq3_grid_index(const IqGrid& g, const std::int8_t* L) {
    const int gi = g.map[iq3_pack(L)];
    return gi < 0 ? 0 : gi;  // ggml aborts; the search never leaves a group off the grid
}

// Scale search of one 32-element sub-block (8 groups of 4). Xxs selects IQ3_XXS's variant (on-grid flags start
// true, search over is = -15..15, only off-grid groups are redone); else IQ3_S's (flags start false, is = -9..9,
// every group redone). Fills L, returns the scale.
template <bool Xxs>
SF_HD float iq3_search32(const IqGrid& g, const float* xval, const float* weight, const float* waux, float max,
                         std::int8_t* L) {
    constexpr int kMaxQ = 8;
    constexpr int ntry = Xxs ? 15 : 9;
    std::int8_t Laux[32];
    bool is_on_grid[8], is_on_grid_aux[8];
    float best = 0;
    float scale = max / (2 * kMaxQ - 1);
    for (int k = 0; k < 8; ++k) is_on_grid[k] = Xxs;
    for (int is = -ntry; is <= ntry; ++is) {
        const float id = (2 * kMaxQ - 1 + is * 0.2f) / max;
        const float this_scale = 1 / id;
        for (int k = 0; k < 8; ++k) {
            iq3_levels(id, xval + 4 * k, Laux + 4 * k);
            const int u = iq3_pack(Laux + 4 * k);
            is_on_grid_aux[k] = true;
            if (g.map[u] < 0) {
                is_on_grid_aux[k] = false;
                grid_best_neighbour<4>(g, g.neighbours - g.map[u] - 1, xval + 4 * k, waux + 4 * k, this_scale,
                                       Laux + 4 * k);
            }
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
            for (int k = 0; k < 8; ++k) is_on_grid[k] = is_on_grid_aux[k];
        }
    }
    int n_not_ongrid = 0;
    for (int k = 0; k < 8; ++k)
        if (!is_on_grid[k]) ++n_not_ongrid;
    if (n_not_ongrid > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < 8; ++k) {
            if (Xxs && is_on_grid[k]) continue;
            std::int8_t Lt[4];
            iq3_levels(id, xval + 4 * k, Lt);
            const int u = iq3_pack(Lt);
            int grid_index = g.map[u];
            if (grid_index < 0)
                grid_index = grid_best_neighbour<4>(g, g.neighbours - g.map[u] - 1, xval + 4 * k, waux + 4 * k,
                                                    scale, L + 4 * k);
            const std::int8_t* pg = g.pos + 4 * grid_index;
            for (int i = 0; i < 4; ++i) L[4 * k + i] = static_cast<std::int8_t>((pg[i] - 1) / 2);
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
    return scale;
}

SF_HD void iq3_weights(const float* xb, const float* qw, float sigma2, float* weight, float* waux) {
    if (qw) {
        for (int i = 0; i < 32; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
    } else {
        for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
    }
    for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
}

}  // namespace detail

SF_HD void quantize_block_iq3_xxs(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ3_XXS& y) {
    using namespace detail;
    constexpr float group_max_eps_iq3_xxs = 1e-8f;
    float scales[qk_k / 32];
    float weight[32], xval[32], waux[32];
    std::int8_t L[32];
    std::uint8_t q3[3 * (qk_k / 8)];
    std::uint8_t* sas = q3 + qk_k / 4;  // scales_and_signs: 8 little-endian uint32

    y.d = to_f16(0.f);
    for (auto& v : q3) v = 0;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const float* xb = xbl + 32 * ib;
        iq3_weights(xb, qwb ? qwb + 32 * ib : nullptr, sigma2, weight, waux);
        int block_signs[4];
        for (int k = 0; k < 4; ++k) block_signs[k] = fold_signs_even(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 32; ++i) max = fmax_ggml(max, xval[i]);
        for (auto& v : L) v = 0;
        if (max < group_max_eps_iq3_xxs) {
            scales[ib] = 0;
            continue;
        }
        float scale = iq3_search32<true>(g, xval, weight, waux, max, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; ++k) block_signs[k] = (~block_signs[k]) & 127;
        }
        for (int k = 0; k < 8; ++k) q3[8 * ib + k] = static_cast<std::uint8_t>(iq3_grid_index(g, L + 4 * k));
        store_le32(sas + 4 * ib, static_cast<std::uint32_t>(block_signs[0] | (block_signs[1] << 7) |
                                                            (block_signs[2] << 14) | (block_signs[3] << 21)));
        scales[ib] = scale;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) {
        for (auto& v : y.qs) v = 0;
        return;
    }
    const float d = max_scale / 31;
    y.d = to_f16(d * 1.0125f);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / 32; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib] - 1));
        l = imax(0, imin(15, l));
        store_le32(sas + 4 * ib, load_le32(sas + 4 * ib) | static_cast<std::uint32_t>(l) << 28);
    }
    for (int j = 0; j < 3 * (qk_k / 8); ++j) y.qs[j] = q3[j];
}

SF_HD void quantize_block_iq3_s(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ3_S& y) {
    using namespace detail;
    float scales[qk_k / 32];
    float weight[32], xval[32], waux[32];
    std::int8_t L[32];

    for (auto& v : y.qs) v = 0;
    for (auto& v : y.qh) v = 0;
    for (auto& v : y.signs) v = 0;
    for (auto& v : y.scales) v = 0;
    y.d = to_f16(0.f);
    std::uint8_t* qs = y.qs;
    std::uint8_t* signs = y.signs;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const float* xb = xbl + 32 * ib;
        iq3_weights(xb, qwb ? qwb + 32 * ib : nullptr, sigma2, weight, waux);
        int block_signs[4];
        for (int k = 0; k < 4; ++k) {
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
        for (int i = 1; i < 32; ++i) max = fmax_ggml(max, xval[i]);
        for (auto& v : L) v = 0;
        if (!max) {
            scales[ib] = 0;
            continue;
        }
        float scale = iq3_search32<false>(g, xval, weight, waux, max, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; ++k) block_signs[k] = ~block_signs[k];
        }
        for (int k = 0; k < 8; ++k) {
            const int grid_index = iq3_grid_index(g, L + 4 * k);
            qs[k] = static_cast<std::uint8_t>(grid_index & 255);
            y.qh[(ib * 8 + k) / 8] = static_cast<std::uint8_t>(y.qh[(ib * 8 + k) / 8] | ((grid_index >> 8) << ((ib * 8 + k) % 8)));
        }
        qs += 8;
        for (int k = 0; k < 4; ++k) signs[k] = static_cast<std::uint8_t>(block_signs[k]);
        signs += 4;
        scales[ib] = scale;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) return;
    const float d = max_scale / 31;
    y.d = to_f16(d * 1.033f);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / 32; ib += 2) {
        int l1 = nearest_int(0.5f * (id * scales[ib + 0] - 1));
        l1 = imax(0, imin(15, l1));
        int l2 = nearest_int(0.5f * (id * scales[ib + 1] - 1));
        l2 = imax(0, imin(15, l2));
        y.scales[ib / 2] = static_cast<std::uint8_t>(l1 | (l2 << 4));
    }
}

// ---------------------------------------------------------------- dequantization (dequantize_row_iq3_*)

SF_HD void dequantize_block_iq3_xxs(const BlockIQ3_XXS& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    const std::uint8_t* qs = x.qs;
    const std::uint8_t* sas = x.qs + qk_k / 4;
    for (int ib32 = 0; ib32 < qk_k / 32; ++ib32) {
        const std::uint32_t aux32 = load_le32(sas + 4 * ib32);
        const float db = d * (0.5f + (aux32 >> 28)) * 0.5f;
        for (int l = 0; l < 4; ++l) {
            const int signs = ksigns_iq2xs(static_cast<int>((aux32 >> 7 * l) & 127));
            const std::int8_t* grid1 = g.values + 4 * qs[2 * l + 0];
            const std::int8_t* grid2 = g.values + 4 * qs[2 * l + 1];
            for (int j = 0; j < 4; ++j) {
                y[j + 0] = db * grid1[j] * (signs & (1 << j) ? -1.f : 1.f);
                y[j + 4] = db * grid2[j] * (signs & (1 << (j + 4)) ? -1.f : 1.f);
            }
            y += 8;
        }
        qs += 8;
    }
}

SF_HD void dequantize_block_iq3_s(const BlockIQ3_S& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    const std::uint8_t* qs = x.qs;
    const std::uint8_t* qh = x.qh;
    const std::uint8_t* signs = x.signs;
    for (int ib32 = 0; ib32 < qk_k / 32; ib32 += 2) {
        const float db1 = d * (1 + 2 * (x.scales[ib32 / 2] & 0xf));
        const float db2 = d * (1 + 2 * (x.scales[ib32 / 2] >> 4));
        for (int half = 0; half < 2; ++half) {
            const float db = half ? db2 : db1;
            for (int l = 0; l < 4; ++l) {
                const std::int8_t* grid1 = g.values + 4 * (qs[2 * l + 0] | ((qh[half] << (8 - 2 * l)) & 256));
                const std::int8_t* grid2 = g.values + 4 * (qs[2 * l + 1] | ((qh[half] << (7 - 2 * l)) & 256));
                for (int j = 0; j < 4; ++j) {
                    y[j + 0] = db * grid1[j] * (signs[l] & (1 << j) ? -1.f : 1.f);
                    y[j + 4] = db * grid2[j] * (signs[l] & (1 << (j + 4)) ? -1.f : 1.f);
                }
                y += 8;
            }
            qs += 8;
            signs += 4;
        }
        qh += 2;
    }
}

}  // namespace shardforge::quant
