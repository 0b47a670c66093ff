// Quantized-input dequantization (kernels/dequant.hpp) as the GPU backend runs it: the host splits the requested
// element range into chunks that fit the device staging buffers (plan_chunks), packs each chunk's inputs into one
// blob with the pointers rebased to the chunk (pack_bnb4 / pack_int8 / pack_fp8), and the CUDA kernel
// (src/quant/cuda/dequant.cu) runs `run_*(args, g)` with one GPU thread per group of `group` elements. Every
// element is still computed by the SF_HD range functions of dequant.hpp, only on shorter ranges:
//  - bnb4: chunks start at a multiple of blocksize * nested_blocksize (even), so the rebased packed bytes,
//    absmax / absmax codes and nested absmax give every element the same nibble and the same block scale;
//  - int8: chunks start at a row, so the rebased SCB gives each row its scale;
//  - fp8: chunks start anywhere (w is passed at the range start); the scale grid is uploaded whole and the byte
//    decode table comes from fp8_lut.
// The CPU unit test tests/unit/quant/gpu_dequant_tasks_test.cpp runs this exact decomposition on the host (same
// chunk plans, blobs and groups, groups in reverse order) and compares the bytes with quant::dequant_*.
// run_* are SF_HD and pure; the planning and packing functions are host code without CUDA calls.
#pragma once
#include <shardforge/quant.hpp>

#include "dequant.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace shardforge::quant::dtasks {

inline constexpr std::int64_t group = 64;  // elements per GPU thread

[[nodiscard]] SF_HD std::int64_t n_groups(std::int64_t k0, std::int64_t k1) { return (k1 - k0 + group - 1) / group; }

// Arguments of one chunk's launch: elements [k0, k1) in the chunk's coordinates, dst[0] is element k0.
struct Bnb4Args {
    const std::uint8_t* packed = nullptr;
    const float* code = nullptr;
    std::int64_t blocksize = 64;
    const float* absmax = nullptr;
    const std::uint8_t* absmax_code = nullptr;
    const float* nested_code = nullptr;
    const float* nested_absmax = nullptr;
    std::int64_t nested_blocksize = 256;
    float nested_offset = 0.0f;
    int round_kind = 0;
    std::int64_t k0 = 0, k1 = 0;
    float* dst = nullptr;
};
struct Int8Args {
    const std::int8_t* cb = nullptr;
    const float* scb = nullptr;
    std::int64_t cols = 1;
    std::int64_t k0 = 0, k1 = 0;
    float* dst = nullptr;
};
struct Fp8Args {
    const std::uint8_t* w = nullptr;  // the byte of element k0
    const float* lut = nullptr;       // [256] fp8_lut
    const float* scale = nullptr;     // the whole scale grid
    std::int64_t cols = 1, br = 1, bc = 1;
    std::int64_t k0 = 0, k1 = 0;      // absolute element indices
    float* dst = nullptr;
};

// Thread g: elements [k0 + g*group, min(k0 + (g+1)*group, k1)).
SF_HD void run_bnb4(const Bnb4Args& a, std::int64_t g) {
    const std::int64_t s = a.k0 + g * group;
    if (s >= a.k1) return;
    const std::int64_t e = s + group < a.k1 ? s + group : a.k1;
    kernels::bnb4_range(a.packed, a.code, a.blocksize, a.absmax, a.absmax_code, a.nested_code, a.nested_absmax,
                        a.nested_blocksize, a.nested_offset, a.round_kind, s, e, a.dst + (s - a.k0));
}
SF_HD void run_int8(const Int8Args& a, std::int64_t g) {
    const std::int64_t s = a.k0 + g * group;
    if (s >= a.k1) return;
    const std::int64_t e = s + group < a.k1 ? s + group : a.k1;
    kernels::int8_range(a.cb, a.scb, a.cols, s, e, a.dst + (s - a.k0));
}
SF_HD void run_fp8(const Fp8Args& a, std::int64_t g) {
    const std::int64_t s = a.k0 + g * group;
    if (s >= a.k1) return;
    const std::int64_t e = s + group < a.k1 ? s + group : a.k1;
    kernels::fp8_range_lut(a.w + (s - a.k0), a.lut, a.scale, a.cols, a.br, a.bc, s, e, a.dst + (s - a.k0));
}

// ---------------------------------------------------------------- host side: chunks and blobs

// One chunk: output elements [k0, k1) of the whole tensor; its inputs are packed from element `base` (<= k0).
struct Chunk {
    std::int64_t k0 = 0, k1 = 0, base = 0;
};

