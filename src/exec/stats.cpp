// A run's statistics reduced over the ranks, and their summaries for the log (stats.hpp, exec.hpp).
#include "stats.hpp"

#include "io.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string_view>

namespace fs = std::filesystem;

namespace shardforge::exec {
namespace {

std::uint64_t peak_rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
    return 0;
}

// The wire form of the statistics inside Comm::gather: fixed-size fields copied as bytes (every rank runs the same
// binary on the same architecture), then the tensor name with its length.
template <class T>
void put(std::string& s, const T& v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_name(std::string& s, const std::string& name) {
    put(s, static_cast<std::uint64_t>(name.size()));
    s += name;
}
template <class T>
T get(std::string_view& s) {
    T v{};
    SF_CHECK(s.size() >= sizeof v, "short statistics message");
    std::memcpy(&v, s.data(), sizeof v);
    s.remove_prefix(sizeof v);
    return v;
}
std::string get_name(std::string_view& s) {
    const auto n = get<std::uint64_t>(s);
    SF_CHECK(s.size() >= n, "short statistics message");
    std::string name(s.substr(0, n));
    s.remove_prefix(n);
    return name;
}

// A tensor's row blocks may sit on several ranks: rank 0 sums their squared errors and references.
std::vector<QuantError> reduce_quant_errors(const Counters& c, Comm& comm) {
    std::string mine;
    for (const auto& [key, v] : c.quant_err) {
        put(mine, key.first);
        put_name(mine, key.second);
        put(mine, v.first);
        put(mine, v.second);
    }
    std::map<std::pair<std::uint32_t, std::string>, std::pair<double, double>> total;
    for (const auto& part : comm.gather(mine, 0)) {
        std::string_view in(part);
        while (!in.empty()) {
            const auto file = get<std::uint32_t>(in);
            std::string name = get_name(in);
            auto& acc = total[{file, std::move(name)}];
            acc.first += get<double>(in);
            acc.second += get<double>(in);
        }
    }
    std::vector<QuantError> out;
    for (const auto& [key, v] : total)
        out.push_back({key.first, key.second, v.second > 0 ? std::sqrt(v.first / v.second) : std::sqrt(v.first)});
    return out;
}

std::vector<BnbStat> gather_bnb_stats(const Counters& c, Comm& comm) {
    std::string mine;
    for (const auto& b : c.bnb_stats) {
        put(mine, b.file);
        put_name(mine, b.tensor);
        put(mine, b.elements);
        put(mine, b.changed_codes);
        put(mine, b.delta_rel_err);
        put(mine, static_cast<std::uint8_t>(b.mxfp4));
        put(mine, b.delta_err2);
        put(mine, b.delta_ref2);
    }
    std::vector<BnbStat> out;
    for (const auto& part : comm.gather(mine, 0)) {
        std::string_view in(part);
        while (!in.empty()) {
            BnbStat b;
            b.file = get<std::uint32_t>(in);
            b.tensor = get_name(in);
            b.elements = get<std::int64_t>(in);
            b.changed_codes = get<std::int64_t>(in);
            b.delta_rel_err = get<double>(in);
            b.mxfp4 = get<std::uint8_t>(in) != 0;
            b.delta_err2 = get<double>(in);
            b.delta_ref2 = get<double>(in);
            out.push_back(std::move(b));
        }
    }
    return out;
}

std::vector<RankStat> gather_rank_stats(const Counters& c, const RankTimes& t, std::uint64_t peak_rss, Comm& comm) {
    std::string mine;
    put(mine, RankStat{t.busy_s, c.units.load(), c.bytes_read.load(), c.bytes_written.load(), peak_rss});
    std::vector<RankStat> out;
    for (const auto& part : comm.gather(mine, 0)) {
        std::string_view in(part);
        out.push_back(get<RankStat>(in));
    }
    return out;
}

}  // namespace

RunStats reduce_stats(const Counters& c, const RankTimes& t, const OutputHasher* hasher, Comm& comm) {
    RunStats st;
    st.quant_errors = reduce_quant_errors(c, comm);
    st.bnb_stats = gather_bnb_stats(c, comm);
    st.bytes_read = comm.sum(c.bytes_read.load());
    st.input_bytes_read = comm.sum(c.input_read.load());
    st.bytes_written = comm.sum(c.bytes_written.load());
    st.items = comm.sum(c.items.load());
    st.units = comm.sum(c.units.load());
    for (int k = 0; k < kStages; ++k) st.stage_seconds[k] = static_cast<double>(comm.sum(c.stage_ns[k].load())) * 1e-9;
    st.max_rank_seconds = comm.max(t.busy_s);
    const std::uint64_t total_us = comm.sum(static_cast<std::uint64_t>(t.busy_s * 1e6));
    st.mean_rank_seconds = static_cast<double>(total_us) / 1e6 / comm.size();
    const std::uint64_t peak_rss = peak_rss_bytes();
    st.max_rank_peak_rss = comm.max(peak_rss);
    st.ranks = gather_rank_stats(c, t, peak_rss, comm);
    st.units_resumed = comm.sum(t.n_resumed);
    if (hasher) {
        st.hashed_from_memory = comm.sum(hasher->from_memory());
        st.hashed_read_back = comm.sum(hasher->read_back());
        st.files_hashed = comm.sum(hasher->files_hashed());
    }
    return st;
}

std::string summarize_quant_errors(const plan::Plan& p, const std::vector<QuantError>& errors) {
    struct Acc {
        std::size_t n = 0;
        double sum = 0, max = -1;
        std::string worst;
    };
    std::map<std::uint32_t, Acc> by_file;
    for (const auto& q : errors) {
        Acc& acc = by_file[q.file];
        ++acc.n;
        acc.sum += q.rel_rmse;
        if (q.rel_rmse > acc.max) {
            acc.max = q.rel_rmse;
            acc.worst = q.tensor;
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

std::string report_bnb_requant(const plan::Plan& p, const std::vector<BnbStat>& stats, std::size_t worst) {
    struct Row {
        std::string name;
        long long n = 0, changed = 0;
        double err = 0, err2 = 0, ref2 = 0;
    };
    // One report per kind: bnb 4-bit outputs (one stat per tensor), MXFP4 experts (row blocks summed per tensor).
    auto report = [&](bool mxfp4) -> std::string {
        std::map<std::pair<std::string, std::uint32_t>, Row> by_name;  // a tensor of each output file
        for (const auto& b : stats) {
            if (b.mxfp4 != mxfp4) continue;
            Row& r = by_name[{b.tensor, b.file}];
            r.name = b.tensor;
            r.n += b.elements;
            r.changed += b.changed_codes;
            r.err = b.delta_rel_err;
            r.err2 += b.delta_err2;
            r.ref2 += b.delta_ref2;
        }
        if (by_name.empty()) return "";
        std::vector<Row> rows;
        for (auto& [key, r] : by_name) {
            if (mxfp4) r.err = r.ref2 > 0 ? std::sqrt(r.err2 / r.ref2) : 0.0;
            rows.push_back(r);
        }
        const char* unit = mxfp4 ? "values" : "codes";
        std::string tsv = core::cat("tensor\telements\tchanged_", unit, "\tchanged_fraction\tdelta_rel_err\n");
        long long tn = 0, tch = 0;
        for (const auto& r : rows) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "\t%lld\t%lld\t%.9g\t%.9g\n", r.n, r.changed,
                          r.n ? static_cast<double>(r.changed) / static_cast<double>(r.n) : 0.0, r.err);
            tsv += r.name + buf;
            tn += r.n;
            tch += r.changed;
        }
        const fs::path path = fs::path(p.out_dir) / (mxfp4 ? "mxfp4_requant.tsv" : "bnb_requant.tsv");
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
                      "%s re-quantization: %zu merged tensors, %.4g%% of %s changed by the adapter; "
                      "relative error of the applied delta (1 = delta lost), worst:",
                      mxfp4 ? "MXFP4" : "bnb", rows.size(),
                      tn ? 100.0 * static_cast<double>(tch) / static_cast<double>(tn) : 0.0,
                      mxfp4 ? "values" : "4-bit codes");
        std::string s = head;
        for (std::size_t i = 0; i < std::min(worst, by_err.size()); ++i) {
            char buf[96];
            std::snprintf(buf, sizeof buf, " %.4g (%.3g%% %s changed)", by_err[i].err,
                          by_err[i].n ? 100.0 * static_cast<double>(by_err[i].changed) / static_cast<double>(by_err[i].n)
                                      : 0.0,
                          unit);
            s += "\n  " + by_err[i].name + buf;
        }
        return s + "\n  per tensor: " + path.string();
    };
    const std::string bnb = report(false), mx = report(true);
    return bnb.empty() || mx.empty() ? bnb + mx : bnb + "\n" + mx;
}

}  // namespace shardforge::exec
