// Strict GGUF reader: the checks of llama.cpp's ggml/src/gguf.cpp, plus sanity of every count against the bytes
// that remain, so a lying header fails fast instead of allocating.
#include "gguf_common.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>

namespace shardforge::formats {

struct GgufReader::Source {
    std::uint64_t size = 0;
    virtual ~Source() = default;
    // Reads exactly n bytes at off (the caller checked the range). Error Io on failure.
    virtual void read_at(std::uint64_t off, void* dst, std::size_t n, const std::string& file) const = 0;
};

namespace {

using T = GgufValueType;
using core::Error;
using core::ErrorKind;

struct FileSource final : GgufReader::Source {
    int fd = -1;
    ~FileSource() override {
        if (fd >= 0) ::close(fd);
    }
    void read_at(std::uint64_t off, void* dst, std::size_t n, const std::string& file) const override {
        auto* p = static_cast<char*>(dst);
        while (n > 0) {
            const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(off));
            if (got < 0) {
                if (errno == EINTR) continue;
                throw Error(ErrorKind::Io, file, "", core::cat("read at ", off, ": ", std::strerror(errno)));
            }
            if (got == 0) throw Error(ErrorKind::Io, file, "", core::cat("unexpected end of file at ", off));
            p += got;
            off += static_cast<std::uint64_t>(got);
            n -= static_cast<std::size_t>(got);
        }
    }
};

struct MemSource final : GgufReader::Source {
    std::vector<std::byte> bytes;
    void read_at(std::uint64_t off, void* dst, std::size_t n, const std::string&) const override {
        if (n) std::memcpy(dst, bytes.data() + off, n);
    }
};

// Sequential, buffered reads of the header; every read is bounds-checked against the file size first.
class Cursor {
public:
    Cursor(const GgufReader::Source& src, const std::string& file) : src_(src), file_(file) {}

    [[noreturn]] void fail(const std::string& tensor, const std::string& why) const {
        throw Error(ErrorKind::BadInput, file_, tensor, why);
    }
    std::uint64_t pos() const { return pos_; }
    std::uint64_t remaining() const { return src_.size - pos_; }

    void take(void* dst, std::uint64_t n, const std::string& tensor, std::string_view what) {
        if (n > remaining())
            fail(tensor, core::cat("file truncated: ", what, " needs ", n, " bytes at offset ", pos_, ", file has ",
                                   src_.size));
        auto* out = static_cast<std::byte*>(dst);
        while (n > 0) {
            if (pos_ < buf_off_ || pos_ >= buf_off_ + buf_.size()) refill();
            const std::uint64_t in_buf = buf_off_ + buf_.size() - pos_;
            const auto k = static_cast<std::size_t>(std::min(in_buf, n));
            std::memcpy(out, buf_.data() + (pos_ - buf_off_), k);
            out += k;
            pos_ += k;
            n -= k;
        }
    }
    template <class V>
    V get(const std::string& tensor, std::string_view what) {
        V v;
        take(&v, sizeof(V), tensor, what);
        return v;
    }
    std::string get_str(const std::string& tensor, std::string_view what, std::uint64_t max_len) {
        const auto len = get<std::uint64_t>(tensor, what);
        if (len > max_len) fail(tensor, core::cat(what, " has length ", len, ", more than the limit ", max_len));
        if (len > remaining())
            fail(tensor, core::cat("file truncated: ", what, " of ", len, " bytes at offset ", pos_, ", file has ",
                                   src_.size));
        std::string s(static_cast<std::size_t>(len), '\0');
        take(s.data(), len, tensor, what);
        return s;
    }

private:
    void refill() {
        constexpr std::uint64_t chunk = 1 << 16;
        buf_off_ = pos_;
        buf_.resize(static_cast<std::size_t>(std::min(chunk, src_.size - pos_)));
        src_.read_at(buf_off_, buf_.data(), buf_.size(), file_);
    }
    const GgufReader::Source& src_;
    const std::string& file_;
    std::uint64_t pos_ = 0;
    std::uint64_t buf_off_ = 0;
    std::vector<std::byte> buf_;
};

GgufValue read_value(Cursor& c, const std::string& key) {
    const std::string ctx = core::cat("value of key '", key, "'");
    const auto type_id = c.get<std::uint32_t>("", ctx);
    if (!detail::valid_value_type(type_id)) c.fail("", core::cat("key '", key, "' has invalid value type ", type_id));
    GgufValue v;
    v.type = static_cast<GgufValueType>(type_id);
    v.elem_type = v.type;
    if (v.type == T::STRING) {
        v.str = c.get_str("", ctx, detail::gguf_max_string_length);
    } else if (v.type == T::ARRAY) {
        const auto elem_id = c.get<std::uint32_t>("", ctx);
        if (!detail::valid_value_type(elem_id))
            c.fail("", core::cat("key '", key, "' is an array of invalid type ", elem_id));
        v.elem_type = static_cast<GgufValueType>(elem_id);
        if (v.elem_type == T::ARRAY) c.fail("", core::cat("key '", key, "' is an array of arrays (not supported)"));
        const auto n = c.get<std::uint64_t>("", ctx);
        if (n > detail::gguf_max_array_elements)
            c.fail("", core::cat("key '", key, "' has ", n, " array elements, more than the limit 2^30"));
        const std::uint64_t min_elem = v.elem_type == T::STRING ? 8 : gguf_type_size(v.elem_type);
        if (n * min_elem > c.remaining())
            c.fail("", core::cat("file truncated: key '", key, "' has ", n, " elements of ", gguf_type_name(v.elem_type),
                                 " but only ", c.remaining(), " bytes remain"));
        if (v.elem_type == T::STRING) {
            v.strs.reserve(static_cast<std::size_t>(n));
            for (std::uint64_t i = 0; i < n; ++i) v.strs.push_back(c.get_str("", ctx, detail::gguf_max_string_length));
        } else {
            v.raw.resize(static_cast<std::size_t>(n * min_elem));
            c.take(v.raw.data(), v.raw.size(), "", ctx);
        }
    } else {
        v.raw.resize(gguf_type_size(v.type));
        c.take(v.raw.data(), v.raw.size(), "", ctx);
    }
    return v;
}

}  // namespace

