// GgufValue: factories and checked accessors; the GGUF value-type table.
#include "gguf_common.hpp"

#include <limits>

namespace shardforge::formats {
namespace {

using T = GgufValueType;

struct TypeRow {
    GgufValueType type;
    std::string_view name;
    std::size_t size;
};
// One row per gguf_type, in id order (gguf.cpp's GGUF_TYPE_NAME / GGUF_TYPE_SIZE).
constexpr TypeRow type_rows[] = {
    {T::UINT8, "UINT8", 1},   {T::INT8, "INT8", 1},       {T::UINT16, "UINT16", 2}, {T::INT16, "INT16", 2},
    {T::UINT32, "UINT32", 4}, {T::INT32, "INT32", 4},     {T::FLOAT32, "FLOAT32", 4}, {T::BOOL, "BOOL", 1},
    {T::STRING, "STRING", 0}, {T::ARRAY, "ARRAY", 0},     {T::UINT64, "UINT64", 8}, {T::INT64, "INT64", 8},
    {T::FLOAT64, "FLOAT64", 8},
};
static_assert(sizeof(type_rows) / sizeof(type_rows[0]) == gguf_value_type_count, "one row per GgufValueType");

[[noreturn]] void mismatch(const GgufValue& v, std::string_view wanted) {
    std::string found(gguf_type_name(v.type));
    if (v.is_array()) found = core::cat("ARRAY of ", gguf_type_name(v.elem_type));
    throw core::Error(core::ErrorKind::BadInput, "", "",
                      core::cat("GGUF value: expected ", wanted, ", found ", found));
}

template <class V>
GgufValue scalar(GgufValueType t, V v) {
    GgufValue g;
    g.type = t;
    g.elem_type = t;
    g.raw.resize(sizeof(V));
    std::memcpy(g.raw.data(), &v, sizeof(V));
    return g;
}

template <class V>
GgufValue array(GgufValueType elem, const std::vector<V>& v) {
    GgufValue g;
    g.type = T::ARRAY;
    g.elem_type = elem;
    g.raw.resize(v.size() * sizeof(V));
    if (!v.empty()) std::memcpy(g.raw.data(), v.data(), g.raw.size());
    return g;
}

bool is_int(GgufValueType t) {
    switch (t) {
        case T::UINT8: case T::INT8: case T::UINT16: case T::INT16: case T::UINT32: case T::INT32:
        case T::UINT64: case T::INT64: return true;
        default: return false;
    }
}
bool is_signed(GgufValueType t) { return t == T::INT8 || t == T::INT16 || t == T::INT32 || t == T::INT64; }

template <class V>
V load(const std::byte* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

// Element i of the packed raw bytes, widened. Caller checked the type is an integer type.
// Signed values come back sign-extended in an int64 reinterpreted as u64; `neg` tells negatives apart.
struct Wide { std::uint64_t u; std::int64_t i; bool neg; bool big; };
Wide widen_int(GgufValueType t, const std::byte* p) {
    Wide w{0, 0, false, false};
    switch (t) {
        case T::UINT8: w.u = load<std::uint8_t>(p); break;
        case T::UINT16: w.u = load<std::uint16_t>(p); break;
        case T::UINT32: w.u = load<std::uint32_t>(p); break;
        case T::UINT64: w.u = load<std::uint64_t>(p); break;
        case T::INT8: w.i = load<std::int8_t>(p); break;
        case T::INT16: w.i = load<std::int16_t>(p); break;
        case T::INT32: w.i = load<std::int32_t>(p); break;
        case T::INT64: w.i = load<std::int64_t>(p); break;
        default: break;
    }
    if (is_signed(t)) {
        w.neg = w.i < 0;
        w.u = static_cast<std::uint64_t>(w.i);
    } else {
        w.big = w.u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        w.i = static_cast<std::int64_t>(w.u);
    }
    return w;
}

double widen_num(GgufValueType t, const std::byte* p) {
    if (t == T::FLOAT32) return load<float>(p);
    if (t == T::FLOAT64) return load<double>(p);
    const Wide w = widen_int(t, p);
    return is_signed(t) ? static_cast<double>(w.i) : static_cast<double>(w.u);
}

}  // namespace

std::string_view gguf_type_name(GgufValueType t) noexcept {
    const auto id = static_cast<std::uint32_t>(t);
    return id < gguf_value_type_count ? type_rows[id].name : std::string_view("UNKNOWN");
}
std::size_t gguf_type_size(GgufValueType t) noexcept {
    const auto id = static_cast<std::uint32_t>(t);
    return id < gguf_value_type_count ? type_rows[id].size : 0;
}

GgufValue GgufValue::u8(std::uint8_t v) { return scalar(T::UINT8, v); }
GgufValue GgufValue::i8(std::int8_t v) { return scalar(T::INT8, v); }
GgufValue GgufValue::u16(std::uint16_t v) { return scalar(T::UINT16, v); }
GgufValue GgufValue::i16(std::int16_t v) { return scalar(T::INT16, v); }
GgufValue GgufValue::u32(std::uint32_t v) { return scalar(T::UINT32, v); }
GgufValue GgufValue::i32(std::int32_t v) { return scalar(T::INT32, v); }
GgufValue GgufValue::f32(float v) { return scalar(T::FLOAT32, v); }
GgufValue GgufValue::boolean(bool v) { return scalar(T::BOOL, static_cast<std::uint8_t>(v ? 1 : 0)); }
GgufValue GgufValue::u64(std::uint64_t v) { return scalar(T::UINT64, v); }
GgufValue GgufValue::i64(std::int64_t v) { return scalar(T::INT64, v); }
GgufValue GgufValue::f64(double v) { return scalar(T::FLOAT64, v); }
GgufValue GgufValue::string(std::string v) {
    GgufValue g;
    g.type = T::STRING;
    g.elem_type = T::STRING;
    g.str = std::move(v);
    return g;
}
GgufValue GgufValue::arr_str(std::vector<std::string> v) {
    GgufValue g;
    g.type = T::ARRAY;
    g.elem_type = T::STRING;
    g.strs = std::move(v);
    return g;
}
GgufValue GgufValue::arr_u8(const std::vector<std::uint8_t>& v) { return array(T::UINT8, v); }
GgufValue GgufValue::arr_i8(const std::vector<std::int8_t>& v) { return array(T::INT8, v); }
GgufValue GgufValue::arr_u16(const std::vector<std::uint16_t>& v) { return array(T::UINT16, v); }
GgufValue GgufValue::arr_i16(const std::vector<std::int16_t>& v) { return array(T::INT16, v); }
GgufValue GgufValue::arr_u32(const std::vector<std::uint32_t>& v) { return array(T::UINT32, v); }
GgufValue GgufValue::arr_i32(const std::vector<std::int32_t>& v) { return array(T::INT32, v); }
GgufValue GgufValue::arr_f32(const std::vector<float>& v) { return array(T::FLOAT32, v); }
GgufValue GgufValue::arr_u64(const std::vector<std::uint64_t>& v) { return array(T::UINT64, v); }
GgufValue GgufValue::arr_i64(const std::vector<std::int64_t>& v) { return array(T::INT64, v); }
GgufValue GgufValue::arr_f64(const std::vector<double>& v) { return array(T::FLOAT64, v); }
GgufValue GgufValue::arr_bool(const std::vector<bool>& v) {
    std::vector<std::uint8_t> b(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) b[i] = v[i] ? 1 : 0;
    return array(T::BOOL, b);
}

std::uint64_t GgufValue::as_u64() const {
    if (is_array() || !is_int(type) || raw.size() != gguf_type_size(type)) mismatch(*this, "an integer");
    const Wide w = widen_int(type, raw.data());
    if (w.neg) mismatch(*this, "a non-negative integer");
    return w.u;
}
std::int64_t GgufValue::as_i64() const {
    if (is_array() || !is_int(type) || raw.size() != gguf_type_size(type)) mismatch(*this, "an integer");
    const Wide w = widen_int(type, raw.data());
    if (w.big) mismatch(*this, "an integer <= INT64_MAX");
    return w.i;
}
double GgufValue::as_f64() const {
    const bool num = is_int(type) || type == T::FLOAT32 || type == T::FLOAT64;
    if (is_array() || !num || raw.size() != gguf_type_size(type)) mismatch(*this, "a number");
    return widen_num(type, raw.data());
}
bool GgufValue::as_bool() const {
    if (type != T::BOOL || raw.size() != 1) mismatch(*this, "BOOL");
    return raw[0] != std::byte{0};
}
const std::string& GgufValue::as_string() const {
    if (type != T::STRING) mismatch(*this, "STRING");
    return str;
}
std::size_t GgufValue::array_size() const {
    if (!is_array()) mismatch(*this, "an ARRAY");
    if (elem_type == T::STRING) return strs.size();
    const std::size_t es = gguf_type_size(elem_type);
    return es ? raw.size() / es : 0;
}
const std::vector<std::string>& GgufValue::array_strings() const {
    if (!is_array() || elem_type != T::STRING) mismatch(*this, "ARRAY of STRING");
    return strs;
}
std::uint64_t GgufValue::array_u64(std::size_t i) const {
    if (!is_array() || !is_int(elem_type)) mismatch(*this, "an ARRAY of integers");
    SF_CHECK(i < array_size(), "GGUF array index out of range");
    const Wide w = widen_int(elem_type, raw.data() + i * gguf_type_size(elem_type));
    if (w.neg) mismatch(*this, "non-negative array elements");
    return w.u;
}
std::int64_t GgufValue::array_i64(std::size_t i) const {
    if (!is_array() || !is_int(elem_type)) mismatch(*this, "an ARRAY of integers");
    SF_CHECK(i < array_size(), "GGUF array index out of range");
    const Wide w = widen_int(elem_type, raw.data() + i * gguf_type_size(elem_type));
    if (w.big) mismatch(*this, "array elements <= INT64_MAX");
    return w.i;
}
double GgufValue::array_f64(std::size_t i) const {
    const bool num = is_int(elem_type) || elem_type == T::FLOAT32 || elem_type == T::FLOAT64;
    if (!is_array() || !num) mismatch(*this, "an ARRAY of numbers");
    SF_CHECK(i < array_size(), "GGUF array index out of range");
    return widen_num(elem_type, raw.data() + i * gguf_type_size(elem_type));
}
std::size_t GgufValue::count() const noexcept {
    if (!is_array()) return 1;
    if (elem_type == T::STRING) return strs.size();
    const std::size_t es = gguf_type_size(elem_type);
    return es ? raw.size() / es : 0;
}

}  // namespace shardforge::formats
