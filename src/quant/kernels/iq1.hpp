// IQ1_S (1.56 bpw) and IQ1_M (1.75 bpw): groups of 8 ternary values {-1, 0, 1} + delta on a 2048-point grid.
// One super-block of 256 per call with the arithmetic of ggml's quantize_row_iq1_s_impl / quantize_row_iq1_m_impl:
// exhaustive search of the two split points of the sorted sub-block, then grid snapping. qw: the block's 256
// imatrix weights; IQ1_S requires them (ggml asserts), IQ1_M falls back to x^2. SF_HD, pure.
//
// The sort: ggml calls qsort() on (value, index) pairs; glibc's qsort for these small arrays is a stable merge
// sort, so equal values keep index order. We use a stable insertion sort (same permutation).
#pragma once
#include "iq_grids.hpp"

namespace shardforge::quant {
namespace detail {

// idx[] = 0..n-1 stably sorted by x (ascending).
SF_HD void iq1_sort(int n, const float* x, int* idx) {
    for (int j = 0; j < n; ++j) {
        int k = j;
        while (k > 0 && x[idx[k - 1]] > x[j]) {
            idx[k] = idx[k - 1];
            --k;
        }
        idx[k] = j;
    }
}

// iq1_find_best_neighbour2: grid point of the neighbour list closest to scale*xg[level] ~ xval.
SF_HD int iq1_best_neighbour(const IqGrid& g, const std::uint16_t* neighbours, const float* xval,
                             const float* weight, float scale, const float* xg, std::int8_t* L) {
    const int num_neighbors = neighbours[0];
    float best_score = 3.40282347e+38f;  // FLT_MAX
    int grid_index = -1;
    for (int j = 1; j <= num_neighbors; ++j) {
        const std::int8_t* pg = g.pos + 8 * neighbours[j];
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            const float q = xg[(pg[i] - 1) / 2];
            const float w = weight[i];
            const float diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if (d2 < best_score) {
            best_score = d2;
            grid_index = neighbours[j];
        }
    }
    // Only reachable with non-finite distances (inf/NaN input): ggml then scans the whole grid reading past the
    // end of xval and asserts; we scan it with the intended element and fall back to the first neighbour.
    if (grid_index < 0) {
        for (int i = 0; i < g.size; ++i) {
            const std::int8_t* grid_i = g.pos + 8 * i;
            float d2 = 0;
            for (int j = 0; j < 8; ++j) {
                const float w = weight[j];
                const float q = xg[(grid_i[j] - 1) / 2];
                const float diff = scale * q - xval[j];
                d2 += w * diff * diff;
            }
            if (d2 < best_score) {
                best_score = d2;
                grid_index = i;
            }
        }
    }
    if (grid_index < 0) grid_index = neighbours[1];
    const std::int8_t* pg = g.pos + 8 * grid_index;
    for (int i = 0; i < 8; ++i) L[i] = static_cast<std::int8_t>((pg[i] - 1) / 2);
    return grid_index;
}

SF_HD int iq1_pack(const std::int8_t* L) {
    int u = 0;
    for (int j = 0; j < 8; ++j) u |= L[j] << 2 * j;
    return u;
}

}  // namespace detail

SF_HD void quantize_block_iq1_s(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ1_S& y) {
    using namespace detail;
    constexpr int block_size = 32;
    constexpr float group_max_eps_iq1_s = 1e-12f;
    const float x_p[3] = {-1 + iq1s_delta, iq1s_delta, 1 + iq1s_delta};
    const float x_m[3] = {-1 - iq1s_delta, -iq1s_delta, 1 - iq1s_delta};
    float scales[qk_k / block_size];
    float weight[block_size];
    float sumx[block_size + 1], sumw[block_size + 1];
    int idx[block_size];
    std::int8_t L[block_size];
    int index[block_size / 8];
    int shifts[qk_k / block_size];

    y.d = to_f16(0.f);
    for (auto& v : y.qs) v = 0;
    for (auto& v : y.qh) v = 0;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / qk_k;

    for (int ib = 0; ib < qk_k / block_size; ++ib) {
        const float* xb = xbl + block_size * ib;
        const float* qw = qwb + block_size * ib;
        for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        float max = fabsf(xb[0]);
        for (int i = 1; i < block_size; ++i) max = fmax_ggml(max, fabsf(xb[i]));
        if (max < group_max_eps_iq1_s) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        iq1_sort(block_size, xb, idx);
        sumx[0] = sumw[0] = 0;
        for (int j = 0; j < block_size; ++j) {
            const int i = idx[j];
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        float best_score = -3.40282347e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_shift = 0;
        for (int i1 = 0; i1 <= block_size; ++i1) {
            for (int i2 = i1; i2 <= block_size; ++i2) {
                float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] +
                              (sumx[block_size] - sumx[i2]) * x_p[2];
                float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                              (sumw[block_size] - sumw[i2]) * x_p[2] * x_p[2];
                if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                    scale = sumqx / sumq2;
                    best_score = scale * sumqx;
                    besti1 = i1;
                    besti2 = i2;
                    best_shift = 1;
                }
                sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] +
                        (sumx[block_size] - sumx[i2]) * x_m[2];
                sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                        (sumw[block_size] - sumw[i2]) * x_m[2] * x_m[2];
                if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                    scale = sumqx / sumq2;
                    best_score = scale * sumqx;
                    besti1 = i1;
                    besti2 = i2;
                    best_shift = -1;
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        for (int j = 0; j < besti1; ++j) L[idx[j]] = 0;
        for (int j = besti1; j < besti2; ++j) L[idx[j]] = 1;
        for (int j = besti2; j < block_size; ++j) L[idx[j]] = 2;
        if (scale < 0) {
            for (int j = 0; j < block_size; ++j) L[j] = static_cast<std::int8_t>(2 - L[j]);
            scale = -scale;
            best_shift = -best_shift;
        }
        bool all_on_grid = true;
        const float* xx = best_shift == 1 ? x_p : x_m;
        for (int k = 0; k < block_size / 8; ++k) {
            const int u = iq1_pack(L + 8 * k);
            int grid_index = g.map[u];
            if (grid_index < 0) {
                all_on_grid = false;
                grid_index = iq1_best_neighbour(g, g.neighbours - g.map[u] - 1, xb + 8 * k, weight + 8 * k, scale, xx,
                                                L + 8 * k);
            }
            index[k] = grid_index;
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < block_size / 8; ++k) {
                const std::int8_t* pg = g.pos + 8 * index[k];
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
        }
        int h = 0;
        for (int k = 0; k < block_size / 8; ++k) {
            y.qs[(block_size / 8) * ib + k] = static_cast<std::uint8_t>(index[k] & 255);
            h |= (index[k] >> 8) << 3 * k;
        }
        y.qh[ib] = static_cast<std::uint16_t>(h);
        scales[ib] = scale;
        shifts[ib] = best_shift;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) return;
    const float d = max_scale / 15;
    y.d = to_f16(d * 1.125f);
    const float id = 1 / d;
    for (int ib = 0; ib < qk_k / block_size; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib] - 1));
        l = imax(0, imin(7, l));
        if (shifts[ib] == -1) l |= 8;
        y.qh[ib] = static_cast<std::uint16_t>(y.qh[ib] | (l << 12));
    }
}

