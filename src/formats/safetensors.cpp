// safetensors reader: strict header validation (parse_safetensors_header), the pread-based SafetensorsReader and
// SafetensorsSet (single file, explicit files, or a model.safetensors.index.json shard set).
// Byte layout: u64 LE header length N | N bytes JSON (space padded) | data section; see formats.hpp.
#include <shardforge/formats.hpp>

#include "safetensors_json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

namespace shardforge::formats {
namespace {

namespace fs = std::filesystem;
using core::Error;
using core::ErrorKind;
using nlohmann::json;

// Element types the safetensors format defines but shardforge does not handle: Unsupported, not BadInput.
bool is_known_unsupported_dtype(std::string_view s) {
    static constexpr std::string_view names[] = {"U16",     "U32",     "U64",     "C64",         "F4",
                                                 "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"};
    return std::find(std::begin(names), std::end(names), s) != std::end(names);
}

std::string json_kind(const json &v) {
    if (v.is_number_float()) return "a non-integer number";
    if (v.is_number_integer() && !v.is_number_unsigned()) return "a negative number";
    return std::string(v.type_name());
}

// a * b, false on u64 overflow
bool mul_u64(std::uint64_t a, std::uint64_t b, std::uint64_t &out) {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
    out = a * b;
    return true;
}

StTensor parse_tensor_entry(const std::string &name, const json &v, std::uint64_t data_start, std::uint64_t data_size,
                            const std::string &file) {
    auto bad = [&](const std::string &why) { return Error(ErrorKind::BadInput, file, name, why); };
    if (!v.is_object()) throw bad(core::cat("header entry is ", v.type_name(), ", expected an object"));
    for (const auto &[k, unused] : v.items()) {
        (void)unused;
        if (k != "dtype" && k != "shape" && k != "data_offsets")
            throw bad(core::cat("unknown field '", k, "' (expected dtype, shape, data_offsets)"));
    }
    for (const char *k : {"dtype", "shape", "data_offsets"})
        if (!v.contains(k)) throw bad(core::cat("missing field '", k, "'"));

    StTensor t;
    t.name = name;
    const json &jd = v["dtype"];
    if (!jd.is_string()) throw bad(core::cat("dtype is ", jd.type_name(), ", expected a string"));
    const auto &ds = jd.get_ref<const std::string &>();
    if (!core::parse_dtype(ds, t.dtype)) {
        if (is_known_unsupported_dtype(ds))
            throw Error(ErrorKind::Unsupported, file, name, core::cat("dtype ", ds, " is not supported"));
        throw bad(core::cat("unknown dtype '", ds, "'"));
    }

    const json &js = v["shape"];
    if (!js.is_array()) throw bad(core::cat("shape is ", js.type_name(), ", expected an array"));
    std::uint64_t n = 1;
    for (const json &d : js) {
        if (!d.is_number_unsigned())
            throw bad(core::cat("shape has ", json_kind(d), ", expected non-negative integers"));
        const std::uint64_t u = d.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            throw bad(core::cat("shape dimension ", u, " is too large"));
        t.shape.push_back(static_cast<std::int64_t>(u));
        if (!mul_u64(n, u, n)) throw bad(core::cat("shape ", core::shape_str(t.shape), "... overflows 64 bits"));
    }

    const json &jo = v["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
        throw bad(core::cat("data_offsets is ", jo.dump(), ", expected [begin, end] of non-negative integers"));
    const std::uint64_t b = jo[0].get<std::uint64_t>();
    const std::uint64_t e = jo[1].get<std::uint64_t>();
    if (b > e) throw bad(core::cat("data_offsets [", b, ", ", e, "] has begin > end"));
    if (e > data_size)
        throw bad(core::cat("data_offsets [", b, ", ", e, "] end beyond the data section (", data_size,
                            " bytes, file offset ", data_start, ")"));
    std::uint64_t want = 0;
    if (!mul_u64(n, core::dtype_size(t.dtype), want))
        throw bad(core::cat(ds, " ", core::shape_str(t.shape), " byte size overflows 64 bits"));
    if (e - b != want)
        throw bad(core::cat("data_offsets [", b, ", ", e, "] span ", e - b, " bytes, but ", ds, " ",
                            core::shape_str(t.shape), " needs ", want));
    t.offset = data_start + b;
    t.nbytes = e - b;
    return t;
}

// pread until `n` bytes or EOF; EINTR retried. Returns bytes read, -1 on error (errno set).
long long pread_full(int fd, void *buf, std::size_t n, std::uint64_t off) {
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r = ::pread(fd, static_cast<char *>(buf) + done, n - done, static_cast<off_t>(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        done += static_cast<std::size_t>(r);
    }
    return static_cast<long long>(done);
}

std::string read_small_file(const fs::path &p) { return core::read_input_file(p.string()); }

// Index shard paths must stay inside the model directory.
void check_shard_path(const std::string &shard, const std::string &index_file, const std::string &tensor) {
    const fs::path sp(shard);
    if (shard.empty()) throw Error(ErrorKind::BadInput, index_file, tensor, "weight_map gives an empty file name");
    if (sp.is_absolute() || shard.front() == '/' || shard.front() == '\\')
        throw Error(ErrorKind::BadInput, index_file, tensor,
                    core::cat("weight_map file '", shard, "' is an absolute path"));
    for (const auto &part : sp)
        if (part == "..")
            throw Error(ErrorKind::BadInput, index_file, tensor,
                        core::cat("weight_map file '", shard, "' leaves the model directory (\"..\")"));
    if (shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
        throw Error(ErrorKind::BadInput, index_file, tensor,
                    core::cat("weight_map file '", shard, "' has a backslash or NUL"));
}

} // namespace

// ---------------------------------------------------------------- header

StHeader parse_safetensors_header(std::string_view header_json, std::uint64_t data_start, std::uint64_t file_size,
                                  const std::string &file) {
    if (data_start < 8 || data_start > file_size || data_start - 8 != header_json.size())
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("inconsistent header: ", header_json.size(), " JSON bytes, data at ", data_start,
                              ", file has ", file_size, " bytes"));
    json j;
    try {
        j = detail::parse_json_no_duplicates(header_json);
    } catch (const detail::DuplicateKey &d) {
        if (d.path.size() == 1 && d.path[0] == "__metadata__")
            throw Error(ErrorKind::BadInput, file, "", "__metadata__ appears twice in the header");
        if (d.path.size() == 1)
            throw Error(ErrorKind::BadInput, file, d.path[0], "duplicate tensor name in the header");
        throw Error(ErrorKind::BadInput, file, d.path.front(), core::cat("duplicate key '", d.path.back(), "'"));
    } catch (const detail::InvalidJson &e) {
        throw Error(ErrorKind::BadInput, file, "", core::cat("header is not valid JSON: ", e.why));
    }
    if (!j.is_object())
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("header is a JSON ", j.type_name(), ", expected an object"));

    StHeader h;
    h.data_start = data_start;
    const std::uint64_t data_size = file_size - data_start;
    for (const auto &[key, v] : j.items()) {
        if (key == "__metadata__") {
            if (!v.is_object())
                throw Error(ErrorKind::BadInput, file, "",
                            core::cat("__metadata__ is ", v.type_name(), ", expected an object of strings"));
            for (const auto &[mk, mv] : v.items()) {
                if (!mv.is_string())
                    throw Error(
                        ErrorKind::BadInput, file, "",
                        core::cat("__metadata__ value of '", mk, "' is ", mv.type_name(), ", expected a string"));
                h.metadata.emplace(mk, mv.get<std::string>());
            }
            continue;
        }
        h.tensors.push_back(parse_tensor_entry(key, v, data_start, data_size, file));
    }

    // Sorted by begin, the ranges must tile [0, data_size) exactly.
    std::sort(h.tensors.begin(), h.tensors.end(), [](const StTensor &a, const StTensor &b) {
        if (a.offset != b.offset) return a.offset < b.offset;
        if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;
        return a.name < b.name;
    });
    std::uint64_t pos = data_start;
    const StTensor *prev = nullptr;
    for (const StTensor &t : h.tensors) {
        if (t.offset < pos)
            throw Error(ErrorKind::BadInput, file, t.name,
                        core::cat("data range [", t.offset - data_start, ", ", t.offset - data_start + t.nbytes,
                                  ") overlaps tensor '", prev->name, "' (ends at ", pos - data_start, ")"));
        if (t.offset > pos)
            throw Error(ErrorKind::BadInput, file, t.name,
                        core::cat("hole of ", t.offset - pos, " unused bytes before its data (data_offsets begin ",
                                  t.offset - data_start, ", previous data ends at ", pos - data_start, ")"));
        pos = t.offset + t.nbytes;
        prev = &t;
    }
    if (pos != file_size)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("data section not fully covered: tensors end at ", pos - data_start,
                              ", data section has ", data_size, " bytes (", file_size - pos, " trailing bytes)"));
    return h;
}

// ---------------------------------------------------------------- reader

SafetensorsReader::SafetensorsReader(SafetensorsReader &&o) noexcept
    : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)), file_size_(o.file_size_), header_(std::move(o.header_)),
      by_name_(std::move(o.by_name_)) {}

