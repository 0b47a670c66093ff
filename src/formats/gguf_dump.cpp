// `shardforge inspect`: a text dump in the shape of llama.cpp's gguf_dump.py default output, so the two can be
// compared line by line. Values are printed the way Python's repr() prints them.
#include "gguf_common.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace shardforge::formats {
namespace {

using T = GgufValueType;

// repr() of a Python float: shortest round-trip digits; scientific when the exponent is < -4 or >= 16.
std::string py_float(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
    const std::string s(buf, res.ptr);  // "-9.999999747378752e-06", "1e+02"
    const auto epos = s.find('e');
    const bool neg = s[0] == '-';
    std::string digits;
    for (std::size_t i = neg ? 1 : 0; i < epos; ++i)
        if (s[i] != '.') digits += s[i];
    const int exp = std::atoi(s.c_str() + epos + 1);
    std::string out = neg ? "-" : "";
    if (exp < -4 || exp >= 16) {
        out += digits[0];
        if (digits.size() > 1) {
            out += '.';  // two appends: GCC 12 warns (-Wrestrict) on "." + std::string at -O2
            out.append(digits, 1, std::string::npos);
        }
        char e[16];
        std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return out + e;
    }
    if (exp < 0) return out + "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    const auto n_int = static_cast<std::size_t>(exp) + 1;
    if (digits.size() <= n_int) return out + digits + std::string(n_int - digits.size(), '0') + ".0";
    return out + digits.substr(0, n_int) + "." + digits.substr(n_int);
}

// repr() of a Python str (ASCII control characters escaped; other UTF-8 passed through).
std::string py_str(std::string_view s) {
    const bool dq = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
    const char q = dq ? '"' : '\'';
    std::string out(1, q);
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '\\') out += "\\\\";
        else if (ch == q) out += std::string("\\") + q;
        else if (ch == '\n') out += "\\n";
        else if (ch == '\r') out += "\\r";
        else if (ch == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += ch;
        }
    }
    return out + q;
}

// First n code points of UTF-8 text, and the code-point count.
std::size_t utf8_len(std::string_view s) {
    std::size_t n = 0;
    for (const char ch : s) n += (static_cast<unsigned char>(ch) & 0xc0) != 0x80;
    return n;
}
std::string utf8_prefix(std::string_view s, std::size_t n) {
    std::size_t cps = 0, i = 0;
    for (; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
            if (cps == n) break;
            ++cps;
        }
    }
    return std::string(s.substr(0, i));
}

std::string element(const GgufValue& v, GgufValueType t, std::size_t i) {
    if (t == T::STRING) return py_str(v.strs[i]);
    const std::byte* p = v.raw.data() + i * gguf_type_size(t);
    switch (t) {
        case T::BOOL: return *p != std::byte{0} ? "True" : "False";
        case T::FLOAT32: {
            float f;
            std::memcpy(&f, p, 4);
            return py_float(f);
        }
        case T::FLOAT64: {
            double d;
            std::memcpy(&d, p, 8);
            return py_float(d);
        }
        case T::INT8: case T::INT16: case T::INT32: case T::INT64: return std::to_string(v.is_array() ? v.array_i64(i) : v.as_i64());
        default: return std::to_string(v.is_array() ? v.array_u64(i) : v.as_u64());
    }
}

std::string value_text(const GgufValue& v) {
    if (v.type == T::STRING) {
        std::string s = v.str;
        if (utf8_len(s) > 60) s = utf8_prefix(s, 57) + "...";
        return py_str(s);
    }
    if (!v.is_array()) return element(v, v.type, 0);
    const std::size_t n = v.count();
    std::string out = "[";
    for (std::size_t i = 0; i < n && i < 6; ++i) out += (i ? ", " : "") + element(v, v.elem_type, i);
    out += n > 6 ? ", ...]" : "]";
    return out;
}

std::string fmt_right(std::uint64_t x, int width) {
    std::string s = std::to_string(x);
    if (static_cast<int>(s.size()) < width) s.insert(0, static_cast<std::size_t>(width) - s.size(), ' ');
    return s;
}
std::string fmt_left(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

// Field names are escaped like gguf_dump.py's sanitize_name when they hold control characters.
std::string name_text(std::string_view name) {
    for (const char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
            const std::string r = py_str(name);
            return r.substr(1, r.size() - 2);
        }
    }
    return std::string(name);
}

void kv_line(std::string& out, std::size_t n, std::string type, std::uint64_t count, std::string_view key,
             const std::string& value) {
    out += core::cat("  ", fmt_right(n, 5), ": ", fmt_left(std::move(type), 10), " | ", fmt_right(count, 8), " | ",
                     name_text(key), " = ", value, "\n");
}

}  // namespace

std::string gguf_dump(const GgufReader& r) {
    std::string out = "* File is LITTLE endian, script is running on a LITTLE endian host.\n";
    out += core::cat("* Dumping ", r.kvs().size() + 3, " key/value pair(s)\n");
    kv_line(out, 1, "UINT32", 1, "GGUF.version", std::to_string(r.version()));
    kv_line(out, 2, "UINT64", 1, "GGUF.tensor_count", std::to_string(r.tensors().size()));
    kv_line(out, 3, "UINT64", 1, "GGUF.kv_count", std::to_string(r.kvs().size()));
    std::size_t n = 4;
    for (const auto& kv : r.kvs()) {
        const auto& v = kv.value;
        std::string type = v.is_array() ? core::cat("[", gguf_type_name(v.elem_type), "]")
                                        : std::string(gguf_type_name(v.type));
        kv_line(out, n++, std::move(type), v.count(), kv.key, value_text(v));
    }
    out += core::cat("* Dumping ", r.tensors().size(), " tensor(s)\n");
    n = 1;
    for (const auto& t : r.tensors()) {
        std::uint64_t elems = 1;
        std::string dims;
        for (std::size_t d = 0; d < 4; ++d) {
            const std::int64_t x = d < t.ne.size() ? t.ne[d] : 1;
            elems *= static_cast<std::uint64_t>(x);
            dims += (d ? ", " : "") + fmt_right(static_cast<std::uint64_t>(x), 5);
        }
        out += core::cat("  ", fmt_right(n++, 5), ": ", fmt_right(elems, 10), " | ", dims, " | ",
                         fmt_left(quant::type_upper_name(t.type), 7), " | ", name_text(t.name), "\n");
    }
    return out;
}

}  // namespace shardforge::formats
