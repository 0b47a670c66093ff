// Plan execution on one rank: the rank's items are processed by a small thread pool; every output byte goes to
// its planned offset in a *.partial file. Rank 0 prepares and finally renames the files once all ranks agree.
#include <shardforge/exec.hpp>
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include "fault.hpp"
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
#include <functional>
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

struct Counters {
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0}, items{0};
    std::mutex mu;
    std::string quant_errors;  // "file\tname\trel_rmse\n" per quantized emit
    std::string bnb_stats;     // "file\tname\tn\tchanged\tdelta_rel_err\n" per bnb emit of a merged tensor
};

// Relative RMSE of the quantized bytes against the f32 values they were made from.
double quant_rel_rmse(const plan::Emit& e, const std::vector<float>& v, const core::Shape& shape,
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
    return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

// A quantized source's logical values (plan::Dequant): auxiliary tensors read whole and widened to f32, then the
// quant kernels over the element range [0, n).
void dequantize_source(FileTable& files, const plan::Plan& p, const plan::Source& s, const std::vector<std::byte>& raw,
                       Counters& c, float* out) {
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
    const std::int64_t n = core::numel(s.shape);
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
            quant::dequant_bnb4(v, 0, n, out);
            break;
        }
        case plan::DequantKind::Int8:
            quant::dequant_int8(reinterpret_cast<const std::int8_t*>(bytes), aux_f32[0].data(), s.shape.back(), 0, n,
                                out);
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
            quant::dequant_fp8(v, 0, n, out);
            break;
        }
    }
}

