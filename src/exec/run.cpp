// Plan execution on one rank: the rank's units of work (plan::assign_units) are processed by a small thread pool;
// run_unit() builds one row block and hands every emit's bytes to a Sink: pwrite at the planned offset of the
// *.partial file (direct), or a bounded queue that the main thread streams to rank 0 (gather; MPI calls stay on
// the main thread). Rank 0 prepares and finally renames the files once all ranks agree.
#include <shardforge/exec.hpp>
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include "fault.hpp"
#include "gpu.hpp"
#include "hasher.hpp"
#include "io.hpp"
#include "journal.hpp"
#include "progress.hpp"
#include "report.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace shardforge::exec {
namespace {

using Clock = std::chrono::steady_clock;

std::string partial_path(const plan::Plan& p, const plan::FileOut& f) {
    return (fs::path(p.out_dir) / (f.name + ".partial")).string();
}
std::string final_path(const plan::Plan& p, const plan::FileOut& f) { return (fs::path(p.out_dir) / f.name).string(); }

}  // namespace

// The cores the launcher gave this rank (placement.cpp).
int default_threads() { return placement().threads; }

namespace {

// Open files lazily and share the descriptors between threads (pread/pwrite need no lock).
class FileTable {
public:
    FileTable(const plan::Plan& p) : p_(p), in_(p.input_files.size()), out_(p.files.size()) {}
    int input(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (!in_[i]) in_[i] = open_read(p_.input_files[i]);
        return in_[i].get();
    }
    int output(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (!out_[i]) out_[i] = open_write(partial_path(p_, p_.files[i]), false);
        return out_[i].get();
    }
    const formats::SafetensorsReader& adapter(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (adapters_.size() < p_.adapter_files.size()) adapters_.resize(p_.adapter_files.size());
        if (!adapters_[i]) adapters_[i] = std::make_unique<formats::SafetensorsReader>(
                               formats::SafetensorsReader::open(p_.adapter_files[i]));
        return *adapters_[i];
    }

private:
    const plan::Plan& p_;
    std::mutex mu_;
    std::vector<UniqueFd> in_, out_;
    std::vector<std::unique_ptr<formats::SafetensorsReader>> adapters_;
};

// --device cuda: the rank's GPU quantizes and computes the LoRA deltas, with the CPU's bits (the delta's defined
// order, docs/engine.md "Determinism"), so any mix of ranks with and without a GPU writes the same bytes.
// `gemm`: every rank has a GPU (gates the NCCL transport).
struct GpuUse {
    quant::gpu::Device* dev = nullptr;
    bool gemm = false;
    std::size_t max_memory = 0;
};

// The delta lora::apply uses: the kernel on the rank's GPU when it has one, else (empty) lora::delta_f32.
lora::MatmulF32 gpu_matmul(const GpuUse& gpu) {
    if (!gpu.dev) return {};
    return [&gpu](const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* out) {
        exec::gpu::matmul(gpu.dev->index(), b, a, m, k, n, out, gpu.max_memory);
    };
}

// DoRA's norm and rescale on the rank's GPU whenever it has one (bit-identical to the CPU loop, so any mix of
// ranks with and without a GPU gives the same bytes), else (empty) on the CPU.
lora::DoraF32 gpu_dora(const GpuUse& gpu) {
    if (!gpu.dev) return {};
    return [&gpu](float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m) {
        return exec::gpu::dora(gpu.dev->index(), v, rows, cols, per_col, m, gpu.max_memory);
    };
}

struct Counters {
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0}, items{0}, units{0};
    std::atomic<std::uint64_t> input_read{0};  // of bytes_read: from plan.input_files (not the merge's adapter reads)
    std::atomic<std::uint64_t> stage_ns[kStages] = {};
    std::mutex mu;
    // Per quantized output tensor: sums of squared error and of squared reference over its row blocks.
    std::map<std::pair<std::uint32_t, std::string>, std::pair<double, double>> quant_err;
    std::string bnb_stats;  // "file\tname\tn\tchanged\tdelta_rel_err\n" per bnb emit of a merged tensor
    std::atomic<std::uint64_t> weights_quantized{0};
    bool want_delta = false;  // --report: ||dW||, ||W|| per merged block (one more f32 copy of it per worker)
};

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

// Adds the time since construction (or the last lap) to one stage.
class StageTimer {
public:
    explicit StageTimer(Counters& c) : c_(c), t_(Clock::now()) {}
    void lap(Stage s) {
        const auto now = Clock::now();
        c_.stage_ns[s] += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t_).count());
        t_ = now;
    }

private:
    Counters& c_;
    Clock::time_point t_;
};

// Where a unit's encoded bytes go. Direct: pwrite at the final offset of the *.partial file. Gather (ranks other
// than 0): a bounded queue drained by the rank's main thread, which streams the bytes to rank 0.
class Sink {
public:
    virtual ~Sink() = default;
    virtual void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
                       const std::string& tensor) = 0;
};

class DirectSink final : public Sink {
public:
    DirectSink(const plan::Plan& p, FileTable& files) : p_(p), files_(files) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string& tensor) override {
        pwrite_all(files_.output(file), bytes, offset, p_.files[file].name, tensor);
    }

private:
    const plan::Plan& p_;
    FileTable& files_;
};

// --push-to-hub: every write is also handed to the output hasher (hashed from memory when at the file's cursor).
class HashingSink final : public Sink {
public:
    HashingSink(Sink& inner, OutputHasher& h) : inner_(inner), h_(h) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string& tensor) override {
        inner_.write(file, offset, bytes, tensor);
        h_.wrote(file, offset, bytes);
    }

private:
    Sink& inner_;
    OutputHasher& h_;
};

// Gather wire format: one message per chunk, a 16-byte header then the bytes.
constexpr int kGatherTag = 0x5f01;
constexpr std::uint32_t kEndOfStream = 0xffffffffu;
// A sender's journal record of a unit, queued after the unit's bytes: rank 0 journals it once those are written.
constexpr std::uint32_t kJournalRecord = 0xfffffffeu;
constexpr std::size_t kMaxChunk = 64u << 20;
struct ChunkHeader {
    std::uint32_t file = 0, reserved = 0;
    std::uint64_t offset = 0;
};
static_assert(sizeof(ChunkHeader) == 16);

std::vector<std::byte> make_chunk(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes) {
    std::vector<std::byte> m(sizeof(ChunkHeader) + bytes.size());
    const ChunkHeader h{file, 0, offset};
    std::memcpy(m.data(), &h, sizeof h);
    if (!bytes.empty()) std::memcpy(m.data() + sizeof h, bytes.data(), bytes.size());
    return m;
}

