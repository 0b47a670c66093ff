// safetensors writer side (header bytes and offsets from a list of entries; no I/O) and the Hugging Face
// conventions around it: shard sizes, shard names, shard assignment and the index file.
#include <shardforge/formats.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <set>

namespace shardforge::formats {
namespace {

using core::DType;
using core::Error;
using core::ErrorKind;

// JSON string literal the way serde_json writes it (UTF-8 kept, control characters escaped).
std::string json_str(const std::string &s, const std::string &tensor_for_errors) {
    try {
        return nlohmann::json(s).dump(-1, ' ', /*ensure_ascii=*/false);
    } catch (const nlohmann::json::exception &) {
        throw Error(ErrorKind::Usage, "", tensor_for_errors, core::cat("'", s, "' is not valid UTF-8"));
    }
}

// Position in the reference library's Dtype enum (derived Ord used by its serializer's sort).
int rust_dtype_rank(DType t) {
    switch (t) {
    case DType::BOOL: return 0;
    case DType::U8: return 4;
    case DType::I8: return 5;
    case DType::F8_E5M2: return 6;
    case DType::F8_E4M3: return 7;
    case DType::I16: return 11;
    case DType::F16: return 13;
    case DType::BF16: return 14;
    case DType::I32: return 15;
    case DType::F32: return 17;
    case DType::F64: return 19;
    case DType::I64: return 20;
    }
    return -1;
}

bool mul_u64(std::uint64_t a, std::uint64_t b, std::uint64_t &out) {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
    out = a * b;
    return true;
}

} // namespace

StLayout layout_safetensors(const std::vector<StEntry> &entries, const std::map<std::string, std::string> &metadata) {
    std::string js = "{";
    bool first = true;
    if (!metadata.empty()) {
        js += "\"__metadata__\":{";
        for (const auto &[k, v] : metadata) {
            if (!first) js += ',';
            first = false;
            js += json_str(k, "");
            js += ':';
            js += json_str(v, "");
        }
        js += '}';
        first = false;
    }
    std::set<std::string_view> seen;
    std::vector<std::uint64_t> rel;
    rel.reserve(entries.size());
    std::uint64_t pos = 0;
    for (const StEntry &e : entries) {
        if (e.name == "__metadata__") throw Error(ErrorKind::Usage, "", e.name, "tensor name is reserved for metadata");
        if (!seen.insert(e.name).second) throw Error(ErrorKind::Usage, "", e.name, "duplicate tensor name");
        std::uint64_t n = 1;
        for (const auto d : e.shape) {
            if (d < 0)
                throw Error(ErrorKind::Usage, "", e.name,
                            core::cat("negative dimension in ", core::shape_str(e.shape)));
            if (!mul_u64(n, static_cast<std::uint64_t>(d), n))
                throw Error(ErrorKind::Usage, "", e.name, "element count overflows 64 bits");
        }
        std::uint64_t nbytes = 0;
        if (!mul_u64(n, core::dtype_size(e.dtype), nbytes) || pos + nbytes < pos)
            throw Error(ErrorKind::Usage, "", e.name, "byte size overflows 64 bits");
        if (!first) js += ',';
        first = false;
        js += json_str(e.name, e.name);
        js += ":{\"dtype\":\"";
        js += core::dtype_name(e.dtype);
        js += "\",\"shape\":[";
        for (std::size_t i = 0; i < e.shape.size(); ++i) {
            if (i) js += ',';
            js += std::to_string(e.shape[i]);
        }
        js += "],\"data_offsets\":[";
        js += std::to_string(pos);
        js += ',';
        js += std::to_string(pos + nbytes);
        js += "]}";
        rel.push_back(pos);
        pos += nbytes;
    }
    js += '}';
    js.resize((js.size() + 7) / 8 * 8, ' '); // the reference pads to 8 so the data section is 8-aligned
    if (js.size() > st_max_header_size)
        throw Error(ErrorKind::Usage, "", "",
                    core::cat("safetensors header of ", js.size(), " bytes exceeds the limit"));

    StLayout out;
    const std::uint64_t n = js.size();
    out.header_bytes.resize(8);
    for (int i = 0; i < 8; ++i) out.header_bytes[i] = static_cast<char>((n >> (8 * i)) & 0xffu);
    out.header_bytes += js;
    const std::uint64_t data_start = 8 + n;
    out.offsets.reserve(rel.size());
    for (const auto r : rel) out.offsets.push_back(data_start + r);
    out.file_size = data_start + pos;
    return out;
}

std::vector<std::size_t> st_reference_order(const std::vector<StEntry> &entries) {
    std::vector<std::size_t> idx(entries.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
        const int ra = rust_dtype_rank(entries[a].dtype), rb = rust_dtype_rank(entries[b].dtype);
        if (ra != rb) return ra > rb;
        return entries[a].name < entries[b].name; // std::string compares bytes as unsigned char, like Rust str
    });
    return idx;
}

// ---------------------------------------------------------------- HF conventions