std::vector<float> read_source_f32(FileTable& files, const plan::Plan& p, const plan::Source& s, Counters& c) {
    std::vector<std::byte> raw(s.nbytes);
    pread_all(files.input(s.file), raw, s.offset, p.input_files[s.file], s.name);
    c.bytes_read += s.nbytes;
    std::vector<float> out(static_cast<std::size_t>(core::numel(s.shape)));
    if (s.dequant)
        dequantize_source(files, p, s, raw, c, out.data());
    else
        formats::to_f32(s.dtype, raw.data(), out.data(), out.size());
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

void encode(const plan::Emit& e, const std::vector<float>& v, const core::Shape& shape, std::vector<std::byte>& out) {
    out.resize(e.nbytes);
    if (e.kind == plan::EmitKind::Raw) {
        SF_CHECK(v.size() * core::dtype_size(e.dtype) == e.nbytes, core::cat("size of ", e.name));
        formats::from_f32(v.data(), e.dtype, out.data(), v.size());
        return;
    }
    const std::int64_t ne0 = shape.empty() ? 1 : shape.back();
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    SF_CHECK(quant::row_bytes(e.gtype, ne0) * static_cast<std::size_t>(nrows) == e.nbytes, core::cat("size of ", e.name));
    switch (e.gtype) {
        case quant::GgmlType::F32: formats::from_f32(v.data(), core::DType::F32, out.data(), v.size()); break;
        case quant::GgmlType::F16: formats::from_f32(v.data(), core::DType::F16, out.data(), v.size()); break;
        case quant::GgmlType::BF16: formats::from_f32(v.data(), core::DType::BF16, out.data(), v.size()); break;
        default: {
            if (e.imatrix.empty()) {
                quant::quantize_rows(e.gtype, v.data(), out.data(), nrows, ne0, nullptr);
                break;
            }
            // 3-D (experts): each expert's rows use that expert's slice of the importance vector.
            const std::int64_t n_exp = static_cast<std::int64_t>(e.imatrix.size()) / ne0;
            const std::int64_t rows_per = nrows / n_exp;
            const std::size_t row_b = quant::row_bytes(e.gtype, ne0);
            for (std::int64_t x = 0; x < n_exp; ++x)
                quant::quantize_rows(e.gtype, v.data() + x * rows_per * ne0,
                                     out.data() + static_cast<std::size_t>(x * rows_per) * row_b, rows_per, ne0,
                                     e.imatrix.data() + x * ne0);
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

// Pass-through: a raw emit of an unmodified source in its own dtype copies bytes (no f32 round trip).
bool is_passthrough(const plan::Item& it) {
    if (it.sources.size() != 1 || !it.generated.empty()) return false;
    const auto& s = it.sources[0];
    if (s.merge || s.dequant || s.row_begin != 0 || s.row_end >= 0) return false;
    for (const auto& e : it.emits)
        if (e.kind != plan::EmitKind::Raw || e.dtype != s.dtype || !e.transforms.empty() || e.scale != 1.0f)
            return false;
    return true;
}

void run_item(const plan::Plan& p, const plan::Item& it, FileTable& files, Counters& c) {
    if (is_passthrough(it)) {
        const auto& s = it.sources[0];
        std::vector<std::byte> raw(s.nbytes);
        pread_all(files.input(s.file), raw, s.offset, p.input_files[s.file], s.name);
        c.bytes_read += s.nbytes;
        for (const auto& e : it.emits) {
            pwrite_all(files.output(e.file), raw, e.offset, p.files[e.file].name, e.name);
            c.bytes_written += e.nbytes;
        }
        ++c.items;
        return;
    }
    std::vector<float> vals, base_vals;  // base_vals: unmerged values, kept for the bnb re-quantization report
    bool want_base = false;
    for (const auto& e : it.emits) want_base = want_base || e.kind == plan::EmitKind::Bnb4;
    if (!std::any_of(it.sources.begin(), it.sources.end(), [](const plan::Source& s) { return s.merge.has_value(); }))
        want_base = false;
    if (!it.generated.empty()) {
        vals = it.generated;
    } else {
        vals.reserve(static_cast<std::size_t>(core::numel(it.shape)));
        for (const auto& s : it.sources) {
            std::vector<float> w = read_source_f32(files, p, s, c);
            if (want_base) append_rows(w, s, base_vals);
            if (s.merge) {
                const lora::LoadF32 load = [&](const lora::TensorRef& ref) {
                    const auto& rd = files.adapter(ref.adapter);
                    const auto& t = rd.at(ref.key);
                    std::vector<std::byte> raw(t.nbytes);
                    rd.read(t, 0, raw);
                    c.bytes_read += t.nbytes;
                    std::vector<float> f(static_cast<std::size_t>(core::numel(t.shape)));
                    formats::to_f32(t.dtype, raw.data(), f.data(), f.size());
                    return f;
                };
                lora::apply(*s.merge, w, s.shape, load);
            }
            append_rows(w, s, vals);
        }
    }
    SF_CHECK(static_cast<std::int64_t>(vals.size()) == core::numel(it.shape), "item size");
    std::vector<std::byte> bytes;
    std::vector<float> tmp;
    for (const auto& e : it.emits) {
        const std::vector<float>* v = &vals;
        if (!e.transforms.empty() || e.scale != 1.0f) {
            tmp = vals;
            for (const auto& t : e.transforms) model::apply_transform(t, tmp.data(), it.shape);
            if (e.scale != 1.0f)
                for (float& x : tmp) x *= e.scale;
            v = &tmp;
        }
        if (e.kind == plan::EmitKind::Bnb4) {
            std::string st;
            encode_bnb4(e, *v, want_base ? &base_vals : nullptr, it.shape,
                        [&](std::uint64_t off, std::span<const std::byte> b) {
                            pwrite_all(files.output(e.file), b, off, p.files[e.file].name, e.name);
                            c.bytes_written += b.size();
                        }, st);
            if (!st.empty()) {
                std::lock_guard lock(c.mu);
                c.bnb_stats += st;
            }
            continue;
        }
        encode(e, *v, it.shape, bytes);
        if (e.kind == plan::EmitKind::Ggml && e.gtype != quant::GgmlType::F32 && e.gtype != quant::GgmlType::F16 &&
            e.gtype != quant::GgmlType::BF16) {
            const double r = quant_rel_rmse(e, *v, it.shape, bytes);
            std::lock_guard lock(c.mu);
            c.quant_errors += core::cat(e.file, "\t", e.name, "\t", r, "\n");
        }
        pwrite_all(files.output(e.file), bytes, e.offset, p.files[e.file].name, e.name);
        c.bytes_written += e.nbytes;
    }
    ++c.items;
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

RunStats run(const plan::Plan& p, Comm& comm, const RunOptions& opt) {
    const auto t0 = Clock::now();
    auto err = capture([&] {
        fault::set_rank(comm.rank());
        if (comm.rank() == 0) prepare_outputs(p);
    });
    if (auto e = agree_on_error(comm, err)) {
        if (comm.rank() == 0) remove_partials(p);
        throw *e;
    }

    core::log::debug(core::cat("prepare: ", std::chrono::duration<double>(Clock::now() - t0).count(), " s"));
    Counters c;
    const std::vector<std::uint32_t> mine = plan::assign_items(p, comm.rank(), comm.size());
    const int n_threads = std::max(1, std::min<int>(opt.threads > 0 ? opt.threads : default_threads(),
                                                    static_cast<int>(std::max<std::size_t>(1, mine.size()))));
    err = capture([&] {
        FileTable files(p);
        std::atomic<std::size_t> next{0};
        std::atomic<bool> failed{false};
        std::optional<core::Error> first;
        std::mutex mu;
        auto worker = [&] {
            while (!failed) {
                const std::size_t k = next++;
                if (k >= mine.size()) return;
                auto e = capture([&] {
                    fault::before_item();
                    run_item(p, p.items[mine[k]], files, c);
                    fault::after_item();
                });
                if (e) {
                    std::lock_guard lock(mu);
                    if (!first) first = e;
                    failed = true;
                }
            }
        };
        std::vector<std::thread> pool;
        for (int i = 1; i < n_threads; ++i) pool.emplace_back(worker);
        worker();
        for (auto& t : pool) t.join();
        if (first) throw *first;
    });
    const double my_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (auto e = agree_on_error(comm, err)) {
        comm.barrier();
        if (comm.rank() == 0) remove_partials(p);
        throw *e;
    }
    core::log::debug(core::cat("items: ", my_s, " s"));
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
    for (const auto& part : comm.gather(c.quant_errors, 0)) st.quant_errors += part;
    for (const auto& part : comm.gather(c.bnb_stats, 0)) st.bnb_stats += part;
    st.bytes_read = comm.sum(c.bytes_read.load());
    st.bytes_written = comm.sum(c.bytes_written.load());
    st.items = comm.sum(c.items.load());
    st.max_rank_seconds = comm.max(my_s);
    const std::uint64_t total_ms = comm.sum(static_cast<std::uint64_t>(my_s * 1000.0));
    st.mean_rank_seconds = static_cast<double>(total_ms) / 1000.0 / comm.size();
    st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
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
