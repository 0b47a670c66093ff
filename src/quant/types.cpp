// ggml type table (llama.cpp's ggml/include/ggml.h): ids, names, block geometry.
#include <shardforge/quant.hpp>

#include <algorithm>
#include <cctype>

namespace shardforge::quant {
namespace {
constexpr TypeTraits type_rows[] = {
    {GgmlType::F32, "f32", 1, 4},          {GgmlType::F16, "f16", 1, 2},
    {GgmlType::Q4_0, "q4_0", 32, 18},      {GgmlType::Q4_1, "q4_1", 32, 20},
    {GgmlType::Q5_0, "q5_0", 32, 22},      {GgmlType::Q5_1, "q5_1", 32, 24},
    {GgmlType::Q8_0, "q8_0", 32, 34},      {GgmlType::Q8_1, "q8_1", 32, 36},
    {GgmlType::Q2_K, "q2_K", 256, 84},     {GgmlType::Q3_K, "q3_K", 256, 110},
    {GgmlType::Q4_K, "q4_K", 256, 144},    {GgmlType::Q5_K, "q5_K", 256, 176},
    {GgmlType::Q6_K, "q6_K", 256, 210},    {GgmlType::Q8_K, "q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66}, {GgmlType::IQ2_XS, "iq2_xs", 256, 74},
    {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98}, {GgmlType::IQ1_S, "iq1_s", 256, 50},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 18},  {GgmlType::IQ3_S, "iq3_s", 256, 110},
    {GgmlType::IQ2_S, "iq2_s", 256, 82},   {GgmlType::IQ4_XS, "iq4_xs", 256, 136},
    {GgmlType::I8, "i8", 1, 1},            {GgmlType::I16, "i16", 1, 2},
    {GgmlType::I32, "i32", 1, 4},          {GgmlType::I64, "i64", 1, 8},
    {GgmlType::F64, "f64", 1, 8},          {GgmlType::IQ1_M, "iq1_m", 256, 56},
    {GgmlType::BF16, "bf16", 1, 2},        {GgmlType::TQ1_0, "tq1_0", 256, 54},
    {GgmlType::TQ2_0, "tq2_0", 256, 66},   {GgmlType::MXFP4, "mxfp4", 32, 17},
};
static_assert(sizeof(type_rows) / sizeof(type_rows[0]) == 32, "one row per GgmlType");
}  // namespace

const TypeTraits* type_traits(std::uint32_t id) noexcept {
    for (const auto& r : type_rows)
        if (static_cast<std::uint32_t>(r.type) == id) return &r;
    return nullptr;
}

const TypeTraits& traits(GgmlType t) noexcept { return *type_traits(static_cast<std::uint32_t>(t)); }

std::string type_upper_name(GgmlType t) {
    std::string s(traits(t).name);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
    return s;
}

bool parse_type(std::string_view s, GgmlType& out) noexcept {
    for (const auto& r : type_rows) {
        if (r.name.size() != s.size()) continue;
        bool eq = true;
        for (std::size_t i = 0; i < s.size() && eq; ++i)
            eq = std::tolower(static_cast<unsigned char>(s[i])) == std::tolower(static_cast<unsigned char>(r.name[i]));
        if (eq) {
            out = r.type;
            return true;
        }
    }
    return false;
}

}  // namespace shardforge::quant
