// HDF5 run report: written collectively (parallel HDF5 over MPI-IO; each rank writes the rows of its own units),
// read back serially by `shardforge report`. Layout documented in docs/engine.md, "Resume, progress and run report".
#include "report.hpp"

#include "io.hpp"

#include <shardforge/config.hpp>
#include <shardforge/quant.hpp>

#if SHARDFORGE_HAVE_HDF5
#include <hdf5.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <variant>

namespace fs = std::filesystem;

namespace shardforge::exec {

std::uint64_t count_nans(const std::vector<float>& v) {
    std::uint64_t n = 0;
    for (const float x : v) n += std::isnan(x) ? 1 : 0;
    return n;
}

std::uint64_t count_nans_raw(core::DType t, std::span<const std::byte> b) {
    std::uint64_t n = 0;
    auto u16 = [&](std::size_t i) {
        return static_cast<std::uint16_t>(static_cast<unsigned>(b[2 * i]) | (static_cast<unsigned>(b[2 * i + 1]) << 8));
    };
    switch (t) {
        case core::DType::F32:
            for (std::size_t i = 0; i + 4 <= b.size(); i += 4) {
                float x;
                std::memcpy(&x, b.data() + i, 4);
                n += std::isnan(x) ? 1 : 0;
            }
            break;
        case core::DType::BF16:
            for (std::size_t i = 0; i < b.size() / 2; ++i) n += (u16(i) & 0x7f80) == 0x7f80 && (u16(i) & 0x7f) ? 1 : 0;
            break;
        case core::DType::F16:
            for (std::size_t i = 0; i < b.size() / 2; ++i) n += (u16(i) & 0x7c00) == 0x7c00 && (u16(i) & 0x3ff) ? 1 : 0;
            break;
        default: break;
    }
    return n;
}

void accumulate_delta(const std::vector<float>& before, const std::vector<float>& after, double& dw2, double& w2) {
    for (std::size_t i = 0; i < before.size() && i < after.size(); ++i) {
        const double d = static_cast<double>(after[i]) - before[i];
        dw2 += d * d;
        w2 += static_cast<double>(before[i]) * before[i];
    }
}

namespace {

// Row of (item i, emit k) = first_row[i] + k.
std::vector<std::uint64_t> first_rows(const plan::Plan& p) {
    std::vector<std::uint64_t> first(p.items.size() + 1, 0);
    for (std::size_t i = 0; i < p.items.size(); ++i) first[i + 1] = first[i] + p.items[i].emits.size();
    return first;
}

const plan::Emit& emit_of_row(const plan::Plan& p, const std::vector<std::uint64_t>& first, std::uint64_t row,
                              std::size_t& item) {
    item = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), row) - first.begin()) - 1;
    return p.items[item].emits[row - first[item]];
}

}  // namespace

RowRange report_rows(const plan::Plan& p, const Comm& comm, bool gather) {
    std::uint64_t n = 0;
    for (const auto& it : p.items) n += it.emits.size();
    if (gather) return comm.rank() == 0 ? RowRange{0, n} : RowRange{0, 0};
    const auto r = static_cast<std::uint64_t>(comm.rank()), s = static_cast<std::uint64_t>(comm.size());
    return {n * r / s, n * (r + 1) / s};
}

std::vector<resume::Digest> hash_tensors(const plan::Plan& p, const Comm& comm, bool gather) {
    const RowRange rr = report_rows(p, comm, gather);
    const auto first = first_rows(p);
    std::vector<resume::Digest> out;
    std::vector<std::byte> buf;
    for (std::uint64_t row = rr.begin; row < rr.end; ++row) {
        std::size_t item = 0;
        const plan::Emit& e = emit_of_row(p, first, row, item);
        const std::string path = (fs::path(p.out_dir) / (p.files[e.file].name + ".partial")).string();
        UniqueFd fd = open_read(path);
        resume::Sha256 h;
        constexpr std::uint64_t chunk = 64u << 20;
        for (std::uint64_t off = 0; off < e.nbytes; off += chunk) {
            buf.resize(static_cast<std::size_t>(std::min(chunk, e.nbytes - off)));
            pread_all(fd.get(), buf, e.offset + off, path, e.name);
            h.update(buf);
        }
        out.push_back(h.final());
    }
    return out;
}

