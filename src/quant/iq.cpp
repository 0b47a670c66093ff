// Grid tables and row drivers of the IQ grid quantizers (see iq.hpp). The tables follow iq2xs_init_impl /
// iq3xs_init_impl of ggml-quants.c: grid points at 2*l+1, a map from every packed level vector to its grid
// index, and for vectors off the grid the list of nearest grid points covering the nwant smallest squared
// distances, ordered by (distance, index) — the order ggml's qsort with its (distance, index) comparator gives.
#include "iq.hpp"

#include "kernels/iq1.hpp"
#include "kernels/iq2.hpp"
#include "kernels/iq3.hpp"

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

namespace shardforge::quant::iq {
namespace {

struct GridData {
    std::vector<std::int8_t> pos, values;
    std::vector<int> map;
    std::vector<std::uint16_t> neighbours;
    detail::IqGrid view{};
};

// kgrid: packed levels (bits per element), dim elements, nwant distance levels, level -> dequantized value.
// nwant == 0: only the point tables (what dequantization needs), no map or neighbour lists.
GridData build(const std::uint16_t* kgrid, int grid_size, int dim, int bits, int nwant, int (*level_value)(int)) {
    GridData g;
    const int mask = (1 << bits) - 1;
    const int kmap_size = bits == 2 ? 43692 : 4096;
    g.pos.resize(static_cast<std::size_t>(grid_size * dim));
    g.values.resize(static_cast<std::size_t>(grid_size * dim));
    for (int k = 0; k < grid_size; ++k)
        for (int i = 0; i < dim; ++i) {
            const int l = (kgrid[k] >> bits * i) & mask;
            g.pos[static_cast<std::size_t>(dim * k + i)] = static_cast<std::int8_t>(2 * l + 1);
            g.values[static_cast<std::size_t>(dim * k + i)] = static_cast<std::int8_t>(level_value(l));
        }
    if (nwant == 0) {
        g.view = detail::IqGrid{g.pos.data(), nullptr, nullptr, g.values.data(), grid_size};
        return g;
    }
    g.map.assign(static_cast<std::size_t>(kmap_size), -1);
    for (int k = 0; k < grid_size; ++k) {
        int index = 0;
        for (int i = 0; i < dim; ++i) index |= ((g.pos[static_cast<std::size_t>(dim * k + i)] - 1) / 2) << bits * i;
        g.map[static_cast<std::size_t>(index)] = k;
    }
    std::vector<int> dist2(static_cast<std::size_t>(grid_size));
    int p[8];
    for (int i = 0; i < kmap_size; ++i) {
        if (g.map[static_cast<std::size_t>(i)] >= 0) continue;
        for (int k = 0; k < dim; ++k) p[k] = 2 * ((i >> bits * k) & mask) + 1;
        for (int j = 0; j < grid_size; ++j) {
            const std::int8_t* pg = g.pos.data() + dim * j;
            int d2 = 0;
            for (int k = 0; k < dim; ++k) d2 += (pg[k] - p[k]) * (pg[k] - p[k]);
            dist2[static_cast<std::size_t>(j)] = d2;
        }
        // the nwant smallest distinct distances, ascending
        int levels[3];
        int nlev = 0;
        for (; nlev < nwant; ++nlev) {
            int best = -1;
            for (int j = 0; j < grid_size; ++j) {
                const int d = dist2[static_cast<std::size_t>(j)];
                if ((nlev == 0 || d > levels[nlev - 1]) && (best < 0 || d < best)) best = d;
            }
            if (best < 0) break;
            levels[nlev] = best;
        }
        const std::size_t start = g.neighbours.size();
        g.map[static_cast<std::size_t>(i)] = -static_cast<int>(start + 1);
        g.neighbours.push_back(0);
        for (int lv = 0; lv < nlev; ++lv)
            for (int j = 0; j < grid_size; ++j)
                if (dist2[static_cast<std::size_t>(j)] == levels[lv]) g.neighbours.push_back(static_cast<std::uint16_t>(j));
        g.neighbours[start] = static_cast<std::uint16_t>(g.neighbours.size() - start - 1);
    }
    g.view = detail::IqGrid{g.pos.data(), g.map.data(), g.neighbours.data(), g.values.data(), grid_size};
    return g;
}

enum GridId { kIq2xxs, kIq2xs, kIq2s, kIq1s, kIq3xxs, kIq3s, kGridCount };

GridId grid_id(GgmlType t) {
    switch (t) {
        case GgmlType::IQ2_XXS: return kIq2xxs;
        case GgmlType::IQ2_XS: return kIq2xs;
        case GgmlType::IQ2_S: return kIq2s;
        case GgmlType::IQ1_S: case GgmlType::IQ1_M: return kIq1s;
        case GgmlType::IQ3_XXS: return kIq3xxs;
        default: return kIq3s;
    }
}

GridData build_id(GridId id, bool search) {
    using namespace detail;
    // nwant as ggml: IQ2_XXS/IQ2_XS 2, IQ2_S 1, IQ1_S/IQ1_M 3; IQ3_XXS 2, IQ3_S 3.
    switch (id) {
        case kIq2xxs: return build(kgrid_iq2xxs, 256, 8, 2, search ? 2 : 0, iq2_level);
        case kIq2xs: return build(kgrid_iq2xs, 512, 8, 2, search ? 2 : 0, iq2_level);
        case kIq2s: return build(kgrid_iq2s, 1024, 8, 2, search ? 1 : 0, iq2_level);
        case kIq1s: return build(kgrid_iq1s, ngrid_iq1s, 8, 2, search ? 3 : 0, iq1_level);
        case kIq3xxs: return build(kgrid_iq3xxs, 256, 4, 3, search ? 2 : 0, iq3xxs_level);
        default: return build(kgrid_iq3s, 512, 4, 3, search ? 3 : 0, iq3s_level);
    }
}

// search: the full tables of a quantizer; else the point tables only (cheap, for dequantization).
const detail::IqGrid& grid_by_id(GridId id, bool search) {
    static std::array<std::once_flag, 2 * kGridCount> once;
    static std::array<GridData, 2 * kGridCount> data;
    const std::size_t k = static_cast<std::size_t>(id) + (search ? kGridCount : 0);
    std::call_once(once[k], [id, search, k] { data[k] = build_id(id, search); });
    return data[k].view;
}

template <class Block, void (*Q)(const float*, const float*, const detail::IqGrid&, Block&)>
void rows(const float* x, void* dst, std::int64_t nrows, std::int64_t n, const float* qw, const detail::IqGrid& g) {
    auto* y = static_cast<Block*>(dst);
    const std::int64_t nb = n / qk_k;
    for (std::int64_t r = 0; r < nrows; ++r)
        for (std::int64_t b = 0; b < nb; ++b)
            Q(x + r * n + qk_k * b, qw ? qw + qk_k * b : nullptr, g, y[r * nb + b]);
}

template <class Block, void (*D)(const Block&, const detail::IqGrid&, float*)>
void dequant(const void* src, float* y, std::int64_t nb, const detail::IqGrid& g) {
    const auto* x = static_cast<const Block*>(src);
    for (std::int64_t b = 0; b < nb; ++b) D(x[b], g, y + qk_k * b);
}

}  // namespace

bool is_grid_type(GgmlType type) noexcept {
    switch (type) {
        case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S: case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S: case GgmlType::IQ1_S: case GgmlType::IQ1_M:
            return true;
        default:
            return false;
    }
}

bool imatrix_mandatory(GgmlType type) noexcept {
    return type == GgmlType::IQ2_XXS || type == GgmlType::IQ2_XS || type == GgmlType::IQ1_S;
}

}  // namespace shardforge::quant::iq

