// Element type tables (safetensors spelling) and shape helpers.
#include <shardforge/core.hpp>

namespace shardforge::core {
namespace {
struct DTypeRow {
    DType type;
    std::string_view name;
    std::size_t size;
    bool is_float;
};
constexpr DTypeRow dtype_rows[] = {
    {DType::F64, "F64", 8, true},     {DType::F32, "F32", 4, true},         {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},   {DType::I64, "I64", 8, false},        {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false},    {DType::I8, "I8", 1, false},          {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},  {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::F8_E5M2, "F8_E5M2", 1, true},
};
static_assert(sizeof(dtype_rows) / sizeof(dtype_rows[0]) == 12, "one row per DType");
const DTypeRow& row(DType t) noexcept { return dtype_rows[static_cast<int>(t)]; }
}  // namespace

std::size_t dtype_size(DType t) noexcept { return row(t).size; }
std::string_view dtype_name(DType t) noexcept { return row(t).name; }
bool is_float(DType t) noexcept { return row(t).is_float; }

bool parse_dtype(std::string_view s, DType& out) noexcept {
    for (const auto& r : dtype_rows) {
        if (r.name == s) {
            out = r.type;
            return true;
        }
    }
    return false;
}

std::int64_t numel(const Shape& s) noexcept {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

std::string shape_str(const Shape& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

}  // namespace shardforge::core
