// Dequantization kernels for quantized *input* checkpoints: bitsandbytes NF4/FP4 (with and without double
// quantization), LLM.int8 and FP8 with block / per-channel / per-tensor scales (bitsandbytes' functional.py,
// backends/default/ops.py dequantize_4bit, nn/modules.py Int8Params).
// SF_HD, pure: raw pointers and element ranges of the flattened logical tensor, no containers, no exceptions, so
// the same code runs on the host and under nvcc (--fmad=false). Each expression is one fp32 operation in the
// order bitsandbytes' CPU code uses; the build uses -ffp-contract=off, so no FMA contraction changes the bits.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstdint>

namespace shardforge::quant::kernels {

// round_through's kind for a checkpoint dtype: 1 BF16, 2 F16, 0 none (F32).
[[nodiscard]] inline int round_kind(core::DType t) noexcept {
    return t == core::DType::BF16 ? 1 : t == core::DType::F16 ? 2 : 0;
}

// One RNE rounding of an fp32 value through the checkpoint's dtype (bnb's dequant output dtype).
SF_HD float round_through(float v, int round_kind) {
    if (round_kind == 1) return core::bf16_to_f32(core::f32_to_bf16(v));
    if (round_kind == 2) return core::f16_to_f32(core::f32_to_f16(v));
    return v;
}

// absmax of block b: plain fp32, or (double quant) fp32(fp32(nested_code[c] * nested_absmax[b / nbs]) + offset).
SF_HD float bnb4_absmax(const float* absmax, const std::uint8_t* absmax_code, const float* nested_code,
                        const float* nested_absmax, std::int64_t nested_blocksize, float nested_offset,
                        std::int64_t b) {
    if (absmax) return absmax[b];
    const float scaled = nested_code[absmax_code[b]] * nested_absmax[b / nested_blocksize];
    return scaled + nested_offset;
}

// Elements [k0, k1) of a packed 4-bit tensor: element k lives in byte k/2 (even k: high nibble, odd k: low),
// block = k / blocksize (flat blocks, crossing rows). w = round_through(code[nibble] * absmax[block]). The 16
// possible products of a block are computed once (the same fp32 products, so the same bits).
SF_HD void bnb4_range(const std::uint8_t* packed, const float* code, std::int64_t blocksize, const float* absmax,
                      const std::uint8_t* absmax_code, const float* nested_code, const float* nested_absmax,
                      std::int64_t nested_blocksize, float nested_offset, int round_kind, std::int64_t k0,
                      std::int64_t k1, float* dst) {
    float table[16];
    std::int64_t k = k0;
    while (k < k1) {
        const std::int64_t b = k / blocksize;
        const std::int64_t end = (b + 1) * blocksize < k1 ? (b + 1) * blocksize : k1;
        const float am = bnb4_absmax(absmax, absmax_code, nested_code, nested_absmax, nested_blocksize,
                                     nested_offset, b);
        for (int i = 0; i < 16; ++i) table[i] = round_through(code[i] * am, round_kind);
        if (k < end && (k & 1)) {  // odd start: low nibble
            dst[k - k0] = table[packed[k >> 1] & 0x0fu];
            ++k;
        }
        for (; k + 1 < end; k += 2) {  // byte-aligned pairs: high nibble, low nibble
            const std::uint8_t byte = packed[k >> 1];
            dst[k - k0] = table[byte >> 4];
            dst[k + 1 - k0] = table[byte & 0x0fu];
        }
        if (k < end) {  // even tail: high nibble
            dst[k - k0] = table[packed[k >> 1] >> 4];
            ++k;
        }
    }
}

// LLM.int8 (row-major [rows, cols] int8 CB, SCB[rows]): w = fp32(fp32(cb * scb[row]) * fp32(1/127)).
SF_HD void int8_range(const std::int8_t* cb, const float* scb, std::int64_t cols, std::int64_t k0, std::int64_t k1,
                      float* dst) {
    const float inv127 = 7.874015718698502e-3f;
    std::int64_t k = k0;
    while (k < k1) {
        const std::int64_t r = k / cols;
        const std::int64_t end = (r + 1) * cols < k1 ? (r + 1) * cols : k1;
        const float s = scb[r];
        for (; k < end; ++k) {
            const float v = static_cast<float>(cb[k]) * s;
            dst[k - k0] = v * inv127;
        }
    }
}

// The exact f32 value of every FP8 byte (E4M3FN or E5M2).
SF_HD void fp8_lut(bool e5m2, float* lut) {
    for (int i = 0; i < 256; ++i)
        lut[i] = e5m2 ? core::f8e5m2_to_f32(static_cast<std::uint8_t>(i)) : core::f8e4m3_to_f32(static_cast<std::uint8_t>(i));
}

// FP8 row-major [rows, cols] with a scale grid [ceil(rows/br), ceil(cols/bc)] (row-major, f32), elements [k0, k1)
// given a decode table `lut` (fp8_lut) and `w` pointing at element k0's byte: w = lut[byte] * scale[r / br][c / bc].
SF_HD void fp8_range_lut(const std::uint8_t* w, const float* lut, const float* scale, std::int64_t cols,
                         std::int64_t br, std::int64_t bc, std::int64_t k0, std::int64_t k1, float* dst) {
    const std::int64_t scols = (cols + bc - 1) / bc;
    std::int64_t k = k0;
    while (k < k1) {  // one run of equal scale per iteration: [k, end) within one row and one column block
        const std::int64_t r = k / cols, c = k - r * cols;
        const std::int64_t cb = c / bc;
        const std::int64_t block_end = r * cols + ((cb + 1) * bc < cols ? (cb + 1) * bc : cols);
        const std::int64_t end = block_end < k1 ? block_end : k1;
        const float s = scale[(r / br) * scols + cb];
        for (; k < end; ++k) dst[k - k0] = lut[w[k - k0]] * s;
    }
}

// FP8 (E4M3FN or E5M2) row-major [rows, cols] with a scale grid [ceil(rows/br), ceil(cols/bc)] (row-major, f32):
// w = fp32(fp8) * scale[r / br][c / bc]. Block scales (DeepSeek-V3 weight_scale_inv, 128x128, partial edge
// blocks), per-channel (br = 1, bc = cols) and per-tensor (br = rows, bc = cols) are all this one rule. `w` is the
// whole tensor (element 0 first).
SF_HD void fp8_range(const std::uint8_t* w, bool e5m2, const float* scale, std::int64_t cols, std::int64_t br,
                     std::int64_t bc, std::int64_t k0, std::int64_t k1, float* dst) {
    float lut[256];  // exact decode of every byte
    fp8_lut(e5m2, lut);
    fp8_range_lut(w + k0, lut, scale, cols, br, bc, k0, k1, dst);
}

}  // namespace shardforge::quant::kernels
