// bitsandbytes 4-bit (NF4/FP4) blockwise quantization and its 8-bit "dynamic map" double quantization, per block
// (bitsandbytes' functional.py and backends/default/ops.py quantize_4bit). SF_HD, pure: raw pointers and counts, no
// containers, no exceptions, so the same code runs on the host and under nvcc (--fmad=false). The rules are
// bitsandbytes' CPU (torch default backend) rules, which are reproducible bit for bit; the CUDA kernels (fast-math
// reciprocal, literal FP4 thresholds, NaN for all-zero blocks) are not followed on purpose.
//
// 4-bit rules (quantize_4bit in bitsandbytes/backends/default/ops.py), flat blocks of `blocksize` consecutive elements
// of the row-major tensor (they cross rows):
//   full block:    absmax = max|x| stored unclamped; inv = fp32(1 / max(absmax, 1e-38)); y = clamp(fp32(x*inv))
//   partial block: absmax = max(max|x|, 1e-38) stored clamped;        y = clamp(fp32(x / absmax))
//   code = the table entry of bucket #{i : y > mid_i} over the fp32 midpoints of the table sorted by value
//   (ties in value keep index order: FP4 +0 (0) sorts before -0 (8), so 0 < y <= mid encodes as 8, i.e. -0).
//   packing: element k -> byte k/2, even k in the high nibble; an odd count pads the last low nibble with the
//   code of 0.0.
// Double quantization (compress_statistics in bitsandbytes/functional.py): offset = the mean of the absmax (see
// nested_offset below: the documented exception),
//   z = fp32(absmax - offset) is quantized in flat blocks of 256 with the same full/partial scaling rules and the
//   signed dynamic map; code = bucket over the map's fp32 midpoints (exact nearest, ties to the lower code).
#pragma once
#include <shardforge/core.hpp>

#include <cmath>
#include <cstdint>

namespace shardforge::quant::bnb {

inline constexpr int nested_blocksize = 256;

// A 4-bit code table prepared for quantization.
struct Table4 {
    float values[16];              // the stored quant_map, by code
    float mids[15];                // fp32 midpoints of the values sorted ascending
    std::uint8_t code_of_bucket[16];
};

// NF4 and FP4 values (get_4bit_type in bitsandbytes/functional.py) as fp32 bit patterns, by code.
SF_HD float nf4_value(int i) {
    constexpr std::uint32_t bits[16] = {0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du, 0xbe3d353fu,
                                        0xbdba7871u, 0x00000000u, 0x3da2faffu, 0x3e24cae3u, 0x3e7c04ddu, 0x3ead033au,
                                        0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u, 0x3f800000u};
    return core::bits_f32(bits[i & 15]);
}
SF_HD float fp4_value(int i) {
    constexpr std::uint32_t bits[8] = {0x00000000u, 0x3baaaaabu, 0x3f2aaaabu, 0x3f800000u,
                                       0x3eaaaaabu, 0x3f000000u, 0x3e2aaaabu, 0x3e800000u};
    return core::bits_f32(bits[i & 7] | ((i & 8) ? 0x80000000u : 0u));
}

// fp4 = false: NF4. Sorting is a stable insertion sort by value (index order on equal values).
SF_HD void make_table4(bool fp4, Table4& t) {
    std::uint8_t order[16];
    for (int i = 0; i < 16; ++i) {
        t.values[i] = fp4 ? fp4_value(i) : nf4_value(i);
        order[i] = static_cast<std::uint8_t>(i);
    }
    for (int i = 1; i < 16; ++i) {
        const std::uint8_t o = order[i];
        int j = i - 1;
        while (j >= 0 && t.values[order[j]] > t.values[o]) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = o;
    }
    for (int i = 0; i < 16; ++i) t.code_of_bucket[i] = order[i];
    for (int i = 0; i < 15; ++i) t.mids[i] = (t.values[order[i]] + t.values[order[i + 1]]) / 2.0f;
}

// torch.bucketize(y, mids, right=False): the number of midpoints strictly below y.
SF_HD std::uint8_t code4(const Table4& t, float y) {
    int idx = 0;
    for (int i = 0; i < 15; ++i) idx += y > t.mids[i] ? 1 : 0;
    return t.code_of_bucket[idx];
}

SF_HD float clamp1(float y) { return y < -1.0f ? -1.0f : (y > 1.0f ? 1.0f : y); }

SF_HD float block_absmax(const float* x, int n) {
    float m = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float a = fabsf(x[j]);
        if (a > m) m = a;
    }
    return m;
}