class QueueSink final : public Sink {
public:
    explicit QueueSink(std::size_t capacity) : cap_(std::max<std::size_t>(1, capacity)) {}
    void write(std::uint32_t file, std::uint64_t offset, std::span<const std::byte> bytes,
               const std::string&) override {
        for (std::size_t off = 0; off < bytes.size(); off += kMaxChunk) {
            std::vector<std::byte> m = make_chunk(file, offset + off, bytes.subspan(off, std::min(kMaxChunk, bytes.size() - off)));
            std::unique_lock lock(mu_);
            not_full_.wait(lock, [&] { return q_.size() < cap_; });
            q_.push_back(std::move(m));
            not_empty_.notify_one();
        }
    }
    // Main thread: the next chunk, or nothing once every producer is done and the queue is empty.
    std::optional<std::vector<std::byte>> pop() {
        std::unique_lock lock(mu_);
        not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
        if (q_.empty()) return std::nullopt;
        std::vector<std::byte> m = std::move(q_.front());
        q_.pop_front();
        not_full_.notify_one();
        return m;
    }
    void close() {
        std::lock_guard lock(mu_);
        closed_ = true;
        not_empty_.notify_all();
    }

private:
    std::size_t cap_;
    std::mutex mu_;
    std::condition_variable not_full_, not_empty_;
    std::deque<std::vector<std::byte>> q_;
    bool closed_ = false;
};

// Squared error and squared reference of the quantized bytes against the f32 values they were made from.
std::pair<double, double> quant_sq_error(const plan::Emit& e, const std::vector<float>& v, const core::Shape& shape,
                                         const std::vector<std::byte>& bytes) {
    const std::int64_t ne0 = shape.empty() ? 1 : shape.back();
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    std::vector<float> back(v.size());
    quant::dequantize_rows(e.gtype, bytes.data(), back.data(), nrows, ne0);
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double d = static_cast<double>(back[i]) - v[i];
        err += d * d;
        ref += static_cast<double>(v[i]) * v[i];
    }
    return {err, ref};
}

// A quantized source's logical values (plan::Dequant) for elements [k0, k1) of the flattened tensor: `raw` is the
// whole stored tensor, the auxiliary tensors are read whole and widened to f32, then the quant kernels.
void dequantize_source(FileTable& files, const plan::Plan& p, const plan::Source& s, const std::vector<std::byte>& raw,
                       Counters& c, std::int64_t k0, std::int64_t k1, float* out, const GpuUse& gpu) {
    const plan::Dequant& d = *s.dequant;
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
            if (gpu.dev) gpu.dev->dequant_bnb4(v, k0, k1, out);
            else quant::dequant_bnb4(v, k0, k1, out);
            break;
        }
        case plan::DequantKind::Int8:
            if (gpu.dev)
                gpu.dev->dequant_int8(reinterpret_cast<const std::int8_t*>(bytes), aux_f32[0].data(), s.shape.back(), k0,
                                      k1, out);
            else
                quant::dequant_int8(reinterpret_cast<const std::int8_t*>(bytes), aux_f32[0].data(), s.shape.back(), k0,
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
            if (gpu.dev) gpu.dev->dequant_fp8(v, k0, k1, out);
            else quant::dequant_fp8(v, k0, k1, out);
            break;
        }
    }
}

// Rows [row_begin, row_end) of dim -2, for every outer index, appended to dst.
void append_rows(const std::vector<float>& src, const plan::Source& s, std::vector<float>& dst) {
    if (s.row_begin == 0 && s.row_end < 0) {
        dst.insert(dst.end(), src.begin(), src.end());
        return;
    }
    const std::size_t nd = s.shape.size();
    const std::int64_t cols = nd >= 1 ? s.shape[nd - 1] : 1;
    const std::int64_t rows = nd >= 2 ? s.shape[nd - 2] : 1;
    const std::int64_t outer = rows * cols == 0 ? 0 : core::numel(s.shape) / (rows * cols);
    const std::int64_t rb = s.row_begin, re = s.row_end < 0 ? rows : s.row_end;
    for (std::int64_t o = 0; o < outer; ++o) {
        const auto first = src.begin() + static_cast<std::ptrdiff_t>((o * rows + rb) * cols);
        dst.insert(dst.end(), first, first + static_cast<std::ptrdiff_t>((re - rb) * cols));
    }
}

// Encodes v (shape: the block's shape) as emit e. `expert0`: index of the block's first expert in e.imatrix.
void encode(const plan::Emit& e, const std::vector<float>& v, const core::Shape& shape, std::uint64_t nbytes,
            std::int64_t expert0, std::vector<std::byte>& out, const GpuUse& gpu) {
    out.resize(nbytes);
    if (e.kind == plan::EmitKind::Raw) {
        SF_CHECK(v.size() * core::dtype_size(e.dtype) == nbytes, core::cat("size of ", e.name));
        formats::from_f32(v.data(), e.dtype, out.data(), v.size());
        return;
    }
    const std::int64_t ne0 = shape.empty() ? 1 : shape.back();
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    SF_CHECK(quant::row_bytes(e.gtype, ne0) * static_cast<std::size_t>(nrows) == nbytes, core::cat("size of ", e.name));
    switch (e.gtype) {
        case quant::GgmlType::F32: formats::from_f32(v.data(), core::DType::F32, out.data(), v.size()); break;
        case quant::GgmlType::F16: formats::from_f32(v.data(), core::DType::F16, out.data(), v.size()); break;
        case quant::GgmlType::BF16: formats::from_f32(v.data(), core::DType::BF16, out.data(), v.size()); break;
        default: {
            auto quantize = [&](const float* src, void* dst, std::int64_t rows, const float* qw) {
                if (gpu.dev) gpu.dev->quantize_rows(e.gtype, src, dst, rows, ne0, qw);
                else quant::quantize_rows(e.gtype, src, dst, rows, ne0, qw);
            };
            const std::int64_t n_exp_all = static_cast<std::int64_t>(e.imatrix.size()) / std::max<std::int64_t>(1, ne0);
            if (e.imatrix.empty() || n_exp_all == 1) {
                quantize(v.data(), out.data(), nrows, e.imatrix.empty() ? nullptr : e.imatrix.data());
                break;
            }
            // 3-D (experts): each expert's rows use that expert's slice of the importance vector. The block holds
            // whole experts (schedule.cpp); its share of the experts is nrows / rows_per.
            const std::size_t row_b = quant::row_bytes(e.gtype, ne0);
            const auto rows_per = static_cast<std::int64_t>(e.nbytes / row_b) / n_exp_all;
            const std::int64_t n_exp = nrows / rows_per;
            for (std::int64_t x = 0; x < n_exp; ++x)
                quantize(v.data() + x * rows_per * ne0, out.data() + static_cast<std::size_t>(x * rows_per) * row_b,
                         rows_per, e.imatrix.data() + (expert0 + x) * ne0);
            break;
        }
    }
}