SafetensorsReader &SafetensorsReader::operator=(SafetensorsReader &&o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        path_ = std::move(o.path_);
        file_size_ = o.file_size_;
        header_ = std::move(o.header_);
        by_name_ = std::move(o.by_name_);
    }
    return *this;
}

SafetensorsReader::~SafetensorsReader() {
    if (fd_ >= 0) ::close(fd_);
}

SafetensorsReader SafetensorsReader::open(const std::filesystem::path &p) {
    SafetensorsReader r;
    r.path_ = p;
    const std::string file = p.string();
    r.fd_ = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (r.fd_ < 0) {
        const int err = errno;
        throw Error(err == ENOENT || err == ENOTDIR ? ErrorKind::BadInput : ErrorKind::Io, file, "",
                    core::cat("cannot open: ", std::strerror(err)));
    }
    struct stat st {};
    if (::fstat(r.fd_, &st) != 0) throw Error(ErrorKind::Io, file, "", core::cat("fstat: ", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::BadInput, file, "", "not a regular file");
    r.file_size_ = static_cast<std::uint64_t>(st.st_size);
    if (r.file_size_ < 8)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("file has ", r.file_size_, " bytes, too short for the 8-byte header length"));

    unsigned char len[8];
    if (const long long got = pread_full(r.fd_, len, 8, 0); got != 8)
        throw Error(
            ErrorKind::Io, file, "",
            core::cat("cannot read the header length: ", got < 0 ? std::strerror(errno) : "unexpected end of file"));
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    if (n > st_max_header_size)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("header length ", n, " exceeds the limit of ", st_max_header_size, " bytes"));
    if (8 + n > r.file_size_)
        throw Error(ErrorKind::BadInput, file, "",
                    core::cat("header length ", n, " runs past the end of the file (", r.file_size_, " bytes)"));
    std::string hdr(static_cast<std::size_t>(n), '\0');
    const long long got = pread_full(r.fd_, hdr.data(), hdr.size(), 8);
    if (got != static_cast<long long>(n))
        throw Error(ErrorKind::Io, file, "",
                    core::cat("short read of the header: ", got < 0 ? std::strerror(errno) : "unexpected end of file"));
    r.header_ = parse_safetensors_header(hdr, 8 + n, r.file_size_, file);
    for (std::size_t i = 0; i < r.header_.tensors.size(); ++i) r.by_name_.emplace(r.header_.tensors[i].name, i);
    return r;
}

