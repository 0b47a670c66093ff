// `shardforge report RUN.h5 --html FILE`: the run report (docs/engine.md, "Resume, progress and run report") as one
// self-contained HTML page: inline CSS and SVG and a few lines of inline script, nothing fetched. Three sections:
// the per-rank timeline of work units (group /units), bytes and time per stage (group /stages), and the
// quantization error by layer and tensor kind (/tensors/quant_rel_rmse). Every name from the report is escaped.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace shardforge::exec {

namespace {

std::string esc(std::string_view s) {
    std::string o;
    o.reserve(s.size());
    for (const char ch : s) {
        switch (ch) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += ch;
        }
    }
    return o;
}

template <class... A>
std::string fmt(const char* f, A... a) {
    char buf[128];
    std::snprintf(buf, sizeof buf, f, a...);
    return buf;
}

std::string mb(std::uint64_t bytes) { return fmt("%.1f MB", static_cast<double>(bytes) / 1e6); }

// Colours of the output types in the timeline, in order of first appearance (then repeated).
constexpr const char* palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

constexpr const char* style = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.hbar{height:12px;background:#4e79a7;min-width:1px}.barcell{width:260px}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
svg.timeline text{font:12px system-ui,sans-serif;fill:#333}svg.timeline rect.bar{stroke:#fff;stroke-width:0.5}
svg.timeline rect.bar:hover{stroke:#000;stroke-width:1.5}.lane-bg{fill:#f6f6f6}
table.heatmap td.cell{min-width:44px;font-size:12px}.note{color:#777;font-style:italic}
)";

void meta(std::ostringstream& o, const ReportData& d) {
    o << "<h1>shardforge run report</h1>\n<p class=\"meta\">" << esc(d.path) << " &middot; shardforge "
      << esc(d.version) << " &middot; output " << esc(d.out_dir) << "<br>"
      << fmt("%.2f s on %llu rank(s) x %d thread(s)", d.seconds, static_cast<unsigned long long>(d.ranks), d.threads)
      << " &middot; read " << mb(d.bytes_read) << ", wrote " << mb(d.bytes_written) << " &middot; " << d.names.size()
      << " tensors, " << d.units << " work units (" << d.units_resumed << " resumed)</p>\n";
}

// One lane per rank, one sub-row per worker thread, one bar per work unit from its start to its end.
void timeline(std::ostringstream& o, const ReportData& d) {
    o << "<section id=\"timeline\"><h2>Timeline of work units</h2>\n";
    if (!d.has_units) {
        o << "<p class=\"note\">This report has no /units group (written by an older shardforge).</p></section>\n";
        return;
    }
    // A unit's item writes /tensors rows [unit_tensor, the next item's first row): its outputs, coloured by their
    // types together ("BF16 + Q4_K") and whether a LoRA merged the tensor.
    std::vector<std::uint64_t> firsts(d.unit_tensor.begin(), d.unit_tensor.end());
    std::sort(firsts.begin(), firsts.end());
    firsts.erase(std::unique(firsts.begin(), firsts.end()), firsts.end());
    const auto outputs_of = [&](std::uint64_t first) {
        const auto next = std::upper_bound(firsts.begin(), firsts.end(), first);
        return std::pair{first, next == firsts.end() ? static_cast<std::uint64_t>(d.names.size()) : *next};
    };
    std::map<std::uint64_t, std::string> key_of;  // first row -> colour key
    std::map<std::string, std::string> colour;     // colour key -> colour, in order of first appearance
    for (const auto first : d.unit_tensor) {
        if (key_of.count(first)) continue;
        const auto [b, e] = outputs_of(first);
        std::string key;
        bool merged = false;
        for (auto r = b; r < e; ++r) key += (key.empty() ? "" : " + ") + d.types[r], merged |= !std::isnan(d.delta[r]);
        if (merged) key += " (LoRA merged)";
        key_of[first] = key;
        if (!colour.count(key)) colour[key] = palette[colour.size() % (sizeof palette / sizeof *palette)];
    }
    const std::size_t n_ranks = static_cast<std::size_t>(d.ranks);
    std::vector<int> threads(n_ranks, 1);
    std::vector<std::size_t> n_units(n_ranks, 0);
    std::vector<double> unit_s(n_ranks, 0), last(n_ranks, 0);
    std::vector<std::uint64_t> written(n_ranks, 0);
    double t_max = 0;
    for (std::size_t i = 0; i < d.unit_times.size(); ++i) {
        const UnitTime& u = d.unit_times[i];
        if (u.rank < 0 || static_cast<std::size_t>(u.rank) >= n_ranks || !std::isfinite(u.end_s)) continue;
        const auto r = static_cast<std::size_t>(u.rank);
        threads[r] = std::max(threads[r], u.thread + 1);
        ++n_units[r], unit_s[r] += u.end_s - u.start_s, last[r] = std::max(last[r], u.end_s);
        written[r] += d.unit_nbytes[i];
        t_max = std::max(t_max, u.end_s);
    }
    if (t_max <= 0) t_max = 1e-6;
    o << "<p class=\"legend\">Colour: the types of the unit's outputs. Hover a bar for its tensor, rows and times. ";
    for (const auto& [type, c] : colour) o << "<span><i class=\"sw\" style=\"background:" << c << "\"></i>" << esc(type) << "</span>";
    o << "</p>\n";
    constexpr double label_w = 170, plot_w = 1000, row_h = 16, lane_gap = 8, axis_h = 24;
    double height = axis_h;
    for (const int t : threads) height += t * row_h + lane_gap;
    o << fmt("<svg class=\"timeline\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
             label_w + plot_w + 10, height, label_w + plot_w + 10, height);
    for (int k = 0; k <= 10; ++k) {  // time axis
        const double x = label_w + plot_w * k / 10;
        o << fmt("<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>", x, axis_h - 4, x, height)
          << fmt("<text x=\"%.1f\" y=\"14\" text-anchor=\"middle\">%.3g s</text>\n", x, t_max * k / 10);
    }
    std::vector<double> lane_y(n_ranks, 0);
    double y = axis_h;
    for (std::size_t r = 0; r < n_ranks; ++r) lane_y[r] = y, y += threads[r] * row_h + lane_gap;
    for (std::size_t r = 0; r < n_ranks; ++r) {
        const double h = threads[r] * row_h;
        o << "<g class=\"lane\" data-rank=\"" << r << "\">"
          << fmt("<rect class=\"lane-bg\" x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\"/>", label_w, lane_y[r], plot_w, h)
          << fmt("<text x=\"4\" y=\"%.1f\">rank %zu: %zu units, %.2f s in units</text>\n", lane_y[r] + std::min(h, row_h) - 4, r,
                 n_units[r], unit_s[r]);
        for (std::size_t i = 0; i < d.unit_times.size(); ++i) {
            const UnitTime& u = d.unit_times[i];
            if (u.rank != static_cast<std::int32_t>(r) || !std::isfinite(u.end_s)) continue;
            const std::uint64_t t = d.unit_tensor[i];
            const double x = label_w + plot_w * std::max(0.0, u.start_s) / t_max;
            const double w = std::max(1.0, plot_w * (u.end_s - std::max(0.0, u.start_s)) / t_max);
            o << fmt("<rect class=\"bar\" data-unit=\"%zu\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"", i,
                     x, lane_y[r] + u.thread * row_h + 1, w, row_h - 2)
              << colour[key_of[t]] << "\"><title>" << esc(d.names[t]) << "\n";
            const auto [b, e] = outputs_of(t);
            for (auto row = b; row < e; ++row) o << "  " << esc(d.types[row]) << " " << esc(d.files[row]) << ": " << esc(d.names[row]) << "\n";
            o << "rows " << d.unit_row_begin[i] << "-" << d.unit_row_end[i] << ", "
              << mb(d.unit_nbytes[i]) << " written\n"
              << fmt("%.4f - %.4f s (%.4f s), rank %d thread %d", u.start_s, u.end_s, u.end_s - u.start_s, u.rank, u.thread)
              << (u.resumed ? ", verified from the journal" : "") << "</title></rect>\n";
        }
        o << "</g>\n";
    }
    o << "</svg>\n<table class=\"ranks\"><tr><th class=\"l\">rank</th><th>units</th><th>unit time</th>"
         "<th>last unit ends</th><th>written</th><th class=\"l\">share of the longest rank</th></tr>\n";
    const double longest = last.empty() ? 1e-12 : std::max(1e-12, *std::max_element(last.begin(), last.end()));
    for (std::size_t r = 0; r < n_ranks; ++r)
        o << "<tr><td class=\"l\">" << r << "</td><td>" << n_units[r] << "</td><td>" << fmt("%.3f s", unit_s[r])
          << "</td><td>" << fmt("%.3f s", last[r]) << "</td><td>" << mb(written[r]) << "</td><td class=\"barcell l\">"
          << fmt("<div class=\"hbar\" style=\"width:%.1f%%\"></div>", 100 * last[r] / longest) << "</td></tr>\n";
    o << "</table></section>\n";
}

void stages(std::ostringstream& o, const ReportData& d) {
    o << "<section id=\"stages\"><h2>Bytes and time per stage</h2>\n";
    if (!d.has_stages) {
        o << "<p class=\"note\">This report has no /stages group (written by an older shardforge).</p></section>\n";
        return;
    }
    const std::size_t n_ranks = static_cast<std::size_t>(d.ranks), n = d.stage_names_read.size();
    std::vector<double> total(n, 0);
    for (std::size_t r = 0; r < n_ranks; ++r)
        for (std::size_t k = 0; k < n; ++k) total[k] += d.stage_seconds[r * n + k];
    const double most = std::max(1e-12, *std::max_element(total.begin(), total.end()));
    o << "<table class=\"stages\"><tr><th class=\"l\">stage</th><th>seconds (all threads)</th><th class=\"l\">time</th>"
         "<th>bytes</th><th>MB/s per thread</th>";
    for (std::size_t r = 0; r < n_ranks; ++r) o << "<th>rank " << r << "</th>";
    o << "</tr>\n";
    for (std::size_t k = 0; k < n; ++k) {
        o << "<tr class=\"stage\"><td class=\"l\">" << esc(d.stage_names_read[k]) << "</td><td>" << fmt("%.3f", total[k])
          << "</td><td class=\"barcell l\">" << fmt("<div class=\"hbar\" style=\"width:%.1f%%\"></div>", 100 * total[k] / most)
          << "</td><td>" << mb(d.stage_bytes[k]) << "</td><td>"
          << (total[k] > 0 && d.stage_bytes[k] ? fmt("%.0f", static_cast<double>(d.stage_bytes[k]) / 1e6 / total[k]) : "&ndash;")
          << "</td>";
        for (std::size_t r = 0; r < n_ranks; ++r) o << "<td>" << fmt("%.3f", d.stage_seconds[r * n + k]) << "</td>";
        o << "</tr>\n";
    }
    o << "</table>\n<p class=\"note\">Seconds are summed over each rank's threads. Bytes: read and write as measured "
         "in this run; dequant (which includes widening 16-bit values to f32): the stored bytes of the input tensors "
         "converted to f32; merge: the stored bytes of the merged input tensors; quantize: the bytes of the quantized "
         "outputs.</p></section>\n";
}

// "model.layers.3.mlp.experts.7.down_proj.weight" -> layer 3, kind "mlp.experts.*.down_proj.weight"; a name without
// a number has layer -1 and is its own kind.
std::pair<long, std::string> layer_and_kind(const std::string& name) {
    std::vector<std::string> parts;
    std::stringstream ss(name);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    const auto digits = [](const std::string& p) {
        return !p.empty() && p.size() <= 9 && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (!digits(parts[i])) continue;
        std::string kind;
        for (std::size_t j = i + 1; j < parts.size(); ++j) kind += (kind.empty() ? "" : ".") + (digits(parts[j]) ? "*" : parts[j]);
        return {std::stol(parts[i]), kind.empty() ? name : kind};
    }
    return {-1, name};
}

void quant_error(std::ostringstream& o, const ReportData& d) {
    o << "<section id=\"quant-error\"><h2>Quantization error by layer and tensor kind</h2>\n";
    std::set<std::string> quant_files;
    for (std::size_t i = 0; i < d.names.size(); ++i)
        if (std::isfinite(d.rmse[i])) quant_files.insert(d.files[i]);
    if (quant_files.empty()) {
        o << "<p class=\"note\">No quantized tensors in this run.</p></section>\n";
        return;
    }
    struct Cell {
        double sum = 0, max = 0;
        std::size_t n = 0;
        std::set<std::string> types;
    };
    std::map<std::string, std::map<long, Cell>> cells;  // kind -> layer -> cell
    std::set<long> layers;
    double top = 0;
    for (std::size_t i = 0; i < d.names.size(); ++i) {
        if (!std::isfinite(d.rmse[i])) continue;
        auto [layer, kind] = layer_and_kind(d.names[i]);
        if (quant_files.size() > 1) kind = d.files[i] + ": " + kind;
        Cell& c = cells[kind][layer];
        c.sum += d.rmse[i], c.max = std::max(c.max, d.rmse[i]), ++c.n, c.types.insert(d.types[i]);
        layers.insert(layer);
    }
    for (const auto& [k, row] : cells)
        for (const auto& [l, c] : row) top = std::max(top, c.sum / static_cast<double>(c.n));
    o << "<p>Relative RMSE &Vert;dequant(q) &minus; x&Vert; / &Vert;x&Vert; per tensor, averaged per cell; darker is "
      << fmt("larger (darkest: %.4g).", top) << "</p>\n<table class=\"heatmap\"><tr><th class=\"l\">kind \\ layer</th>";
    for (const long l : layers) o << "<th>" << (l < 0 ? std::string("&ndash;") : std::to_string(l)) << "</th>";
    o << "</tr>\n";
    for (const auto& [kind, row] : cells) {
        o << "<tr><td class=\"l\">" << esc(kind) << "</td>";
        for (const long l : layers) {
            const auto it = row.find(l);
            if (it == row.end()) {
                o << "<td></td>";
                continue;
            }
            const Cell& c = it->second;
            const double v = c.sum / static_cast<double>(c.n), t = top > 0 ? v / top : 0;
            std::string types;
            for (const auto& ty : c.types) types += (types.empty() ? "" : ", ") + ty;
            o << fmt("<td class=\"cell\" style=\"background:hsl(8,75%%,%.0f%%);color:%s\" title=\"", 97 - 55 * t,
                     t > 0.6 ? "#fff" : "#222")
              << esc(kind) << ", layer " << (l < 0 ? std::string("-") : std::to_string(l)) << ": " << c.n
              << " tensor(s), " << esc(types) << fmt(", mean %.4g, max %.4g\">%.3g</td>", v, c.max, v);
        }
        o << "</tr>\n";
    }
    o << "</table></section>\n";
}

}  // namespace

std::string render_report_html(const ReportData& d) {
    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>shardforge run report: "
      << esc(d.out_dir) << "</title>\n<style>" << style << "</style></head><body>\n";
    meta(o, d);
    timeline(o, d);
    stages(o, d);
    quant_error(o, d);
    // Counts what the browser built from the markup above (the headless-Chromium test reads it from the DOM).
    o << "<p id=\"rendered\" class=\"note\"></p>\n<script>\n(function () {\n"
         "  var lanes = document.querySelectorAll('#timeline svg g.lane').length;\n"
         "  var bars = document.querySelectorAll('#timeline svg rect.bar').length;\n"
         "  var p = document.getElementById('rendered');\n"
         "  p.setAttribute('data-lanes', lanes); p.setAttribute('data-bars', bars);\n"
         "  p.textContent = 'Rendered ' + lanes + ' rank lane(s) and ' + bars + ' work unit bar(s).';\n"
         "})();\n</script>\n</body></html>\n";
    return o.str();
}

void write_report_html(const std::string& report_path, const std::string& html_path) {
    const std::string html = render_report_html(read_report(report_path));
    const std::string tmp = html_path + ".partial";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << html;
        f.flush();
        if (!f) throw core::Error(core::ErrorKind::Io, html_path, "", "cannot write the HTML report");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, html_path, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, html_path, "", core::cat("cannot rename ", tmp, ": ", ec.message()));
}

}  // namespace shardforge::exec