// bitsandbytes 4-bit group (plan EmitKind::Bnb4): values rounded to the quant_state dtype, quantized, and every
// tensor of the group written at its planned offset. With `base` (the unmerged values of a merged tensor) it also
// measures what re-quantization kept of the LoRA delta: the fraction of 4-bit codes that differ between Q(W) and
// Q(W + dW), and ||deq(Q(W + dW)) - deq(Q(W)) - dW|| / ||dW|| with dW = merged f32 - base f32 exactly (1.0 when
// the delta vanished entirely; deq in fp32 with the absmax a reader reconstructs).
void encode_bnb4(const plan::Emit& e, const std::vector<float>& v, const std::vector<float>* base,
                 const core::Shape& shape, const std::function<void(std::uint64_t, std::span<const std::byte>)>& put,
                 std::string& stats) {
    SF_CHECK(e.part_offsets.size() == e.part_bytes.size() && e.part_offsets.size() == (e.bnb.double_quant ? 5u : 3u),
             core::cat("bnb parts of ", e.name));
    const auto n = static_cast<std::int64_t>(v.size());
    auto rounded = [&](const std::vector<float>& src) {
        std::vector<float> r(src.size());
        for (std::size_t i = 0; i < src.size(); ++i)
            r[i] = e.dtype == core::DType::BF16  ? core::bf16_to_f32(core::f32_to_bf16(src[i]))
                   : e.dtype == core::DType::F16 ? core::f16_to_f32(core::f32_to_f16(src[i]))
                                                 : src[i];
        return r;
    };
    quant::Bnb4Tensor q;
    try {
        quant::bnb4_quantize(e.bnb, rounded(v).data(), n, q);
    } catch (const core::Error& err) {
        throw core::Error(err.kind(), "", e.name, err.why());
    }
    auto bytes_of = [](const auto& vec) { return std::as_bytes(std::span(vec.data(), vec.size())); };
    SF_CHECK(q.packed.size() == e.nbytes, core::cat("size of ", e.name));
    put(e.offset, bytes_of(q.packed));
    float qmap[16];
    quant::bnb4_quant_map(e.bnb.type, qmap);
    std::size_t part = 0;
    auto put_part = [&](std::span<const std::byte> b) {
        SF_CHECK(b.size() == e.part_bytes[part], core::cat("size of part ", part, " of ", e.name));
        put(e.part_offsets[part++], b);
    };
    if (e.bnb.double_quant) {
        put_part(bytes_of(q.absmax_codes));
    } else {
        put_part(bytes_of(q.absmax));
    }
    put_part(std::as_bytes(std::span(qmap)));
    if (e.bnb.double_quant) {
        put_part(bytes_of(q.nested_absmax));
        std::vector<float> dmap(256);
        quant::bnb_dynamic_map(dmap.data());
        put_part(bytes_of(dmap));
    }
    formats::BnbQuantState qs;
    qs.nf4 = e.bnb.type == quant::Bnb4Type::NF4;
    qs.blocksize = e.bnb.blocksize;
    qs.dtype = e.dtype;
    qs.shape = shape;
    qs.nested = e.bnb.double_quant;
    qs.nested_offset = q.nested_offset;
    std::string js = formats::bnb_quant_state_json(qs);
    const std::uint64_t reserved = e.part_bytes[part];
    SF_CHECK(js.size() <= reserved && (e.bnb.double_quant || js.size() == reserved),
             core::cat("quant_state length of ", e.name));
    js.resize(reserved, ' ');  // only with double quant: the offset's repr is shorter than the longest possible
    put_part(std::as_bytes(std::span(js.data(), js.size())));

    if (!base) return;
    quant::Bnb4Tensor qb;
    quant::bnb4_quantize(e.bnb, rounded(*base).data(), n, qb);
    std::int64_t changed = 0;
    for (std::int64_t k = 0; k < n; ++k) {
        const std::uint8_t a = q.packed[static_cast<std::size_t>(k / 2)], b = qb.packed[static_cast<std::size_t>(k / 2)];
        changed += (k & 1) ? ((a & 15) != (b & 15)) : ((a >> 4) != (b >> 4));
    }
    std::vector<float> dq(v.size()), dqb(v.size());
    quant::bnb4_dequantize(e.bnb, q, dq.data(), n);
    quant::bnb4_dequantize(e.bnb, qb, dqb.data(), n);
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double dw = static_cast<double>(v[i] - (*base)[i]);
        const double applied = static_cast<double>(dq[i] - dqb[i]);
        err += (applied - dw) * (applied - dw);
        ref += dw * dw;
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "\t%lld\t%lld\t%.9g\n", static_cast<long long>(n), static_cast<long long>(changed),
                  ref > 0 ? std::sqrt(err / ref) : 0.0);
    stats += core::cat(e.file, "\t", e.name, buf);
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

// ---------------------------------------------------------------- the unit pipeline
// One unit of work, the same code for plain exports, batch variants and pass-through tensors: the unit's share of
// each source is read once (stored bytes, then f32: widened, or dequantized as its plan::Dequant says); then each
// pass (the item's own merges and emits, then every batch plan::Variant) merges its copy of the unmerged values,
// transforms, encodes and writes every emit, exactly as a separate export builds them. A pass that writes its one
// unmodified 16-bit source in its own dtype copies the stored bytes instead (no f32 round trip).

// What every step of a unit uses.
struct UnitCtx {
    const plan::Plan& p;
    FileTable& files;
    Sink& sink;
    Counters& c;
    const GpuUse& gpu;
};

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
    if (s.dequant || s.row_begin != 0 || s.row_end >= 0) return false;
    for (const auto& e : *pass.emits)
        if (e.kind != plan::EmitKind::Raw || e.dtype != s.dtype || !e.transforms.empty() || e.scale != 1.0f)
            return false;
    return true;
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
// source (its dim -2 slice is taken after merging, append_rows). Row block: each source contributes a contiguous
// range of item rows, made of whole rows [sr0, sr1) of its own dim 0.
class UnitSources {
public:
    struct Share {
        std::size_t k = 0;            // index into Item::sources
        std::int64_t sr0 = 0, sr1 = 0;
        std::vector<std::byte> raw;   // stored bytes of the rows (quantized: the whole stored tensor)
        std::vector<float> f32;       // unmerged values of the rows
        bool loaded = false, widened = false;
    };