SF_HD void quantize_block_iq1_m(const float* xbl, const float* qwb, const detail::IqGrid& g, BlockIQ1_M& y) {
    using namespace detail;
    constexpr int block_size = 16;
    constexpr float group_max_eps_iq1_m = 1e-7f;
    const float x_p[3] = {-1 + iq1s_delta, iq1s_delta, 1 + iq1s_delta};
    const float x_m[3] = {-1 - iq1s_delta, -iq1s_delta, 1 - iq1s_delta};
    const int masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[qk_k / block_size];
    float weight[block_size];
    int idx[block_size];
    std::int8_t L[block_size];
    int index[block_size / 8];
    int shifts[qk_k / block_size];
    float sumqx[4], sumq2[4];
    std::uint16_t sc[4] = {0, 0, 0, 0};  // y.scales as little-endian uint16

    for (auto& v : y.qs) v = 0;
    for (auto& v : y.qh) v = 0;
    for (auto& v : y.scales) v = 0;
    float max_scale = 0;
    float sumx2 = 0;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / qk_k;

    auto weights_of = [&](const float* xb, int ib) {
        if (qwb) {
            const float* qw = qwb + block_size * ib;
            for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < block_size; ++i) weight[i] = xb[i] * xb[i];
        }
    };

    for (int ib = 0; ib < qk_k / block_size; ++ib) {
        const float* xb = xbl + block_size * ib;
        weights_of(xb, ib);
        float max = fabsf(xb[0]);
        for (int i = 1; i < block_size; ++i) max = fmax_ggml(max, fabsf(xb[i]));
        if (max < group_max_eps_iq1_m) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        iq1_sort(block_size, xb, idx);
        float best_score = -3.40282347e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_k = -1;
        {
            float px[2][block_size + 1];
            float pw[2][block_size + 1];
            px[0][0] = px[1][0] = 0;
            pw[0][0] = pw[1][0] = 0;
            for (int j = 0; j < block_size; ++j) {
                const int i = idx[j];
                const int h = i < block_size / 2 ? 0 : 1;
                px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                px[1 - h][j + 1] = px[1 - h][j];
                pw[h][j + 1] = pw[h][j] + weight[i];
                pw[1 - h][j + 1] = pw[1 - h][j];
            }
            const float txs[2] = {px[0][block_size], px[1][block_size]};
            const float tws[2] = {pw[0][block_size], pw[1][block_size]};
            const float p2 = x_p[2], m2 = x_m[2];
            const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
            const float cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
            const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
            const float cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
            for (int i1 = 0; i1 <= block_size; ++i1) {
                for (int i2 = i1; i2 <= block_size; ++i2) {
                    float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
                    for (int h = 0; h < 2; ++h) {
                        const float sx = px[h][i1] + px[h][i2];
                        qx_p[h] = txs[h] * p2 - sx;
                        qx_m[h] = txs[h] * m2 - sx;
                        q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                        q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                    }
                    sumqx[0] = qx_p[0] + qx_p[1];
                    sumqx[1] = qx_p[0] + qx_m[1];
                    sumqx[2] = qx_m[0] + qx_p[1];
                    sumqx[3] = qx_m[0] + qx_m[1];
                    sumq2[0] = q2_p[0] + q2_p[1];
                    sumq2[1] = q2_p[0] + q2_m[1];
                    sumq2[2] = q2_m[0] + q2_p[1];
                    sumq2[3] = q2_m[0] + q2_m[1];
                    for (int k = 0; k < 4; ++k) {
                        if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                            scale = sumqx[k] / sumq2[k];
                            best_score = scale * sumqx[k];
                            besti1 = i1;
                            besti2 = i2;
                            best_k = k;
                        }
                    }
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_k < 0) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        for (int j = 0; j < besti1; ++j) L[idx[j]] = 0;
        for (int j = besti1; j < besti2; ++j) L[idx[j]] = 1;
        for (int j = besti2; j < block_size; ++j) L[idx[j]] = 2;
        if (scale < 0) {
            for (int j = 0; j < block_size; ++j) L[j] = static_cast<std::int8_t>(2 - L[j]);
            scale = -scale;
            best_k = best_k == 0 ? 3 : best_k == 1 ? 2 : best_k == 2 ? 1 : 0;
        }
        bool all_on_grid = true;
        for (int k = 0; k < block_size / 8; ++k) {
            const float* xx = k == 0 ? (best_k < 2 ? x_p : x_m) : (best_k % 2 == 0 ? x_p : x_m);
            const int u = iq1_pack(L + 8 * k);
            int grid_index = g.map[u];
            if (grid_index < 0) {
                all_on_grid = false;
                grid_index = iq1_best_neighbour(g, g.neighbours - g.map[u] - 1, xb + 8 * k, weight + 8 * k, scale, xx,
                                                L + 8 * k);
            }
            index[k] = grid_index;
        }
        if (!all_on_grid) {
            float sumqx_f = 0, sumq2_f = 0;
            for (int k = 0; k < block_size / 8; ++k) {
                const float* xx = k == 0 ? (best_k < 2 ? x_p : x_m) : (best_k % 2 == 0 ? x_p : x_m);
                const std::int8_t* pg = g.pos + 8 * index[k];
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2];
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
            if (sumqx_f > 0 && sumq2_f > 0) scale = sumqx_f / sumq2_f;
        }
        y.qs[2 * ib + 0] = static_cast<std::uint8_t>(index[0] & 255);
        y.qs[2 * ib + 1] = static_cast<std::uint8_t>(index[1] & 255);
        y.qh[ib] = static_cast<std::uint8_t>((index[0] >> 8) | ((index[1] >> 8) << 4));
        scales[ib] = scale;
        shifts[ib] = best_k;
        max_scale = fmax_ggml(max_scale, scale);
    }
    if (!max_scale) return;

    float d = max_scale / 15;
    const float id = 1 / d;
    float sumqx_f = 0, sumq2_f = 0;
    for (int ib = 0; ib < qk_k / block_size; ++ib) {
        int l = nearest_int(0.5f * (id * scales[ib + 0] - 1));
        l = imax(0, imin(7, l));
        sc[ib / 4] = static_cast<std::uint16_t>(sc[ib / 4] | (l << 3 * (ib % 4)));
        y.qh[ib] = static_cast<std::uint8_t>(y.qh[ib] | masks[shifts[ib]]);
        const float* xb = xbl + block_size * ib;
        weights_of(xb, ib);
        for (int k = 0; k < block_size / 8; ++k) {
            const float* xx = k == 0 ? (shifts[ib] < 2 ? x_p : x_m) : (shifts[ib] % 2 == 0 ? x_p : x_m);
            const std::int8_t* pg = g.pos + 8 * (y.qs[2 * ib + k] + ((y.qh[ib] << (8 - 4 * k)) & 0x700));
            for (int j = 0; j < 8; ++j) {
                const float w = weight[8 * k + j];
                const float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                sumqx_f += w * q * xb[8 * k + j];
                sumq2_f += w * q * q;
            }
        }
    }
    if (sumq2_f > 0) d = sumqx_f / sumq2_f;
    const std::uint16_t s = to_f16(d * 1.1125f);
    sc[0] = static_cast<std::uint16_t>(sc[0] | ((s & 0x000f) << 12));
    sc[1] = static_cast<std::uint16_t>(sc[1] | ((s & 0x00f0) << 8));
    sc[2] = static_cast<std::uint16_t>(sc[2] | ((s & 0x0f00) << 4));
    sc[3] = static_cast<std::uint16_t>(sc[3] | ((s & 0xf000) << 0));
    for (int i = 0; i < 4; ++i) {
        y.scales[2 * i] = static_cast<std::uint8_t>(sc[i]);
        y.scales[2 * i + 1] = static_cast<std::uint8_t>(sc[i] >> 8);
    }
}