const StTensor *SafetensorsReader::find(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

const StTensor &SafetensorsReader::at(std::string_view name) const {
    if (const StTensor *t = find(name)) return *t;
    throw Error(ErrorKind::BadInput, path_.string(), std::string(name), "no such tensor in this file");
}

void SafetensorsReader::read(const StTensor &t, std::uint64_t at, std::span<std::byte> out) const {
    SF_CHECK(
        at <= t.nbytes && out.size() <= t.nbytes - at,
        core::cat("read of ", out.size(), " bytes at ", at, " outside tensor '", t.name, "' of ", t.nbytes, " bytes"));
    const long long got = pread_full(fd_, out.data(), out.size(), t.offset + at);
    if (got < 0) throw Error(ErrorKind::Io, path_.string(), t.name, core::cat("read failed: ", std::strerror(errno)));
    if (static_cast<std::size_t>(got) != out.size())
        throw Error(ErrorKind::Io, path_.string(), t.name,
                    core::cat("short read: got ", got, " of ", out.size(), " bytes at file offset ", t.offset + at,
                              " (file truncated?)"));
}

// ---------------------------------------------------------------- set

void SafetensorsSet::index_names() {
    by_name_.clear();
    for (std::size_t f = 0; f < files_.size(); ++f) {
        const auto &ts = files_[f].header().tensors;
        for (std::size_t i = 0; i < ts.size(); ++i) {
            const auto [it, fresh] = by_name_.emplace(ts[i].name, std::pair{static_cast<std::uint32_t>(f), i});
            if (!fresh)
                throw Error(ErrorKind::BadInput, files_[f].path().string(), ts[i].name,
                            core::cat("tensor also present in ", files_[it->second.first].path().string()));
        }
    }
}

SafetensorsSet SafetensorsSet::open_files(std::vector<std::filesystem::path> files) {
    SafetensorsSet s;
    s.files_.reserve(files.size());
    for (const auto &p : files) s.files_.push_back(SafetensorsReader::open(p));
    s.index_names();
    return s;
}

SafetensorsSet SafetensorsSet::open_dir(const std::filesystem::path &dir) {
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    std::error_code ec;
    if (fs::is_regular_file(single, ec)) return open_files({single});
    if (!fs::is_regular_file(index, ec))
        throw Error(ErrorKind::BadInput, dir.string(), "",
                    "no model.safetensors or model.safetensors.index.json in this directory");

    const std::string ifile = index.string();
    json j;
    try {
        j = detail::parse_json_no_duplicates(read_small_file(index));
    } catch (const detail::DuplicateKey &d) {
        const std::string tensor = d.path.size() >= 2 && d.path[0] == "weight_map" ? d.path[1] : "";
        throw Error(ErrorKind::BadInput, ifile, tensor, core::cat("duplicate key '", d.path.back(), "'"));
    } catch (const detail::InvalidJson &e) {
        throw Error(ErrorKind::BadInput, ifile, "", core::cat("not valid JSON: ", e.why));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(ErrorKind::BadInput, ifile, "", "expected an object with a \"weight_map\" object");

    std::map<std::string, std::string> map; // tensor -> shard
    std::set<std::string> shards;
    for (const auto &[tensor, v] : j["weight_map"].items()) {
        if (!v.is_string())
            throw Error(ErrorKind::BadInput, ifile, tensor,
                        core::cat("weight_map value is ", v.type_name(), ", expected a file name"));
        const auto &shard = v.get_ref<const std::string &>();
        check_shard_path(shard, ifile, tensor);
        map.emplace(tensor, shard);
        shards.insert(shard);
    }
    if (shards.empty()) throw Error(ErrorKind::BadInput, ifile, "", "weight_map is empty");

    SafetensorsSet s;
    std::map<std::string, std::uint32_t> shard_index;
    for (const auto &shard : shards) {
        const fs::path p = dir / shard;
        if (!fs::exists(p, ec)) {
            const auto it = std::find_if(map.begin(), map.end(), [&](const auto &kv) { return kv.second == shard; });
            throw Error(ErrorKind::BadInput, ifile, it->first,
                        core::cat("mapped to shard '", shard, "', which does not exist in ", dir.string()));
        }
        shard_index.emplace(shard, static_cast<std::uint32_t>(s.files_.size()));
        s.files_.push_back(SafetensorsReader::open(p));
    }
    for (const auto &[tensor, shard] : map) {
        const auto &r = s.files_[shard_index.at(shard)];
        if (!r.find(tensor))
            throw Error(ErrorKind::BadInput, r.path().string(), tensor,
                        core::cat("model.safetensors.index.json maps this tensor to this shard, which lacks it"));
    }
    s.index_names();
    for (const auto &[name, loc] : s.by_name_)
        if (!map.count(name))
            core::log::warn(core::cat(s.files_[loc.first].path().string(), ": tensor '", name,
                                      "' is not listed in model.safetensors.index.json; kept"));
    return s;
}

std::optional<SafetensorsSet::Ref> SafetensorsSet::find(std::string_view name) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end()) return std::nullopt;
    return Ref{it->second.first, &files_[it->second.first].header().tensors[it->second.second]};
}

std::vector<std::string> SafetensorsSet::names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto &f : files_)
        for (const auto &t : f.header().tensors) out.push_back(t.name);
    return out;
}

} // namespace shardforge::formats
