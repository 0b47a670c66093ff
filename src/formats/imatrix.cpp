// llama.cpp importance-matrix files (formats.hpp "imatrix"): the GGUF format of current llama-imatrix and the
// legacy .dat format, turned into the per-tensor weights llama-quantize hands to the quantizer
// (tools/quantize/quantize.cpp load_imatrix, common/imatrix-loader.cpp), with strict validation.
#include <shardforge/formats.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

namespace shardforge::formats {
namespace {

using core::Error;
using core::ErrorKind;

[[noreturn]] void bad(const std::string& file, const std::string& entry, const std::string& why) {
    throw Error(ErrorKind::BadInput, file, entry, why);
}

void check_finite(const std::string& file, const std::string& name, const std::vector<float>& v) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i])) bad(file, name, core::cat("imatrix value ", i, " is not finite (", v[i], ")"));
}

// ---------------------------------------------------------------- legacy .dat
struct Cursor {
    const std::string& file;
    const std::vector<char>& buf;
    std::size_t pos = 0;
    [[nodiscard]] std::size_t left() const { return buf.size() - pos; }
    std::int32_t i32(const std::string& entry, const char* what) {
        if (left() < 4) bad(file, entry, core::cat("truncated: ", what, " at byte ", pos, " of ", buf.size()));
        std::int32_t v;
        std::memcpy(&v, buf.data() + pos, 4);
        pos += 4;
        return v;
    }
};

Imatrix read_legacy(const std::string& file, const std::vector<char>& buf) {
    Imatrix m;
    m.legacy = true;
    Cursor c{file, buf};
    const std::int32_t n_entries = c.i32("", "entry count");
    if (n_entries < 1) bad(file, "", core::cat("legacy imatrix: entry count ", n_entries, " (need >= 1)"));
    for (std::int32_t e = 0; e < n_entries; ++e) {
        const std::string where = core::cat("entry ", e + 1, " of ", n_entries);
        const std::int32_t len = c.i32(where, "name length");
        if (len < 1 || static_cast<std::size_t>(len) > c.left())
            bad(file, where, core::cat("legacy imatrix: bad or truncated name length ", len));
        std::string name(buf.data() + c.pos, static_cast<std::size_t>(len));
        c.pos += static_cast<std::size_t>(len);
        if (name.find('\0') != std::string::npos) bad(file, where, "legacy imatrix: name contains a NUL byte");
        const std::int32_t ncall = c.i32(name, "ncall");
        const std::int32_t nval = c.i32(name, "value count");
        if (ncall < 0) bad(file, name, core::cat("legacy imatrix: negative ncall ", ncall));
        if (nval < 1) bad(file, name, core::cat("legacy imatrix: value count ", nval, " (need >= 1)"));
        if (static_cast<std::uint64_t>(nval) * 4 > c.left())
            bad(file, name, core::cat("truncated: ", nval, " values need ", 4 * static_cast<std::uint64_t>(nval),
                                      " bytes, ", c.left(), " left"));
        std::vector<float> v(static_cast<std::size_t>(nval));
        std::memcpy(v.data(), buf.data() + c.pos, v.size() * 4);
        c.pos += v.size() * 4;
        if (ncall > 0)
            for (float& f : v) f = f / static_cast<float>(ncall);  // llama-quantize: sums[i] / ncall (float)
        check_finite(file, name, v);
        if (!m.by_tensor.emplace(name, std::move(v)).second) bad(file, name, "legacy imatrix: duplicate entry");
    }
    if (c.left() > 0) {  // optional trailer: last chunk, then dataset name
        m.chunk_count = c.i32("", "trailing chunk count");
        if (m.chunk_count < 0) bad(file, "", core::cat("legacy imatrix: negative chunk count ", m.chunk_count));
        if (c.left() > 0) {
            const std::int32_t len = c.i32("", "dataset name length");
            if (len < 0 || static_cast<std::size_t>(len) > c.left())
                bad(file, "", core::cat("legacy imatrix: bad or truncated dataset name length ", len));
            if (len > 0) m.datasets.emplace_back(buf.data() + c.pos, static_cast<std::size_t>(len));
            c.pos += static_cast<std::size_t>(len);
        }
        if (c.left() > 0) bad(file, "", core::cat("legacy imatrix: ", c.left(), " trailing bytes"));
    }
    return m;
}

// ---------------------------------------------------------------- GGUF
bool ends_with(const std::string& s, const std::string& suf, std::string& stem) {
    if (s.size() <= suf.size() || s.compare(s.size() - suf.size(), suf.size(), suf) != 0) return false;
    stem = s.substr(0, s.size() - suf.size());
    return true;
}

