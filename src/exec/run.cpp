// Plan execution on one rank: the rank's items are processed by a small thread pool; every output byte goes to
// its planned offset in a *.partial file. Rank 0 prepares and finally renames the files once all ranks agree.
#include <shardforge/exec.hpp>
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include "fault.hpp"
#include "gpu.hpp"
#include "io.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

int default_threads() {
    cpu_set_t set;
    int cores = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
    int local_ranks = 1;
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"}) {
        if (const char* s = std::getenv(v)) {
            local_ranks = std::max(1, std::atoi(s));
            break;
        }
    }
    // Slurm already restricts the affinity mask to the rank's CPUs when it binds; then cores is the rank's share.
    if (std::getenv("SLURM_CPUS_PER_TASK")) return std::max(1, std::atoi(std::getenv("SLURM_CPUS_PER_TASK")));
    return std::max(1, cores / local_ranks);
}

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

// --device cuda: the rank's GPU quantizes (same bytes as the CPU) and, when every rank has a GPU, computes the
// LoRA GEMMs (cuBLAS; all ranks then round the same way, so outputs stay independent of the rank count).
struct GpuUse {
    quant::gpu::Device* dev = nullptr;
    bool gemm = false;
    std::size_t max_memory = 0;
};

// The GEMM lora::apply uses: cuBLAS on the rank's GPU when every rank has one, else (empty) cblas_sgemm.
lora::MatmulF32 gpu_matmul(const GpuUse& gpu) {
    if (!gpu.gemm) return {};
    return [&gpu](const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n, float* out) {
        exec::gpu::matmul(gpu.dev->index(), b, a, m, k, n, out, gpu.max_memory);
    };
}

struct Counters {
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0}, items{0}, units{0};
    std::atomic<std::uint64_t> stage_ns[kStages] = {};
    std::mutex mu;
    // Per quantized output tensor: sums of squared error and of squared reference over its row blocks.
    std::map<std::pair<std::uint32_t, std::string>, std::pair<double, double>> quant_err;
};

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

// Gather wire format: one message per chunk, a 16-byte header then the bytes.
constexpr int kGatherTag = 0x5f01;
constexpr std::uint32_t kEndOfStream = 0xffffffffu;
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

