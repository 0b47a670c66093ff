// Plan <-> JSON (broadcast to ranks, --dry-run --json) and the human-readable dry-run description.
#include <shardforge/formats.hpp>
#include <shardforge/plan.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <numeric>
#include <variant>

namespace shardforge::plan {
namespace {
using nlohmann::json;

// nlohmann's CBOR reader recurses once per nesting level, so corrupt plan bytes nested thousands of levels deep
// overflow the stack (found by fuzz_plan). A plan nests a handful of levels: a SAX pass refuses deeper data first.
class DepthLimit final : public nlohmann::json_sax<json> {
public:
    static constexpr std::size_t kMaxDepth = 64;
    bool too_deep = false;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return enter(); }
    bool key(string_t&) override { return true; }
    bool end_object() override { return leave(); }
    bool start_array(std::size_t) override { return enter(); }
    bool end_array() override { return leave(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

private:
    std::size_t depth_ = 0;
    bool enter() {
        too_deep = ++depth_ > kMaxDepth;
        return !too_deep;
    }
    bool leave() {
        --depth_;
        return true;
    }
};

// nlohmann's CBOR reader also recurses per chunk of an indefinite-length string, and a chunk may itself be one, so
// corrupt bytes can overflow the stack before the SAX pass sees any nesting (found by fuzz_plan). Our plans are
// written by json::to_cbor, which only writes definite lengths: an iterative walk over the item headers refuses
// indefinite lengths, reserved encodings, lengths beyond the data and nesting deeper than kMaxDepth.
bool definite_cbor(const std::vector<std::uint8_t>& b) {
    std::size_t pos = 0;
    std::vector<std::uint64_t> pending{1};  // items still to read at each open level
    while (!pending.empty()) {
        if (pending.back() == 0) {
            pending.pop_back();
            continue;
        }
        --pending.back();
        if (pos >= b.size()) return false;
        const unsigned major = b[pos] >> 5, info = b[pos] & 31u;
        ++pos;
        std::uint64_t value = info;
        if (info >= 24) {
            if (info > 27) return false;  // 28-30 reserved, 31 indefinite length
            const std::size_t n = std::size_t{1} << (info - 24);
            if (b.size() - pos < n) return false;
            value = 0;
            for (std::size_t i = 0; i < n; ++i) value = value << 8 | b[pos + i];
            pos += n;
        }
        const std::uint64_t left = b.size() - pos;
        if (major == 2 || major == 3) {  // byte / text string
            if (value > left) return false;
            pos += static_cast<std::size_t>(value);
        } else if (major == 4 || major == 5) {  // array / map: every item takes at least one byte
            if (value > left || (major == 5 && 2 * value > left)) return false;
            pending.push_back(major == 5 ? 2 * value : value);
        } else if (major == 6) {  // tag: one item follows
            pending.push_back(1);
        }
        if (pending.size() > DepthLimit::kMaxDepth + 1) return false;
    }
    return true;
}

json source_json(const Source& s) {
    json j = {{"file", s.file},   {"name", s.name},          {"dtype", core::dtype_name(s.dtype)},
              {"shape", s.shape}, {"offset", s.offset},      {"nbytes", s.nbytes},
              {"rb", s.row_begin}, {"re", s.row_end}};
    if (s.col_step != 1 || s.transpose || s.col_begin != 0 || s.col_end >= 0) {
        j["cols"] = {s.col_begin, s.col_step, s.transpose};
        if (s.col_end >= 0) j["cols"].push_back(s.col_end);
    }
    if (s.row_step != 1) j["rs"] = s.row_step;
    if (s.merge) j["merge"] = lora::to_json(*s.merge);
    if (s.dequant) {
        const Dequant& d = *s.dequant;
        json aux = json::array();
        for (const auto& a : d.aux)
            aux.push_back({{"file", a.file}, {"name", a.name}, {"dtype", core::dtype_name(a.dtype)},
                           {"shape", a.shape}, {"offset", a.offset}, {"nbytes", a.nbytes}});
        j["dq"] = {{"kind", static_cast<int>(d.kind)}, {"stored", core::dtype_name(d.stored)},
                   {"aux", aux}, {"bs", d.blocksize}, {"nested", d.nested}, {"nbs", d.nested_blocksize},
                   {"noff", d.nested_offset}, {"br", d.block_rows}, {"bc", d.block_cols}};
        if (d.kind == DequantKind::PackedInt) j["dq"]["bits"] = d.bits;
    }
    return j;
}
core::DType dtype_from(const json& j, const std::string& name) {
    core::DType t{};
    if (!core::parse_dtype(j.get<std::string>(), t))
        throw core::Error(core::ErrorKind::Internal, "", name, "bad dtype in plan");
    return t;
}
Source source_from(const json& j) {
    Source s;
    s.file = j.at("file");
    s.name = j.at("name");
    if (!core::parse_dtype(j.at("dtype").get<std::string>(), s.dtype))
        throw core::Error(core::ErrorKind::Internal, "", s.name, "bad dtype in plan");
    s.shape = j.at("shape").get<core::Shape>();
    s.offset = j.at("offset");
    s.nbytes = j.at("nbytes");
    s.row_begin = j.at("rb");
    s.row_end = j.at("re");
    if (j.contains("rs")) {
        s.row_step = j.at("rs");
        if (s.row_step < 1) throw core::Error(core::ErrorKind::Internal, "", s.name, "bad row step in plan");
    }
    if (j.contains("cols")) {
        const json& c = j.at("cols");
        s.col_begin = c.at(0);
        s.col_step = c.at(1);
        s.transpose = c.at(2);
        if (c.size() > 3) s.col_end = c.at(3);
        if (s.col_step < 1 || s.col_begin < 0 || (s.col_end < 0 && s.col_begin >= s.col_step) ||
            (s.col_end >= 0 && s.col_end <= s.col_begin))
            throw core::Error(core::ErrorKind::Internal, "", s.name, "bad column selection in plan");
    }
    if (j.contains("merge")) s.merge = lora::merge_target_from_json(j.at("merge"));
    if (j.contains("dq")) {
        const json& q = j.at("dq");
        Dequant d;
        d.kind = static_cast<DequantKind>(q.at("kind").get<int>());
        d.stored = dtype_from(q.at("stored"), s.name);
        for (const auto& a : q.at("aux"))
            d.aux.push_back({a.at("file"), a.at("name"), dtype_from(a.at("dtype"), s.name),
                             a.at("shape").get<core::Shape>(), a.at("offset"), a.at("nbytes")});
        d.blocksize = q.at("bs");
        d.nested = q.at("nested");
        d.nested_blocksize = q.at("nbs");
        d.nested_offset = q.at("noff");
        d.block_rows = q.at("br");
        d.block_cols = q.at("bc");
        if (q.contains("bits")) d.bits = q.at("bits");
        s.dequant = std::move(d);
    }
    return s;
}
// An emit's encoding in the plan JSON (the digest a resume checks is computed from it, so the layout stays fixed):
// "kind" (0 raw, 1 ggml, 2 bnb4) and always "dtype", "gtype" and "imatrix" (BF16, F32 and [] where the encoding has
// none); bnb4 adds "bnb" with its parts' ranges as "po"/"pb" lists in checkpoint order (formats::Bnb4Parts::list).
void encoding_json(const Encoding& enc, json& j) {
    j["kind"] = static_cast<int>(enc.index());
    j["dtype"] = core::dtype_name(core::DType::BF16);
    j["gtype"] = static_cast<std::uint32_t>(quant::GgmlType::F32);
    j["imatrix"] = json::array();
    std::visit(core::Overloaded{
                   [&](const RawEncoding& r) { j["dtype"] = core::dtype_name(r.dtype); },
                   [&](const GgmlEncoding& g) {
                       j["gtype"] = static_cast<std::uint32_t>(g.type);
                       j["imatrix"] = g.imatrix;
                   },
                   [&](const Bnb4Encoding& b) {
                       j["dtype"] = core::dtype_name(b.dtype);
                       std::vector<std::uint64_t> po, pb;
                       for (const auto& [part, r] : b.parts.list()) po.push_back(r.offset), pb.push_back(r.nbytes);
                       j["bnb"] = {{"type", static_cast<int>(b.spec.type)}, {"dq", b.spec.double_quant},
                                   {"bs", b.spec.blocksize}, {"po", po}, {"pb", pb}};
                   }},
               enc);
}
Encoding encoding_from(const json& j, const std::string& name) {
    core::DType dtype = core::DType::BF16;
    if (!core::parse_dtype(j.at("dtype").get<std::string>(), dtype))
        throw core::Error(core::ErrorKind::Internal, "", name, "bad dtype in plan");
    switch (j.at("kind").get<int>()) {
        case 0: return RawEncoding{dtype};
        case 1: return GgmlEncoding{static_cast<quant::GgmlType>(j.at("gtype").get<std::uint32_t>()),
                                    j.at("imatrix").get<std::vector<float>>()};
        case 2: break;
        default: throw core::Error(core::ErrorKind::BadInput, "", name, "plan data is corrupt: bad emit kind");
    }
    const json& b = j.at("bnb");
    Bnb4Encoding e{dtype, {}, {}};
    e.spec.type = static_cast<quant::Bnb4Type>(b.at("type").get<int>());
    e.spec.double_quant = b.at("dq");
    e.spec.blocksize = b.at("bs");
    const auto po = b.at("po").get<std::vector<std::uint64_t>>(), pb = b.at("pb").get<std::vector<std::uint64_t>>();
    const std::vector<formats::Bnb4Part> order = formats::bnb4_parts_in_order(e.spec.double_quant);
    if (po.size() != order.size() || pb.size() != order.size())
        throw core::Error(core::ErrorKind::BadInput, "", name, "plan data is corrupt: bad bnb parts");
    for (std::size_t k = 0; k < order.size(); ++k) e.parts.at(order[k]) = {po[k], pb[k]};
    return e;
}
json emit_json(const Emit& e) {
    json tr = json::array();
    for (const auto& t : e.transforms) {
        // [kind, arg], with [head, skip] appended only when set (the V-head tiling), so older plans read the same
        if (t.head == 0 && t.skip == 0) tr.push_back({static_cast<int>(t.kind), t.arg});
        else tr.push_back({static_cast<int>(t.kind), t.arg, t.head, t.skip});
    }
    json j = {{"file", e.file},
            {"name", e.name},
            {"tr", tr},
            {"scale", e.scale},
            {"offset", e.offset},
            {"nbytes", e.nbytes}};
    encoding_json(e.encoding, j);
    // a window of the item: [row_begin, row_end, shape], only when set (so older plans read the same)
    if (e.windowed()) j["win"] = {e.row_begin, e.row_end, e.shape};
    return j;
}
Emit emit_from(const json& j) {
    Emit e;
    e.file = j.at("file");
    e.name = j.at("name");
    e.encoding = encoding_from(j, e.name);
    for (const auto& t : j.at("tr"))
        e.transforms.push_back({static_cast<model::TransformKind>(t.at(0).get<int>()), t.at(1).get<std::int64_t>(),
                                t.size() > 2 ? t.at(2).get<std::int64_t>() : 0,
                                t.size() > 3 ? t.at(3).get<std::int64_t>() : 0});
    e.scale = j.at("scale");
    e.offset = j.at("offset");
    e.nbytes = j.at("nbytes");
    if (j.contains("win")) {
        const json& w = j.at("win");
        e.row_begin = w.at(0);
        e.row_end = w.at(1);
        e.shape = w.at(2).get<core::Shape>();
        if (e.row_begin < 0 || e.row_end <= e.row_begin)
            throw core::Error(core::ErrorKind::BadInput, "", e.name, "plan data is corrupt: bad emit window");
    }
    return e;
}
// Tensors an emit writes: 1, or 1 + its parts for a bnb4 group.
std::uint64_t n_tensors(const Emit& e) {
    const auto* b = std::get_if<Bnb4Encoding>(&e.encoding);
    return 1 + (b ? b->parts.list().size() : 0);
}
std::string human(std::uint64_t b) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
    return buf;
}
std::string fixed(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}
}  // namespace

std::string to_json(const Plan& p) {
    json files = json::array();
    for (const auto& f : p.files)
        files.push_back({{"name", f.name},
                         {"kind", static_cast<int>(f.kind)},
                         {"header", json::binary(std::vector<std::uint8_t>(f.header.begin(), f.header.end()))},
                         {"copy_from", f.copy_from},
                         {"size", f.size}});
    json items = json::array();
    for (const auto& it : p.items) {
        json srcs = json::array(), emits = json::array();
        for (const auto& s : it.sources) srcs.push_back(source_json(s));
        for (const auto& e : it.emits) emits.push_back(emit_json(e));
        json item = {{"sources", srcs}, {"generated", it.generated}, {"shape", it.shape}, {"emits", emits},
                     {"cost", it.cost}, {"block_rows", it.block_rows}};
        if (!it.variants.empty()) {
            json vars = json::array();
            for (const auto& v : it.variants) {
                json merges = json::array(), vemits = json::array();
                for (const auto& m : v.merges) merges.push_back(m ? lora::to_json(*m) : json());
                for (const auto& e : v.emits) vemits.push_back(emit_json(e));
                vars.push_back({{"merges", merges}, {"emits", vemits}});
            }
            item["variants"] = vars;
        }
        items.push_back(std::move(item));
    }
    json j = {{"out_dir", p.out_dir},         {"input_files", p.input_files}, {"adapter_files", p.adapter_files},
              {"files", files},               {"items", items},               {"notes", p.notes},
              {"input_bytes", p.input_bytes}, {"output_bytes", p.output_bytes},
              {"peak_item_bytes", p.peak_item_bytes}, {"max_memory_per_rank", p.max_memory_per_rank},
              {"peak_rank_bytes", p.peak_rank_bytes}, {"threads", p.threads},
              {"gather_window", p.gather_window}};
    // CBOR keeps binary headers compact and round-trips floats exactly.
    const std::vector<std::uint8_t> bytes = json::to_cbor(j);
    return std::string(bytes.begin(), bytes.end());
}

Plan from_json(const std::string& s) try {
    const std::vector<std::uint8_t> bytes(s.begin(), s.end());
    if (!definite_cbor(bytes))
        throw core::Error(core::ErrorKind::BadInput, "", "",
                          "plan data is corrupt: not definite-length CBOR nested at most 64 levels");
    DepthLimit limit;
    if (!json::sax_parse(bytes, &limit, json::input_format_t::cbor) && limit.too_deep)
        throw core::Error(core::ErrorKind::BadInput, "", "",
                          core::cat("plan data is corrupt: nested deeper than ", DepthLimit::kMaxDepth, " levels"));
    const json j = json::from_cbor(bytes);
    Plan p;
    p.out_dir = j.at("out_dir");
    p.input_files = j.at("input_files").get<std::vector<std::string>>();
    p.adapter_files = j.at("adapter_files").get<std::vector<std::string>>();
    for (const auto& f : j.at("files")) {
        FileOut o;
        o.name = f.at("name");
        o.kind = static_cast<FileKind>(f.at("kind").get<int>());
        const auto& bin = f.at("header").get_binary();
        o.header.assign(bin.begin(), bin.end());
        o.copy_from = f.at("copy_from");
        o.size = f.at("size");
        p.files.push_back(std::move(o));
    }
    for (const auto& i : j.at("items")) {
        Item it;
        for (const auto& src : i.at("sources")) it.sources.push_back(source_from(src));
        it.generated = i.at("generated").get<std::vector<float>>();
        it.shape = i.at("shape").get<core::Shape>();
        for (const auto& e : i.at("emits")) {
            it.emits.push_back(emit_from(e));
            if (it.emits.back().windowed() && (it.shape.empty() || it.emits.back().row_end > it.shape[0]))
                throw core::Error(core::ErrorKind::BadInput, "", it.emits.back().name,
                                  "plan data is corrupt: emit window outside its item");
        }
        if (i.contains("variants"))
            for (const auto& v : i.at("variants")) {
                Variant var;
                for (const auto& m : v.at("merges"))
                    var.merges.push_back(m.is_null() ? std::nullopt
                                                     : std::optional<lora::MergeTarget>(lora::merge_target_from_json(m)));
                if (var.merges.size() != it.sources.size())
                    throw core::Error(core::ErrorKind::BadInput, "", "", "plan data is corrupt: variant merges");
                for (const auto& e : v.at("emits")) var.emits.push_back(emit_from(e));
                it.variants.push_back(std::move(var));
            }
        it.cost = i.at("cost");
        it.block_rows = i.at("block_rows");
        p.items.push_back(std::move(it));
    }
    p.notes = j.at("notes").get<std::vector<std::string>>();
    p.input_bytes = j.at("input_bytes");
    p.output_bytes = j.at("output_bytes");
    p.peak_item_bytes = j.at("peak_item_bytes");
    p.max_memory_per_rank = j.at("max_memory_per_rank");
    p.peak_rank_bytes = j.at("peak_rank_bytes");
    p.threads = j.at("threads");
    p.gather_window = j.at("gather_window");
    for (const auto& it : p.items)
        if (it.block_rows < 0 || (!it.shape.empty() && it.block_rows > it.shape[0]))
            throw core::Error(core::ErrorKind::BadInput, "", "", "plan data is corrupt: bad block_rows");
    if (p.threads < 1 || p.gather_window < 1)
        throw core::Error(core::ErrorKind::BadInput, "", "", "plan data is corrupt: bad threads or window");
    return p;
} catch (const json::exception& e) {
    throw core::Error(core::ErrorKind::BadInput, "", "", core::cat("plan data is corrupt: ", e.what()));
}

std::string describe(const Plan& p, int n_ranks) {
    std::string s = core::cat("plan: ", p.items.size(), " work items, ", p.files.size(), " output files in ",
                              p.out_dir, "\n");
    s += core::cat("  input  ", human(p.input_bytes), " in ", p.input_files.size(), " file(s)\n");
    s += core::cat("  output ", human(p.output_bytes), " (disk space needed)\n");
    for (const auto& f : p.files) {
        std::uint64_t n = 0;
        for (const auto& it : p.items) {
            for (const auto& e : it.emits) n += (&p.files[e.file] == &f) ? n_tensors(e) : 0;
            for (const auto& v : it.variants)
                for (const auto& e : v.emits) n += (&p.files[e.file] == &f) ? n_tensors(e) : 0;
        }
        const std::uint64_t size = f.kind == FileKind::Text ? f.header.size() : f.size;
        s += core::cat("    ", f.name, "  ", human(size));
        if (f.kind == FileKind::Tensors) s += core::cat("  (", n, " tensors)");
        if (f.kind == FileKind::Copy) s += "  (copied)";
        s += "\n";
    }
    const std::vector<Unit> all = units(p);
    StageEstimate sum;
    double worst = 0;
    std::uint64_t read_all = 0;
    for (int r = 0; r < n_ranks; ++r) {
        std::uint64_t rd = 0, wr = 0;
        double est = 0;
        std::vector<bool> shard(p.input_files.size(), false);
        for (auto k : assign_units(all, p, r, n_ranks)) {
            const Unit& u = all[k];
            const Item& it = p.items[u.item];
            for (const auto& src : it.sources)
                if (src.file < shard.size()) shard[src.file] = true;
            const std::int64_t rows0 = it.shape.empty() ? 1 : std::max<std::int64_t>(1, it.shape[0]);
            const auto part = [&](std::uint64_t n) {
                return n / static_cast<std::uint64_t>(rows0) * static_cast<std::uint64_t>(u.row_end - u.row_begin);
            };
            // A row slice of a 2-D stored source is read as its rows only (exec/pipeline.cpp): Qwen3-Next's attn_qkv
            // is 3 x 16 slices of in_proj_qkvz, not 48 reads of it.
            const auto src_bytes = [](const Source& src) -> std::uint64_t {
                if (src.shape.size() != 2 || src.shape[0] <= 0 || src.dequant || (src.row_begin == 0 && src.row_end < 0))
                    return src.nbytes;
                const std::int64_t end = src.row_end < 0 ? src.shape[0] : src.row_end;
                return src.nbytes / static_cast<std::uint64_t>(src.shape[0]) * static_cast<std::uint64_t>(end - src.row_begin);
            };
            for (const auto& src : it.sources)
                rd += u.row_end - u.row_begin == rows0 ? src_bytes(src) : part(src_bytes(src));
            for (const auto& e : it.emits) wr += emit_part(it, e, u.row_begin, u.row_end).nbytes;
            for (const auto& v : it.variants)  // batch jobs: items with variants are whole units
                for (const auto& e : v.emits) wr += e.nbytes;
            const StageEstimate e = estimate(p, u);
            sum.read += e.read, sum.dequant += e.dequant, sum.merge += e.merge, sum.quantize += e.quantize;
            sum.write += e.write;
            est += e.total();
        }
        worst = std::max(worst, est);
        read_all += rd;
        s += core::cat("  rank ", r, ": reads ", human(rd), " from ", std::count(shard.begin(), shard.end(), true),
                       " input file(s), writes ", human(wr), ", estimated ", fixed(est / p.threads), " s\n");
    }
    // Exact, for comparing with the input's tensor bytes: every output is made from one read of each tensor.
    s += core::cat("  planned reads, all ranks: ", read_all, " bytes of input tensor data\n");
    std::size_t split = 0;
    for (const auto& it : p.items) split += it.block_rows > 0;
    s += core::cat("  work units: ", all.size(), " (", split, " tensor(s) split into row blocks)\n");
    s += core::cat("  estimated time by stage (cost table, all ranks and threads): read ", fixed(sum.read),
                   " s, dequant ", fixed(sum.dequant), " s, merge ", fixed(sum.merge), " s, quantize ",
                   fixed(sum.quantize), " s, write ", fixed(sum.write), " s; wall about ",
                   fixed(worst / p.threads), " s with ", p.threads, " thread(s) per rank\n");
    s += core::cat("  peak memory per worker thread: about ", human(p.peak_item_bytes),
                   " (largest row block in f32 plus its encoded output)\n");
    s += core::cat("  peak memory per rank: about ", human(p.peak_rank_bytes),
                   p.max_memory_per_rank ? core::cat(" (budget ", human(p.max_memory_per_rank), ")") : std::string(),
                   "; --write gather window: ", p.gather_window, " chunk(s) in flight per rank\n");
    for (const auto& n : p.notes) s += "  note: " + n + "\n";
    return s;
}

}  // namespace shardforge::plan
