// bitsandbytes' packed quant_state JSON (QuantState.as_dict in bitsandbytes/functional.py), byte-identical to Python's
// json.dumps of the dict QuantState.as_dict(packed=True) builds, including repr() of the nested offset.
#include <shardforge/formats.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace shardforge::formats {

std::string python_float_repr(double v) {
    if (std::isnan(v)) return "NaN";  // json.dumps spelling (never written: quantization refuses non-finite input)
    if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
    char buf[64];
    // Shortest round-trip digits, as Python's repr (David Gay's shortest mode); only the layout differs.
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string sci(buf, r.ptr);  // "-1.2345e-05"
    const std::size_t epos = sci.find('e');
    std::string mant = sci.substr(0, epos);
    const int exp = std::atoi(sci.c_str() + epos + 1);
    std::string sign;
    if (mant[0] == '-') {
        sign = "-";
        mant.erase(0, 1);
    }
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const int nd = static_cast<int>(digits.size());
    if (exp >= -4 && exp < 16) {  // float_repr_style 'short': fixed notation in this range
        std::string s;
        if (exp >= 0) {
            if (nd <= exp + 1) {
                s = digits + std::string(static_cast<std::size_t>(exp + 1 - nd), '0') + ".0";
            } else {
                s = digits.substr(0, static_cast<std::size_t>(exp + 1)) + "." +
                    digits.substr(static_cast<std::size_t>(exp + 1));
            }
        } else {
            s = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
        }
        return sign + s;
    }
    std::string s = digits.substr(0, 1);
    if (nd > 1) s += "." + digits.substr(1);
    const int ae = exp < 0 ? -exp : exp;
    s += exp < 0 ? "e-" : "e+";
    if (ae < 10) s += "0";
    s += std::to_string(ae);
    return sign + s;
}

namespace {
std::string state_prefix(const BnbQuantState& s) {
    const char* dtype = s.dtype == core::DType::BF16 ? "bfloat16" : s.dtype == core::DType::F16 ? "float16" : "float32";
    std::string j = std::string("{\"quant_type\": \"") + (s.nf4 ? "nf4" : "fp4") + "\", \"blocksize\": " +
                    std::to_string(s.blocksize) + ", \"dtype\": \"" + dtype + "\", \"shape\": [";
    for (std::size_t i = 0; i < s.shape.size(); ++i) j += (i ? ", " : "") + std::to_string(s.shape[i]);
    j += "]";
    if (s.nested)
        j += ", \"nested_blocksize\": " + std::to_string(s.nested_blocksize) +
             ", \"nested_dtype\": \"float32\", \"nested_offset\": ";
    return j;
}
// "-d.dddddddddddddddde-XXX" is 24 characters; finite positive fp32 values need at most 22.
constexpr std::size_t max_repr = 24;
}  // namespace

std::string bnb_quant_state_json(const BnbQuantState& s) {
    std::string j = state_prefix(s);
    if (s.nested) j += python_float_repr(static_cast<double>(s.nested_offset));
    return j + "}";
}

std::size_t bnb_quant_state_reserved(const BnbQuantState& s) {
    return state_prefix(s).size() + (s.nested ? max_repr : 0) + 1;
}

}  // namespace shardforge::formats