std::uint64_t parse_hf_size(std::string_view s_in) {
    auto garbage = [&](const char *why) {
        return Error(ErrorKind::Usage, "", "",
                     core::cat("invalid size '", s_in, "': ", why, " (use e.g. 5GB, 500MB, 2GiB or a byte count)"));
    };
    auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    std::string_view s = s_in;
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    if (s.empty()) throw garbage("empty");

    std::string up(s);
    for (char &c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    struct Unit {
        std::string_view suffix;
        std::uint64_t mult;
    };
    // transformers checks the binary units first, then the decimal ones.
    static constexpr Unit units[] = {
        {"PIB", 1ull << 50},          {"TIB", 1ull << 40},
        {"GIB", 1ull << 30},          {"MIB", 1ull << 20},
        {"KIB", 1ull << 10},          {"PB", 1'000'000'000'000'000ull},
        {"TB", 1'000'000'000'000ull}, {"GB", 1'000'000'000ull},
        {"MB", 1'000'000ull},         {"KB", 1'000ull},
    };
    std::uint64_t mult = 1;
    bool bits = false;
    std::string_view num = s;
    for (const Unit &u : units) {
        if (up.size() >= u.suffix.size() && std::string_view(up).substr(up.size() - u.suffix.size()) == u.suffix) {
            mult = u.mult;
            num = s.substr(0, s.size() - u.suffix.size());
            bits = u.suffix.size() == 2 && s.back() == 'b'; // "5Gb": gigabits, as transformers reads it
            break;
        }
    }
    while (!num.empty() && is_space(num.back())) num.remove_suffix(1);
    if (num.empty()) throw garbage("no number");
    const auto dot = num.find('.');
    const std::string_view ipart = num.substr(0, dot);
    const std::string_view fpart = dot == std::string_view::npos ? std::string_view{} : num.substr(dot + 1);
    auto all_digits = [](std::string_view d) {
        return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!all_digits(ipart) || !all_digits(fpart) || (ipart.empty() && fpart.empty()))
        throw garbage("not a non-negative number");
    std::uint64_t bytes = 0;
    if (dot == std::string_view::npos) {
        // exact integer arithmetic, like Python's int(...) * unit
        std::uint64_t v = 0;
        for (const char c : ipart) {
            const std::uint64_t dig = static_cast<std::uint64_t>(c - '0');
            if (v > (std::numeric_limits<std::uint64_t>::max() - dig) / 10) throw garbage("too large");
            v = v * 10 + dig;
        }
        if (!mul_u64(v, mult, bytes)) throw garbage("too large");
    } else {
        if (mult == 1) throw garbage("a byte count must be an integer");
        // huggingface_hub parse_size_to_int: int(float(value) * unit), IEEE double like Python
        const double v = std::strtod(std::string(num).c_str(), nullptr) * static_cast<double>(mult);
        if (!(v < 18446744073709551616.0)) throw garbage("too large");
        bytes = static_cast<std::uint64_t>(v);
    }
    return bits ? bytes / 8 : bytes;
}

std::string hf_shard_name(std::size_t i, std::size_t n) {
    SF_CHECK(i < n, core::cat("shard ", i, " of ", n));
    if (n == 1) return "model.safetensors";
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    return buf;
}

std::vector<std::uint32_t> assign_hf_shards(const std::vector<std::uint64_t> &nbytes, std::uint64_t max_shard_size) {
    std::vector<std::uint32_t> shard(nbytes.size());
    std::vector<std::vector<std::size_t>> shards;
    std::vector<std::size_t> current;
    std::uint64_t current_size = 0;
    for (std::size_t i = 0; i < nbytes.size(); ++i) {
        const std::uint64_t sz = nbytes[i];
        if (sz > max_shard_size) { // alone, appended now: ahead of the shard still being filled
            shards.push_back({i});
            continue;
        }
        if (current_size + sz > max_shard_size) { // never empty here: sz <= max
            shards.push_back(std::move(current));
            current.clear();
            current_size = 0;
        }
        current.push_back(i);
        current_size += sz;
    }
    if (!current.empty()) shards.push_back(std::move(current));
    for (std::size_t s = 0; s < shards.size(); ++s)
        for (const std::size_t i : shards[s]) shard[i] = static_cast<std::uint32_t>(s);
    return shard;
}

std::string make_hf_index_json(std::uint64_t total_size,
                               const std::vector<std::pair<std::string, std::string>> &weight_map,
                               std::optional<std::uint64_t> total_parameters) {
    nlohmann::json j = nlohmann::json::object(); // std::map keys: sorted bytewise = Python's sort_keys
    j["metadata"] = nlohmann::json::object();
    if (total_parameters) j["metadata"]["total_parameters"] = *total_parameters;
    j["metadata"]["total_size"] = total_size;
    nlohmann::json wm = nlohmann::json::object();
    for (const auto &[tensor, file] : weight_map) {
        if (wm.contains(tensor)) throw Error(ErrorKind::Usage, "", tensor, "listed twice in the weight map");
        wm[tensor] = file;
    }
    j["weight_map"] = std::move(wm);
    try {
        return j.dump(2, ' ', /*ensure_ascii=*/true) + "\n";
    } catch (const nlohmann::json::exception &e) {
        throw Error(ErrorKind::Usage, "model.safetensors.index.json", "", core::cat("invalid UTF-8: ", e.what()));
    }
}

} // namespace shardforge::formats
