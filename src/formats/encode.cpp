// f32 rows -> an output tensor's bytes (formats.hpp, "f32 rows -> an output tensor's bytes").
#include <shardforge/formats.hpp>

#include <algorithm>

namespace shardforge::formats {

void encode_rows(const RowEncoding& e, std::span<const float> v, std::int64_t ne0, std::int64_t expert0,
                 std::span<std::byte> out, const QuantizeRows& quantize) {
    if (!e.ggml) {
        from_f32(v.data(), e.dtype, out.data(), v.size());
        return;
    }
    const std::int64_t nrows = ne0 == 0 ? 0 : static_cast<std::int64_t>(v.size()) / ne0;
    switch (e.gtype) {
        case quant::GgmlType::F32: from_f32(v.data(), core::DType::F32, out.data(), v.size()); return;
        case quant::GgmlType::F16: from_f32(v.data(), core::DType::F16, out.data(), v.size()); return;
        case quant::GgmlType::BF16: from_f32(v.data(), core::DType::BF16, out.data(), v.size()); return;
        default: break;
    }
    const std::int64_t n_exp_all = static_cast<std::int64_t>(e.imatrix.size()) / std::max<std::int64_t>(1, ne0);
    if (e.imatrix.empty() || n_exp_all == 1) {
        quantize(e.gtype, v.data(), out.data(), nrows, ne0, e.imatrix.empty() ? nullptr : e.imatrix.data());
        return;
    }
    // 3-D (experts): each expert's rows use that expert's slice of the importance vector; the rows hold whole
    // experts (plan/schedule.cpp), nrows / rows_per_expert of them.
    const std::size_t row_b = quant::row_bytes(e.gtype, ne0);
    const std::int64_t rows_per = e.rows_per_expert;
    SF_CHECK(rows_per > 0 && nrows % rows_per == 0, "rows of whole experts");
    for (std::int64_t x = 0; x < nrows / rows_per; ++x)
        quantize(e.gtype, v.data() + x * rows_per * ne0, out.data() + static_cast<std::size_t>(x * rows_per) * row_b,
                 rows_per, ne0, e.imatrix.data() + (expert0 + x) * ne0);
}

}  // namespace shardforge::formats