    UnitSources(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, bool keep_raw, StageTimer& tm)
        : ctx_(ctx), it_(it), rows_(rows), keep_raw_(keep_raw), tm_(tm) {
        if (rows.whole) {
            for (std::size_t k = 0; k < it.sources.size(); ++k)
                shares_.push_back({k, 0, it.sources[k].shape.empty() ? 1 : it.sources[k].shape[0], {}, {}, false, false});
            return;
        }
        const std::int64_t R = core::numel(it.shape) / it.shape[0];
        std::int64_t c0 = 0;  // first item row of the current source
        for (std::size_t k = 0; k < it.sources.size(); ++k) {
            const auto& s = it.sources[k];
            const std::int64_t S = core::numel(s.shape) / s.shape[0];
            const bool sliced = !(s.row_begin == 0 && s.row_end < 0);
            const std::int64_t n_rows_item =
                (sliced ? ((s.row_end < 0 ? s.shape[0] : s.row_end) - s.row_begin) * S : core::numel(s.shape)) / R;
            const std::int64_t x = std::max(rows.row_begin, c0), y = std::min(rows.row_end, c0 + n_rows_item);
            if (x < y) {
                const std::int64_t base_row = sliced ? s.row_begin : 0;
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
            if (!rows_.whole) {
                const std::int64_t S = core::numel(s.shape) / s.shape[0];
                k0 = sh.sr0 * S;
                k1 = sh.sr1 * S;
            }
            sh.f32.resize(static_cast<std::size_t>(k1 - k0));
            if (s.dequant)
                dequantize_source(ctx_.files, ctx_.p, s, sh.raw, ctx_.c, k0, k1, sh.f32.data(), ctx_.gpu);
            else
                formats::to_f32(s.dtype, sh.raw.data(), sh.f32.data(), sh.f32.size());
            sh.widened = true;
            tm_.lap(kDequant);
            if (!keep_raw_) std::vector<std::byte>().swap(sh.raw);
        }
        return sh;
    }

private:
    void read_raw(const plan::Source& s, Share& sh) {
        // A row block of a 16-bit source reads its rows; a quantized source is read whole (0.5-1 byte/element).
        std::uint64_t off = 0, len = s.nbytes;
        if (!rows_.whole && !s.dequant) {
            const std::uint64_t row_bytes = core::dtype_size(s.dtype) * static_cast<std::uint64_t>(
                                                core::numel(s.shape) / s.shape[0]);
            off = row_bytes * static_cast<std::uint64_t>(sh.sr0);
            len = row_bytes * static_cast<std::uint64_t>(sh.sr1 - sh.sr0);
        }
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
    vals.reserve(static_cast<std::size_t>(n));
    for (auto& sh : src.shares()) {
        const plan::Source& s = it.sources[sh.k];
        src.load(sh, true);
        auto add = [&](const std::vector<float>& w, std::vector<float>& dst) {
            if (rows.whole) append_rows(w, s, dst);
            else dst.insert(dst.end(), w.begin(), w.end());
        };
        if (unmerged) add(sh.f32, *unmerged);
        const lora::MergeTarget* m = pass.merges[sh.k];
        if (!m) {
            add(sh.f32, vals);
            if (last) std::vector<float>().swap(sh.f32);
            continue;
        }
        std::vector<float> w = last ? std::move(sh.f32) : sh.f32;
        auto apply = [&] {
            if (rows.whole) lora::apply(*m, w, s.shape, load, gpu_matmul(ctx.gpu), gpu_dora(ctx.gpu));
            else lora::apply_rows(*m, w, s.shape, sh.sr0, sh.sr1, load, gpu_matmul(ctx.gpu), gpu_dora(ctx.gpu));
        };
        if (pass.rec) merge_measured(w, ctx.c, *pass.rec, apply);
        else apply();
        tm.lap(kMerge);
        add(w, vals);
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

bool is_quantized(const plan::Emit& e) {
    return e.kind == plan::EmitKind::Ggml && e.gtype != quant::GgmlType::F32 && e.gtype != quant::GgmlType::F16 &&
           e.gtype != quant::GgmlType::BF16;
}

// Encodes a pass's values into each of its emits and hands the bytes to the sink. `base`: the unmerged values for
// the bnb re-quantization report (whole items only), or null.
void write_emits(const UnitCtx& ctx, const plan::Item& it, const UnitRows& rows, const Pass& pass,
                 const std::vector<float>& vals, const std::vector<float>* base, StageTimer& tm) {
    core::Shape shape = it.shape;
    if (!rows.whole) shape[0] = rows.row_end - rows.row_begin;
    std::vector<std::byte> bytes;
    std::vector<float> tmp;
    for (std::size_t ie = 0; ie < pass.emits->size(); ++ie) {
        const auto& e = (*pass.emits)[ie];
        const std::vector<float>& v = emit_values(e, vals, shape, rows, tmp);
        resume::EmitFacts* er = pass.rec ? &pass.rec->emits[ie] : nullptr;
        if (e.kind == plan::EmitKind::Bnb4) {
            SF_CHECK(rows.whole, core::cat("bnb emit of ", e.name, " in a row block"));
            std::string st;
            encode_bnb4(e, v, base, it.shape,
                        [&](std::uint64_t at, std::span<const std::byte> b) {
                            ctx.sink.write(e.file, at, b, e.name);
                            ctx.c.bytes_written += b.size();
                            // The journal checks the emit's own range (the packed codes); the group's other parts
                            // are rewritten with it whenever the unit is redone.
                            if (er && at == e.offset) er->sha = resume::sha256(b);
                        }, st);
            if (er) er->nan_count = count_nans(v);
            tm.lap(kQuantize);
            if (!st.empty()) {
                std::lock_guard lock(ctx.c.mu);
                ctx.c.bnb_stats += st;
            }
            continue;
        }
        const auto [off, len] = rows.range(e.nbytes);
        std::int64_t expert0 = 0;
        if (!rows.whole && !e.imatrix.empty()) {
            const std::int64_t n_exp = static_cast<std::int64_t>(e.imatrix.size()) / shape.back();
            if (n_exp > 1) expert0 = rows.row_begin / (rows.rows0 / n_exp);
        }
        encode(e, v, shape, len, expert0, bytes, ctx.gpu);
        if (is_quantized(e)) {
            const auto [err, ref] = quant_sq_error(e, v, shape, bytes);
            if (er) {
                er->q_err2 = err;
                er->q_ref2 = ref;
            }
            ctx.c.weights_quantized += v.size();
            std::lock_guard lock(ctx.c.mu);
            auto& acc = ctx.c.quant_err[{e.file, e.name}];
            acc.first += err;
            acc.second += ref;
        }
        tm.lap(kQuantize);
        ctx.sink.write(e.file, e.offset + off, bytes, e.name);
        ctx.c.bytes_written += len;
        tm.lap(kWrite);
        if (er) {
            er->sha = resume::sha256(bytes);
            er->nan_count = count_nans(v);
        }
    }
}

// One unit of work: rows [u.row_begin, u.row_end) of an item, every pass's emits' matching byte ranges to the sink.
void run_unit(const UnitCtx& ctx, const plan::Unit& u, resume::UnitRecord& rec) {
    const plan::Item& it = ctx.p.items[u.item];
    rec.emits.assign(it.emits.size(), {});
    const UnitRows rows = unit_rows(it, u);
    // Variants may need other block boundaries than the item's own emits (plan::make_batch_plan never splits them).
    SF_CHECK(it.variants.empty() || rows.whole, "an item with merge variants is never split into row blocks");
    StageTimer tm(ctx.c);
    const std::vector<Pass> passes = passes_of(it, rec);
    bool any_passthrough = false;
    for (const auto& pass : passes) any_passthrough = any_passthrough || is_passthrough(it, pass);
    UnitSources src(ctx, it, rows, any_passthrough, tm);
    for (std::size_t i = 0; i < passes.size(); ++i) {
        const Pass& pass = passes[i];
        if (is_passthrough(it, pass)) {
            write_passthrough(ctx, it, rows, src, pass, tm);
            continue;
        }
        // bnb 4-bit emits of a merged tensor also quantize the unmerged values, for the re-quantization report
        // (such items are never split into row blocks: see plan/schedule.cpp).
        const bool want_base =
            rows.whole &&
            std::any_of(pass.emits->begin(), pass.emits->end(),
                        [](const plan::Emit& e) { return e.kind == plan::EmitKind::Bnb4; }) &&
            std::any_of(pass.merges.begin(), pass.merges.end(), [](const lora::MergeTarget* m) { return m != nullptr; });
        std::vector<float> base;
        const std::vector<float> vals =
            pass_values(ctx, it, rows, src, pass, i + 1 == passes.size(), tm, want_base ? &base : nullptr);
        write_emits(ctx, it, rows, pass, vals, want_base ? &base : nullptr, tm);
    }
    ++ctx.c.units;
    if (u.row_begin == 0) ++ctx.c.items;
}

void prepare_outputs(const plan::Plan& p) {
    fs::create_directories(p.out_dir);
    for (const auto& f : p.files)  // batch jobs: files in subdirectories of out_dir
        if (f.name.find('/') != std::string::npos) fs::create_directories(fs::path(final_path(p, f)).parent_path());
    for (const auto& f : p.files) {
        if (f.kind != plan::FileKind::Tensors) continue;
        const std::string path = partial_path(p, f);
        UniqueFd fd = open_write(path, true);
        if (::ftruncate(fd.get(), static_cast<off_t>(f.size)) != 0)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot size file to ", f.size, " bytes"));
        pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
    }
}

// --resume: keep the partials (their journaled units are verified later); a missing or mis-sized one is created
// afresh, a final-named one (killed during the renames) goes back to its partial name. Headers are rewritten.
void prepare_resumed_outputs(const plan::Plan& p) {
    for (const auto& f : p.files) {
        if (f.kind != plan::FileKind::Tensors) continue;
        const std::string path = partial_path(p, f);
        std::error_code ec;
        if (!fs::exists(path) && fs::is_regular_file(final_path(p, f)) && !fs::is_symlink(final_path(p, f)))
            fs::rename(final_path(p, f), path, ec);
        if (!fs::is_regular_file(path) || fs::is_symlink(path) || fs::file_size(path, ec) != f.size) {
            plan::Plan one;
            one.out_dir = p.out_dir;
            one.files = {f};
            prepare_outputs(one);
            continue;
        }
        UniqueFd fd = open_write(path, false);
        pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
    }
}

void finish_outputs(const plan::Plan& p) {
    // Text and copied files first, as partials; then fsync everything and rename all at once.
    for (const auto& f : p.files) {
        const std::string path = partial_path(p, f);
        if (f.kind == plan::FileKind::Text) {
            UniqueFd fd = open_write(path, true);
            pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
        } else if (f.kind == plan::FileKind::Copy) {
            std::error_code ec;
            fs::remove(path, ec);  // a symlink at the partial's path is replaced, never written through
            fs::copy_file(f.copy_from, path, fs::copy_options::overwrite_existing, ec);
            if (ec) throw core::Error(core::ErrorKind::Io, f.copy_from, "", "cannot copy: " + ec.message());
        }
    }
    for (const auto& f : p.files) {
        const std::string path = partial_path(p, f);
        std::error_code ec;
        const auto size = fs::file_size(path, ec);
        if (ec) throw core::Error(core::ErrorKind::Io, path, "", "missing after write: " + ec.message());
        if (f.kind == plan::FileKind::Tensors && size != f.size)
            throw core::Error(core::ErrorKind::Verify, path, "", core::cat("size ", size, " != planned ", f.size));
        UniqueFd fd = open_write(path, false);
        fsync_or_throw(fd.get(), path);
    }
    for (const auto& f : p.files) {
        std::error_code ec;
        fs::rename(partial_path(p, f), final_path(p, f), ec);
        if (ec) throw core::Error(core::ErrorKind::Io, final_path(p, f), "", "cannot rename: " + ec.message());
    }
}

void remove_partials(const plan::Plan& p) {
    for (const auto& f : p.files) {
        std::error_code ec;
        fs::remove(partial_path(p, f), ec);
    }
}

template <class F>
std::optional<core::Error> capture(F&& f) {
    try {
        f();
    } catch (const core::Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return core::Error(core::ErrorKind::Io, "", "", "out of memory");
    } catch (const std::exception& e) {
        return core::Error(core::ErrorKind::Internal, "", "", e.what());
    }
    return std::nullopt;
}

}  // namespace

std::string summarize_quant_errors(const plan::Plan& p, const std::string& quant_errors) {
    struct Acc {
        std::size_t n = 0;
        double sum = 0, max = -1;
        std::string worst;
    };
    std::map<std::uint32_t, Acc> by_file;
    std::istringstream in(quant_errors);
    std::string line;
    while (std::getline(in, line)) {
        const auto a = line.find('\t'), b = line.rfind('\t');
        if (a == std::string::npos || a == b) continue;
        const auto f = static_cast<std::uint32_t>(std::stoul(line.substr(0, a)));
        const double r = std::stod(line.substr(b + 1));
        Acc& acc = by_file[f];
        ++acc.n;
        acc.sum += r;
        if (r > acc.max) {
            acc.max = r;
            acc.worst = line.substr(a + 1, b - a - 1);
        }
    }
    std::string s;
    for (const auto& [f, acc] : by_file) {
        char buf[160];
        std::snprintf(buf, sizeof buf, ": %zu quantized tensors, relative RMSE mean %.4g, max %.4g (", acc.n,
                      acc.sum / static_cast<double>(acc.n), acc.max);
        s += "quantization error " + p.files[f].name + buf + acc.worst + ")\n";
    }
    return s;
}

namespace {

std::uint64_t peak_rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
    return 0;
}

// Rank 0 in gather mode: write every chunk the other ranks send until each has sent its end of stream. Keeps
// draining after a write error (so no sender blocks), and reports the first error.
std::optional<core::Error> receive_chunks(const plan::Plan& p, Comm& comm, FileTable& files, Counters& c,
                                          resume::Journal& journal, OutputHasher* hasher) {
    std::optional<core::Error> err;
    std::vector<std::byte> buf;
    int ends = 0;
    while (ends < comm.size() - 1) {
        comm.recv_any(buf, kGatherTag);
        ChunkHeader h;
        if (buf.size() < sizeof h) {
            if (!err) err = core::Error(core::ErrorKind::Internal, "", "", "short gather message");
            continue;
        }
        std::memcpy(&h, buf.data(), sizeof h);
        if (h.file == kEndOfStream) {
            ++ends;
            continue;
        }
        if (err) continue;
        if (h.file == kJournalRecord) {  // the unit's chunks (same sender, sent before) are all written
            err = capture([&] {
                std::size_t valid = 0;
                for (auto& r : resume::decode_records(std::span(buf).subspan(sizeof h), valid)) journal.add(std::move(r));
                if (journal.due()) journal.flush();
            });
            continue;
        }
        StageTimer tm(c);
        err = capture([&] {
            if (h.file >= p.files.size()) throw core::Error(core::ErrorKind::Internal, "", "", "bad gather file index");
            pwrite_all(files.output(h.file), std::span(buf).subspan(sizeof h), h.offset, p.files[h.file].name, "");
            if (hasher) hasher->wrote(h.file, h.offset, std::span(buf).subspan(sizeof h));
        });
        tm.lap(kWrite);
    }
    return err;
}

// Ranks other than 0 in gather mode: stream the queued chunks to rank 0 with at most `window` sends in flight,
// then the end-of-stream marker.
void send_chunks(Comm& comm, QueueSink& q, std::size_t window) {
    std::deque<std::pair<Comm::Request, std::vector<std::byte>>> inflight;
    while (auto m = q.pop()) {
        inflight.emplace_back(0, std::move(*m));
        inflight.back().first = comm.isend(inflight.back().second, 0, kGatherTag);
        while (inflight.size() >= window) {
            comm.wait(inflight.front().first);
            inflight.pop_front();
        }
    }
    for (auto& [r, m] : inflight) comm.wait(r);
    const std::vector<std::byte> end = make_chunk(kEndOfStream, 0, {});
    comm.wait(comm.isend(end, 0, kGatherTag));
}

}  // namespace

RunStats run(const plan::Plan& p, Comm& comm, const RunOptions& opt) {
    const auto t0 = Clock::now();
    const SignalScope signals;  // a stop signal from here on ends the run with exit 75 (resumable), not a kill
    const bool gather = opt.write == WriteMode::Gather && comm.size() > 1;
    std::unique_ptr<quant::gpu::Device> device;
    auto err = capture([&] { device = select_device(opt.device, opt.max_gpu_memory); });
    if (auto e = agree_on_error(comm, err)) throw *e;
    GpuUse gpu;
    gpu.dev = device.get();
    gpu.max_memory = opt.max_gpu_memory;
    gpu.gemm = comm.sum(device ? 1 : 0) == static_cast<std::uint64_t>(comm.size());
    if (device && comm.rank() == 0)
        core::log::info(core::cat("GPU: ", device->name(), gpu.gemm ? "" : " (some ranks have no GPU)"));
    // Gather mode with a GPU on every rank: the row blocks travel through NCCL (collective to set up).
    std::unique_ptr<Comm> nccl;
    if (opt.write == WriteMode::Gather && comm.size() > 1 && gpu.gemm && !exec::gpu::nccl_info().empty()) {
        err = capture([&] { nccl = make_nccl_comm(make_mpi_comm(), device->index()); });
        if (auto e = agree_on_error(comm, err)) throw *e;
        if (comm.rank() == 0) core::log::info("gather mode: row blocks via NCCL");
    }
    Comm& p2p = nccl ? *nccl : comm;
    // Rank 0 prepares the partials (fresh run) or checks the resume state and reads the journals (--resume).
    std::map<std::uint32_t, resume::UnitRecord> journaled;
    bool resuming = false;
    err = capture([&] {
        fault::set_rank(comm.rank());
        if (comm.rank() != 0) return;
        if (opt.resume) journaled = resume::load(p, resuming);
        if (resuming) {
            prepare_resumed_outputs(p);
        } else {
            if (opt.resume) core::log::info("resume: no interrupted run in " + p.out_dir + "; starting from the beginning");
            prepare_outputs(p);
            resume::write_state(p);
        }
    });
    if (auto e = agree_on_error(comm, err)) {
        if (comm.rank() == 0 && !opt.resume) {
            remove_partials(p);
            resume::remove_dir(p);
        }
        throw *e;
    }
    const std::vector<plan::Unit> all = plan::units(p);
    // Gather mode: the partials live on rank 0 only, so rank 0 verifies every journaled unit now (direct mode: each
    // rank verifies its own units as it reaches them) and only rank 0 keeps a journal (other ranks' records reach
    // it behind their units' bytes).
    if (gather && comm.rank() == 0)
        for (auto it = journaled.begin(); it != journaled.end();)
            it = resume::emits_match(p, all[it->first], it->second) ? std::next(it) : journaled.erase(it);
    std::string jbytes;
    if (comm.rank() == 0)
        for (const auto& [u, r] : journaled) jbytes += resume::encode_record(r);
    comm.broadcast(jbytes, 0);
    if (comm.rank() != 0) {
        std::size_t valid = 0;
        for (auto& r : resume::decode_records(std::as_bytes(std::span(jbytes.data(), jbytes.size())), valid))
            journaled[r.unit] = std::move(r);
    }

    core::log::debug(core::cat("prepare: ", std::chrono::duration<double>(Clock::now() - t0).count(), " s"));
    Counters c;
    c.want_delta = !opt.report.empty();
    const std::vector<std::uint32_t> mine = plan::assign_units(all, p, comm.rank(), comm.size());
    // Unbound ranks of a node pin themselves to their CPU share (placement.cpp; SHARDFORGE_PIN=0 disables).
    const Placement placed = adopt_placement();
    int want = opt.threads > 0 ? opt.threads : placed.threads;
    if (p.max_memory_per_rank > 0) want = std::min(want, p.threads);  // the budget was sized for p.threads
    const int n_threads = std::max(1, std::min<int>(want, static_cast<int>(std::max<std::size_t>(1, mine.size()))));
    const auto t_units = Clock::now();
    double busy_s = 0;
    std::uint64_t total_emits = 0, total_bytes = 0;
    for (const auto& it : p.items)
        for (const auto& e : it.emits) ++total_emits, total_bytes += e.nbytes;
    resume::Journal journal(p, all, comm.rank(), !gather || comm.rank() == 0);
    Monitor mon(comm, opt, all.size(), total_emits, total_bytes);  // collective
    std::vector<resume::UnitRecord> records;  // this rank's units (computed or verified), for the run report
    std::atomic<std::uint64_t> n_resumed{0};
    // --push-to-hub: each tensor file hashed by its owner rank while it is produced (hasher.hpp).
    std::unique_ptr<OutputHasher> hasher;
    std::vector<int> owner_of_unit;
    if (opt.hash_outputs) {
        owner_of_unit.assign(all.size(), 0);
        for (int r = 0; r < comm.size(); ++r)
            for (const auto u : r == comm.rank() ? mine : plan::assign_units(all, p, r, comm.size())) owner_of_unit[u] = r;
        // Row blocks finished ahead of a file's cursor wait in memory up to this cap (within the budget's slack).
        std::uint64_t cap = 64u << 20;
        if (p.max_memory_per_rank > 0)
            cap = std::min(cap, p.max_memory_per_rank > p.peak_rank_bytes ? p.max_memory_per_rank - p.peak_rank_bytes : 0);
        hasher = std::make_unique<OutputHasher>(
            p, all, owner_of_unit, comm.rank(), gather, static_cast<std::size_t>(cap),
            [&p, &opt](std::uint32_t f, const std::string& sha) {
                if (opt.on_file_hashed) opt.on_file_hashed(f, sha, partial_path(p, p.files[f]));
            });
        if (gather && comm.rank() == 0)  // verified above; their senders skip them
            for (const auto& [u, r] : journaled) hasher->unit_landed(u);
        if (!gather && comm.size() > 1)
            mon.set_round_payload([&] { return hasher->done_bits(); },
                                  [&](const std::vector<std::uint64_t>& v) { hasher->on_round(v); });
    }
    err = capture([&] {
        FileTable files(p);
        DirectSink direct(p, files);
        QueueSink queue(static_cast<std::size_t>(p.gather_window));
        std::optional<HashingSink> hashing;
        if (hasher) hashing.emplace(direct, *hasher);
        Sink& sink = gather && comm.rank() != 0 ? static_cast<Sink&>(queue)
                     : hashing                   ? static_cast<Sink&>(*hashing)
                                                 : static_cast<Sink&>(direct);
        const UnitCtx ctx{p, files, sink, c, gpu};
        std::atomic<std::size_t> next{0};
        std::atomic<bool> failed{false};
        std::atomic<int> live{n_threads};
        std::optional<core::Error> first;
        std::mutex mu;
        auto fail = [&](const core::Error& e) {
            std::lock_guard lock(mu);
            if (!first) first = e;
            failed = true;
            mon.failed();
        };
        auto worker = [&] {
            while (!failed && !mon.should_stop()) {
                const std::size_t k = next++;
                if (k >= mine.size()) break;
                const std::uint32_t uid = mine[k];
                const plan::Unit& u = all[uid];
                const plan::Item& it = p.items[u.item];
                std::uint64_t nbytes = 0;
                for (const auto& r : resume::unit_ranges(p, u)) nbytes += r.nbytes;
                // --resume: a journaled unit whose bytes still hash to the journal's digests is done (gather mode:
                // rank 0 verified them all already).
                if (auto j = journaled.find(uid);
                    j != journaled.end() && (gather || resume::emits_match(p, u, j->second))) {
                    resume::UnitRecord rec = j->second;
                    rec.resumed = true;
                    {
                        std::lock_guard lock(mu);
                        records.push_back(std::move(rec));
                    }
                    ++n_resumed;
                    if (hasher) {
                        if (!gather) hasher->unit_landed(uid);  // read back for the digest (gather: done above)
                        hasher->mark_done(uid);
                    }
                    mon.unit_done(u.row_begin == 0 ? it.emits.size() : 0, nbytes, 0, 0, true);
                    continue;
                }
                resume::UnitRecord rec;
                rec.unit = uid;
                rec.rank = comm.rank();
                const std::uint64_t in0 = c.bytes_read, q0 = c.weights_quantized;
                auto e = capture([&] {
                    const auto ts = Clock::now();
                    if (k + 1 == mine.size()) fault::before_last_item();
                    fault::before_item();
                    run_unit(ctx, u, rec);
                    rec.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
                    fault::after_item();
                });
                if (e) {
                    fail(*e);
                    break;
                }
                if (hasher) hasher->mark_done(uid);
                journal.add(rec);  // no-op where this rank keeps no journal (gather mode, ranks != 0) ...
                if (gather && comm.rank() != 0) {  // ... where rank 0 journals it once it has written the bytes
                    const std::string jr = resume::encode_record(rec);
                    sink.write(kJournalRecord, 0, std::as_bytes(std::span(jr.data(), jr.size())), "");
                }
                {
                    std::lock_guard lock(mu);
                    records.push_back(std::move(rec));
                }
                // A tensor counts once (with its first row block); bytes count per block.
                mon.unit_done(u.row_begin == 0 ? it.emits.size() : 0, nbytes, c.bytes_read - in0,
                              c.weights_quantized - q0, false);
            }
            if (--live == 0) {
                busy_s = std::chrono::duration<double>(Clock::now() - t_units).count();
                queue.close();
            }
        };
        std::vector<std::thread> pool;
        std::optional<core::Error> recv_err;
        // MPI calls stay on this thread (MPI_THREAD_FUNNELED): all workers run on the pool. Direct mode: this thread
        // runs the progress rounds (which also carry a stop signal to every rank) and the journal flushes. Gather
        // mode: it moves the chunks; one round afterwards agrees on an interrupt (each rank stops on its own signal).
        for (int i = 0; i < n_threads; ++i) pool.emplace_back(worker);
        const auto idle = [&] {
            if (!journal.due()) return;
            if (auto fe = capture([&] { journal.flush(); })) fail(*fe);
        };
        if (!gather) {
            mon.loop([&] { return live.load() == 0; }, idle);
        } else {
            if (comm.rank() == 0) recv_err = receive_chunks(p, p2p, files, c, journal, hasher.get());
            else send_chunks(p2p, queue, static_cast<std::size_t>(p.gather_window));
        }
        for (auto& t : pool) t.join();
        if (gather) mon.loop([] { return true; }, [] {});
        if (auto fe = capture([&] { journal.flush(); })) fail(*fe);  // finished units are durable and journaled
        if (first) throw *first;
        if (recv_err) throw *recv_err;
        if (mon.interrupted() && !mon.all_units_done()) {
            const int sig = Monitor::signal_seen();
            throw core::Error(core::ErrorKind::Interrupted, p.out_dir, "",
                              core::cat("interrupted", sig ? core::cat(" by signal ", sig) : std::string(), " after ",
                                        mon.units_done(), " of ", all.size(),
                                        " work units; rerun the same command with --resume"));
        }
        if (hasher) hasher->finish();  // every byte has landed (last progress round / gather stream)
    });
    const double my_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (auto e = agree_on_error(comm, err)) {
        comm.barrier();
        // Transient causes (I/O, a signal) keep the partials and the journal for --resume; a bad input cannot
        // be resumed (its change is refused), so nothing is left behind then.
        const bool resumable = e->kind() == core::ErrorKind::Io || e->kind() == core::ErrorKind::Interrupted;
        if (comm.rank() == 0 && !resumable) {
            remove_partials(p);
            resume::remove_dir(p);
        }
        if (comm.rank() == 0 && e->kind() == core::ErrorKind::Io)
            core::log::info("partial outputs and the resume journal are kept in " + p.out_dir +
                            "; once the cause is fixed, rerun the same command with --resume");
        throw *e;
    }
    core::log::debug(core::cat("units: ", my_s, " s (busy ", busy_s, " s)"));
    comm.barrier();  // every rank's pwrites are complete before rank 0 fsyncs and renames
    // The report hashes each tensor's final bytes in the partials (direct mode: any rank; gather: rank 0's disk).
    std::vector<resume::Digest> tensor_sha;
    if (!opt.report.empty()) {
        err = capture([&] { tensor_sha = hash_tensors(p, comm, gather); });
        if (auto e = agree_on_error(comm, err)) throw *e;
    }
    err = capture([&] {
        if (comm.rank() != 0) return;
        finish_outputs(p);
        resume::remove_dir(p);
    });
    if (auto e = agree_on_error(comm, err)) throw *e;
    core::log::debug(core::cat("finish: ", std::chrono::duration<double>(Clock::now() - t0).count(), " s"));
    RunStats st;
    // Quantization error: a tensor's row blocks may sit on several ranks; sum their squares on rank 0.
    std::string mine_q;  // exact doubles: hexfloat text
    for (const auto& [key, v] : c.quant_err) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "\t%a\t%a\n", v.first, v.second);
        mine_q += core::cat(key.first, "\t", key.second, buf);
    }
    std::map<std::pair<std::uint32_t, std::string>, std::pair<double, double>> total_q;
    for (const auto& part : comm.gather(mine_q, 0)) {
        std::istringstream in(part);
        std::string line;
        while (std::getline(in, line)) {
            const auto a = line.find('\t'), b = line.find('\t', a + 1), d = line.rfind('\t');
            if (a == std::string::npos || b == std::string::npos || d <= b) continue;
            auto& acc = total_q[{static_cast<std::uint32_t>(std::stoul(line.substr(0, a))), line.substr(a + 1, b - a - 1)}];
            acc.first += std::strtod(line.substr(b + 1, d - b - 1).c_str(), nullptr);
            acc.second += std::strtod(line.substr(d + 1).c_str(), nullptr);
        }
    }
    for (const auto& part : comm.gather(c.bnb_stats, 0)) st.bnb_stats += part;
    for (const auto& [key, v] : total_q) {
        const double r = v.second > 0 ? std::sqrt(v.first / v.second) : std::sqrt(v.first);
        st.quant_errors += core::cat(key.first, "\t", key.second, "\t", r, "\n");
    }
    st.bytes_read = comm.sum(c.bytes_read.load());
    st.input_bytes_read = comm.sum(c.input_read.load());
    st.bytes_written = comm.sum(c.bytes_written.load());
    st.items = comm.sum(c.items.load());
    st.units = comm.sum(c.units.load());
    for (int k = 0; k < kStages; ++k) st.stage_seconds[k] = static_cast<double>(comm.sum(c.stage_ns[k].load())) * 1e-9;
    st.max_rank_seconds = comm.max(busy_s);
    const std::uint64_t total_us = comm.sum(static_cast<std::uint64_t>(busy_s * 1e6));
    st.mean_rank_seconds = static_cast<double>(total_us) / 1e6 / comm.size();
    st.max_rank_peak_rss = comm.max(peak_rss_bytes());
    st.units_resumed = comm.sum(n_resumed.load());
    if (opt.hash_outputs) {
        st.hashed_from_memory = comm.sum(hasher->from_memory());
        st.hashed_read_back = comm.sum(hasher->read_back());
        st.files_hashed = comm.sum(hasher->files_hashed());
    }
    st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!opt.report.empty()) {
        ReportInfo info{st.seconds, st.bytes_read, st.bytes_written, st.units_resumed, n_threads, opt.resume};
        err = capture([&] { write_report(opt.report, p, comm, records, tensor_sha, info, gather); });
        if (auto e = agree_on_error(comm, err)) throw *e;
    }
    return st;
}

}  // namespace shardforge::exec