GgufReader GgufReader::open(const std::filesystem::path& path) {
    const std::string file = path.string();
    auto src = std::make_shared<FileSource>();
    src->fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (src->fd < 0) throw Error(ErrorKind::Io, file, "", core::cat("cannot open: ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(src->fd, &st) != 0) throw Error(ErrorKind::Io, file, "", core::cat("stat: ", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::BadInput, file, "", "not a regular file");
    src->size = static_cast<std::uint64_t>(st.st_size);
    GgufReader r;
    r.file_ = file;
    r.src_ = std::move(src);
    r.load();
    return r;
}

GgufReader GgufReader::parse(std::span<const std::byte> whole_file, std::string name) {
    auto src = std::make_shared<MemSource>();
    src->bytes.assign(whole_file.begin(), whole_file.end());
    src->size = src->bytes.size();
    GgufReader r;
    r.file_ = std::move(name);
    r.src_ = std::move(src);
    r.load();
    return r;
}

namespace {

// Magic and version: GGUF 2 and 3, little-endian.
std::uint32_t read_preamble(Cursor& c) {
    char magic[4];
    c.take(magic, 4, "", "magic");
    if (std::memcmp(magic, detail::gguf_magic, 4) != 0) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", unsigned(std::uint8_t(magic[0])),
                      unsigned(std::uint8_t(magic[1])), unsigned(std::uint8_t(magic[2])), unsigned(std::uint8_t(magic[3])));
        c.fail("", core::cat("not a GGUF file: magic is ", hex, ", expected 47 47 55 46 (\"GGUF\")"));
    }
    const auto version = c.get<std::uint32_t>("", "version");
    if (version == 0) c.fail("", "invalid GGUF version 0");
    if ((version & 0xffffu) == 0) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(version));
        c.fail("", core::cat("version word ", hex, " looks byte-swapped: big-endian GGUF is not supported"));
    }
    if (version == 1) c.fail("", "GGUF version 1 is no longer supported");
    if (version > detail::gguf_version) c.fail("", core::cat("unsupported GGUF version ", version, " (supported: 2, 3)"));
    return version;
}

struct Counts {
    std::uint64_t tensors = 0, kvs = 0;
};

// The tensor and KV counts, refused when they cannot fit in what follows (before anything is allocated).
Counts read_counts(Cursor& c) {
    const auto n_tensors = c.get<std::int64_t>("", "tensor count");
    const auto n_kv = c.get<std::int64_t>("", "KV count");
    if (n_tensors < 0) c.fail("", core::cat("negative tensor count ", n_tensors));
    if (n_kv < 0) c.fail("", core::cat("negative KV count ", n_kv));
    // Smallest encodings: KV = key length 8 + 1 key byte + type 4 + 1 value byte; tensor info = name length 8 +
    // n_dims 4 + type 4 + offset 8.
    constexpr std::uint64_t min_kv = 14, min_info = 24;
    const auto rem = c.remaining();
    const Counts n{static_cast<std::uint64_t>(n_tensors), static_cast<std::uint64_t>(n_kv)};
    if (n.kvs > rem / min_kv || n.tensors > rem / min_info || n.kvs * min_kv + n.tensors * min_info > rem)
        c.fail("", core::cat("header claims ", n_kv, " KVs and ", n_tensors, " tensors, but only ", rem,
                             " bytes follow"));
    return n;
}

std::vector<GgufKV> read_kvs(Cursor& c, std::uint64_t n) {
    std::vector<GgufKV> kvs;
    kvs.reserve(static_cast<std::size_t>(n));
    std::unordered_set<std::string> keys;
    for (std::uint64_t i = 0; i < n; ++i) {
        std::string key = c.get_str("", core::cat("key #", i), detail::gguf_max_string_length);
        if (key.empty()) c.fail("", core::cat("key #", i, " is empty"));
        if (!keys.insert(key).second) c.fail("", core::cat("duplicate key '", key, "'"));
        GgufValue v = read_value(c, key);
        kvs.push_back({std::move(key), std::move(v)});
    }
    return kvs;
}

