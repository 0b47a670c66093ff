// f32 rows -> an output tensor's bytes (encode.hpp, "f32 rows -> an output tensor's bytes"): one function per
// encoding of plan::Emit.
#include <shardforge/formats.hpp>

#include <algorithm>

namespace shardforge::formats {

void encode_rows(const RawEncoding& e, std::span<const float> v, std::span<std::byte> out, const std::string& tensor) {
    SF_CHECK(v.size() * core::dtype_size(e.dtype) == out.size(), core::cat("size of ", tensor));
    from_f32(v.data(), e.dtype, out.data(), v.size());
}

void encode_rows(const GgmlEncoding& e, std::span<const float> v, std::int64_t ne0, std::int64_t row0,
                 std::int64_t n_rows, std::span<std::byte> out, const QuantizeRows& quantize,
                 const std::string& tensor) {
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    const std::size_t row_b = quant::row_bytes(e.type, ne0);
    SF_CHECK(row_b * static_cast<std::size_t>(nrows) == out.size(), core::cat("size of ", tensor));
    switch (e.type) {
        case quant::GgmlType::F32: from_f32(v.data(), core::DType::F32, out.data(), v.size()); return;
        case quant::GgmlType::F16: from_f32(v.data(), core::DType::F16, out.data(), v.size()); return;
        case quant::GgmlType::BF16: from_f32(v.data(), core::DType::BF16, out.data(), v.size()); return;
        default: break;
    }
    const std::int64_t n_exp = static_cast<std::int64_t>(e.imatrix.size()) / std::max<std::int64_t>(1, ne0);
    if (e.imatrix.empty() || n_exp == 1) {
        quantize(e.type, v.data(), out.data(), nrows, ne0, e.imatrix.empty() ? nullptr : e.imatrix.data());
        return;
    }
    // 3-D (experts): each expert's rows use that expert's slice of the importance vector; the block holds whole
    // experts (plan/schedule.cpp), nrows / rows_per of them starting with expert0.
    const std::int64_t rows_per = n_rows / n_exp;
    SF_CHECK(rows_per > 0 && nrows % rows_per == 0 && row0 % rows_per == 0, core::cat("rows of whole experts in ", tensor));
    const std::int64_t expert0 = row0 / rows_per;
    for (std::int64_t x = 0; x < nrows / rows_per; ++x)
        quantize(e.type, v.data() + x * rows_per * ne0, out.data() + static_cast<std::size_t>(x * rows_per) * row_b,
                 rows_per, ne0, e.imatrix.data() + (expert0 + x) * ne0);
}

Bnb4Encoded encode_bnb4(const Bnb4Encoding& e, const core::Shape& shape, std::span<const float> v,
                        const std::string& tensor) {
    BnbQuantState qs;
    qs.nf4 = e.spec.type == quant::Bnb4Type::NF4;
    qs.blocksize = e.spec.blocksize;
    qs.dtype = e.dtype;
    qs.shape = shape;
    qs.nested = e.spec.double_quant;
    return encode_bnb4(e.spec, qs, v, tensor);
}

std::vector<std::pair<ByteRange, std::span<const std::byte>>> placed_parts(const Bnb4Encoding& e,
                                                                           const Bnb4Encoded& enc,
                                                                           const std::string& tensor) {
    SF_CHECK(e.parts.nested_absmax.has_value() == e.spec.double_quant &&
                 e.parts.nested_quant_map.has_value() == e.spec.double_quant,
             core::cat("bnb parts of ", tensor));
    std::vector<std::pair<ByteRange, std::span<const std::byte>>> out;
    for (const auto& [part, where] : e.parts.list()) {
        const std::span<const std::byte> b = enc.bytes(part);
        SF_CHECK(b.size() == where.nbytes, core::cat("size of part ", static_cast<int>(part), " of ", tensor));
        out.emplace_back(where, b);
    }
    return out;
}

}  // namespace shardforge::formats
