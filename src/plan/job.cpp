// Batch job files (`shardforge run JOB.toml`): TOML (toml++) -> one plan::Options per variant. Every key is
// checked: an unknown key, a wrong type or a bad value is an error naming the file and the key, never ignored.
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/plan.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace fs = std::filesystem;

namespace shardforge::plan {
namespace {

// Keys allowed at the top level (defaults for every variant) and in a [[variant]].
const std::set<std::string> option_keys = {
    "out",          "formats",        "dtype",      "max_shard_size",       "split_max_size",
    "split_max_tensors", "imatrix",   "pure",       "leave_output_tensor",  "output_tensor_type",
    "token_embedding_type", "tensor_type", "overwrite", "gguf_name"};

class Reader {
public:
    Reader(const fs::path& dir, std::string origin) : dir_(dir), origin_(std::move(origin)) {}

    [[noreturn]] void fail(const std::string& where, const std::string& why) const {
        throw core::Error(core::ErrorKind::Usage, origin_, "", where.empty() ? why : core::cat(where, ": ", why));
    }
    std::string str(const toml::node& n, const std::string& where) const {
        if (!n.is_string()) fail(where, "expected a string");
        return *n.value<std::string>();
    }
    bool boolean(const toml::node& n, const std::string& where) const {
        if (!n.is_boolean()) fail(where, "expected true or false");
        return *n.value<bool>();
    }
    double number(const toml::node& n, const std::string& where) const {
        if (!n.is_number()) fail(where, "expected a number");
        const double v = *n.value<double>();
        if (!std::isfinite(v)) fail(where, "expected a finite number");
        return v;
    }
    std::int64_t integer(const toml::node& n, const std::string& where, std::int64_t lo, std::int64_t hi) const {
        if (!n.is_integer()) fail(where, "expected an integer");
        const std::int64_t v = *n.value<std::int64_t>();
        if (v < lo || v > hi) fail(where, core::cat("must be between ", lo, " and ", hi));
        return v;
    }
    std::vector<std::string> strings(const toml::node& n, const std::string& where) const {
        std::vector<std::string> out;
        if (n.is_string()) return {str(n, where)};
        const toml::array* a = n.as_array();
        if (!a) fail(where, "expected a string or an array of strings");
        for (std::size_t i = 0; i < a->size(); ++i) out.push_back(str(*a->get(i), core::cat(where, "[", i, "]")));
        return out;
    }
    fs::path path(const toml::node& n, const std::string& where) const { return path(str(n, where), where); }
    fs::path path(const std::string& s, const std::string& where) const {
        if (s.empty()) fail(where, "empty path");
        if (s.find('\0') != std::string::npos) fail(where, "path contains NUL");
        const fs::path p(s);
        return (p.is_absolute() ? p : dir_ / p).lexically_normal();
    }

    // One option key into `o` (top-level defaults or a variant's own).
    void option(const std::string& key, const toml::node& n, const std::string& where, Options& o) const {
        if (key == "out") {
            o.out = path(n, where);
        } else if (key == "formats") {
            std::string csv;
            for (const auto& f : strings(n, where)) csv += f + ",";
            try {
                o.outputs = parse_formats(csv);
            } catch (const core::Error& e) {
                fail(where, e.why());
            }
        } else if (key == "dtype") {
            std::string d = str(n, where);
            std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return std::tolower(c); });
            if (d == "bf16" || d == "bfloat16") o.dtype = core::DType::BF16;
            else if (d == "f16" || d == "fp16" || d == "float16") o.dtype = core::DType::F16;
            else if (d == "f32" || d == "fp32" || d == "float32") o.dtype = core::DType::F32;
            else fail(where, "must be bf16, f16 or f32");
        } else if (key == "max_shard_size" || key == "split_max_size") {
            std::uint64_t v = 0;
            if (n.is_integer()) {
                v = static_cast<std::uint64_t>(integer(n, where, 1, INT64_MAX));
            } else {
                try {
                    v = formats::parse_hf_size(str(n, where));
                } catch (const core::Error& e) {
                    fail(where, e.why());
                }
            }
            if (v == 0) fail(where, "must be positive");
            (key == "max_shard_size" ? o.max_shard_size : o.split_max_size) = v;
        } else if (key == "split_max_tensors") {
            o.split_max_tensors = static_cast<std::uint32_t>(integer(n, where, 0, UINT32_MAX));
        } else if (key == "imatrix") {
            o.imatrix = path(n, where);
        } else if (key == "pure") {
            o.quant_overrides.pure = boolean(n, where);
        } else if (key == "leave_output_tensor") {
            o.quant_overrides.leave_output = boolean(n, where);
        } else if (key == "overwrite") {
            o.overwrite = boolean(n, where);
        } else if (key == "output_tensor_type" || key == "token_embedding_type") {
            quant::GgmlType t;
            const std::string v = str(n, where);
            if (!quant::parse_type(v, t)) fail(where, core::cat("unknown ggml type '", v, "'"));
            (key == "output_tensor_type" ? o.quant_overrides.output_type : o.quant_overrides.token_embd_type) = t;
        } else if (key == "tensor_type") {
            o.quant_overrides.tensor_types.clear();
            for (const auto& s : strings(n, where)) {
                quant::TensorTypeOverride x;
                if (!quant::parse_tensor_type_override(s, x)) fail(where, core::cat("expected REGEX=TYPE, got '", s, "'"));
                o.quant_overrides.tensor_types.push_back(x);
            }
        } else if (key == "gguf_name") {
            o.name = str(n, where);
        } else {
            fail(where, "unknown key");
        }
    }