#if SHARDFORGE_HAVE_HDF5
namespace {

void h5check(long long rc, const std::string& path, const char* what) {
    if (rc < 0) throw core::Error(core::ErrorKind::Io, path, "", core::cat("HDF5: cannot ", what));
}

struct H5Id {
    hid_t id = -1;
    herr_t (*close)(hid_t) = nullptr;
    H5Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
    ~H5Id() {
        if (id >= 0 && close) close(id);
    }
    H5Id(const H5Id&) = delete;
    H5Id& operator=(const H5Id&) = delete;
    operator hid_t() const { return id; }
};

hid_t string_type(std::size_t len) {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, std::max<std::size_t>(1, len));
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

void write_attr(hid_t obj, const char* name, hid_t type, const void* v) {
    H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
    H5Id a(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    H5Awrite(a, type, v);
}
void attr_str(hid_t obj, const char* name, const std::string& v) {
    H5Id t(string_type(v.size()), H5Tclose);
    write_attr(obj, name, t, v.data());
}

// Writes this rank's rows (sorted, distinct) of an [n_rows, width] dataset collectively.
void write_rows(hid_t group, hid_t dxpl, const char* name, hid_t type, std::uint64_t n_rows, std::uint64_t width,
                const std::vector<std::uint64_t>& rows, const void* data, const std::string& path) {
    const int rank = width > 1 ? 2 : 1;
    const hsize_t dims[2] = {n_rows, width};
    H5Id fspace(H5Screate_simple(rank, dims, nullptr), H5Sclose);
    H5Id ds(H5Dcreate2(group, name, type, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    h5check(ds, path, core::cat("create dataset ", name).c_str());
    H5Sselect_none(fspace);
    for (std::size_t i = 0; i < rows.size();) {
        std::size_t j = i + 1;
        while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;  // one hyperslab per run of consecutive rows
        const hsize_t start[2] = {rows[i], 0}, count[2] = {j - i, width};
        H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, nullptr, count, nullptr);
        i = j;
    }
    const hsize_t mdims[2] = {std::max<hsize_t>(1, rows.size()), width};
    H5Id mspace(H5Screate_simple(rank, mdims, nullptr), H5Sclose);
    if (rows.empty()) H5Sselect_none(mspace);
    h5check(H5Dwrite(ds, type, mspace, fspace, dxpl, data), path, core::cat("write dataset ", name).c_str());
}

std::string type_name(const plan::Emit& e) {
    return std::visit(core::Overloaded{
                          [](const plan::RawEncoding& r) { return std::string(core::dtype_name(r.dtype)); },
                          [](const plan::GgmlEncoding& g) { return quant::type_upper_name(g.type); },
                          [](const plan::Bnb4Encoding& b) {
                              return std::string(b.spec.type == quant::Bnb4Type::NF4 ? "NF4" : "FP4");
                          }},
                      e.encoding);
}

}  // namespace

// Per-tensor figures summed over the tensor's row blocks (which may have run on several ranks).
struct RowFacts {
    std::uint64_t nan = 0;
    double q_err2 = -1, q_ref2 = 0, dw2 = -1, w2 = 0, seconds = 0;
    std::int32_t rank = -1;
    std::uint8_t resumed = 1;
};

namespace {

// Widths of the report's fixed-size columns.
struct Widths {
    std::size_t name_len = 1, file_len = 1, max_nd = 1;
};
Widths column_widths(const plan::Plan& p) {
    Widths w;
    for (const auto& it : p.items) {
        w.max_nd = std::max(w.max_nd, it.shape.size());
        for (const auto& e : it.emits) {
            w.name_len = std::max(w.name_len, e.name.size());
            w.file_len = std::max(w.file_len, p.files[e.file].name.size());
        }
    }
    return w;
}

// collective: rank 0 sums every unit's facts into its tensors' rows and sends every rank the table (n RowFacts).
std::string row_facts_table(const plan::Plan& p, Comm& comm, const std::vector<resume::UnitRecord>& records,
                            const std::vector<std::uint64_t>& first_row) {
    const std::uint64_t n = first_row.back();
    std::string mine;
    for (const auto& r : records) {
        resume::UnitRecord x = r;
        if (x.resumed) x.rank = -1 - x.rank;  // marks "resumed" through the journal encoding
        mine += resume::encode_record(x);
    }
    std::string table;
    const std::vector<std::string> parts = comm.gather(mine, 0);
    if (comm.rank() == 0) {
        const std::vector<plan::Unit> units = plan::units(p);
        std::vector<RowFacts> rows(n);
        for (const auto& part : parts) {
            std::size_t valid = 0;
            for (const auto& r : resume::decode_records(std::as_bytes(std::span(part.data(), part.size())), valid)) {
                const plan::Unit& u = units.at(r.unit);
                const bool resumed = r.rank < 0;
                const int rank = resumed ? -1 - r.rank : r.rank;
                for (std::size_t k = 0; k < r.emits.size(); ++k) {
                    RowFacts& f = rows[first_row[u.item] + k];
                    const auto& e = r.emits[k];
                    f.nan += e.nan_count;
                    if (e.q_err2 >= 0) f.q_err2 = std::max(0.0, f.q_err2) + e.q_err2, f.q_ref2 += e.q_ref2;
                    if (r.dw2 >= 0) f.dw2 = std::max(0.0, f.dw2) + r.dw2, f.w2 += r.w2;
                    f.seconds += r.seconds;
                    if (u.row_begin == 0) f.rank = rank;  // the rank of the tensor's first block
                    if (!resumed) f.resumed = 0;
                }
            }
        }
        table.resize(n * sizeof(RowFacts));
        if (n) std::memcpy(table.data(), rows.data(), table.size());
    }
    comm.broadcast(table, 0);
    return table;
}

// This rank's rows of /tensors, column by column.
struct Columns {
    std::vector<std::uint64_t> rows, offset, nbytes, nans;
    std::string names, files, types;
    std::vector<std::int64_t> shape;
    std::vector<std::uint32_t> ndim;
    std::vector<std::int32_t> rank;
    std::vector<double> seconds, delta, rmse;
    std::vector<std::uint8_t> sha, resumed;
};

Columns make_columns(const plan::Plan& p, const std::vector<std::uint64_t>& first_row, const RowRange& rr,
                     const std::string& table, const std::vector<resume::Digest>& my_sha, const Widths& w) {
    Columns c;
    for (std::uint64_t row = rr.begin; row < rr.end; ++row) {
        std::size_t item = 0;
        const plan::Emit& e = emit_of_row(p, first_row, row, item);
        const plan::Item& it = p.items[item];
        RowFacts f;
        std::memcpy(&f, table.data() + row * sizeof(RowFacts), sizeof f);
        c.rows.push_back(row);
        std::string nm = e.name, fl = p.files[e.file].name, ty = type_name(e);
        nm.resize(w.name_len, '\0'), fl.resize(w.file_len, '\0'), ty.resize(16, '\0');
        c.names += nm, c.files += fl, c.types += ty;
        c.offset.push_back(e.offset), c.nbytes.push_back(e.nbytes);
        c.ndim.push_back(static_cast<std::uint32_t>(it.shape.size()));
        for (std::size_t d = 0; d < w.max_nd; ++d) c.shape.push_back(d < it.shape.size() ? it.shape[d] : 0);
        c.rank.push_back(f.rank), c.seconds.push_back(f.seconds);
        c.delta.push_back(f.dw2 >= 0 && f.w2 > 0 ? std::sqrt(f.dw2 / f.w2) : NAN);
        c.rmse.push_back(f.q_err2 >= 0 ? (f.q_ref2 > 0 ? std::sqrt(f.q_err2 / f.q_ref2) : std::sqrt(f.q_err2)) : NAN);
        c.nans.push_back(f.nan);
        const auto& d = my_sha[row - rr.begin];
        c.sha.insert(c.sha.end(), d.begin(), d.end());
        c.resumed.push_back(f.resumed);
    }
    return c;
}

void write_run_attrs(hid_t file, const plan::Plan& p, Comm& comm, const ReportInfo& info, std::uint64_t n) {
    const std::uint64_t n_ranks = static_cast<std::uint64_t>(comm.size()), units = plan::units(p).size();
    const std::int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count();
    const std::int32_t threads = info.threads;
    attr_str(file, "format", "shardforge run report 1");
    attr_str(file, "shardforge_version", SHARDFORGE_VERSION_STRING);
    attr_str(file, "out_dir", fs::absolute(p.out_dir).string());
    attr_str(file, "plan_sha256", resume::plan_digest(p));
    write_attr(file, "ranks", H5T_NATIVE_UINT64, &n_ranks);
    write_attr(file, "threads_per_rank", H5T_NATIVE_INT32, &threads);
    write_attr(file, "seconds", H5T_NATIVE_DOUBLE, &info.seconds);
    write_attr(file, "bytes_read", H5T_NATIVE_UINT64, &info.bytes_read);
    write_attr(file, "bytes_written", H5T_NATIVE_UINT64, &info.bytes_written);
    write_attr(file, "units", H5T_NATIVE_UINT64, &units);
    write_attr(file, "units_resumed", H5T_NATIVE_UINT64, &info.units_resumed);
    write_attr(file, "tensors", H5T_NATIVE_UINT64, &n);
    write_attr(file, "created_unix", H5T_NATIVE_INT64, &created);
}

void write_columns(hid_t g, hid_t dxpl, const Columns& c, std::uint64_t n, const Widths& w, const std::string& path) {
    const auto& rows = c.rows;
    {
        H5Id t(string_type(w.name_len), H5Tclose);
        write_rows(g, dxpl, "name", t, n, 1, rows, c.names.data(), path);
    }
    {
        H5Id t(string_type(w.file_len), H5Tclose);
        write_rows(g, dxpl, "file", t, n, 1, rows, c.files.data(), path);
    }
    {
        H5Id t(string_type(16), H5Tclose);
        write_rows(g, dxpl, "type", t, n, 1, rows, c.types.data(), path);
    }
    write_rows(g, dxpl, "offset", H5T_NATIVE_UINT64, n, 1, rows, c.offset.data(), path);
    write_rows(g, dxpl, "nbytes", H5T_NATIVE_UINT64, n, 1, rows, c.nbytes.data(), path);
    write_rows(g, dxpl, "ndim", H5T_NATIVE_UINT32, n, 1, rows, c.ndim.data(), path);
    write_rows(g, dxpl, "shape", H5T_NATIVE_INT64, n, w.max_nd, rows, c.shape.data(), path);
    write_rows(g, dxpl, "rank", H5T_NATIVE_INT32, n, 1, rows, c.rank.data(), path);
    write_rows(g, dxpl, "seconds", H5T_NATIVE_DOUBLE, n, 1, rows, c.seconds.data(), path);
    write_rows(g, dxpl, "sha256", H5T_NATIVE_UINT8, n, 32, rows, c.sha.data(), path);
    write_rows(g, dxpl, "delta_norm_ratio", H5T_NATIVE_DOUBLE, n, 1, rows, c.delta.data(), path);
    write_rows(g, dxpl, "quant_rel_rmse", H5T_NATIVE_DOUBLE, n, 1, rows, c.rmse.data(), path);
    write_rows(g, dxpl, "nan_count", H5T_NATIVE_UINT64, n, 1, rows, c.nans.data(), path);
    write_rows(g, dxpl, "resumed", H5T_NATIVE_UINT8, n, 1, rows, c.resumed.data(), path);
}

// Bytes through each stage: read and write as measured in this run (all ranks); dequant: the stored bytes of the
// input tensors the plan converts to f32 (dequantized or widened: every source of an item with a merge, a
// quantized source or an output that is not a copy of the stored bytes); merge: the stored bytes of the merged
// input tensors; quantize: the bytes of the quantized outputs.
std::vector<std::uint64_t> stage_bytes(const plan::Plan& p, const ReportInfo& info) {
    std::vector<std::uint64_t> b(kStages, 0);
    b[kRead] = info.bytes_read, b[kWrite] = info.bytes_written;
    for (const auto& it : p.items) {
        bool f32 = false;
        const auto outputs = [&](const std::vector<plan::Emit>& emits) {
            for (const auto& e : emits) {
                if (!std::holds_alternative<plan::RawEncoding>(e.encoding)) b[kQuantize] += e.nbytes;
                for (const auto& s : it.sources) f32 |= !plan::copies_stored_bytes(e, s.dtype);
            }
        };
        outputs(it.emits);
        for (const auto& v : it.variants) outputs(v.emits);
        std::uint64_t stored = 0;
        for (const auto& s : it.sources) {
            f32 |= s.dequant.has_value() || s.merge.has_value();
            stored += s.nbytes;
            if (s.merge) b[kMerge] += s.nbytes;
        }
        if (f32 || !it.variants.empty()) b[kDequant] += stored;
    }
    return b;
}

// Every rank's unit times and stage seconds, on every rank (rank 0 gathers them and broadcasts the table).
struct UnitTable {
    std::vector<UnitTime> units;     // indexed by unit id; rank -1: no rank reported it
    std::vector<double> stage_s;     // [ranks x kStages]
};

// collective
UnitTable unit_table(Comm& comm, const ReportInfo& info, std::size_t n_units) {
    std::string mine(sizeof info.stage_s, '\0');
    std::memcpy(mine.data(), info.stage_s, sizeof info.stage_s);
    if (!info.units.empty()) {
        const std::size_t at = mine.size();
        mine.resize(at + info.units.size() * sizeof(UnitTime));
        std::memcpy(mine.data() + at, info.units.data(), info.units.size() * sizeof(UnitTime));
    }
    const std::vector<std::string> parts = comm.gather(mine, 0);
    std::string table;
    if (comm.rank() == 0) {
        std::vector<UnitTime> units(n_units, UnitTime{0, -1, -1, NAN, NAN, 0});
        for (std::uint32_t u = 0; u < n_units; ++u) units[u].unit = u;
        for (const auto& part : parts) {
            table.append(part.data(), sizeof info.stage_s);
            for (std::size_t at = sizeof info.stage_s; at + sizeof(UnitTime) <= part.size(); at += sizeof(UnitTime)) {
                UnitTime t;
                std::memcpy(&t, part.data() + at, sizeof t);
                if (t.unit < n_units) units[t.unit] = t;
            }
        }
        const std::size_t at = table.size();
        table.resize(at + n_units * sizeof(UnitTime));
        if (n_units) std::memcpy(table.data() + at, units.data(), n_units * sizeof(UnitTime));
    }
    comm.broadcast(table, 0);
    UnitTable t;
    const std::size_t n_stage = static_cast<std::size_t>(comm.size()) * kStages;
    t.stage_s.resize(n_stage);
    std::memcpy(t.stage_s.data(), table.data(), n_stage * sizeof(double));
    t.units.resize(n_units);
    if (n_units) std::memcpy(t.units.data(), table.data() + n_stage * sizeof(double), n_units * sizeof(UnitTime));
    return t;
}

// Groups /units (one row per work unit, plan order) and /stages (one row per stage; seconds per rank), written
// whole by the writing comm's rank 0 (the others take part in the collective calls with no rows).
void write_units_and_stages(hid_t file, hid_t dxpl, const plan::Plan& p, const UnitTable& t,
                            const std::vector<std::uint64_t>& first_row, const std::vector<std::uint64_t>& bytes,
                            std::uint64_t n_ranks, bool writer, const std::string& path) {
    const std::vector<plan::Unit> units = plan::units(p);
    const std::uint64_t n = units.size();
    std::vector<std::uint64_t> rows;
    std::vector<std::int32_t> rank, thread;
    std::vector<double> start, end;
    std::vector<std::uint8_t> resumed;
    std::vector<std::uint32_t> item;
    std::vector<std::uint64_t> tensor, nbytes;
    std::vector<std::int64_t> row_begin, row_end;
    for (std::uint64_t u = 0; writer && u < n; ++u) {
        const UnitTime& x = t.units[u];
        rows.push_back(u);
        rank.push_back(x.rank), thread.push_back(x.thread), start.push_back(x.start_s), end.push_back(x.end_s);
        resumed.push_back(x.resumed), item.push_back(units[u].item), tensor.push_back(first_row[units[u].item]);
        row_begin.push_back(units[u].row_begin), row_end.push_back(units[u].row_end);
        std::uint64_t nb = 0;
        for (const auto& r : resume::unit_ranges(p, units[u])) nb += r.nbytes;
        nbytes.push_back(nb);
    }
    H5Id g(H5Gcreate2(file, "units", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    h5check(g, path, "create group /units");
    write_rows(g, dxpl, "rank", H5T_NATIVE_INT32, n, 1, rows, rank.data(), path);
    write_rows(g, dxpl, "thread", H5T_NATIVE_INT32, n, 1, rows, thread.data(), path);
    write_rows(g, dxpl, "start_s", H5T_NATIVE_DOUBLE, n, 1, rows, start.data(), path);
    write_rows(g, dxpl, "end_s", H5T_NATIVE_DOUBLE, n, 1, rows, end.data(), path);
    write_rows(g, dxpl, "resumed", H5T_NATIVE_UINT8, n, 1, rows, resumed.data(), path);
    write_rows(g, dxpl, "item", H5T_NATIVE_UINT32, n, 1, rows, item.data(), path);
    write_rows(g, dxpl, "tensor", H5T_NATIVE_UINT64, n, 1, rows, tensor.data(), path);
    write_rows(g, dxpl, "row_begin", H5T_NATIVE_INT64, n, 1, rows, row_begin.data(), path);
    write_rows(g, dxpl, "row_end", H5T_NATIVE_INT64, n, 1, rows, row_end.data(), path);
    write_rows(g, dxpl, "nbytes", H5T_NATIVE_UINT64, n, 1, rows, nbytes.data(), path);

    H5Id s(H5Gcreate2(file, "stages", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    h5check(s, path, "create group /stages");
    std::vector<std::uint64_t> stage_rows, rank_rows;
    std::string names;
    for (std::uint64_t k = 0; writer && k < kStages; ++k) {
        stage_rows.push_back(k);
        std::string nm = stage_names[k];
        nm.resize(16, '\0');
        names += nm;
    }
    for (std::uint64_t r = 0; writer && r < n_ranks; ++r) rank_rows.push_back(r);
    {
        H5Id ty(string_type(16), H5Tclose);
        write_rows(s, dxpl, "name", ty, kStages, 1, stage_rows, names.data(), path);
    }
    write_rows(s, dxpl, "bytes", H5T_NATIVE_UINT64, kStages, 1, stage_rows, bytes.data(), path);
    write_rows(s, dxpl, "seconds", H5T_NATIVE_DOUBLE, n_ranks, kStages, rank_rows, t.stage_s.data(), path);
}

}  // namespace

void write_report(const std::string& path, const plan::Plan& p, Comm& comm,
                  const std::vector<resume::UnitRecord>& records, const std::vector<resume::Digest>& my_sha,
                  const ReportInfo& info, bool gather) {
    const auto first_row = first_rows(p);
    const Widths w = column_widths(p);
    const std::uint64_t n = first_row.back();
    const std::string table = row_facts_table(p, comm, records, first_row);  // collective
    const UnitTable ut = unit_table(comm, info, plan::units(p).size());       // collective
    const RowRange rr = report_rows(p, comm, gather);
    SF_CHECK(my_sha.size() == rr.end - rr.begin, "report rows");
    const Columns c = make_columns(p, first_row, rr, table, my_sha, w);
    if (gather && comm.rank() != 0) return;  // gather mode: the report is on rank 0's disk, written by rank 0 alone
    auto self = make_serial_comm();
    Comm& wc = gather ? *self : comm;

    H5Id fapl(make_h5_file_access(wc), H5Pclose);
    H5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), H5Fclose);
    h5check(file, path, "create the report file");
    write_run_attrs(file, p, comm, info, n);
    H5Id g(H5Gcreate2(file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    H5Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    if (H5Pget_driver(fapl) == H5FD_MPIO) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);  // one collective write each
    h5check(g, path, "create group /tensors");
    write_columns(g, dxpl, c, n, w, path);
    write_units_and_stages(file, dxpl, p, ut, first_row, stage_bytes(p, info), static_cast<std::uint64_t>(comm.size()),
                           wc.rank() == 0, path);
}

namespace {

// The dataset holds exactly `n` rows of `per_row` elements (the counts the root attributes give); a report whose
// datasets disagree with them (edited, truncated, another version's layout) is refused before anything is read.
void check_extent(hid_t ds, const char* name, std::size_t per_row, std::size_t n, const std::string& path) {
    H5Id space(H5Dget_space(ds), H5Sclose);
    h5check(space, path, "read a dataspace");
    const int nd = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {0, 0};
    hsize_t total = 0;
    if (nd >= 1 && nd <= 2 && H5Sget_simple_extent_dims(space, dims, nullptr) == nd)
        total = nd == 1 ? dims[0] : dims[0] * dims[1];
    if (per_row == 0 || n > (std::size_t{1} << 40) / per_row || nd < 1 || nd > 2 ||
        total != static_cast<hsize_t>(n * per_row))
        throw core::Error(core::ErrorKind::BadInput, path, "",
                          core::cat("dataset '", name, "' holds ", total, " values, the report's counts say ",
                                    n * per_row));
}
template <class T>
std::vector<T> read_ds(hid_t g, const char* name, hid_t type, std::size_t per_row, std::size_t n,
                       const std::string& path) {
    H5Id ds(H5Dopen2(g, name, H5P_DEFAULT), H5Dclose);
    h5check(ds, path, core::cat("open dataset /tensors/", name).c_str());
    check_extent(ds, name, per_row, n, path);
    std::vector<T> v(n * per_row);
    if (n) h5check(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), path, "read a dataset");
    return v;
}
std::vector<std::string> read_strings(hid_t g, const char* name, std::size_t n, const std::string& path) {
    H5Id ds(H5Dopen2(g, name, H5P_DEFAULT), H5Dclose);
    h5check(ds, path, core::cat("open dataset /tensors/", name).c_str());
    check_extent(ds, name, 1, n, path);
    H5Id t(H5Dget_type(ds), H5Tclose);
    const std::size_t len = H5Tget_size(t);
    std::string buf(n * len, '\0');
    if (n) h5check(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), path, "read a dataset");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(std::string(buf.c_str() + i * len, strnlen(buf.c_str() + i * len, len)));
    return out;
}
template <class T>
T read_attr(hid_t obj, const char* name, hid_t type) {
    T v{};
    H5Id a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
    if (a >= 0) H5Aread(a, type, &v);
    return v;
}

bool has_link(hid_t obj, const char* name) { return H5Lexists(obj, name, H5P_DEFAULT) > 0; }

}  // namespace

ReportData read_report(const std::string& path) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (file < 0) throw core::Error(core::ErrorKind::BadInput, path, "", "not an HDF5 file (or unreadable)");
    H5Id g(H5Gopen2(file, "tensors", H5P_DEFAULT), H5Gclose);
    if (g < 0) throw core::Error(core::ErrorKind::BadInput, path, "", "no /tensors group: not a shardforge run report");
    ReportData d;
    d.path = path;
    const auto str_attr = [&](const char* name) {
        H5Id a(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
        if (a < 0) return std::string();
        H5Id t(H5Aget_type(a), H5Tclose);
        std::string v(H5Tget_size(t), '\0');
        H5Aread(a, t, v.data());
        return std::string(v.c_str());
    };
    d.version = str_attr("shardforge_version"), d.out_dir = str_attr("out_dir");
    d.seconds = read_attr<double>(file, "seconds", H5T_NATIVE_DOUBLE);
    d.ranks = read_attr<std::uint64_t>(file, "ranks", H5T_NATIVE_UINT64);
    if (d.ranks == 0 || d.ranks > (std::uint64_t{1} << 20))
        throw core::Error(core::ErrorKind::BadInput, path, "", core::cat("attribute 'ranks' is ", d.ranks));
    d.threads = read_attr<std::int32_t>(file, "threads_per_rank", H5T_NATIVE_INT32);
    d.bytes_read = read_attr<std::uint64_t>(file, "bytes_read", H5T_NATIVE_UINT64);
    d.bytes_written = read_attr<std::uint64_t>(file, "bytes_written", H5T_NATIVE_UINT64);
    d.units = read_attr<std::uint64_t>(file, "units", H5T_NATIVE_UINT64);
    d.units_resumed = read_attr<std::uint64_t>(file, "units_resumed", H5T_NATIVE_UINT64);
    const auto n = static_cast<std::size_t>(read_attr<std::uint64_t>(file, "tensors", H5T_NATIVE_UINT64));
    d.names = read_strings(g, "name", n, path);
    d.types = read_strings(g, "type", n, path);
    d.files = read_strings(g, "file", n, path);
    d.nbytes = read_ds<std::uint64_t>(g, "nbytes", H5T_NATIVE_UINT64, 1, n, path);
    d.nans = read_ds<std::uint64_t>(g, "nan_count", H5T_NATIVE_UINT64, 1, n, path);
    d.rmse = read_ds<double>(g, "quant_rel_rmse", H5T_NATIVE_DOUBLE, 1, n, path);
    d.delta = read_ds<double>(g, "delta_norm_ratio", H5T_NATIVE_DOUBLE, 1, n, path);
    d.seconds_of = read_ds<double>(g, "seconds", H5T_NATIVE_DOUBLE, 1, n, path);
    d.rank_of = read_ds<std::int32_t>(g, "rank", H5T_NATIVE_INT32, 1, n, path);
    if (has_link(file, "units")) {
        H5Id u(H5Gopen2(file, "units", H5P_DEFAULT), H5Gclose);
        const auto nu = static_cast<std::size_t>(d.units);
        const auto rank = read_ds<std::int32_t>(u, "rank", H5T_NATIVE_INT32, 1, nu, path);
        const auto thread = read_ds<std::int32_t>(u, "thread", H5T_NATIVE_INT32, 1, nu, path);
        const auto start = read_ds<double>(u, "start_s", H5T_NATIVE_DOUBLE, 1, nu, path);
        const auto end = read_ds<double>(u, "end_s", H5T_NATIVE_DOUBLE, 1, nu, path);
        const auto resumed = read_ds<std::uint8_t>(u, "resumed", H5T_NATIVE_UINT8, 1, nu, path);
        d.unit_tensor = read_ds<std::uint64_t>(u, "tensor", H5T_NATIVE_UINT64, 1, nu, path);
        d.unit_row_begin = read_ds<std::int64_t>(u, "row_begin", H5T_NATIVE_INT64, 1, nu, path);
        d.unit_row_end = read_ds<std::int64_t>(u, "row_end", H5T_NATIVE_INT64, 1, nu, path);
        d.unit_nbytes = read_ds<std::uint64_t>(u, "nbytes", H5T_NATIVE_UINT64, 1, nu, path);
        for (std::size_t i = 0; i < nu; ++i) {
            if (d.unit_tensor[i] >= n)
                throw core::Error(core::ErrorKind::BadInput, path, "", "/units/tensor names a row past /tensors");
            if (rank[i] < 0 || static_cast<std::uint64_t>(rank[i]) >= d.ranks || thread[i] < 0 || thread[i] > 65535)
                throw core::Error(core::ErrorKind::BadInput, path, "",
                                  core::cat("/units row ", i, ": rank ", rank[i], " or thread ", thread[i],
                                            " out of range (", d.ranks, " ranks)"));
            d.unit_times.push_back(UnitTime{static_cast<std::uint32_t>(i), rank[i], thread[i], start[i], end[i], resumed[i]});
        }
        d.has_units = true;
    }
    if (has_link(file, "stages")) {
        H5Id s(H5Gopen2(file, "stages", H5P_DEFAULT), H5Gclose);
        d.stage_names_read = read_strings(s, "name", kStages, path);
        d.stage_bytes = read_ds<std::uint64_t>(s, "bytes", H5T_NATIVE_UINT64, 1, kStages, path);
        d.stage_seconds = read_ds<double>(s, "seconds", H5T_NATIVE_DOUBLE, kStages, static_cast<std::size_t>(d.ranks), path);
        d.has_stages = true;
    }
    return d;
}

std::string summarize_report(const std::string& path) {
    const ReportData d = read_report(path);
    const std::size_t n = d.names.size();
    const auto& names = d.names;
    const auto& types = d.types;
    const auto& files = d.files;
    const auto& nbytes = d.nbytes;
    const auto& nans = d.nans;
    const auto& rmse = d.rmse;
    const auto& delta = d.delta;
    const auto& secs = d.seconds_of;
    const auto& rank = d.rank_of;

    std::ostringstream o;
    char buf[512];
    std::snprintf(buf, sizeof buf, "run: %.2f s on %llu rank(s) x %d thread(s); read %.1f MB, wrote %.1f MB; %llu of %llu units resumed\n",
                  d.seconds, static_cast<unsigned long long>(d.ranks), d.threads,
                  static_cast<double>(d.bytes_read) / 1e6, static_cast<double>(d.bytes_written) / 1e6,
                  static_cast<unsigned long long>(d.units_resumed), static_cast<unsigned long long>(d.units));
    o << buf;
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_type, by_file;
    std::map<int, std::pair<std::size_t, double>> by_rank;
    std::uint64_t total = 0, total_nans = 0;
    std::size_t nan_tensors = 0, n_q = 0, n_d = 0;
    double sum_q = 0, max_q = -1, sum_d = 0, max_d = -1;
    std::string worst_q, worst_d, first_nan;
    for (std::size_t i = 0; i < n; ++i) {
        total += nbytes[i];
        by_type[types[i]].first++, by_type[types[i]].second += nbytes[i];
        by_file[files[i]].first++, by_file[files[i]].second += nbytes[i];
        by_rank[rank[i]].first++, by_rank[rank[i]].second += secs[i];
        if (nans[i]) {
            total_nans += nans[i], ++nan_tensors;
            if (first_nan.empty()) first_nan = files[i] + ":" + names[i];
        }
        if (std::isfinite(rmse[i])) {
            ++n_q, sum_q += rmse[i];
            if (rmse[i] > max_q) max_q = rmse[i], worst_q = files[i] + ":" + names[i];
        }
        if (!std::isnan(delta[i])) {
            ++n_d, sum_d += delta[i];
            if (delta[i] > max_d) max_d = delta[i], worst_d = names[i];
        }
    }
    o << "tensors: " << n << " in " << by_file.size() << " file(s), " << total << " bytes\n";
    for (const auto& [f, v] : by_file) o << "  file " << f << ": " << v.first << " tensors, " << v.second << " bytes\n";
    for (const auto& [t, v] : by_type) o << "  type " << t << ": " << v.first << " tensors, " << v.second << " bytes\n";
    for (const auto& [r, v] : by_rank) {
        std::snprintf(buf, sizeof buf, "  rank %d: %zu tensors, %.3f s of unit time\n", r, v.first, v.second);
        o << buf;
    }
    o << "NaN values: " << total_nans << " in " << nan_tensors << " tensor(s)"
      << (first_nan.empty() ? "" : " (first: " + first_nan + ")") << "\n";
    if (n_q) {
        std::snprintf(buf, sizeof buf, "quantization relative RMSE: %zu tensors, mean %.4g, max %.4g (%s)\n", n_q,
                      sum_q / static_cast<double>(n_q), max_q, worst_q.c_str());
        o << buf;
    }
    if (n_d) {
        std::snprintf(buf, sizeof buf, "LoRA delta ||dW||/||W||: %zu tensors, mean %.4g, max %.4g (%s)\n", n_d,
                      sum_d / static_cast<double>(n_d), max_d, worst_d.c_str());
        o << buf;
    }
    return o.str();
}

#else

void write_report(const std::string& path, const plan::Plan&, Comm&, const std::vector<resume::UnitRecord>&,
                  const std::vector<resume::Digest>&, const ReportInfo&, bool) {
    throw core::Error(core::ErrorKind::Unsupported, path, "", "--report: built without parallel HDF5");
}
std::string summarize_report(const std::string& path) {
    throw core::Error(core::ErrorKind::Unsupported, path, "", "built without parallel HDF5");
}
ReportData read_report(const std::string& path) {
    throw core::Error(core::ErrorKind::Unsupported, path, "", "built without parallel HDF5");
}

#endif

}  // namespace shardforge::exec
