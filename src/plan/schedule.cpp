// Scheduling: row blocks, their cost and memory, and the assignment of units to ranks (docs/engine.md "The distributed
// engine").
//
// An item (one f32 tensor and its emits) is split along dim 0 into row blocks when it is large or when the memory
// budget requires it. A block boundary must respect what the item's recipe needs:
//   - every source maps a contiguous range of item rows onto whole rows of its own dim 0 (sliced 3-D sources
//     are never split), and its LoRA merge can be computed for those rows alone (lora::row_blockable);
//   - the llama Q/K permutation moves rows within a head: blocks are whole heads;
//   - a per-expert importance matrix: blocks are whole experts;
//   - quantized rows are independent (one ggml row is one row of dim -1, and an item row holds whole ggml rows).
// The granularity g is the lcm of these; block_rows is a multiple of g. Outputs do not depend on the blocks.
#include <shardforge/lora.hpp>
#include <shardforge/plan.hpp>

#include "plan_internal.hpp"

#include <algorithm>
#include <numeric>
#include <tuple>
#include <variant>

namespace shardforge::plan {
namespace {

// ---------------------------------------------------------------- cost table
// Quantizer ns per weight: `build/tests/quant_bench --benchmark_filter=ours` (our kernels, 16 x 4096 rows, no
// imatrix, CPU time per element, 2-vCPU AVX2 VM, 2026-11-22). Q8_0 3.6 vs IQ4_XS 33 (9x); the IQ2/IQ3/IQ1
// kernels are not in the bench: scalar searches, about 100x Q8_0 (estimate). Read, f32 conversion, merge (GEMM,
// adapter loading, finite checks) and write are calibrated against the quantize stage: their ratios to it in the
// run summary's stage split of a 1-thread Q4_K_M export of the 175 MB scaling-bench model (read 0.057, convert
// 0.16, merge 0.34, write 0.036 of the quantize time). Only ratios matter for balance; the absolute figures make
// --dry-run's time estimate for an idle core (tests/bench/scaling_bench.sh prints estimated vs measured).
constexpr double kReadNsPerByte = 0.3, kWriteNsPerByte = 0.5, kToF32NsPerWeight = 1.5, kMergeNsPerFlop = 0.23;

double quant_ns_per_weight(const Emit& e) {
    if (std::holds_alternative<RawEncoding>(e.encoding)) return 0.5;
    const auto* g = std::get_if<GgmlEncoding>(&e.encoding);
    if (!g) return 6.0;  // bnb4: absmax + nearest-code search per weight (estimate, like Q4_0 x 3)
    using T = quant::GgmlType;
    switch (g->type) {
        case T::F32: return 0.3;
        case T::F16: return 0.93;
        case T::BF16: return 0.53;
        case T::Q8_0: return 3.6;
        case T::Q4_0: return 1.9;
        case T::Q4_1: return 1.8;
        case T::Q5_0: return 2.5;
        case T::Q5_1: return 2.0;
        case T::Q2_K: return 9.2;
        case T::Q3_K: return 3.5;
        case T::Q4_K: return 10.3;
        case T::Q5_K: return 12.2;
        case T::Q6_K: return 8.3;
        case T::IQ4_NL: return 31.5;
        case T::IQ4_XS: return 33.0;
        case T::TQ1_0: return 3.2;
        case T::TQ2_0: return 3.3;
        case T::MXFP4: return 13.9;
        case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ3_XXS: case T::IQ3_S: case T::IQ1_S:
        case T::IQ1_M: return 360.0;
        default: return 10.0;
    }
}

constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::uint64_t kDefaultBlockF32 = 64 * kMiB;
// Process baseline (code, MPI/OpenBLAS libraries, heap of the plan): measured VmHWM of a tiny export is ~30 MiB.
constexpr std::uint64_t kRankOverhead = 48 * kMiB;

std::int64_t item_rows(const Item& it) { return it.shape.empty() ? 1 : it.shape[0]; }
std::int64_t row_elems(const Item& it) {
    const std::int64_t r = item_rows(it);
    return r > 0 ? core::numel(it.shape) / r : 0;
}

bool passthrough(const Item& it) {
    if (it.sources.size() != 1 || !it.generated.empty()) return false;
    const auto& s = it.sources[0];
    if (s.merge || s.dequant || s.sliced()) return false;
    for (const auto& e : it.emits)
        if (!copies_stored_bytes(e, s.dtype)) return false;
    return true;
}

// Rows of dim 0 a block boundary must be a multiple of; 0 when the item cannot be split.
std::int64_t granularity(const Item& it) {
    if (!it.generated.empty() || it.shape.size() < 2) return 0;
    const std::int64_t rows0 = item_rows(it), R = row_elems(it);
    if (rows0 < 2 || R == 0) return 0;
    std::int64_t g = 1, c = 0;
    for (const auto& s : it.sources) {
        if (s.shape.size() < 2 || s.shape[0] == 0) return 0;
        std::int64_t S = core::numel(s.shape) / s.shape[0];  // item elements per source row of dim 0
        if (s.outer_sliced()) {
            // A slice of dim -2 under outer dims (a fused 3-D expert tensor's gate or up half): a block reads whole
            // rows of dim 0 (whole experts), merges them and keeps the slice of each; only a merge made of whole
            // experts (PEFT target_parameters) is applied to such rows.
            if (s.merge && !lora::expert_blockable(*s.merge)) return 0;
            S = s.kept_elems() / s.shape[0];
        } else if (s.reshaped()) {
            return 0;  // a transposed or row-strided 2-D source is written in one piece
        } else if (s.sliced()) {
            const std::int64_t cols = s.shape.back();
            if ((s.row_begin * cols) % S != 0) return 0;
        }
        const std::int64_t n = s.kept_elems();
        if (n % R != 0) return 0;
        const std::int64_t gs = S / std::gcd(S, R);
        if (c % gs != 0) return 0;
        if (s.merge && !lora::row_blockable(*s.merge)) return 0;
        g = std::lcm(g, gs);
        c += n / R;
    }
    if (c != rows0 && !it.sources.empty()) return 0;
    for (const auto& e : it.emits) {
        if (e.windowed()) {
            // An expert's own tensor in its stacked item: raw rows split anywhere; a bnb 4-bit tensor (below) is
            // whole in a block, so blocks are cut at its window's edges (windows are aligned, of equal rows).
            const std::int64_t n = e.row_end - e.row_begin;
            if (!e.transforms.empty() || e.scale != 1.0f || std::holds_alternative<GgmlEncoding>(e.encoding))
                return 0;
            if (std::holds_alternative<Bnb4Encoding>(e.encoding)) {
                if (n <= 0 || e.row_begin % n != 0) return 0;
                g = std::lcm(g, n);
            }
            continue;
        }
        // bnb 4-bit: 64-element blocks run across rows and double quantization needs every absmax of the tensor.
        if (std::holds_alternative<Bnb4Encoding>(e.encoding)) return 0;
        for (const auto& t : e.transforms) {
            // A V-head tiling of rows gathers from the whole V part: the item is written in one piece.
            if (t.kind == model::TransformKind::TileVHeadRows) return 0;
            // A transposed matrix's rows are columns of its source: the item is written in one piece.
            if (t.kind == model::TransformKind::TransposeLastTwo) return 0;
            if (t.kind == model::TransformKind::PermuteLlamaHeads) {
                if (it.shape.size() != 2 || t.arg <= 0 || rows0 % t.arg != 0) return 0;
                g = std::lcm(g, rows0 / t.arg);
            }
        }
        const auto* gg = std::get_if<GgmlEncoding>(&e.encoding);
        if (gg && !gg->imatrix.empty()) {
            const std::int64_t ne0 = it.shape.back();
            const std::int64_t n_exp = static_cast<std::int64_t>(gg->imatrix.size()) / ne0;
            if (n_exp > 1) {
                if (rows0 % n_exp != 0) return 0;
                g = std::lcm(g, rows0 / n_exp);
            }
        }
    }
    return g < rows0 ? g : 0;
}

std::uint64_t lora_bytes(const Item& it) {
    std::uint64_t m = 0;
    for (const auto& s : it.sources) {
        if (!s.merge) continue;
        std::uint64_t b = 0;
        for (const auto& t : s.merge->terms)
            b += 8 * static_cast<std::uint64_t>(core::numel(t.a.shape) + core::numel(t.b.shape) + core::numel(t.m.shape));
        m = std::max(m, b);
    }
    return m;
}

// Peak bytes one worker holds for a block of k rows: while merging, the source bytes, the source rows in f32, the
// GEMM delta and the (reserved) item block in f32, plus the LoRA factors; while encoding, the block, one
// transformed copy, the dequantized check and one encoded emit. Measured peaks stay below 4 f32 blocks + the rest.
std::uint64_t working_set(const Item& it, std::int64_t k) {
    const std::int64_t rows0 = std::max<std::int64_t>(1, item_rows(it));
    const auto kk = static_cast<std::uint64_t>(k);
    const std::uint64_t f32 = kk * static_cast<std::uint64_t>(row_elems(it)) * 4;
    std::uint64_t raw = 0, wide = 0;
    for (const auto& s : it.sources) {
        raw = std::max<std::uint64_t>(raw, core::dtype_size(s.dtype));
        // An outer-sliced source is read in whole rows of dim 0: `wide` times the elements it keeps (held in f32
        // until the slice is taken).
        if (s.outer_sliced() && s.kept_elems() > 0)
            wide = std::max<std::uint64_t>(wide, static_cast<std::uint64_t>(  // rounded up: a partial slice
                                                     (core::numel(s.shape) + s.kept_elems() - 1) / s.kept_elems()));
    }
    raw *= kk * static_cast<std::uint64_t>(row_elems(it)) * std::max<std::uint64_t>(wide, 1);
    std::uint64_t enc = 0;  // the largest encoded emit of a block (a windowed emit: the window's rows in it)
    for (const auto& e : it.emits)
        enc = std::max(enc, e.windowed() ? e.nbytes / static_cast<std::uint64_t>(std::max<std::int64_t>(1, e.row_end - e.row_begin)) *
                                               static_cast<std::uint64_t>(std::min(k, e.row_end - e.row_begin))
                                         : e.nbytes / static_cast<std::uint64_t>(rows0) * kk);
    if (passthrough(it)) return raw;
    if (!it.generated.empty()) return 3 * f32 + enc + it.generated.size() * 4;
    // A quantized source's block reads its whole stored tensor and auxiliaries; MXFP4 experts only their rows, which
    // `raw` counts at the logical dtype's size.
    std::uint64_t quantized = 0;
    for (const auto& s : it.sources)
        if (s.dequant && s.dequant->kind != DequantKind::Mxfp4) {
            std::uint64_t b = s.nbytes;
            for (const auto& a : s.dequant->aux) b += a.nbytes + 4 * static_cast<std::uint64_t>(core::numel(a.shape));
            quantized = std::max(quantized, b);
        }
    std::uint64_t bnb = 0;  // bnb-nf4/fp4: rounded and unmerged copies + two f32 dequantizations for the report
    for (const auto& e : it.emits)
        if (std::holds_alternative<Bnb4Encoding>(e.encoding)) bnb = 4 * f32;
    return raw + quantized + (4 + (wide > 1 ? wide - 1 : 0)) * f32 + enc + lora_bytes(it) + bnb;
}

std::uint64_t source_bytes(const Item& it) {
    std::uint64_t b = 0;
    for (const auto& s : it.sources) b += static_cast<std::uint64_t>(s.kept_elems()) * core::dtype_size(s.dtype);
    return b;
}

}  // namespace

void append_source_values(const std::vector<float>& src, const Source& s, std::vector<float>& dst) {
    if (!s.sliced()) {
        dst.insert(dst.end(), src.begin(), src.end());
        return;
    }
    const std::size_t nd = s.shape.size();
    const std::int64_t cols = nd >= 1 ? s.shape[nd - 1] : 1;
    const std::int64_t rows = nd >= 2 ? s.shape[nd - 2] : 1;
    const std::int64_t outer = rows * cols == 0 ? 0 : core::numel(s.shape) / (rows * cols);
    const std::int64_t rb = s.row_begin, re = s.row_end < 0 ? rows : s.row_end;
    SF_CHECK(static_cast<std::int64_t>(src.size()) == outer * rows * cols, core::cat("source size of ", s.name));
    if (!s.reshaped()) {
        for (std::int64_t o = 0; o < outer; ++o) {
            const auto first = src.begin() + static_cast<std::ptrdiff_t>((o * rows + rb) * cols);
            dst.insert(dst.end(), first, first + static_cast<std::ptrdiff_t>((re - rb) * cols));
        }
        return;
    }
    // kept row r is rb + r * row_step, kept column c is col_begin + c * col_step
    const std::int64_t nc = s.kept_cols(cols);
    const std::int64_t nr = re <= rb ? 0 : (re - rb + s.row_step - 1) / s.row_step;
    for (std::int64_t o = 0; o < outer; ++o) {
        const float* m = src.data() + o * rows * cols;
        auto at = [&](std::int64_t r, std::int64_t c) {
            return m[(rb + r * s.row_step) * cols + s.col_begin + c * s.col_step];
        };
        if (s.transpose) {
            for (std::int64_t c = 0; c < nc; ++c)
                for (std::int64_t r = 0; r < nr; ++r) dst.push_back(at(r, c));
        } else {
            for (std::int64_t r = 0; r < nr; ++r)
                for (std::int64_t c = 0; c < nc; ++c) dst.push_back(at(r, c));
        }
    }
}

EmitPart emit_part(const Item& it, const Emit& e, std::int64_t row_begin, std::int64_t row_end) {
    EmitPart part;
    std::int64_t first = row_begin, last = row_end;
    if (e.windowed()) {
        part.rows = e.row_end - e.row_begin;
        first = std::max(row_begin, e.row_begin) - e.row_begin;
        last = std::min(row_end, e.row_end) - e.row_begin;
        if (first >= last) return {part.rows, 0, 0, 0, 0};
    } else {
        part.rows = item_rows(it);
    }
    part.first = first;
    part.last = last;
    if (part.rows <= 0 || part.whole()) return {part.rows, 0, std::max<std::int64_t>(part.rows, 0), 0, e.nbytes};
    const std::uint64_t per_row = e.nbytes / static_cast<std::uint64_t>(part.rows);
    part.offset = per_row * static_cast<std::uint64_t>(first);
    part.nbytes = per_row * static_cast<std::uint64_t>(last - first);
    return part;
}

bool copies_stored_bytes(const Emit& e, core::DType dtype) {
    const auto* r = std::get_if<RawEncoding>(&e.encoding);
    return r && r->dtype == dtype && e.transforms.empty() && e.scale == 1.0f;
}

StageEstimate estimate(const Plan& p, const Unit& u) {
    const Item& it = p.items[u.item];
    const double frac = static_cast<double>(u.row_end - u.row_begin) / static_cast<double>(std::max<std::int64_t>(1, item_rows(it)));
    const double weights = static_cast<double>(core::numel(it.shape)) * frac;
    StageEstimate e;
    e.read = static_cast<double>(source_bytes(it)) * frac * kReadNsPerByte * 1e-9;
    if (!passthrough(it)) e.dequant = weights * kToF32NsPerWeight * 1e-9;
    double flops = 0;
    for (const auto& s : it.sources)
        if (s.merge) flops += lora::merge_flops(*s.merge);
    e.merge = flops * frac * kMergeNsPerFlop * 1e-9;
    for (const auto& em : it.emits) {
        double w = weights, bytes = static_cast<double>(em.nbytes) * frac;
        if (em.windowed()) {  // the window's rows in the unit
            const EmitPart part = emit_part(it, em, u.row_begin, u.row_end);
            w = static_cast<double>(core::numel(it.shape)) * static_cast<double>(part.last - part.first) /
                static_cast<double>(std::max<std::int64_t>(1, item_rows(it)));
            bytes = static_cast<double>(part.nbytes);
        }
        if (!passthrough(it)) e.quantize += w * quant_ns_per_weight(em) * 1e-9;
        e.write += bytes * kWriteNsPerByte * 1e-9;
    }
    return e;
}

std::vector<Unit> units(const Plan& p) {
    std::vector<Unit> out;
    for (std::uint32_t i = 0; i < p.items.size(); ++i) {
        const Item& it = p.items[i];
        const std::int64_t rows0 = item_rows(it);
        const std::int64_t step = it.block_rows > 0 ? it.block_rows : std::max<std::int64_t>(rows0, 1);
        for (std::int64_t r = 0; r < std::max<std::int64_t>(rows0, 1); r += step) {
            Unit u;
            u.item = i;
            u.row_begin = r;
            u.row_end = std::min(rows0, r + step);
            if (rows0 <= 0) u.row_end = rows0;
            u.cost = static_cast<std::uint64_t>(estimate(p, u).total() * 1e9) + 1;
            out.push_back(u);
        }
    }
    return out;
}

std::vector<std::uint32_t> assign_units(const std::vector<Unit>& u, const Plan& p, int rank, int n_ranks) {
    // Input order: (first source file, offset, row), generated items last; ties by unit index.
    std::vector<std::uint32_t> order(u.size());
    std::iota(order.begin(), order.end(), 0u);
    auto pos = [&](std::uint32_t k) -> std::tuple<std::uint32_t, std::uint64_t, std::int64_t, std::uint32_t> {
        const Item& it = p.items[u[k].item];
        if (it.sources.empty()) return {UINT32_MAX, 0, u[k].row_begin, k};
        return {it.sources[0].file, it.sources[0].offset, u[k].row_begin, k};
    };
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return pos(a) < pos(b); });
    // Contiguous ranges cut at equal shares of the total cost: unit k goes to the rank whose share holds the
    // midpoint of its cost interval.
    long double total = 0;
    for (const auto& x : u) total += static_cast<long double>(std::max<std::uint64_t>(1, x.cost));
    std::vector<std::uint32_t> mine;
    long double before = 0;
    for (std::uint32_t k : order) {
        const long double c = static_cast<long double>(std::max<std::uint64_t>(1, u[k].cost));
        const long double mid = before + c / 2;
        before += c;
        const int r = std::min(n_ranks - 1, static_cast<int>(mid * n_ranks / total));
        if (r == rank) mine.push_back(k);
    }
    return mine;
}