    // adapters = ["dir", "dir:0.5", { path = "dir", weight = 0.5 }]
    std::vector<std::pair<fs::path, float>> adapters(const toml::node& n, const std::string& where) const {
        std::vector<std::pair<fs::path, float>> out;
        auto one = [&](const toml::node& x, const std::string& w) {
            if (x.is_string()) {
                std::pair<fs::path, double> pa;
                try {
                    pa = lora::parse_adapter_arg(str(x, w));
                } catch (const core::Error& e) {
                    fail(w, e.why());
                }
                out.emplace_back(path(pa.first.string(), w), static_cast<float>(pa.second));
                return;
            }
            const toml::table* t = x.as_table();
            if (!t) fail(w, "expected an adapter directory or { path = \"DIR\", weight = W }");
            const toml::node* p = t->get("path");
            if (!p) fail(w, "missing key 'path'");
            double weight = 1.0;
            for (auto&& [k, v] : *t) {
                const std::string key(k.str());
                if (key == "weight") weight = number(v, w + ".weight");
                else if (key != "path") fail(w + "." + key, "unknown key (expected path, weight)");
            }
            out.emplace_back(path(*p, w + ".path"), static_cast<float>(weight));
        };
        if (const toml::array* a = n.as_array()) {
            for (std::size_t i = 0; i < a->size(); ++i) one(*a->get(i), core::cat(where, "[", i, "]"));
        } else {
            one(n, where);
        }
        return out;
    }

private:
    fs::path dir_;
    std::string origin_;
};

bool plain_name(const std::string& s) {
    if (s.empty() || s.size() > 200 || s[0] == '.' || s.find("..") != std::string::npos) return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+';
    });
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return s;
}

}  // namespace

Job parse_job(std::string_view text, const fs::path& dir, const std::string& origin) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        throw core::Error(core::ErrorKind::BadInput, origin, "",
                          one_line(core::cat("invalid TOML at line ", e.source().begin.line, ", column ",
                                             e.source().begin.column, ": ", e.description())));
    }
    const Reader rd(dir, origin);
    Options defaults;
    fs::path out_root;
    Job job;
    const toml::array* variants = nullptr;
    for (auto&& [k, v] : root) {
        const std::string key(k.str());
        if (key == "base") {
            defaults.base = rd.path(v, "base");
        } else if (key == "threads") {
            job.threads = static_cast<int>(rd.integer(v, "threads", 0, 4096));
        } else if (key == "variant") {
            variants = v.as_array();
            if (!variants || !variants->is_array_of_tables())
                rd.fail("variant", "expected [[variant]] tables");
        } else if (key == "out") {
            out_root = rd.path(v, "out");
        } else if (key == "gguf_name") {
            rd.fail(key, "only in a [[variant]] (the GGUF name defaults to the variant's name)");
        } else if (option_keys.count(key)) {
            rd.option(key, v, key, defaults);
        } else {
            rd.fail(one_line(key), "unknown key (expected base, out, threads, [[variant]] or an export option)");
        }
    }
    if (defaults.base.empty()) rd.fail("", "missing key 'base' (the base model directory)");
    if (!variants || variants->empty()) rd.fail("", "no [[variant]] table: nothing to export");
    std::set<std::string> names;
    for (std::size_t i = 0; i < variants->size(); ++i) {
        const toml::table& t = *variants->get(i)->as_table();
        const std::string at = core::cat("variant[", i, "]");
        Options o = defaults;
        const toml::node* nm = t.get("name");
        if (!nm) rd.fail(at, "missing key 'name'");
        const std::string name = rd.str(*nm, at + ".name");
        if (!plain_name(name))
            rd.fail(at + ".name", core::cat("'", one_line(name), "' is not a plain name (letters, digits, . _ - +)"));
        if (!names.insert(name).second) rd.fail(at + ".name", core::cat("'", name, "' is used twice"));
        o.name = name;  // GGUF stem and general.name, unless gguf_name is given
        o.out.clear();
        bool have_weight = false, have_adapter = false;
        double weight = 1.0;
        for (auto&& [k, v] : t) {
            const std::string key(k.str());
            const std::string where = at + "." + one_line(key);
            if (key == "name") continue;
            if (key == "adapter" || key == "adapters") {
                if (have_adapter) rd.fail(where, "give either adapter or adapters, not both");
                have_adapter = true;
                o.adapters = rd.adapters(v, where);
                if (key == "adapter" && o.adapters.size() != 1) rd.fail(where, "one adapter (use adapters = [...] for a list)");
            } else if (key == "weight") {
                have_weight = true;
                weight = rd.number(v, where);
            } else if (option_keys.count(key)) {
                rd.option(key, v, where, o);
            } else {
                rd.fail(where, "unknown key");
            }
        }
        if (have_weight) {
            if (!t.get("adapter")) rd.fail(at + ".weight", "weight goes with adapter = \"DIR\" (in adapters, use { path, weight })");
            o.adapters[0].second = static_cast<float>(weight);
        }
        if (o.out.empty()) {
            if (out_root.empty()) rd.fail(at, "no output directory: set out at the top (variants go to OUT/<name>) or in the variant");
            o.out = out_root / name;
        }
        job.names.push_back(name);
        job.variants.push_back(std::move(o));
    }
    return job;
}

}  // namespace shardforge::plan