// Alignment of a chunk's `base` per kind (see the file comment).
[[nodiscard]] inline std::int64_t bnb4_unit(const Bnb4View& v) {
    std::int64_t u = v.blocksize * (v.absmax ? 1 : v.nested_blocksize);
    return u % 2 ? 2 * u : u;
}
[[nodiscard]] inline std::int64_t int8_unit(std::int64_t cols) { return cols > 0 ? cols : 1; }
[[nodiscard]] inline std::int64_t fp8_unit() { return 1; }

// [k0, k1) as consecutive chunks of at most max(max_elems rounded down to `unit`, unit) elements, each chunk but
// the first starting at a multiple of `unit`; the first starts at k0 and packs from k0 rounded down to `unit`.
[[nodiscard]] inline std::vector<Chunk> plan_chunks(std::int64_t k0, std::int64_t k1, std::int64_t unit,
                                                    std::int64_t max_elems) {
    std::vector<Chunk> out;
    if (k0 >= k1) return out;
    const std::int64_t span = max_elems >= unit ? max_elems / unit * unit : unit;
    std::int64_t k = k0;
    while (k < k1) {
        const std::int64_t base = k / unit * unit;
        const std::int64_t end = base + span < k1 ? base + span : k1;
        out.push_back({k, end, base});
        k = end;
    }
    return out;
}

// Packs arrays into one blob (16-byte aligned parts). A sizing pass has host == nullptr; `dev` is the address
// the blob will have where the kernel reads it (the host blob itself for the CPU test).
class Blob {
public:
    Blob(std::byte* host, const std::byte* dev) : host_(host), dev_(dev) {}
    template <class T>
    const T* put(const T* src, std::int64_t count) {
        size_ = (size_ + 15) / 16 * 16;
        const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
        if (host_ && bytes) std::memcpy(host_ + size_, src, bytes);
        const T* p = dev_ ? reinterpret_cast<const T*>(dev_ + size_) : nullptr;
        size_ += bytes;
        return p;
    }
    [[nodiscard]] std::size_t size() const { return size_; }

private:
    std::byte* host_;
    const std::byte* dev_;
    std::size_t size_ = 0;
};

// The chunk's inputs into `b`, and its launch arguments writing element c.k0 to dst[0].
inline Bnb4Args pack_bnb4(const Bnb4View& v, const Chunk& c, Blob& b, float* dst) {
    const std::int64_t bs = v.blocksize, last = c.k1 - 1;
    Bnb4Args a;
    a.packed = b.put(v.packed + c.base / 2, last / 2 - c.base / 2 + 1);
    a.code = b.put(v.code, 16);
    a.blocksize = bs;
    const std::int64_t b0 = c.base / bs, b1 = last / bs + 1;
    if (v.absmax) {
        a.absmax = b.put(v.absmax + b0, b1 - b0);
    } else {
        const std::int64_t nbs = v.nested_blocksize;
        a.absmax_code = b.put(v.absmax_code + b0, b1 - b0);
        a.nested_absmax = b.put(v.nested_absmax + b0 / nbs, (b1 - 1) / nbs - b0 / nbs + 1);
        a.nested_code = b.put(v.nested_code, 256);
        a.nested_blocksize = nbs;
        a.nested_offset = v.nested_offset;
    }
    a.round_kind = kernels::round_kind(v.out_dtype);
    a.k0 = c.k0 - c.base;
    a.k1 = c.k1 - c.base;
    a.dst = dst;
    return a;
}
inline Int8Args pack_int8(const std::int8_t* cb, const float* scb, std::int64_t cols, const Chunk& c, Blob& b,
                          float* dst) {
    Int8Args a;
    a.cb = b.put(cb + c.base, c.k1 - c.base);
    a.scb = b.put(scb + c.base / cols, (c.k1 - 1) / cols - c.base / cols + 1);
    a.cols = cols;
    a.k0 = c.k0 - c.base;
    a.k1 = c.k1 - c.base;
    a.dst = dst;
    return a;
}
inline Fp8Args pack_fp8(const Fp8View& v, const Chunk& c, Blob& b, float* dst) {
    float lut[256];
    kernels::fp8_lut(v.e5m2, lut);
    Fp8Args a;
    a.w = b.put(v.w + c.k0, c.k1 - c.k0);
    a.lut = b.put(lut, 256);
    const std::int64_t grid = ((v.rows + v.block_rows - 1) / v.block_rows) * ((v.cols + v.block_cols - 1) / v.block_cols);
    a.scale = b.put(v.scale, grid);
    a.cols = v.cols;
    a.br = v.block_rows;
    a.bc = v.block_cols;
    a.k0 = c.k0;
    a.k1 = c.k1;
    a.dst = dst;
    return a;
}

}  // namespace shardforge::quant::dtasks