namespace detail {

namespace {
void size_blocks(const Options& opt, Plan& p);
}

void schedule(const Options& opt, Plan& p) {
    // Gather mode under a budget: the window shrinks (4, 2, 1 chunks in flight) before the plan is refused.
    p.gather_window = 4;
    if (!(opt.gather && opt.max_memory_per_rank > 0)) return size_blocks(opt, p);
    for (;;) {
        try {
            return size_blocks(opt, p);
        } catch (const core::Error& e) {
            if (e.kind() != core::ErrorKind::Usage || p.gather_window == 1) throw;
            p.gather_window /= 2;
        }
    }
}

namespace {
void size_blocks(const Options& opt, Plan& p) {
    const std::uint64_t target = opt.block_target_bytes > 0 ? opt.block_target_bytes : kDefaultBlockF32;
    const int threads = std::max(1, opt.threads);
    p.threads = threads;
    p.max_memory_per_rank = opt.max_memory_per_rank;
    // Gather mode: a sending rank holds up to 2 x window encoded chunks (its queue and its sends in flight); an
    // encoded block is at most its f32 block, i.e. under a quarter of a worker's working set: window / 2 slots.
    const int slots = threads + (opt.gather ? (p.gather_window + 1) / 2 : 0);
    std::uint64_t per_slot = UINT64_MAX;
    std::uint64_t overhead = kRankOverhead;
    for (const auto& f : p.files) overhead += 2 * (f.header.size() + f.name.size());
    for (const auto& it : p.items) {
        overhead += 2 * (512 * (it.sources.size() + it.emits.size()) + it.generated.size() * 4);
        for (const auto& e : it.emits)
            if (const auto* g = std::get_if<GgmlEncoding>(&e.encoding)) overhead += 2 * g->imatrix.size() * 4;
    }
    if (opt.max_memory_per_rank > 0) {
        if (opt.max_memory_per_rank <= overhead)
            throw core::Error(core::ErrorKind::Usage, "", "",
                              core::cat("--max-memory-per-rank ", opt.max_memory_per_rank,
                                        " bytes is below the fixed per-rank overhead of about ", overhead,
                                        " bytes (process, libraries, plan)"));
        per_slot = (opt.max_memory_per_rank - overhead) / static_cast<std::uint64_t>(slots);
    }
    p.peak_item_bytes = 0;
    for (auto& it : p.items) {
        const std::int64_t rows0 = item_rows(it);
        const std::int64_t R = row_elems(it);
        const std::int64_t g = granularity(it);
        it.block_rows = 0;
        const bool whole_fits = working_set(it, rows0) <= per_slot &&
                                (static_cast<std::uint64_t>(core::numel(it.shape)) * 4 <= target || g == 0);
        if (!whole_fits && g > 0) {
            // Largest multiple of g within the f32 target and the per-worker budget.
            std::int64_t k = std::max<std::int64_t>(g, static_cast<std::int64_t>(target / (4 * static_cast<std::uint64_t>(R))) / g * g);
            while (k > g && working_set(it, k) > per_slot) k = std::max(g, (k / 2) / g * g);
            if (working_set(it, k) > per_slot)
                throw core::Error(core::ErrorKind::Usage, "", it.emits.empty() ? "" : it.emits[0].name,
                                  core::cat("--max-memory-per-rank: the smallest row block (", g, " rows) needs about ",
                                            working_set(it, k), " bytes per worker, the budget allows ", per_slot,
                                            " with ", threads, " thread(s); raise the budget or lower --threads"));
            if (k < rows0) it.block_rows = k;
        } else if (!whole_fits) {
            throw core::Error(core::ErrorKind::Usage, "", it.emits.empty() ? "" : it.emits[0].name,
                              core::cat("--max-memory-per-rank: this tensor cannot be split into row blocks and needs ",
                                        "about ", working_set(it, rows0), " bytes per worker, the budget allows ",
                                        per_slot, " with ", threads, " thread(s)"));
        }
        const std::int64_t k = it.block_rows > 0 ? it.block_rows : rows0;
        p.peak_item_bytes = std::max(p.peak_item_bytes, working_set(it, k));
    }
    p.peak_rank_bytes = overhead + static_cast<std::uint64_t>(slots) * p.peak_item_bytes;
    const std::vector<Unit> all = units(p);
    for (auto& it : p.items) it.cost = 0;
    for (const auto& u : all) p.items[u.item].cost += u.cost;
}
}  // namespace

}  // namespace detail
}  // namespace shardforge::plan
