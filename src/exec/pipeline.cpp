// The unit pipeline (pipeline.hpp). One unit of work, the same code for plain exports, batch variants and
// pass-through tensors: the unit's share of each source is read once (stored bytes, then f32: widened, or
// dequantized as its plan::Dequant says); then each pass (the item's own merges and emits, then every batch
// plan::Variant) merges its copy of the unmerged values, transforms, encodes and writes every emit, exactly as a
// separate export builds them. A pass that writes its one unmodified 16-bit source in its own dtype copies the
// stored bytes instead (no f32 round trip).
#include "pipeline.hpp"

#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>

#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <span>
#include <tuple>
#include <utility>
#include <variant>

namespace shardforge::exec {
namespace {

// LoRA merge of one source (or row block) that also measures the delta when the report wants it.
template <class F>
void merge_measured(std::vector<float>& w, Counters& c, resume::UnitRecord& rec, F&& apply) {
    if (!c.want_delta) {
        apply();
        return;
    }
    const std::vector<float> before = w;
    apply();
    double dw2 = 0, w2 = 0;
    accumulate_delta(before, w, dw2, w2);
    rec.dw2 = std::max(0.0, rec.dw2) + dw2;
    rec.w2 += w2;
}

// Sum of squared differences and of squared references over n elements, in 8 interleaved partial sums (element i
// goes to sum i % 8; the 8 are added in order at the end): independent adds the compiler vectorizes, where one
// running sum is a chain of dependent adds. A fixed order: the same sums for the same unit on any machine.
std::pair<double, double> sq_error(const float* x, const float* y, std::int64_t n) {
    constexpr int L = 8;
    double e[L] = {}, r[L] = {};
    std::int64_t i = 0;
    for (; i + L <= n; i += L)
        for (int k = 0; k < L; ++k) {
            const double d = static_cast<double>(y[i + k]) - x[i + k];
            e[k] += d * d;
            r[k] += static_cast<double>(x[i + k]) * x[i + k];
        }
    for (int k = 0; i < n; ++i, ++k) {
        const double d = static_cast<double>(y[i]) - x[i];
        e[k] += d * d;
        r[k] += static_cast<double>(x[i]) * x[i];
    }
    double err = 0, ref = 0;
    for (int k = 0; k < L; ++k) err += e[k], ref += r[k];
    return {err, ref};
}

// Squared error and squared reference of the quantized bytes against the f32 values they were made from.
std::pair<double, double> quant_sq_error(quant::GgmlType type, const std::vector<float>& v, const core::Shape& shape,
                                         const std::vector<std::byte>& bytes) {
    const std::int64_t ne0 = shape.empty() ? 1 : shape.back();
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    // A few rows at a time: the dequantized copy stays in cache instead of being a second tensor-sized buffer.
    const std::int64_t chunk = std::max<std::int64_t>(1, (64 << 10) / std::max<std::int64_t>(1, ne0));
    const std::size_t row_bytes = quant::row_bytes(type, ne0);
    std::vector<float> back(static_cast<std::size_t>(std::min(nrows, chunk) * ne0));
    double err = 0, ref = 0;
    for (std::int64_t r0 = 0; r0 < nrows; r0 += chunk) {
        const std::int64_t nr = std::min(chunk, nrows - r0);
        quant::dequantize_rows(type, bytes.data() + static_cast<std::size_t>(r0) * row_bytes, back.data(), nr, ne0);
        const auto [e, r] = sq_error(v.data() + r0 * ne0, back.data(), nr * ne0);
        err += e;
        ref += r;
    }
    return {err, ref};
}

// A quantized source's logical values (plan::Dequant) for elements [k0, k1) of the flattened tensor: `raw` is the
// whole stored tensor, the auxiliary tensors are read whole and widened to f32, then the quant kernels. MXFP4: `raw`
// holds the blocks of elements [raw_first, ...) only (whole rows, UnitSources::read_raw), and only their scales
// are read.
void dequantize_source(FileTable& files, const plan::Plan& p, const plan::Source& s, const std::vector<std::byte>& raw,
                       Counters& c, std::int64_t k0, std::int64_t k1, float* out, Backend& be,
                       std::int64_t raw_first) {
    const plan::Dequant& d = *s.dequant;
    if (d.kind == plan::DequantKind::Mxfp4) {
        const plan::AuxTensor& a = d.aux.at(0);
        std::vector<std::byte> scales(raw.size() / 16);  // one E8M0 byte per 16 bytes of blocks
        pread_all(files.input(a.file), scales, a.offset + static_cast<std::uint64_t>(raw_first / 32),
                  p.input_files[a.file], a.name);
        c.bytes_read += scales.size();
        quant::dequant_mxfp4(reinterpret_cast<const std::uint8_t*>(raw.data()),
                             reinterpret_cast<const std::uint8_t*>(scales.data()), k0 - raw_first, k1 - raw_first, out);
        return;
    }
    std::vector<std::vector<float>> aux_f32;
    std::vector<std::vector<std::byte>> aux_raw;
    for (const auto& a : d.aux) {
        std::vector<std::byte> b(a.nbytes);
        pread_all(files.input(a.file), b, a.offset, p.input_files[a.file], a.name);
        c.bytes_read += a.nbytes;
        std::vector<float> f;
        if (core::is_float(a.dtype)) {
            f.resize(static_cast<std::size_t>(core::numel(a.shape)));
            formats::to_f32(a.dtype, b.data(), f.data(), f.size());
        }
        aux_f32.push_back(std::move(f));
        aux_raw.push_back(std::move(b));
    }
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(raw.data());
    switch (d.kind) {
        case plan::DequantKind::Bnb4: {
            quant::Bnb4View v;
            v.packed = bytes;
            v.code = aux_f32[1].data();
            v.blocksize = d.blocksize;
            if (d.nested) {
                v.absmax_code = reinterpret_cast<const std::uint8_t*>(aux_raw[0].data());
                v.nested_absmax = aux_f32[2].data();
                v.nested_code = aux_f32[3].data();
                v.nested_blocksize = d.nested_blocksize;
                v.nested_offset = d.nested_offset;
            } else {
                v.absmax = aux_f32[0].data();
            }
            v.out_dtype = s.dtype;
            be.dequant_bnb4(v, k0, k1, out);
            break;
        }
        case plan::DequantKind::Int8:
            be.dequant_int8(reinterpret_cast<const std::int8_t*>(bytes), aux_f32[0].data(), s.shape.back(), k0, k1, out);
            break;
        case plan::DequantKind::Mxfp4: break;  // above
        case plan::DequantKind::PackedInt:
            quant::dequant_packed_int(bytes, aux_f32[0].data(), s.shape[1],
                                      static_cast<std::int64_t>(raw.size() / 4) / s.shape[0], d.bits, d.blocksize, k0,
                                      k1, out);
            break;
        case plan::DequantKind::Fp8: {
            quant::Fp8View v;
            v.w = bytes;
            v.e5m2 = d.stored == core::DType::F8_E5M2;
            v.scale = aux_f32[0].data();
            v.rows = s.shape[0];
            v.cols = s.shape[1];
            v.block_rows = d.block_rows;
            v.block_cols = d.block_cols;
            be.dequant_fp8(v, k0, k1, out);
            break;
        }
    }
}

// Rows [row_begin, row_end) of dim -2 and the column selection, for every outer index, appended to dst.
void append_rows(const std::vector<float>& src, const plan::Source& s, std::vector<float>& dst) {
    plan::append_source_values(src, s, dst);
}

lora::LoadF32 adapter_loader(FileTable& files, Counters& c) {
    return [&files, &c](const lora::TensorRef& ref) {
        const auto& rd = files.adapter(ref.adapter);
        const auto& t = rd.at(ref.key);
        std::vector<std::byte> raw(t.nbytes);
        rd.read(t, 0, raw);
        c.bytes_read += t.nbytes;
        std::vector<float> f(static_cast<std::size_t>(core::numel(t.shape)));
        formats::to_f32(t.dtype, raw.data(), f.data(), f.size());
        return f;
    };
}

// One pass over the unit: a merge per source (Item::sources order; null: none) and the emits it writes. `rec`: the
// journal/report record of the item's own emits (the journal covers those only); null for batch variants.
struct Pass {
    std::vector<const lora::MergeTarget*> merges;
    const std::vector<plan::Emit>* emits = nullptr;
    resume::UnitRecord* rec = nullptr;
};

std::vector<Pass> passes_of(const plan::Item& it, resume::UnitRecord& rec) {
    std::vector<Pass> out;
    Pass own{{}, &it.emits, &rec};
    for (const auto& s : it.sources) own.merges.push_back(s.merge ? &*s.merge : nullptr);
    out.push_back(std::move(own));
    for (const auto& v : it.variants) {
        Pass pv{{}, &v.emits, nullptr};
        for (const auto& m : v.merges) pv.merges.push_back(m ? &*m : nullptr);
        out.push_back(std::move(pv));
    }
    return out;
}

bool is_passthrough(const plan::Item& it, const Pass& pass) {
    if (it.sources.size() != 1 || !it.generated.empty() || pass.merges[0]) return false;
    const auto& s = it.sources[0];
    if (s.dequant || s.sliced()) return false;
    return std::all_of(pass.emits->begin(), pass.emits->end(),
                       [&](const plan::Emit& e) { return plan::copies_stored_bytes(e, s.dtype); });
}

// The unit's rows of the item: [row_begin, row_end) of dim 0; `whole` when that is the entire item.
struct UnitRows {
    std::int64_t rows0 = 1, row_begin = 0, row_end = 1;
    bool whole = true;
    // Byte range [first, first + second) of an emit of `nbytes` (or of the single source) that the unit covers.
    [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> range(std::uint64_t nbytes) const {
        if (whole || rows0 <= 0) return {0, nbytes};
        const std::uint64_t per_row = nbytes / static_cast<std::uint64_t>(rows0);
        return {per_row * static_cast<std::uint64_t>(row_begin), per_row * static_cast<std::uint64_t>(row_end - row_begin)};
    }
};

UnitRows unit_rows(const plan::Item& it, const plan::Unit& u) {
    UnitRows r;
    r.rows0 = it.shape.empty() ? 1 : it.shape[0];
    r.row_begin = u.row_begin;
    r.row_end = u.row_end;
    r.whole = u.row_begin == 0 && u.row_end == r.rows0;
    return r;
}

// The unit's share of each source, loaded on first use and kept while a later pass needs it. Whole unit: the whole
// source (its dim -2 slice is taken after merging, append_rows), except a row slice of a 2-D source, which reads and
// merges its rows only (`trimmed`: Qwen3-Next's attn_qkv is six slices of in_proj_qkvz; Gemma3's token_embd one).
// Row block: each source contributes a contiguous range of item rows, made of whole rows [sr0, sr1) of its own dim 0.
class UnitSources {
public:
    struct Share {
        std::size_t k = 0;            // index into Item::sources
        std::int64_t sr0 = 0, sr1 = 0;
        std::vector<std::byte> raw;   // stored bytes of the rows (quantized: the whole stored tensor)
        std::vector<float> f32;       // unmerged values of the rows
        bool loaded = false, widened = false;
        bool trimmed = false;         // whole unit, but only the slice's rows [sr0, sr1) (merged with apply_rows)
        std::int64_t raw_first = 0;   // first element of the source whose stored bytes `raw` begins with
    };
    // Rows [sr0, sr1) rather than the whole source are read.
    [[nodiscard]] bool partial(const Share& sh) const { return !rows_.whole || sh.trimmed; }