// ---------------------------------------------------------------- dequantization (dequantize_row_iq1_*)

SF_HD void dequantize_block_iq1_s(const BlockIQ1_S& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    const float d = f16(x.d);
    const std::uint8_t* qs = x.qs;
    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const int qh = x.qh[ib];
        const float dl = d * (2 * ((qh >> 12) & 7) + 1);
        const float delta = qh & 0x8000 ? -iq1s_delta : iq1s_delta;
        for (int l = 0; l < 4; ++l) {
            const std::int8_t* grid = g.values + 8 * (qs[l] | (((qh >> 3 * l) & 7) << 8));
            for (int j = 0; j < 8; ++j) y[j] = dl * (grid[j] + delta);
            y += 8;
        }
        qs += 4;
    }
}

SF_HD void dequantize_block_iq1_m(const BlockIQ1_M& x, const detail::IqGrid& g, float* y) {
    using namespace detail;
    std::uint16_t sc[4];
    for (int i = 0; i < 4; ++i)
        sc[i] = static_cast<std::uint16_t>(x.scales[2 * i] | (x.scales[2 * i + 1] << 8));
    const std::uint16_t su = static_cast<std::uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                                        ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
    const float d = f16(su);
    const std::uint8_t* qs = x.qs;
    const std::uint8_t* qh = x.qh;
    for (int ib = 0; ib < qk_k / 32; ++ib) {
        const float dl1 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1);
        const float dl2 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1);
        const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                            qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
        const float delta[4] = {qh[0] & 0x08 ? -iq1s_delta : iq1s_delta, qh[0] & 0x80 ? -iq1s_delta : iq1s_delta,
                                qh[1] & 0x08 ? -iq1s_delta : iq1s_delta, qh[1] & 0x80 ? -iq1s_delta : iq1s_delta};
        for (int l = 0; l < 4; ++l) {
            const float dl = l < 2 ? dl1 : dl2;
            const std::int8_t* grid = g.values + 8 * idx[l];
            for (int j = 0; j < 8; ++j) y[j] = dl * (grid[j] + delta[l]);
            y += 8;
        }
        qs += 4;
        qh += 2;
    }
}

}  // namespace shardforge::quant
