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

// The cores the launcher gave this rank (placement.cpp); unbound ranks of a node are pinned to their share.
int default_threads() { return adopt_placement().threads; }

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
    std::atomic<std::uint64_t> input_read{0};  // of bytes_read: from plan.input_files (not the merge's adapter reads)
    std::mutex mu;
    std::string quant_errors;  // "file\tname\trel_rmse\n" per quantized emit
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

std::vector<float> read_source_f32(FileTable& files, const plan::Plan& p, const plan::Source& s, Counters& c) {
    std::vector<std::byte> raw(s.nbytes);
    pread_all(files.input(s.file), raw, s.offset, p.input_files[s.file], s.name);
    c.bytes_read += s.nbytes;
    c.input_read += s.nbytes;
    std::vector<float> out(static_cast<std::size_t>(core::numel(s.shape)));
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

// Encodes `vals` (the item's f32 tensor) into each emit and writes it at its planned offset.
void write_emits(const plan::Plan& p, const core::Shape& shape, const std::vector<plan::Emit>& emits,
                 const std::vector<float>& vals, FileTable& files, Counters& c) {
    std::vector<std::byte> bytes;
    std::vector<float> tmp;
    for (const auto& e : emits) {
        const std::vector<float>* v = &vals;
        if (!e.transforms.empty() || e.scale != 1.0f) {
            tmp = vals;
            for (const auto& t : e.transforms) model::apply_transform(t, tmp.data(), shape);
            if (e.scale != 1.0f)
                for (float& x : tmp) x *= e.scale;
            v = &tmp;
        }
        encode(e, *v, shape, bytes);
        if (e.kind == plan::EmitKind::Ggml && e.gtype != quant::GgmlType::F32 && e.gtype != quant::GgmlType::F16 &&
            e.gtype != quant::GgmlType::BF16) {
            const double r = quant_rel_rmse(e, *v, shape, bytes);
            std::lock_guard lock(c.mu);
            c.quant_errors += core::cat(e.file, "\t", e.name, "\t", r, "\n");
        }
        pwrite_all(files.output(e.file), bytes, e.offset, p.files[e.file].name, e.name);
        c.bytes_written += e.nbytes;
    }
}

// Batch jobs: an item with merge variants reads its sources once; each variant (the item's own merges and emits,
// then every plan::Variant) is built from a copy of the unmerged values, exactly as a separate run would build it.
void run_variants(const plan::Plan& p, const plan::Item& it, FileTable& files, Counters& c) {
    std::vector<std::vector<std::byte>> raw(it.sources.size());
    std::vector<std::vector<float>> unmerged(it.sources.size());
    for (std::size_t k = 0; k < it.sources.size(); ++k) {
        const auto& s = it.sources[k];
        raw[k].resize(s.nbytes);
        pread_all(files.input(s.file), raw[k], s.offset, p.input_files[s.file], s.name);
        c.bytes_read += s.nbytes;
        c.input_read += s.nbytes;
        unmerged[k].resize(static_cast<std::size_t>(core::numel(s.shape)));
        formats::to_f32(s.dtype, raw[k].data(), unmerged[k].data(), unmerged[k].size());
    }
    const lora::LoadF32 load = adapter_loader(files, c);
    auto one = [&](const std::vector<std::optional<lora::MergeTarget>>& merges, const std::vector<plan::Emit>& emits) {
        // No merge and raw emits in the source dtype: the bytes are copied, as the single-run pass-through does.
        const auto& s0 = it.sources[0];
        bool passthrough = it.sources.size() == 1 && !merges[0] && s0.row_begin == 0 && s0.row_end < 0;
        for (const auto& e : emits)
            passthrough = passthrough && e.kind == plan::EmitKind::Raw && e.dtype == s0.dtype && e.transforms.empty() &&
                          e.scale == 1.0f;
        if (passthrough) {
            for (const auto& e : emits) {
                pwrite_all(files.output(e.file), raw[0], e.offset, p.files[e.file].name, e.name);
                c.bytes_written += e.nbytes;
            }
            return;
        }
        std::vector<float> vals;
        vals.reserve(static_cast<std::size_t>(core::numel(it.shape)));
        for (std::size_t k = 0; k < it.sources.size(); ++k) {
            if (!merges[k]) {
                append_rows(unmerged[k], it.sources[k], vals);
                continue;
            }
            std::vector<float> w = unmerged[k];
            lora::apply(*merges[k], w, it.sources[k].shape, load);
            append_rows(w, it.sources[k], vals);
        }
        SF_CHECK(static_cast<std::int64_t>(vals.size()) == core::numel(it.shape), "item size");
        write_emits(p, it.shape, emits, vals, files, c);
    };
    std::vector<std::optional<lora::MergeTarget>> own;
    for (const auto& s : it.sources) own.push_back(s.merge);
    one(own, it.emits);
    for (const auto& v : it.variants) one(v.merges, v.emits);
    ++c.items;
}

void run_item(const plan::Plan& p, const plan::Item& it, FileTable& files, Counters& c) {
    if (!it.variants.empty()) return run_variants(p, it, files, c);
    if (is_passthrough(it)) {
        const auto& s = it.sources[0];
        std::vector<std::byte> raw(s.nbytes);
        pread_all(files.input(s.file), raw, s.offset, p.input_files[s.file], s.name);
        c.bytes_read += s.nbytes;
        c.input_read += s.nbytes;
        for (const auto& e : it.emits) {
            pwrite_all(files.output(e.file), raw, e.offset, p.files[e.file].name, e.name);
            c.bytes_written += e.nbytes;
        }
        ++c.items;
        return;
    }
    std::vector<float> vals;
    if (!it.generated.empty()) {
        vals = it.generated;
    } else {
        vals.reserve(static_cast<std::size_t>(core::numel(it.shape)));
        for (const auto& s : it.sources) {
            std::vector<float> w = read_source_f32(files, p, s, c);
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
    st.bytes_read = comm.sum(c.bytes_read.load());
    st.input_bytes_read = comm.sum(c.input_read.load());
    st.bytes_written = comm.sum(c.bytes_written.load());
    st.items = comm.sum(c.items.load());
    st.max_rank_seconds = comm.max(my_s);
    const std::uint64_t total_ms = comm.sum(static_cast<std::uint64_t>(my_s * 1000.0));
    st.mean_rank_seconds = static_cast<double>(total_ms) / 1000.0 / comm.size();
    st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return st;
}

}  // namespace shardforge::exec
