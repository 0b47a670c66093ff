// The packed quant_state JSON of bitsandbytes 4-bit checkpoints (QuantState.as_dict in bitsandbytes/functional.py): a
// strict reader.
#include <shardforge/formats.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

namespace shardforge::formats {

BnbQuantState parse_bnb_quant_state(std::string_view json, std::string_view key_type, const std::string& file,
                                    const std::string& tensor) {
    auto bad = [&](const std::string& why) {
        return core::Error(core::ErrorKind::BadInput, file, tensor, "bitsandbytes quant_state: " + why);
    };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json.begin(), json.end());
    } catch (const nlohmann::json::exception&) {
        throw bad("not valid JSON");
    }
    if (!j.is_object()) throw bad("not a JSON object");
    auto get_int = [&](const char* key, std::int64_t lo, std::int64_t hi) {
        const auto it = j.find(key);
        if (it == j.end()) throw bad(core::cat("missing \"", key, "\""));
        if (!it->is_number_integer()) throw bad(core::cat("\"", key, "\" is not an integer"));
        const auto v = it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)
                           ? hi + 1
                           : it->get<std::int64_t>();
        if (v < lo || v > hi) throw bad(core::cat("\"", key, "\" out of range [", lo, ", ", hi, "]"));
        return v;
    };
    auto get_str = [&](const char* key) {
        const auto it = j.find(key);
        if (it == j.end()) throw bad(core::cat("missing \"", key, "\""));
        if (!it->is_string()) throw bad(core::cat("\"", key, "\" is not a string"));
        return it->get<std::string>();
    };

    BnbQuantState st;
    const std::string qt = get_str("quant_type");
    if (qt != "nf4" && qt != "fp4") throw bad("quant_type '" + qt + "' is neither nf4 nor fp4");
    if (qt != key_type) throw bad(core::cat("quant_type '", qt, "' does not match the key suffix '", key_type, "'"));
    st.nf4 = qt == "nf4";
    st.blocksize = get_int("blocksize", 16, 4096);
    if ((st.blocksize & (st.blocksize - 1)) != 0) throw bad(core::cat("blocksize ", st.blocksize, " is not a power of two"));
    const std::string dt = get_str("dtype");
    if (dt == "bfloat16") st.dtype = core::DType::BF16;
    else if (dt == "float16") st.dtype = core::DType::F16;
    else if (dt == "float32") st.dtype = core::DType::F32;
    else throw bad("dtype '" + dt + "' is not bfloat16, float16 or float32");
    const auto sh = j.find("shape");
    if (sh == j.end()) throw bad("missing \"shape\"");
    if (!sh->is_array() || sh->empty() || sh->size() > 4) throw bad("\"shape\" is not a list of 1 to 4 integers");
    std::int64_t n = 1;
    for (const auto& d : *sh) {
        if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<std::int64_t>() < 0))
            throw bad("\"shape\" holds a non-integer or negative dimension");
        if (d.get<std::uint64_t>() >= (std::uint64_t{1} << 48)) throw bad("\"shape\" dimension too large");
        const auto v = d.get<std::int64_t>();
        if (v != 0 && n > (std::int64_t{1} << 48) / v) throw bad("\"shape\" has too many elements");
        n *= v;
        st.shape.push_back(v);
    }
    const int nested_keys = static_cast<int>(j.contains("nested_blocksize")) + j.contains("nested_dtype") +
                            j.contains("nested_offset");
    if (nested_keys != 0 && nested_keys != 3)
        throw bad("double quantization needs all of nested_blocksize, nested_dtype and nested_offset");
    if (nested_keys == 3) {
        st.nested = true;
        st.nested_blocksize = get_int("nested_blocksize", 1, std::int64_t{1} << 30);
        if (get_str("nested_dtype") != "float32") throw bad("nested_dtype is not float32");
        const auto& off = j.at("nested_offset");
        if (!off.is_number()) throw bad("\"nested_offset\" is not a number");
        const double d = off.get<double>();
        const float f = static_cast<float>(d);
        if (!std::isfinite(d) || !std::isfinite(f)) throw bad("\"nested_offset\" is not a finite fp32 value");
        st.nested_offset = f;
    }
    return st;
}

}  // namespace shardforge::formats