namespace shardforge::exec {

std::string report_bnb_requant(const plan::Plan& p, const std::string& bnb_stats, std::size_t worst) {
    struct Row {
        std::string name;
        long long n = 0, changed = 0;
        double err = 0;
    };
    std::vector<Row> rows;
    std::istringstream in(bnb_stats);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string file, name, n, ch, err;
        if (!std::getline(ls, file, '\t') || !std::getline(ls, name, '\t') || !std::getline(ls, n, '\t') ||
            !std::getline(ls, ch, '\t') || !std::getline(ls, err, '\t'))
            continue;
        rows.push_back({name, std::stoll(n), std::stoll(ch), std::stod(err)});
    }
    if (rows.empty()) return "";
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
    std::string tsv = "tensor\telements\tchanged_codes\tchanged_fraction\tdelta_rel_err\n";
    long long tn = 0, tch = 0;
    for (const auto& r : rows) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "\t%lld\t%lld\t%.9g\t%.9g\n", r.n, r.changed,
                      r.n ? static_cast<double>(r.changed) / static_cast<double>(r.n) : 0.0, r.err);
        tsv += r.name + buf;
        tn += r.n;
        tch += r.changed;
    }
    const fs::path path = fs::path(p.out_dir) / "bnb_requant.tsv";
    const std::string partial = path.string() + ".partial";
    {
        UniqueFd fd = open_write(partial, true);
        pwrite_all(fd.get(), std::as_bytes(std::span(tsv.data(), tsv.size())), 0, partial, "");
        fsync_or_throw(fd.get(), partial);
    }
    std::error_code ec;
    fs::rename(partial, path, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, path.string(), "", "cannot rename: " + ec.message());

    std::vector<Row> by_err = rows;
    std::stable_sort(by_err.begin(), by_err.end(), [](const Row& a, const Row& b) { return a.err > b.err; });
    char head[256];
    std::snprintf(head, sizeof head,
                  "bnb re-quantization: %zu merged tensors, %.4g%% of 4-bit codes changed by the adapter; "
                  "relative error of the applied delta (1 = delta lost), worst:",
                  rows.size(), tn ? 100.0 * static_cast<double>(tch) / static_cast<double>(tn) : 0.0);
    std::string s = head;
    for (std::size_t i = 0; i < std::min(worst, by_err.size()); ++i) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " %.4g (%.3g%% codes changed)", by_err[i].err,
                      by_err[i].n ? 100.0 * static_cast<double>(by_err[i].changed) / static_cast<double>(by_err[i].n) : 0.0);
        s += "\n  " + by_err[i].name + buf;
    }
    return s + "\n  per tensor: " + path.string();
}

}  // namespace shardforge::exec
