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

std::vector<Bnb4Part> bnb4_parts_in_order(bool double_quant) {
    if (double_quant)
        return {Bnb4Part::Absmax, Bnb4Part::QuantMap, Bnb4Part::NestedAbsmax, Bnb4Part::NestedQuantMap,
                Bnb4Part::QuantState};
    return {Bnb4Part::Absmax, Bnb4Part::QuantMap, Bnb4Part::QuantState};
}

ByteRange& Bnb4Parts::at(Bnb4Part part) {
    switch (part) {
        case Bnb4Part::Absmax: return absmax;
        case Bnb4Part::QuantMap: return quant_map;
        case Bnb4Part::NestedAbsmax: return nested_absmax ? *nested_absmax : nested_absmax.emplace();
        case Bnb4Part::NestedQuantMap: return nested_quant_map ? *nested_quant_map : nested_quant_map.emplace();
        case Bnb4Part::QuantState: break;
    }
    return quant_state;
}

std::optional<ByteRange> Bnb4Parts::find(Bnb4Part part) const {
    switch (part) {
        case Bnb4Part::Absmax: return absmax;
        case Bnb4Part::QuantMap: return quant_map;
        case Bnb4Part::NestedAbsmax: return nested_absmax;
        case Bnb4Part::NestedQuantMap: return nested_quant_map;
        case Bnb4Part::QuantState: break;
    }
    return quant_state;
}

std::vector<std::pair<Bnb4Part, ByteRange>> Bnb4Parts::list() const {
    std::vector<std::pair<Bnb4Part, ByteRange>> out;
    for (const Bnb4Part part : bnb4_parts_in_order(true))
        if (const auto r = find(part)) out.emplace_back(part, *r);
    return out;
}

std::vector<Bnb4PartSpec> bnb4_part_specs(const quant::Bnb4Spec& spec, const BnbQuantState& qs) {
    const quant::Bnb4Layout l = quant::bnb4_layout(spec, core::numel(qs.shape));
    const auto nb = static_cast<std::uint64_t>(l.blocks);
    const std::size_t js = bnb_quant_state_reserved(qs);
    std::vector<Bnb4PartSpec> parts;
    for (const Bnb4Part part : bnb4_parts_in_order(spec.double_quant)) {
        switch (part) {
            case Bnb4Part::Absmax:
                if (spec.double_quant) parts.push_back({part, ".absmax", core::DType::U8, l.blocks, nb});
                else parts.push_back({part, ".absmax", core::DType::F32, l.blocks, nb * 4});
                break;
            case Bnb4Part::QuantMap: parts.push_back({part, ".quant_map", core::DType::F32, 16, 64}); break;
            case Bnb4Part::NestedAbsmax:
                parts.push_back({part, ".nested_absmax", core::DType::F32, l.nested_blocks,
                                 static_cast<std::uint64_t>(l.nested_blocks) * 4});
                break;
            case Bnb4Part::NestedQuantMap:
                parts.push_back({part, ".nested_quant_map", core::DType::F32, 256, 1024});
                break;
            case Bnb4Part::QuantState:
                parts.push_back({part, std::string(".quant_state.bitsandbytes__") + (qs.nf4 ? "nf4" : "fp4"),
                                 core::DType::U8, static_cast<std::int64_t>(js), js});
                break;
        }
    }
    return parts;
}

std::span<const std::byte> Bnb4Encoded::bytes(Bnb4Part part) const {
    auto bytes_of = [](const auto& vec) { return std::as_bytes(std::span(vec.data(), vec.size())); };
    switch (part) {
        case Bnb4Part::Absmax: return !nested_quant_map.empty() ? bytes_of(q.absmax_codes) : bytes_of(q.absmax);
        case Bnb4Part::QuantMap: return bytes_of(quant_map);
        case Bnb4Part::NestedAbsmax: return bytes_of(q.nested_absmax);
        case Bnb4Part::NestedQuantMap: return bytes_of(nested_quant_map);
        case Bnb4Part::QuantState: break;
    }
    return bytes_of(quant_state);
}

std::vector<float> bnb4_rounded(core::DType dtype, std::span<const float> v) {
    std::vector<float> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        r[i] = dtype == core::DType::BF16  ? core::bf16_to_f32(core::f32_to_bf16(v[i]))
               : dtype == core::DType::F16 ? core::f16_to_f32(core::f32_to_f16(v[i]))
                                           : v[i];
    return r;
}

Bnb4Encoded encode_bnb4(const quant::Bnb4Spec& spec, const BnbQuantState& qs, std::span<const float> v,
                        const std::string& tensor) {
    Bnb4Encoded enc;
    try {
        quant::bnb4_quantize(spec, bnb4_rounded(qs.dtype, v).data(), static_cast<std::int64_t>(v.size()), enc.q);
    } catch (const core::Error& err) {
        throw core::Error(err.kind(), "", tensor, err.why());
    }
    quant::bnb4_quant_map(spec.type, enc.quant_map.data());
    if (spec.double_quant) {
        enc.nested_quant_map.resize(256);
        quant::bnb_dynamic_map(enc.nested_quant_map.data());
    }
    BnbQuantState with_offset = qs;
    with_offset.nested = spec.double_quant;
    with_offset.nested_offset = enc.q.nested_offset;
    enc.quant_state = bnb_quant_state_json(with_offset);
    const std::size_t reserved = bnb_quant_state_reserved(with_offset);
    SF_CHECK(enc.quant_state.size() <= reserved && (spec.double_quant || enc.quant_state.size() == reserved),
             core::cat("quant_state length of ", tensor));
    enc.quant_state.resize(reserved, ' ');  // only with double quant: the offset's repr is shorter than the longest
    return enc;
}

}  // namespace shardforge::formats