// One 4-bit block of n <= 4096 elements starting at an even element index: writes its (n+1)/2 packed bytes
// (padding an odd n with the code of 0.0) and returns the absmax to store.
SF_HD float quantize4_block(const Table4& t, const float* x, int n, bool partial, std::uint8_t* packed) {
    float y[64];
    float am = 0.0f;
    // Chunks of 64 keep the scratch on the stack; the scale depends only on the whole block's absmax.
    const float bam = block_absmax(x, n);
    const float guarded = bam > 1e-38f ? bam : 1e-38f;
    const float inv = 1.0f / guarded;
    am = partial ? guarded : bam;
    for (int c = 0; c < n; c += 64) {
        const int m = n - c < 64 ? n - c : 64;
        for (int j = 0; j < m; ++j) y[j] = clamp1(partial ? x[c + j] / guarded : x[c + j] * inv);
        for (int j = 0; j < m; j += 2) {
            const std::uint8_t hi = code4(t, y[j]);
            const std::uint8_t lo = code4(t, j + 1 < m ? y[j + 1] : 0.0f);
            packed[(c + j) / 2] = static_cast<std::uint8_t>((hi << 4) | lo);
        }
    }
    return am;
}

// One 4-bit block back to fp32: w = fp32(code * absmax).
SF_HD void dequantize4_block(const float* values, const std::uint8_t* packed, int n, float absmax, float* w) {
    for (int j = 0; j < n; ++j) {
        const std::uint8_t b = packed[j / 2];
        const int c = (j & 1) ? (b & 15) : (b >> 4);
        w[j] = values[c] * absmax;
    }
}

// 4-bit code of element j of a block (for comparisons).
SF_HD int code_at(const std::uint8_t* packed, std::int64_t k) {
    const std::uint8_t b = packed[k / 2];
    return (k & 1) ? (b & 15) : (b >> 4);
}

// ---------------------------------------------------------------- double quantization (8-bit dynamic map)

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) (bitsandbytes/functional.py): for i
// = 0..6, the fp32 midpoints of torch.linspace(0.1, 1, 2^i + 1) (torch's CPU formula: step = fp32((1 - 0.1) / (n - 1)),
// start + step*k for the first half, end - step*(n-1-k) for the rest) times fp32(10^(i-6)), both signs, plus 0 and 1,
// sorted ascending: 256 values, [0] = -0.99296875, [127] = 0, [255] = 1.
SF_HD void make_dynamic_map(float* map) {
    constexpr float pow10[7] = {1e-6f, 1e-5f, 1e-4f, 1e-3f, 1e-2f, 1e-1f, 1.0f};
    float v[256];
    int n = 0;
    for (int i = 0; i < 7; ++i) {
        const int steps = (1 << i) + 1;
        const float start = 0.1f, end = 1.0f;
        const float step = (end - start) / static_cast<float>(steps - 1);
        const int half = steps / 2;
        float prev = 0.0f;
        for (int k = 0; k < steps; ++k) {
            const float b = k < half ? start + step * static_cast<float>(k)
                                     : end - step * static_cast<float>(steps - 1 - k);
            if (k > 0) {
                const float mean = (prev + b) / 2.0f;
                v[n++] = pow10[i] * mean;
                v[n++] = -(pow10[i] * mean);
            }
            prev = b;
        }
    }
    v[n++] = 0.0f;
    v[n++] = 1.0f;
    for (int i = 1; i < n; ++i) {  // insertion sort, ascending
        const float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            --j;
        }
        v[j + 1] = x;
    }
    for (int i = 0; i < 256; ++i) map[i] = v[i];
}

// Midpoints of a sorted 256-entry map (255 values).
SF_HD void make_map_mids(const float* map, float* mids) {
    for (int i = 0; i < 255; ++i) mids[i] = (map[i] + map[i + 1]) / 2.0f;
}

// Bucket of y over the 255 sorted midpoints: #{i : y > mids[i]} (binary search).
SF_HD std::uint8_t code8(const float* mids, float y) {
    int lo = 0, hi = 255;  // answer in [0, 255]: first i with !(y > mids[i])
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (y > mids[mid]) lo = mid + 1;
        else hi = mid;
    }
    return static_cast<std::uint8_t>(lo);
}

// One nested block of n <= 256 values z (already offset-subtracted): 8-bit codes, returns the absmax to store.
SF_HD float quantize8_block(const float* mids, const float* z, int n, bool partial, std::uint8_t* codes) {
    const float bam = block_absmax(z, n);
    const float guarded = bam > 1e-38f ? bam : 1e-38f;
    const float inv = 1.0f / guarded;
    for (int j = 0; j < n; ++j) codes[j] = code8(mids, clamp1(partial ? z[j] / guarded : z[j] * inv));
    return partial ? guarded : bam;
}

// Nested dequantization (dequantize_4bit's first step): absmax = fp32(fp32(map[code] * nested_absmax) + offset).
SF_HD float dequantize_absmax(const float* map, std::uint8_t code, float nested_absmax, float offset) {
    const float s = map[code] * nested_absmax;
    return s + offset;
}

}  // namespace shardforge::quant::bnb