    UnitSources(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, bool keep_raw, StageTimer& tm)
        : ctx_(ctx), it_(it), rows_(rows), keep_raw_(keep_raw), tm_(tm) {
        if (rows.whole) {
            for (std::size_t k = 0; k < it.sources.size(); ++k) {
                const auto& s = it.sources[k];
                if (trimmable(it, k))
                    shares_.push_back({k, s.row_begin, s.slice_end(), {}, {}, false, false, true});
                else
                    shares_.push_back({k, 0, s.shape.empty() ? 1 : s.shape[0], {}, {}, false, false});
            }
            return;
        }
        const std::int64_t R = core::numel(it.shape) / it.shape[0];
        std::int64_t c0 = 0;  // first item row of the current source
        for (std::size_t k = 0; k < it.sources.size(); ++k) {
            const auto& s = it.sources[k];
            // Item rows [c0, c0 + n_rows_item) come from this source; the share is their overlap with the unit.
            const std::int64_t n_rows_item = s.kept_elems() / R;
            const std::int64_t x = std::max(rows.row_begin, c0), y = std::min(rows.row_end, c0 + n_rows_item);
            if (x < y && s.outer_sliced()) {
                // A slice of dim -2 under outer dims: whole rows of dim 0 are read, the slice is taken per row
                // (pass_values); `kept` item elements per row of dim 0 (plan/schedule.cpp granularity).
                const std::int64_t kept = s.kept_elems() / s.shape[0];
                shares_.push_back({k, (x - c0) * R / kept, (y - c0) * R / kept, {}, {}, false, false});
            } else if (x < y) {
                const std::int64_t S = core::numel(s.shape) / s.shape[0];
                const std::int64_t base_row = s.sliced() ? s.row_begin : 0;
                shares_.push_back({k, base_row + (x - c0) * R / S, base_row + (y - c0) * R / S, {}, {}, false, false});
            }
            c0 += n_rows_item;
        }
    }
    std::vector<Share>& shares() { return shares_; }
    // Loads the share's stored bytes and, with `f32`, its unmerged values (the bytes are then dropped unless a
    // pass-through pass needs them).
    Share& load(Share& sh, bool f32) {
        const plan::Source& s = it_.sources[sh.k];
        if (!sh.loaded) {
            read_raw(s, sh);
            sh.loaded = true;
        }
        if (f32 && !sh.widened) {
            // Elements [k0, k1) of the flattened source.
            std::int64_t k0 = 0, k1 = core::numel(s.shape);
            if (partial(sh)) {
                const std::int64_t S = core::numel(s.shape) / s.shape[0];
                k0 = sh.sr0 * S;
                k1 = sh.sr1 * S;
            }
            sh.f32.resize(static_cast<std::size_t>(k1 - k0));
            if (s.dequant)
                dequantize_source(ctx_.files, ctx_.p, s, sh.raw, ctx_.c, k0, k1, sh.f32.data(), ctx_.backend,
                                  sh.raw_first);
            else
                formats::to_f32(s.dtype, sh.raw.data(), sh.f32.data(), sh.f32.size());
            sh.widened = true;
            tm_.lap(kDequant);
            if (!keep_raw_) std::vector<std::byte>().swap(sh.raw);
        }
        return sh;
    }

private:
    // A 2-D source sliced to rows of dim 0 (no step, column selection or transpose) whose every merge (own pass and
    // batch variants) can be applied to rows.
    static bool trimmable(const plan::Item& it, std::size_t k) {
        const auto& s = it.sources[k];
        if (s.shape.size() != 2 || s.reshaped() || (s.row_begin == 0 && s.row_end < 0)) return false;
        if (s.merge && !lora::row_blockable(*s.merge)) return false;
        for (const auto& v : it.variants)
            if (k < v.merges.size() && v.merges[k] && !lora::row_blockable(*v.merges[k])) return false;
        return true;
    }

public:
    // The stored bytes [offset, offset + length) of the source that the share reads: a row block of a 16-bit source
    // reads its rows, and so does one of MXFP4 experts (half a byte per element, whole rows of 32-element blocks);
    // other quantized sources are read whole (0.5-1 byte/element).
    [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> stored_range(const Share& sh) const {
        const plan::Source& s = it_.sources[sh.k];
        if (!partial(sh) || (s.dequant && s.dequant->kind != plan::DequantKind::Mxfp4)) return {0, s.nbytes};
        const auto row_elems = static_cast<std::uint64_t>(core::numel(s.shape) / s.shape[0]);
        const std::uint64_t row_bytes = s.dequant ? row_elems / 2 : core::dtype_size(s.dtype) * row_elems;
        return {row_bytes * static_cast<std::uint64_t>(sh.sr0), row_bytes * static_cast<std::uint64_t>(sh.sr1 - sh.sr0)};
    }

private:
    void read_raw(const plan::Source& s, Share& sh) {
        const auto [off, len] = stored_range(sh);
        if (partial(sh) && s.dequant && s.dequant->kind == plan::DequantKind::Mxfp4)  // rows: where they begin
            sh.raw_first = static_cast<std::int64_t>(core::numel(s.shape) / s.shape[0]) * sh.sr0;
        sh.raw.resize(len);
        pread_all(ctx_.files.input(s.file), sh.raw, s.offset + off, ctx_.p.input_files[s.file], s.name);
        ctx_.c.bytes_read += len;
        ctx_.c.input_read += len;
        tm_.lap(kRead);
    }

    const UnitCtx& ctx_;
    const plan::Item& it_;
    const UnitRows& rows_;
    bool keep_raw_;
    StageTimer& tm_;
    std::vector<Share> shares_;
};

// A pass's f32 values of the unit's rows: each source's unmerged values, merged with the pass's target, sliced and
// concatenated along dim 0. `last`: no later pass needs the unmerged values (they are moved, not copied).
// `unmerged`: also the values before merging (the bnb re-quantization report).
std::vector<float> pass_values(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, UnitSources& src,
                               const Pass& pass, bool last, StageTimer& tm, std::vector<float>* unmerged) {
    if (!it.generated.empty()) return it.generated;
    const lora::LoadF32 load = adapter_loader(ctx.files, ctx.c);
    const std::int64_t n = rows.whole ? core::numel(it.shape)
                                      : (rows.row_end - rows.row_begin) * (core::numel(it.shape) / rows.rows0);
    std::vector<float> vals;
    for (auto& sh : src.shares()) {
        const plan::Source& s = it.sources[sh.k];
        src.load(sh, true);
        auto add = [&](const std::vector<float>& w, std::vector<float>& dst) {
            if (rows.whole && !sh.trimmed) {
                append_rows(w, s, dst);
            } else if (s.outer_sliced()) {  // rows [sr0, sr1) of dim 0, sliced like the whole source
                plan::Source part = s;
                part.shape[0] = sh.sr1 - sh.sr0;
                append_rows(w, part, dst);
            } else {
                dst.insert(dst.end(), w.begin(), w.end());
            }
        };
        // The values of a source that is the whole of them (no slice to take) become `vals` without a copy.
        auto add_owned = [&](std::vector<float>&& w) {
            const bool plain = rows.whole && !sh.trimmed ? !s.sliced() : !s.outer_sliced();
            if (plain && vals.empty() && static_cast<std::int64_t>(w.size()) == n) {
                vals = std::move(w);
                return;
            }
            if (vals.capacity() < static_cast<std::size_t>(n)) vals.reserve(static_cast<std::size_t>(n));
            add(w, vals);
        };
        if (unmerged) add(sh.f32, *unmerged);
        const lora::MergeTarget* m = pass.merges[sh.k];
        if (!m) {
            if (last) {
                add_owned(std::move(sh.f32));
                std::vector<float>().swap(sh.f32);
            } else {
                if (vals.capacity() < static_cast<std::size_t>(n)) vals.reserve(static_cast<std::size_t>(n));
                add(sh.f32, vals);
            }
            continue;
        }
        std::vector<float> w = last ? std::move(sh.f32) : sh.f32;
        auto apply = [&] {
            if (rows.whole && !sh.trimmed) lora::apply(*m, w, s.shape, load, ctx.backend.matmul(), ctx.backend.dora());
            else lora::apply_rows(*m, w, s.shape, sh.sr0, sh.sr1, load, ctx.backend.matmul(), ctx.backend.dora());
        };
        if (pass.rec) merge_measured(w, ctx.c, *pass.rec, apply);
        else apply();
        tm.lap(kMerge);
        add_owned(std::move(w));
    }
    SF_CHECK(static_cast<std::int64_t>(vals.size()) == n, "item size");
    return vals;
}

// A pass whose emits copy the one source's stored bytes (is_passthrough).
void write_passthrough(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, UnitSources& src,
                       const Pass& pass, StageTimer& tm) {
    const auto& sh = src.load(src.shares().at(0), false);
    const std::uint64_t nans = pass.rec ? count_nans_raw(it.sources[0].dtype, sh.raw) : 0;
    const resume::Digest sha = pass.rec ? resume::sha256(sh.raw) : resume::Digest{};
    for (std::size_t ie = 0; ie < pass.emits->size(); ++ie) {
        const auto& e = (*pass.emits)[ie];
        const auto [off, len] = rows.range(e.nbytes);
        SF_CHECK(len == sh.raw.size(), core::cat("size of ", e.name));
        ctx.sink.write(e.file, e.offset + off, sh.raw, e.name);
        ctx.c.bytes_written += len;
        if (pass.rec) {
            pass.rec->emits[ie].sha = sha;
            pass.rec->emits[ie].nan_count = nans;
        }
    }
    tm.lap(kWrite);
}

// The values an emit encodes: `vals`, or a copy with the emit's transforms and scale applied.
const std::vector<float>& emit_values(const plan::Emit& e, const std::vector<float>& vals, const core::Shape& shape,
                                      const UnitRows& rows, std::vector<float>& tmp) {
    if (e.transforms.empty() && e.scale == 1.0f) return vals;
    tmp = vals;
    for (auto t : e.transforms) {
        // A block holds whole heads: the permutation of k rows has k / (rows per head) heads.
        if (t.kind == model::TransformKind::PermuteLlamaHeads && !rows.whole)
            t.arg = t.arg * (rows.row_end - rows.row_begin) / rows.rows0;
        model::apply_transform(t, tmp.data(), shape);
    }
    if (e.scale != 1.0f)
        for (float& x : tmp) x *= e.scale;
    return tmp;
}

// One emit of a pass, for its writer: the values to encode (after the emit's transforms and scale) of the unit's
// rows, and the journal/report record of the emit (null for batch variants).
struct EmitJob {
    const UnitCtx& ctx;
    const plan::Item& it;
    const UnitRows& rows;
    const plan::Emit& e;
    const std::vector<float>& v;
    const core::Shape& shape;     // of the unit's rows
    const core::Shape& full;      // of the emit's whole tensor (the item's, or its window's plan::Emit::shape)
    resume::EmitFacts* er;
    StageTimer& tm;
};

// Writes the encoded bytes of the unit's range of a raw or ggml emit (`off` into the emit) and records them.
void put_rows(const EmitJob& j, std::uint64_t off, const std::vector<std::byte>& bytes) {
    j.ctx.sink.write(j.e.file, j.e.offset + off, bytes, j.e.name);
    j.ctx.c.bytes_written += bytes.size();
    j.tm.lap(kWrite);
    if (j.er) {
        j.er->sha = resume::sha256(bytes);
        j.er->nan_count = count_nans(j.v);
    }
}

void write_raw(const EmitJob& j, const plan::RawEncoding& r) {
    const auto [off, len] = j.rows.range(j.e.nbytes);
    std::vector<std::byte> bytes(len);
    formats::encode_rows(r, j.v, bytes, j.e.name);
    j.tm.lap(kQuantize);
    put_rows(j, off, bytes);
}

// An MXFP4 emit of an unmerged MXFP4 source (gpt-oss's *_blocks, whole experts or a row-strided choice of their
// rows): the stored blocks repacked into ggml's layout (quant::repack_mxfp4), so the bytes are the converter's and
// no value goes through a second quantization.
bool mxfp4_repacks(const plan::Item& it, const Pass& pass, const plan::Emit& e) {
    const auto* g = std::get_if<plan::GgmlEncoding>(&e.encoding);
    if (!g || g->type != quant::GgmlType::MXFP4 || !e.transforms.empty() || e.scale != 1.0f || e.windowed())
        return false;
    if (it.sources.size() != 1 || !it.generated.empty() || pass.merges[0]) return false;
    const plan::Source& s = it.sources[0];
    return s.dequant && s.dequant->kind == plan::DequantKind::Mxfp4 && s.shape.size() == 3 && it.shape.size() == 3 &&
           it.shape[0] == s.shape[0] && it.shape[2] == s.shape[2] && s.col_step == 1 && s.col_end < 0 && !s.transpose &&
           s.row_end < 0 && s.shape[2] % 32 == 0;
}

void write_mxfp4_repack(const EmitJob& j) {
    const plan::Source& s = j.it.sources[0];
    const plan::AuxTensor& scales = s.dequant->aux.at(0);
    const std::int64_t rows = s.shape[1], nb = s.shape[2] / 32, kept = j.it.shape[1];
    const std::int64_t e0 = j.rows.whole ? 0 : j.rows.row_begin, e1 = j.rows.whole ? s.shape[0] : j.rows.row_end;
    const auto per_expert = static_cast<std::uint64_t>(rows * nb);
    std::vector<std::byte> blocks(per_expert * 16 * static_cast<std::uint64_t>(e1 - e0)),
        scale(per_expert * static_cast<std::uint64_t>(e1 - e0));
    pread_all(j.ctx.files.input(s.file), blocks, s.offset + per_expert * 16 * static_cast<std::uint64_t>(e0),
              j.ctx.p.input_files[s.file], s.name);
    pread_all(j.ctx.files.input(scales.file), scale, scales.offset + per_expert * static_cast<std::uint64_t>(e0),
              j.ctx.p.input_files[scales.file], scales.name);
    j.ctx.c.bytes_read += blocks.size() + scale.size();
    const auto [off, len] = j.rows.range(j.e.nbytes);
    std::vector<std::byte> bytes(len);
    SF_CHECK(len == static_cast<std::uint64_t>((e1 - e0) * kept * nb * 17), core::cat("size of ", j.e.name));
    const auto* b = reinterpret_cast<const std::uint8_t*>(blocks.data());
    const auto* sc = reinterpret_cast<const std::uint8_t*>(scale.data());
    auto* out = reinterpret_cast<std::uint8_t*>(bytes.data());
    for (std::int64_t e = 0; e < e1 - e0; ++e)
        for (std::int64_t k = 0; k < kept; ++k) {
            const std::int64_t r = e * rows + s.row_begin + k * s.row_step;
            quant::repack_mxfp4(b + r * nb * 16, sc + r * nb, nb, out + (e * kept + k) * nb * 17);
        }
    j.tm.lap(kQuantize);
    put_rows(j, off, bytes);
}

// What re-quantizing merged MXFP4 experts kept of the LoRA delta (the MXFP4 counterpart of requant_stat below):
// `base` holds the unmerged values W, exact since they came from MXFP4; dW = merged - W; the values written
// differently from W, and ||deq(Q(W + dW)) - W - dW||^2 against ||dW||^2 as sums over the unit's rows.
BnbStat mxfp4_requant_stat(const EmitJob& j, const std::vector<std::byte>& bytes, const std::vector<float>& base) {
    const std::int64_t ne0 = j.shape.empty() ? 1 : j.shape.back();
    const auto n = static_cast<std::int64_t>(j.v.size());
    std::vector<float> back(j.v.size());
    quant::dequantize_rows(quant::GgmlType::MXFP4, bytes.data(), back.data(), ne0 == 0 ? 0 : n / ne0, ne0);
    BnbStat st{j.e.file, j.e.name, n, 0, 0};
    st.mxfp4 = true;
    for (std::size_t i = 0; i < j.v.size(); ++i) {
        const double dw = static_cast<double>(j.v[i]) - base[i];
        const double applied = static_cast<double>(back[i]) - base[i];
        st.changed_codes += back[i] != base[i];
        st.delta_err2 += (applied - dw) * (applied - dw);
        st.delta_ref2 += dw * dw;
    }
    return st;
}

// Every source is MXFP4 (gpt-oss's experts): the unmerged values are exact MXFP4 values, as mxfp4_requant_stat
// assumes; other bases quantized to MXFP4 get no re-quantization report.
bool mxfp4_experts(const plan::Item& it) {
    return !it.sources.empty() && std::all_of(it.sources.begin(), it.sources.end(), [](const plan::Source& s) {
        return s.dequant && s.dequant->kind == plan::DequantKind::Mxfp4;
    });
}

// A ggml emit, with the quantization error of the quantized types (not F32/F16/BF16) for the report and summary.
// `base`: the emit's unmerged values when it re-quantizes merged MXFP4 experts (mxfp4_requant_stat), else null.
void write_ggml(const EmitJob& j, const plan::GgmlEncoding& g, const std::vector<float>* base) {
    const auto [off, len] = j.rows.range(j.e.nbytes);
    const std::int64_t ne0 = j.full.empty() ? 1 : j.full.back();
    const std::int64_t n_rows = ne0 == 0 ? 0 : core::numel(j.full) / ne0;  // of ne0 values, whole tensor
    const std::int64_t row0 = j.rows.whole ? 0 : n_rows / j.rows.rows0 * j.rows.row_begin;
    std::vector<std::byte> bytes(len);
    Backend& be = j.ctx.backend;
    formats::encode_rows(g, j.v, ne0, row0, n_rows, bytes,
                         [&be](quant::GgmlType t, const float* src, void* dst, std::int64_t nrows, std::int64_t n,
                               const float* qw) { be.quantize_rows(t, src, dst, nrows, n, qw); },
                         j.e.name);
    using T = quant::GgmlType;
    if (g.type != T::F32 && g.type != T::F16 && g.type != T::BF16) {
        const auto [err, ref] = quant_sq_error(g.type, j.v, j.shape, bytes);
        if (j.er) {
            j.er->q_err2 = err;
            j.er->q_ref2 = ref;
        }
        j.ctx.c.weights_quantized += j.v.size();
        std::lock_guard lock(j.ctx.c.mu);
        auto& acc = j.ctx.c.quant_err[{j.e.file, j.e.name}];
        acc.first += err;
        acc.second += ref;
    }
    if (base && g.type == T::MXFP4) {
        BnbStat st = mxfp4_requant_stat(j, bytes, *base);
        std::lock_guard lock(j.ctx.c.mu);
        j.ctx.c.bnb_stats.push_back(std::move(st));
    }
    j.tm.lap(kQuantize);
    put_rows(j, off, bytes);
}

// What re-quantization kept of the LoRA delta of a bnb4 emit, given `base`, the unmerged values of the merged
// tensor: the fraction of 4-bit codes that differ between Q(W) and Q(W + dW), and
// ||deq(Q(W + dW)) - deq(Q(W)) - dW|| / ||dW|| with dW = merged f32 - base f32 exactly (1.0 when the delta vanished
// entirely; deq in fp32 with the absmax a reader reconstructs). `q`: Q(W + dW) as written.
BnbStat requant_stat(const plan::Emit& e, const plan::Bnb4Encoding& b, const quant::Bnb4Tensor& q,
                     const std::vector<float>& v, const std::vector<float>& base) {
    const auto n = static_cast<std::int64_t>(v.size());
    quant::Bnb4Tensor qb;
    quant::bnb4_quantize(b.spec, formats::bnb4_rounded(b.dtype, base).data(), n, qb);
    std::int64_t changed = 0;
    for (std::int64_t k = 0; k < n; ++k) {
        const std::uint8_t x = q.packed[static_cast<std::size_t>(k / 2)], y = qb.packed[static_cast<std::size_t>(k / 2)];
        changed += (k & 1) ? ((x & 15) != (y & 15)) : ((x >> 4) != (y >> 4));
    }
    std::vector<float> dq(v.size()), dqb(v.size());
    quant::bnb4_dequantize(b.spec, q, dq.data(), n);
    quant::bnb4_dequantize(b.spec, qb, dqb.data(), n);
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double dw = static_cast<double>(v[i] - base[i]);
        const double applied = static_cast<double>(dq[i] - dqb[i]);
        err += (applied - dw) * (applied - dw);
        ref += dw * dw;
    }
    return BnbStat{e.file, e.name, n, changed, ref > 0 ? std::sqrt(err / ref) : 0.0};
}

// A bnb4 group (whole items only): formats::encode_bnb4 makes the packed codes, written at the emit's range, and
// every named part, written at the range the plan gave it. `base`: see requant_stat, or null.
void write_bnb4(const EmitJob& j, const plan::Bnb4Encoding& b, const std::vector<float>* base) {
    const plan::Emit& e = j.e;
    SF_CHECK(j.rows.whole, core::cat("bnb emit of ", e.name, " in a row block"));
    const formats::Bnb4Encoded enc = formats::encode_bnb4(b, j.full, j.v, e.name);
    SF_CHECK(enc.q.packed.size() == e.nbytes, core::cat("size of ", e.name));
    auto put = [&](std::uint64_t at, std::span<const std::byte> bytes) {
        j.ctx.sink.write(e.file, at, bytes, e.name);
        j.ctx.c.bytes_written += bytes.size();
    };
    // The journal checks the emit's own range (the packed codes); the group's other parts are rewritten with it
    // whenever the unit is redone.
    const auto packed = std::as_bytes(std::span(enc.q.packed));
    put(e.offset, packed);
    if (j.er) j.er->sha = resume::sha256(packed);
    for (const auto& [where, bytes] : formats::placed_parts(b, enc, e.name)) put(where.offset, bytes);
    if (base) {
        const BnbStat st = requant_stat(e, b, enc.q, j.v, *base);
        std::lock_guard lock(j.ctx.c.mu);
        j.ctx.c.bnb_stats.push_back(st);
    }
    if (j.er) j.er->nan_count = count_nans(j.v);
    j.tm.lap(kQuantize);
}

// Item rows [c0, c0 + n) of source k of an item that is not generated (sources concatenated along dim 0).
std::pair<std::int64_t, std::int64_t> source_rows(const plan::Item& it, std::size_t k) {
    const std::int64_t R = core::numel(it.shape) / it.shape[0];
    std::int64_t c0 = 0;
    for (std::size_t i = 0; i < k; ++i) c0 += it.sources[i].kept_elems() / R;
    return {c0, c0 + it.sources[k].kept_elems() / R};
}

// The source whose stored bytes a windowed emit copies (the window is exactly that unsliced source's rows, the pass
// does not merge it, and the emit writes its dtype unchanged: an untouched expert's safetensors tensor), or -1.
std::ptrdiff_t copied_source(const plan::Item& it, const Pass& pass, const plan::Emit& e) {
    if (!e.windowed() || !it.generated.empty() || it.shape.empty() || it.shape[0] <= 0) return -1;
    for (std::size_t k = 0; k < it.sources.size(); ++k) {
        const plan::Source& s = it.sources[k];
        if (source_rows(it, k) != std::pair{e.row_begin, e.row_end}) continue;
        const bool copies = !s.sliced() && !s.dequant && !pass.merges[k] && plan::copies_stored_bytes(e, s.dtype);
        return copies ? static_cast<std::ptrdiff_t>(k) : -1;
    }
    return -1;
}

// Whether the pass merges a source that fills rows of the emit's window.
bool window_merged(const plan::Item& it, const Pass& pass, const plan::Emit& e) {
    for (std::size_t k = 0; k < it.sources.size(); ++k) {
        const auto [c0, c1] = source_rows(it, k);
        if (pass.merges[k] && c0 < e.row_end && e.row_begin < c1) return true;
    }
    return false;
}

// A windowed emit (plan::Emit::row_begin/row_end: an expert's own tensor in its stacked item): the unit's rows of
// its window, from the stored bytes when it copies them (copied_source), else encoded from the pass's values.
void write_window(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, UnitSources& src, const Pass& pass,
                  const plan::Emit& e, const std::vector<float>& vals, const std::vector<float>* base,
                  resume::EmitFacts* er, StageTimer& tm) {
    const plan::EmitPart part = plan::emit_part(it, e, rows.row_begin, rows.row_end);
    if (part.empty()) {  // the unit misses the window: the journal's range is empty too
        if (er) er->sha = resume::sha256({});
        return;
    }
    if (const std::ptrdiff_t k = copied_source(it, pass, e); k >= 0) {
        auto sh = std::find_if(src.shares().begin(), src.shares().end(),
                               [&](const UnitSources::Share& x) { return x.k == static_cast<std::size_t>(k); });
        SF_CHECK(sh != src.shares().end(), core::cat("rows of ", e.name));
        const auto& raw = src.load(*sh, false).raw;
        SF_CHECK(raw.size() == part.nbytes, core::cat("size of ", e.name));
        ctx.sink.write(e.file, e.offset + part.offset, raw, e.name);
        ctx.c.bytes_written += part.nbytes;
        if (er) {
            er->sha = resume::sha256(raw);
            er->nan_count = count_nans_raw(it.sources[static_cast<std::size_t>(k)].dtype, raw);
        }
        tm.lap(kWrite);
        return;
    }
    const std::int64_t R = core::numel(it.shape) / rows.rows0;
    const std::int64_t x = e.row_begin + part.first - rows.row_begin, n = part.last - part.first;
    SF_CHECK(x >= 0 && (x + n) * R <= static_cast<std::int64_t>(vals.size()), core::cat("window of ", e.name));
    const std::vector<float> v(vals.begin() + x * R, vals.begin() + (x + n) * R);
    std::vector<float> b;
    if (base && window_merged(it, pass, e)) b.assign(base->begin() + x * R, base->begin() + (x + n) * R);
    const UnitRows wr{part.rows, part.first, part.last, part.whole()};
    core::Shape shape = it.shape;
    shape[0] = n;
    if (part.whole()) shape = e.shape;
    std::vector<float> tmp;
    const EmitJob j{ctx, it, wr, e, emit_values(e, v, shape, wr, tmp), shape, e.shape, er, tm};
    std::visit(core::Overloaded{[&](const plan::RawEncoding& r) { write_raw(j, r); },
                                [&](const plan::GgmlEncoding& g) { write_ggml(j, g, nullptr); },
                                [&](const plan::Bnb4Encoding& bn) { write_bnb4(j, bn, b.empty() ? nullptr : &b); }},
               e.encoding);
}

// Encodes a pass's values into each of its emits (the emit's formats encoding) and hands the bytes to the sink.
// `base`: the unmerged values for the re-quantization report (bnb: whole items or windows; MXFP4 emits), or null.
void write_emits(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, UnitSources& src, const Pass& pass,
                 const std::vector<float>& vals, const std::vector<float>* base, StageTimer& tm) {
    core::Shape shape = it.shape;
    if (!rows.whole) shape[0] = rows.row_end - rows.row_begin;
    std::vector<float> tmp, base_tmp;
    for (std::size_t ie = 0; ie < pass.emits->size(); ++ie) {
        const auto& e = (*pass.emits)[ie];
        resume::EmitFacts* er = pass.rec ? &pass.rec->emits[ie] : nullptr;
        if (e.windowed()) {
            write_window(ctx, it, rows, src, pass, e, vals, base, er, tm);
            continue;
        }
        const EmitJob j{ctx, it, rows, e, emit_values(e, vals, shape, rows, tmp), shape, it.shape, er, tm};
        std::visit(core::Overloaded{[&](const plan::RawEncoding& r) { write_raw(j, r); },
                                    [&](const plan::GgmlEncoding& g) {
                                        if (mxfp4_repacks(it, pass, e)) write_mxfp4_repack(j);
                                        else if (base && g.type == quant::GgmlType::MXFP4 && mxfp4_experts(it))
                                            write_ggml(j, g, &emit_values(e, *base, shape, rows, base_tmp));
                                        else write_ggml(j, g, nullptr);
                                    },
                                    [&](const plan::Bnb4Encoding& b) { write_bnb4(j, b, base); }},
                   e.encoding);
    }
}

}  // namespace

void read_ahead(const UnitCtx& ctx, const plan::Unit& u) {
    const plan::Item& it = ctx.p.items[u.item];
    const UnitRows rows = unit_rows(it, u);
    StageTimer tm(ctx.c);
    UnitSources src(ctx, it, rows, false, tm);  // the shares the unit will read; nothing is read here
    for (const auto& sh : src.shares()) {
        const plan::Source& s = it.sources[sh.k];
        const auto [off, len] = src.stored_range(sh);
        try {
            advise_willneed(ctx.files.input(s.file), s.offset + off, len);
        } catch (const core::Error&) {  // an input that cannot be opened fails the unit that reads it, not this one
        }
    }
}

void run_unit(const UnitCtx& ctx, const plan::Unit& u, resume::UnitRecord& rec) {
    const plan::Item& it = ctx.p.items[u.item];
    rec.emits.assign(it.emits.size(), {});
    const UnitRows rows = unit_rows(it, u);
    // Variants may need other block boundaries than the item's own emits (plan::make_batch_plan never splits them).
    SF_CHECK(it.variants.empty() || rows.whole, "an item with merge variants is never split into row blocks");
    StageTimer tm(ctx.c);
    const std::vector<Pass> passes = passes_of(it, rec);
    bool keep_raw = false;  // some pass copies stored bytes: a pass-through item, or an expert's window
    for (const auto& pass : passes) {
        keep_raw = keep_raw || is_passthrough(it, pass);
        for (const auto& e : *pass.emits) keep_raw = keep_raw || copied_source(it, pass, e) >= 0;
    }
    UnitSources src(ctx, it, rows, keep_raw, tm);
    for (std::size_t i = 0; i < passes.size(); ++i) {
        const Pass& pass = passes[i];
        if (is_passthrough(it, pass)) {
            write_passthrough(ctx, it, rows, src, pass, tm);
            continue;
        }
        // bnb 4-bit emits of a merged tensor also quantize the unmerged values, for the re-quantization report
        // (whole items or an expert window, see plan/schedule.cpp); so do MXFP4 emits (any rows).
        auto reported = [&](const plan::Emit& e) {
            if (std::holds_alternative<plan::Bnb4Encoding>(e.encoding))
                return e.windowed() ? !plan::emit_part(it, e, rows.row_begin, rows.row_end).empty() : rows.whole;
            const auto* g = std::get_if<plan::GgmlEncoding>(&e.encoding);
            return g && g->type == quant::GgmlType::MXFP4 && mxfp4_experts(it);
        };
        const bool want_base =
            std::any_of(pass.emits->begin(), pass.emits->end(), reported) &&
            std::any_of(pass.merges.begin(), pass.merges.end(), [](const lora::MergeTarget* m) { return m != nullptr; });
        std::vector<float> base;
        const std::vector<float> vals =
            pass_values(ctx, it, rows, src, pass, i + 1 == passes.size(), tm, want_base ? &base : nullptr);
        write_emits(ctx, it, rows, src, pass, vals, want_base ? &base : nullptr, tm);
    }
    ++ctx.c.units;
    if (u.row_begin == 0) ++ctx.c.items;
}

}  // namespace shardforge::exec
