// bitsandbytes 4-bit quantization over whole tensors: blocks of the kernels in kernels/bnb_quant.hpp, the
// double-quantization offset and the nested 8-bit pass.
#include <shardforge/quant.hpp>

#include "kernels/bnb_quant.hpp"

#include <algorithm>
#include <cmath>

namespace shardforge::quant {

Bnb4Layout bnb4_layout(const Bnb4Spec& s, std::int64_t n) noexcept {
    Bnb4Layout l;
    l.n = n;
    l.packed_bytes = (n + 1) / 2;
    l.blocks = (n + s.blocksize - 1) / s.blocksize;
    l.nested_blocks = s.double_quant ? (l.blocks + bnb::nested_blocksize - 1) / bnb::nested_blocksize : 0;
    return l;
}

void bnb4_quant_map(Bnb4Type t, float out[16]) {
    for (int i = 0; i < 16; ++i) out[i] = t == Bnb4Type::FP4 ? bnb::fp4_value(i) : bnb::nf4_value(i);
}

void bnb_dynamic_map(float out[256]) { bnb::make_dynamic_map(out); }

void bnb4_quantize(const Bnb4Spec& s, const float* x, std::int64_t n, Bnb4Tensor& out) {
    SF_CHECK(s.blocksize >= 32 && s.blocksize <= 4096 && (s.blocksize & (s.blocksize - 1)) == 0, "bnb blocksize");
    for (std::int64_t k = 0; k < n; ++k)
        if (!std::isfinite(x[k]))
            throw core::Error(core::ErrorKind::BadInput, "", "",
                              core::cat("non-finite value at element ", k, " cannot be 4-bit quantized"));
    const Bnb4Layout l = bnb4_layout(s, n);
    bnb::Table4 t;
    bnb::make_table4(s.type == Bnb4Type::FP4, t);
    out.packed.assign(static_cast<std::size_t>(l.packed_bytes), 0);
    out.absmax.assign(static_cast<std::size_t>(l.blocks), 0.0f);
    for (std::int64_t b = 0; b < l.blocks; ++b) {
        const std::int64_t k0 = b * s.blocksize;
        const int m = static_cast<int>(std::min<std::int64_t>(s.blocksize, n - k0));
        out.absmax[static_cast<std::size_t>(b)] =
            bnb::quantize4_block(t, x + k0, m, m < s.blocksize, out.packed.data() + k0 / 2);
    }
    out.absmax_codes.clear();
    out.nested_absmax.clear();
    out.nested_offset = 0.0f;
    if (!s.double_quant || l.blocks == 0) return;
    // Documented exception (docs/formats.md, bitsandbytes output): torch's fp32 mean has an
    // implementation-defined reduction order; ours is the sequential double sum divided by the count, rounded once to
    // fp32.
    double sum = 0.0;
    for (float a : out.absmax) sum += static_cast<double>(a);
    const float offset = static_cast<float>(sum / static_cast<double>(l.blocks));
    out.nested_offset = offset;
    float map[256], mids[255];
    bnb::make_dynamic_map(map);
    bnb::make_map_mids(map, mids);
    std::vector<float> z(out.absmax.size());
    for (std::size_t i = 0; i < z.size(); ++i) z[i] = out.absmax[i] - offset;
    out.absmax_codes.assign(z.size(), 0);
    out.nested_absmax.assign(static_cast<std::size_t>(l.nested_blocks), 0.0f);
    for (std::int64_t b = 0; b < l.nested_blocks; ++b) {
        const std::int64_t k0 = b * bnb::nested_blocksize;
        const int m = static_cast<int>(std::min<std::int64_t>(bnb::nested_blocksize, l.blocks - k0));
        out.nested_absmax[static_cast<std::size_t>(b)] = bnb::quantize8_block(
            mids, z.data() + k0, m, m < bnb::nested_blocksize, out.absmax_codes.data() + k0);
    }
    // What a reader reconstructs (and what the 4-bit codes are dequantized with).
    for (std::size_t i = 0; i < out.absmax.size(); ++i)
        out.absmax[i] = bnb::dequantize_absmax(map, out.absmax_codes[i],
                                               out.nested_absmax[i / bnb::nested_blocksize], offset);
}

void bnb4_dequantize(const Bnb4Spec& s, const Bnb4Tensor& q, float* out, std::int64_t n) {
    const Bnb4Layout l = bnb4_layout(s, n);
    SF_CHECK(static_cast<std::int64_t>(q.packed.size()) == l.packed_bytes &&
                 static_cast<std::int64_t>(q.absmax.size()) == l.blocks,
             "bnb4_dequantize sizes");
    float values[16];
    bnb4_quant_map(s.type, values);
    for (std::int64_t b = 0; b < l.blocks; ++b) {
        const std::int64_t k0 = b * s.blocksize;
        const int m = static_cast<int>(std::min<std::int64_t>(s.blocksize, n - k0));
        bnb::dequantize4_block(values, q.packed.data() + k0 / 2, m, q.absmax[static_cast<std::size_t>(b)], out + k0);
    }
}

}  // namespace shardforge::quant