std::vector<float> read_source_f32(FileTable& files, const plan::Plan& p, const plan::Source& s, Counters& c,
                                   StageTimer& tm) {
    std::vector<std::byte> raw(s.nbytes);
    pread_all(files.input(s.file), raw, s.offset, p.input_files[s.file], s.name);
    c.bytes_read += s.nbytes;
    tm.lap(kRead);
    std::vector<float> out(static_cast<std::size_t>(core::numel(s.shape)));
    formats::to_f32(s.dtype, raw.data(), out.data(), out.size());
    tm.lap(kDequant);
    return out;
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

// Pass-through: a raw emit of an unmodified source in its own dtype copies bytes (no f32 round trip).
bool is_passthrough(const plan::Item& it) {
    if (it.sources.size() != 1 || !it.generated.empty()) return false;
    const auto& s = it.sources[0];
    if (s.merge || s.row_begin != 0 || s.row_end >= 0) return false;
    for (const auto& e : it.emits)
        if (e.kind != plan::EmitKind::Raw || e.dtype != s.dtype || !e.transforms.empty() || e.scale != 1.0f)
            return false;
    return true;
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

// The item's f32 values for rows [r0, r1) of dim 0 (all rows: the whole tensor as the plan describes it).
std::vector<float> build_values(const plan::Plan& p, const plan::Item& it, std::int64_t r0, std::int64_t r1,
                                bool whole, FileTable& files, Counters& c, StageTimer& tm, const GpuUse& gpu) {
    std::vector<float> vals;
    if (!it.generated.empty()) return it.generated;
    const lora::LoadF32 load = adapter_loader(files, c);
    if (whole) {
        vals.reserve(static_cast<std::size_t>(core::numel(it.shape)));
        for (const auto& s : it.sources) {
            std::vector<float> w = read_source_f32(files, p, s, c, tm);
            if (s.merge) lora::apply(*s.merge, w, s.shape, load, gpu_matmul(gpu));
            tm.lap(kMerge);
            append_rows(w, s, vals);
        }
        return vals;
    }
    // A row block: each source contributes a contiguous range of item rows, made of whole rows of its own dim 0.
    const std::int64_t R = core::numel(it.shape) / it.shape[0];
    vals.reserve(static_cast<std::size_t>((r1 - r0) * R));
    std::int64_t c0 = 0;  // first item row of the current source
    for (const auto& s : it.sources) {
        const std::int64_t S = core::numel(s.shape) / s.shape[0];
        const bool sliced = !(s.row_begin == 0 && s.row_end < 0);
        const std::int64_t n_rows_item = (sliced ? ((s.row_end < 0 ? s.shape[0] : s.row_end) - s.row_begin) * S
                                                 : core::numel(s.shape)) / R;
        const std::int64_t x = std::max(r0, c0), y = std::min(r1, c0 + n_rows_item);
        if (x < y) {
            const std::int64_t base_row = sliced ? s.row_begin : 0;
            const std::int64_t sr0 = base_row + (x - c0) * R / S, sr1 = base_row + (y - c0) * R / S;
            const std::size_t dsz = core::dtype_size(s.dtype);
            std::vector<std::byte> raw(static_cast<std::size_t>((sr1 - sr0) * S) * dsz);
            pread_all(files.input(s.file), raw, s.offset + static_cast<std::uint64_t>(sr0 * S) * dsz,
                      p.input_files[s.file], s.name);
            c.bytes_read += raw.size();
            tm.lap(kRead);
            std::vector<float> w(static_cast<std::size_t>((sr1 - sr0) * S));
            formats::to_f32(s.dtype, raw.data(), w.data(), w.size());
            tm.lap(kDequant);
            if (s.merge) lora::apply_rows(*s.merge, w, s.shape, sr0, sr1, load, gpu_matmul(gpu));
            tm.lap(kMerge);
            vals.insert(vals.end(), w.begin(), w.end());
        }
        c0 += n_rows_item;
    }
    return vals;
}

// One unit of work: rows [u.row_begin, u.row_end) of an item, every emit's matching byte range to the sink.
void run_unit(const plan::Plan& p, const plan::Unit& u, FileTable& files, Sink& sink, Counters& c, const GpuUse& gpu) {
    const plan::Item& it = p.items[u.item];
    StageTimer tm(c);
    const std::int64_t rows0 = it.shape.empty() ? 1 : it.shape[0];
    const bool whole = u.row_begin == 0 && u.row_end == rows0;
    const std::int64_t k = u.row_end - u.row_begin;
    // Byte range of an emit (or of the single source) that the block covers.
    auto range = [&](std::uint64_t nbytes) -> std::pair<std::uint64_t, std::uint64_t> {
        if (whole || rows0 <= 0) return {0, nbytes};
        const std::uint64_t per_row = nbytes / static_cast<std::uint64_t>(rows0);
        return {per_row * static_cast<std::uint64_t>(u.row_begin), per_row * static_cast<std::uint64_t>(k)};
    };
    if (is_passthrough(it)) {
        const auto& s = it.sources[0];
        const auto [off, len] = range(s.nbytes);
        std::vector<std::byte> raw(len);
        pread_all(files.input(s.file), raw, s.offset + off, p.input_files[s.file], s.name);
        c.bytes_read += len;
        tm.lap(kRead);
        for (const auto& e : it.emits) {
            sink.write(e.file, e.offset + off, raw, e.name);
            c.bytes_written += len;
        }
        tm.lap(kWrite);
        ++c.units;
        if (whole || u.row_begin == 0) ++c.items;
        return;
    }
    std::vector<float> vals = build_values(p, it, u.row_begin, u.row_end, whole, files, c, tm, gpu);
    SF_CHECK(static_cast<std::int64_t>(vals.size()) == (whole ? core::numel(it.shape) : k * (core::numel(it.shape) / rows0)),
             "item size");
    core::Shape shape = it.shape;
    if (!whole) shape[0] = k;
    std::vector<std::byte> bytes;
    std::vector<float> tmp;
    for (const auto& e : it.emits) {
        const std::vector<float>* v = &vals;
        if (!e.transforms.empty() || e.scale != 1.0f) {
            tmp = vals;
            for (auto t : e.transforms) {
                // A block holds whole heads: the permutation of k rows has k / (rows per head) heads.
                if (t.kind == model::TransformKind::PermuteLlamaHeads && !whole) t.arg = t.arg * k / rows0;
                model::apply_transform(t, tmp.data(), shape);
            }
            if (e.scale != 1.0f)
                for (float& x : tmp) x *= e.scale;
            v = &tmp;
        }
        const auto [off, len] = range(e.nbytes);
        std::int64_t expert0 = 0;
        if (!whole && !e.imatrix.empty()) {
            const std::int64_t n_exp = static_cast<std::int64_t>(e.imatrix.size()) / shape.back();
            if (n_exp > 1) expert0 = u.row_begin / (rows0 / n_exp);
        }
        encode(e, *v, shape, len, expert0, bytes, gpu);
        if (e.kind == plan::EmitKind::Ggml && e.gtype != quant::GgmlType::F32 && e.gtype != quant::GgmlType::F16 &&
            e.gtype != quant::GgmlType::BF16) {
            const auto [err, ref] = quant_sq_error(e, *v, shape, bytes);
            std::lock_guard lock(c.mu);
            auto& acc = c.quant_err[{e.file, e.name}];
            acc.first += err;
            acc.second += ref;
        }
        tm.lap(kQuantize);
        sink.write(e.file, e.offset + off, bytes, e.name);
        c.bytes_written += len;
        tm.lap(kWrite);
    }
    ++c.units;
    if (u.row_begin == 0) ++c.items;
}

void prepare_outputs(const plan::Plan& p) {
    fs::create_directories(p.out_dir);
    for (const auto& f : p.files) {
        if (f.kind != plan::FileKind::Tensors) continue;
        const std::string path = partial_path(p, f);
        UniqueFd fd = open_write(path, true);
        if (::ftruncate(fd.get(), static_cast<off_t>(f.size)) != 0)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot size file to ", f.size, " bytes"));
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
std::optional<core::Error> receive_chunks(const plan::Plan& p, Comm& comm, FileTable& files, Counters& c) {
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
        StageTimer tm(c);
        err = capture([&] {
            if (h.file >= p.files.size()) throw core::Error(core::ErrorKind::Internal, "", "", "bad gather file index");
            pwrite_all(files.output(h.file), std::span(buf).subspan(sizeof h), h.offset, p.files[h.file].name, "");
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
    std::unique_ptr<quant::gpu::Device> device;
    auto err = capture([&] { device = select_device(opt.device, opt.max_gpu_memory); });
    if (auto e = agree_on_error(comm, err)) throw *e;
    GpuUse gpu;
    gpu.dev = device.get();
    gpu.max_memory = opt.max_gpu_memory;
    gpu.gemm = comm.sum(device ? 1 : 0) == static_cast<std::uint64_t>(comm.size());
    if (device && comm.rank() == 0)
        core::log::info(core::cat("GPU: ", device->name(), gpu.gemm ? "" : " (some ranks have no GPU: LoRA GEMMs on the CPU)"));
    // Gather mode with a GPU on every rank: the row blocks travel through NCCL (collective to set up).
    std::unique_ptr<Comm> nccl;
    if (opt.write == WriteMode::Gather && comm.size() > 1 && gpu.gemm && !exec::gpu::nccl_info().empty()) {
        err = capture([&] { nccl = make_nccl_comm(make_mpi_comm(), device->index()); });
        if (auto e = agree_on_error(comm, err)) throw *e;
        if (comm.rank() == 0) core::log::info("gather mode: row blocks via NCCL");
    }
    Comm& p2p = nccl ? *nccl : comm;
    err = capture([&] {
        fault::set_rank(comm.rank());
        if (comm.rank() == 0) prepare_outputs(p);
    });
    if (auto e = agree_on_error(comm, err)) {
        if (comm.rank() == 0) remove_partials(p);
        throw *e;
    }

    core::log::debug(core::cat("prepare: ", std::chrono::duration<double>(Clock::now() - t0).count(), " s"));
    Counters c;
    const std::vector<plan::Unit> all = plan::units(p);
    const std::vector<std::uint32_t> mine = plan::assign_units(all, p, comm.rank(), comm.size());
    int want = opt.threads > 0 ? opt.threads : default_threads();
    if (p.max_memory_per_rank > 0) want = std::min(want, p.threads);  // the budget was sized for p.threads
    const int n_threads = std::max(1, std::min<int>(want, static_cast<int>(std::max<std::size_t>(1, mine.size()))));
    const bool gather = opt.write == WriteMode::Gather && comm.size() > 1;
    const auto t_units = Clock::now();
    double busy_s = 0;
    err = capture([&] {
        FileTable files(p);
        DirectSink direct(p, files);
        QueueSink queue(static_cast<std::size_t>(p.gather_window));
        Sink& sink = gather && comm.rank() != 0 ? static_cast<Sink&>(queue) : direct;
        std::atomic<std::size_t> next{0};
        std::atomic<bool> failed{false};
        std::atomic<int> live{n_threads};
        std::optional<core::Error> first;
        std::mutex mu;
        auto worker = [&] {
            while (!failed) {
                const std::size_t k = next++;
                if (k >= mine.size()) break;
                // Hook points for a journal: unit all[mine[k]] starts here; it has finished (every byte handed to
                // the sink) when run_unit returns.
                auto e = capture([&] {
                    fault::before_item();
                    run_unit(p, all[mine[k]], files, sink, c, gpu);
                    fault::after_item();
                });
                if (e) {
                    std::lock_guard lock(mu);
                    if (!first) first = e;
                    failed = true;
                }
            }
            if (--live == 0) {
                busy_s = std::chrono::duration<double>(Clock::now() - t_units).count();
                queue.close();
            }
        };
        std::vector<std::thread> pool;
        std::optional<core::Error> recv_err;
        if (!gather) {
            for (int i = 1; i < n_threads; ++i) pool.emplace_back(worker);
            worker();
        } else {
            // MPI calls stay on this thread (MPI_THREAD_FUNNELED): all workers run on the pool.
            for (int i = 0; i < n_threads; ++i) pool.emplace_back(worker);
            if (comm.rank() == 0) recv_err = receive_chunks(p, p2p, files, c);
            else send_chunks(p2p, queue, static_cast<std::size_t>(p.gather_window));
        }
        for (auto& t : pool) t.join();
        if (first) throw *first;
        if (recv_err) throw *recv_err;
    });
    const double my_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (auto e = agree_on_error(comm, err)) {
        comm.barrier();
        if (comm.rank() == 0) remove_partials(p);
        throw *e;
    }
    core::log::debug(core::cat("units: ", my_s, " s (busy ", busy_s, " s)"));
    comm.barrier();  // every rank's pwrites are complete before rank 0 fsyncs and renames
    err = capture([&] {
        if (comm.rank() == 0) finish_outputs(p);
    });
    if (auto e = agree_on_error(comm, err)) {
        if (comm.rank() == 0) remove_partials(p);
        throw *e;
    }
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
    for (const auto& [key, v] : total_q) {
        const double r = v.second > 0 ? std::sqrt(v.first / v.second) : std::sqrt(v.first);
        st.quant_errors += core::cat(key.first, "\t", key.second, "\t", r, "\n");
    }
    st.bytes_read = comm.sum(c.bytes_read.load());
    st.bytes_written = comm.sum(c.bytes_written.load());
    st.items = comm.sum(c.items.load());
    st.units = comm.sum(c.units.load());
    for (int k = 0; k < kStages; ++k) st.stage_seconds[k] = static_cast<double>(comm.sum(c.stage_ns[k].load())) * 1e-9;
    st.max_rank_seconds = comm.max(busy_s);
    const std::uint64_t total_us = comm.sum(static_cast<std::uint64_t>(busy_s * 1e6));
    st.mean_rank_seconds = static_cast<double>(total_us) / 1e6 / comm.size();
    st.max_rank_peak_rss = comm.max(peak_rss_bytes());
    st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return st;
}

}  // namespace shardforge::exec