// general.alignment: UINT32, a power of two; 32 when absent.
std::uint64_t alignment_of(const Cursor& c, const GgufKV* a) {
    if (!a) return gguf_default_alignment;
    if (a->value.type != T::UINT32)
        c.fail("", core::cat("general.alignment must be UINT32, found ", gguf_type_name(a->value.type)));
    const auto al = a->value.as_u64();
    if (al == 0 || (al & (al - 1)) != 0) c.fail("", core::cat("general.alignment ", al, " is not a power of two"));
    return al;
}

// One tensor info: name, dims, type (whole blocks along ne[0]) and its data offset relative to the data section.
GgufReader::Tensor read_tensor_info(Cursor& c, std::uint64_t i, std::unordered_set<std::string>& names,
                                    std::uint64_t& rel_offset) {
    const std::string where = core::cat("name of tensor #", i);
    const auto len = c.get<std::uint64_t>("", where);
    if (len >= detail::ggml_max_name) c.fail("", core::cat("tensor #", i, ": name is ", len, " bytes; GGUF allows at most 63"));
    std::string name(static_cast<std::size_t>(len), '\0');
    c.take(name.data(), len, "", where);
    if (!names.insert(name).second) c.fail(name, "duplicate tensor name");
    const auto n_dims = c.get<std::uint32_t>(name, "n_dims");
    if (n_dims > detail::ggml_max_dims) c.fail(name, core::cat("has ", n_dims, " dimensions; GGUF allows at most 4"));
    GgufReader::Tensor t;
    t.name = std::move(name);
    t.ne.resize(n_dims);
    for (auto& d : t.ne) {
        d = c.get<std::int64_t>(t.name, "ne");
        if (d < 0) c.fail(t.name, core::cat("negative dimension ", d));
    }
    const auto type_id = c.get<std::uint32_t>(t.name, "type");
    const quant::TypeTraits* tr = quant::type_traits(type_id);
    if (!tr) c.fail(t.name, core::cat("invalid or removed ggml type id ", type_id));
    t.type = tr->type;
    const std::int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
    if (ne0 % tr->block_elems != 0)
        c.fail(t.name, core::cat("ne[0] = ", ne0, " is not a multiple of the ", tr->name, " block size ", tr->block_elems));
    try {
        t.nbytes = gguf_tensor_nbytes(t.ne, t.type);
    } catch (const Error& e) {
        c.fail(t.name, e.why());
    }
    rel_offset = c.get<std::uint64_t>(t.name, "offset");
    return t;
}

}  // namespace

// The header in file order: preamble, counts, KVs (and the alignment they set), tensor infos; then the data
// offsets, which must follow info order with each tensor padded to the alignment, inside the file.
void GgufReader::load() {
    Cursor c(*src_, file_);
    file_size_ = src_->size;
    version_ = read_preamble(c);
    const Counts n = read_counts(c);
    kvs_ = read_kvs(c, n.kvs);
    alignment_ = alignment_of(c, find("general.alignment"));

    tensors_.reserve(static_cast<std::size_t>(n.tensors));
    std::unordered_set<std::string> names;
    std::vector<std::uint64_t> rel(static_cast<std::size_t>(n.tensors));
    for (std::uint64_t i = 0; i < n.tensors; ++i) tensors_.push_back(read_tensor_info(c, i, names, rel[i]));

    data_start_ = n.tensors > 0 ? detail::pad_to(c.pos(), alignment_) : c.pos();
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
        auto& t = tensors_[i];
        if (rel[i] != expected)
            c.fail(t.name, core::cat("data offset ", rel[i], ", expected ", expected,
                                     " (tensor data must follow info order, each padded to ", alignment_, ")"));
        t.offset = data_start_ + rel[i];
        if (t.offset < data_start_ || t.nbytes > file_size_ || t.offset > file_size_ - t.nbytes)
            c.fail(t.name, core::cat("data [", t.offset, ", ", t.offset + t.nbytes, ") extends beyond the end of the file (",
                                     file_size_, " bytes)"));
        expected += detail::pad_to(t.nbytes, alignment_);
    }
}

const GgufKV* GgufReader::find(std::string_view key) const noexcept {
    for (const auto& kv : kvs_)
        if (kv.key == key) return &kv;
    return nullptr;
}

const GgufReader::Tensor* GgufReader::find_tensor(std::string_view name) const noexcept {
    for (const auto& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

void GgufReader::read(const Tensor& t, std::uint64_t at, std::span<std::byte> out) const {
    if (at > t.nbytes || out.size() > t.nbytes - at)
        throw Error(ErrorKind::Internal, file_, t.name,
                    core::cat("read of ", out.size(), " bytes at ", at, " is outside the tensor's ", t.nbytes, " bytes"));
    if (!out.empty()) src_->read_at(t.offset + at, out.data(), out.size(), file_);
}

}  // namespace shardforge::formats
