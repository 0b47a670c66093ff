#include "st_header.hpp"

#include <algorithm>
#include <fstream>
#include <limits>

namespace shardforge::lora::detail {

namespace {
using core::Error;
using core::ErrorKind;
}  // namespace

std::vector<AdapterTensor> read_st_header(const std::filesystem::path& file) {
    const std::string fname = file.string();
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(ErrorKind::Io, fname, "", "cannot open for reading");
    std::error_code ec;
    const std::uint64_t file_size = std::filesystem::file_size(file, ec);
    if (ec) throw Error(ErrorKind::Io, fname, "", core::cat("cannot stat: ", ec.message()));
    if (file_size < 8) throw Error(ErrorKind::BadInput, fname, "", core::cat("file has ", file_size, " bytes, need >= 8"));
    unsigned char len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
    if (n > formats::st_max_header_size || n > file_size - 8)
        throw Error(ErrorKind::BadInput, fname, "", core::cat("header length ", n, " does not fit a ", file_size, "-byte file"));
    std::string text(n, '\0');
    in.read(text.data(), static_cast<std::streamsize>(n));
    if (!in) throw Error(ErrorKind::Io, fname, "", "short read of the header");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::BadInput, fname, "", core::cat("header is not JSON: ", e.what()));
    }
    if (!j.is_object()) throw Error(ErrorKind::BadInput, fname, "", "header is not a JSON object");
    const std::uint64_t data_start = 8 + n;
    const std::uint64_t data_size = file_size - data_start;
    std::vector<AdapterTensor> out;
    for (const auto& [name, v] : j.items()) {
        if (name == "__metadata__") continue;
        if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
            !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
            v["data_offsets"].size() != 2)
            throw Error(ErrorKind::BadInput, fname, name, "entry needs dtype, shape and data_offsets [begin, end]");
        AdapterTensor t;
        t.key = name;
        if (!core::parse_dtype(v["dtype"].get<std::string>(), t.dtype))
            throw Error(ErrorKind::BadInput, fname, name, core::cat("unknown dtype '", v["dtype"].get<std::string>(), "'"));
        std::uint64_t numel = 1;
        for (const auto& d : v["shape"]) {
            if (!d.is_number_unsigned()) throw Error(ErrorKind::BadInput, fname, name, "shape entries must be non-negative integers");
            const std::uint64_t x = d.get<std::uint64_t>();
            if (x > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                (x != 0 && numel > std::numeric_limits<std::uint64_t>::max() / x))
                throw Error(ErrorKind::BadInput, fname, name, "shape overflows");
            numel *= x;
            t.shape.push_back(static_cast<std::int64_t>(x));
        }
        const auto& off = v["data_offsets"];
        if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            throw Error(ErrorKind::BadInput, fname, name, "data_offsets must be non-negative integers");
        const std::uint64_t b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
        if (b > e || e > data_size)
            throw Error(ErrorKind::BadInput, fname, name,
                        core::cat("data_offsets [", b, ", ", e, "] outside the ", data_size, "-byte data section"));
        const std::uint64_t esz = core::dtype_size(t.dtype);
        if (numel > std::numeric_limits<std::uint64_t>::max() / esz || numel * esz != e - b)
            throw Error(ErrorKind::BadInput, fname, name,
                        core::cat("shape ", core::shape_str(t.shape), " of ", v["dtype"].get<std::string>(), " needs ",
                                  numel * esz, " bytes, data_offsets give ", e - b));
        t.offset = data_start + b;
        t.nbytes = e - b;
        out.push_back(std::move(t));
    }
    std::sort(out.begin(), out.end(), [](const AdapterTensor& x, const AdapterTensor& y) {
        return x.offset != y.offset ? x.offset < y.offset : x.key < y.key;
    });
    return out;
}

}  // namespace shardforge::lora::detail