std::uint32_t need_u32(const GgufReader& r, const char* key) {
    const GgufKV* kv = r.find(key);
    if (!kv) bad(r.file(), "", core::cat("imatrix GGUF lacks the key ", key, " (llama-quantize requires it)"));
    if (kv->value.type != GgufValueType::UINT32)
        bad(r.file(), "", core::cat(key, " must be UINT32, found ", gguf_type_name(kv->value.type)));
    return static_cast<std::uint32_t>(kv->value.as_u64());
}

std::vector<float> read_f32(const GgufReader& r, const GgufReader::Tensor& t) {
    if (t.type != quant::GgmlType::F32) bad(r.file(), t.name, "imatrix tensors must be F32");
    std::vector<float> v(static_cast<std::size_t>(t.nbytes / 4));
    r.read(t, 0, std::as_writable_bytes(std::span<float>(v)));
    return v;
}

Imatrix read_gguf_imatrix(const std::filesystem::path& path) {
    const GgufReader r = GgufReader::open(path);
    const std::string& file = r.file();
    Imatrix m;
    if (r.tensors().empty()) bad(file, "", "imatrix GGUF has no tensors");
    const GgufKV* ds = r.find("imatrix.datasets");
    if (!ds) bad(file, "", "imatrix GGUF lacks the key imatrix.datasets (llama-quantize requires it)");
    if (ds->value.type != GgufValueType::ARRAY || ds->value.elem_type != GgufValueType::STRING)
        bad(file, "", "imatrix.datasets must be an array of strings");
    m.datasets = ds->value.array_strings();
    const std::uint32_t cc = need_u32(r, "imatrix.chunk_count");
    const std::uint32_t cs = need_u32(r, "imatrix.chunk_size");
    if (cc > 0x7fffffffu || cs > 0x7fffffffu) bad(file, "", "imatrix chunk count or size above INT32_MAX");
    m.chunk_count = static_cast<int>(cc);
    m.chunk_size = static_cast<int>(cs);

    std::map<std::string, std::pair<const GgufReader::Tensor*, const GgufReader::Tensor*>> pairs;
    for (const auto& t : r.tensors()) {
        std::string stem;
        if (ends_with(t.name, ".in_sum2", stem)) pairs[stem].first = &t;
        else if (ends_with(t.name, ".counts", stem)) pairs[stem].second = &t;
    }
    if (pairs.empty()) bad(file, "", "imatrix GGUF has no <name>.in_sum2 / <name>.counts tensors");
    for (const auto& [name, pc] : pairs) {
        if (!pc.first) bad(file, name, "imatrix GGUF: counts without in_sum2");
        if (!pc.second) bad(file, name, "imatrix GGUF: in_sum2 without counts");
        const std::vector<float> sums = read_f32(r, *pc.first);
        const std::vector<float> cnt = read_f32(r, *pc.second);
        if (sums.empty() || cnt.empty()) bad(file, name, "imatrix GGUF: empty in_sum2 or counts");
        if (sums.size() % cnt.size() != 0)
            bad(file, name,
                core::cat("imatrix GGUF: ", sums.size(), " sums do not split into ", cnt.size(), " experts"));
        const std::size_t ne0 = sums.size() / cnt.size();
        const auto row = static_cast<std::size_t>(pc.first->ne[0]);
        if (ne0 != row)
            bad(file, name, core::cat("imatrix GGUF: ", cnt.size(), " counts for an in_sum2 of ", sums.size() / row,
                                      " rows of ", row));
        std::vector<float> v(sums.size());
        for (std::size_t j = 0; j < cnt.size(); ++j) {
            if (!std::isfinite(cnt[j]) || cnt[j] < 0 || cnt[j] > 9.2e18f)
                bad(file, name, core::cat("imatrix GGUF: bad count ", cnt[j], " for expert ", j));
            const float count = static_cast<float>(std::lround(cnt[j]));  // loader: int64 lround, then (float)
            for (std::size_t i = 0; i < ne0; ++i) v[j * ne0 + i] = count > 0.0f ? sums[j * ne0 + i] / count : 1.0f;
        }
        check_finite(file, name, v);
        m.by_tensor.emplace(name, std::move(v));
    }
    return m;
}

}  // namespace

Imatrix read_imatrix(const std::filesystem::path& path) {
    const std::string file = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorKind::Io, file, "", "cannot open the imatrix file");
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) {
        in.close();
        return read_gguf_imatrix(path);
    }
    in.clear();
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0) throw Error(ErrorKind::Io, file, "", "cannot size the imatrix file");
    in.seekg(0);
    std::vector<char> buf(static_cast<std::size_t>(size));
    in.read(buf.data(), size);
    if (in.gcount() != size) throw Error(ErrorKind::Io, file, "", "short read of the imatrix file");
    return read_legacy(file, buf);
}

}  // namespace shardforge::formats