namespace shardforge::quant {
bool quantize_requires_imatrix(GgmlType type) noexcept { return iq::imatrix_mandatory(type); }
}  // namespace shardforge::quant

namespace shardforge::quant::iq {

const detail::IqGrid& grid(GgmlType type) { return grid_by_id(grid_id(type), true); }

void quantize_rows(GgmlType type, const float* src, void* dst, std::int64_t nrows, std::int64_t n,
                   const float* qw) {
    if (!qw && imatrix_mandatory(type))
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("quantization to ", type_upper_name(type), " needs an importance matrix (--imatrix)"));
    const detail::IqGrid& g = grid(type);
    switch (type) {
        case GgmlType::IQ2_XXS: return rows<BlockIQ2_XXS, quantize_block_iq2_xxs>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ2_XS: return rows<BlockIQ2_XS, quantize_block_iq2_xs>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ2_S: return rows<BlockIQ2_S, quantize_block_iq2_s>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ3_XXS: return rows<BlockIQ3_XXS, quantize_block_iq3_xxs>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ3_S: return rows<BlockIQ3_S, quantize_block_iq3_s>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ1_S: return rows<BlockIQ1_S, quantize_block_iq1_s>(src, dst, nrows, n, qw, g);
        case GgmlType::IQ1_M: return rows<BlockIQ1_M, quantize_block_iq1_m>(src, dst, nrows, n, qw, g);
        default:
            throw core::Error(core::ErrorKind::Internal, "", "",
                              core::cat("iq::quantize_rows called for ", type_upper_name(type)));
    }
}

void dequantize_rows(GgmlType type, const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    const std::int64_t nb = nrows * n_per_row / qk_k;
    const detail::IqGrid& g = grid_by_id(grid_id(type), false);
    switch (type) {
        case GgmlType::IQ2_XXS: return dequant<BlockIQ2_XXS, dequantize_block_iq2_xxs>(src, dst, nb, g);
        case GgmlType::IQ2_XS: return dequant<BlockIQ2_XS, dequantize_block_iq2_xs>(src, dst, nb, g);
        case GgmlType::IQ2_S: return dequant<BlockIQ2_S, dequantize_block_iq2_s>(src, dst, nb, g);
        case GgmlType::IQ3_XXS: return dequant<BlockIQ3_XXS, dequantize_block_iq3_xxs>(src, dst, nb, g);
        case GgmlType::IQ3_S: return dequant<BlockIQ3_S, dequantize_block_iq3_s>(src, dst, nb, g);
        case GgmlType::IQ1_S: return dequant<BlockIQ1_S, dequantize_block_iq1_s>(src, dst, nb, g);
        case GgmlType::IQ1_M: return dequant<BlockIQ1_M, dequantize_block_iq1_m>(src, dst, nb, g);
        default:
            throw core::Error(core::ErrorKind::Internal, "", "",
                              core::cat("iq::dequantize_rows called for ", type_upper_name(type)));
    }
}

}  // namespace shardforge::quant::iq
