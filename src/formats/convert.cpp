// Element conversion between on-disk safetensors types and the f32 working type of the merge. Bit-exact via the
// core:: scalar routines (RNE on narrowing, as torch's .to()).
#include <shardforge/formats.hpp>

#include <bit>
#include <cstring>

namespace shardforge::formats {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little endian");

template <class T> T load(const std::byte *p) {
    T v;
    std::memcpy(&v, p, sizeof v); // unaligned-safe; host is little endian like the files
    return v;
}
template <class T> void store(std::byte *p, T v) { std::memcpy(p, &v, sizeof v); }

} // namespace

void to_f32(core::DType src_type, const std::byte *src, float *dst, std::size_t n) {
    using core::DType;
    switch (src_type) {
    case DType::F32:
        if (n) std::memcpy(dst, src, n * 4);
        return;
    case DType::F16:
        for (std::size_t i = 0; i < n; ++i) dst[i] = core::f16_to_f32(load<std::uint16_t>(src + 2 * i));
        return;
    case DType::BF16:
        for (std::size_t i = 0; i < n; ++i) dst[i] = core::bf16_to_f32(load<std::uint16_t>(src + 2 * i));
        return;
    case DType::F64: // static_cast rounds to nearest even (default FP environment)
        for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<double>(src + 8 * i));
        return;
    case DType::F8_E4M3:
        for (std::size_t i = 0; i < n; ++i) dst[i] = core::f8e4m3_to_f32(static_cast<std::uint8_t>(src[i]));
        return;
    case DType::F8_E5M2:
        for (std::size_t i = 0; i < n; ++i) dst[i] = core::f8e5m2_to_f32(static_cast<std::uint8_t>(src[i]));
        return;
    default: break;
    }
    throw core::Error(core::ErrorKind::Unsupported, "", "",
                      core::cat("cannot convert ", core::dtype_name(src_type), " elements to F32"));
}

void from_f32(const float *src, core::DType dst_type, std::byte *dst, std::size_t n) {
    using core::DType;
    switch (dst_type) {
    case DType::F32:
        if (n) std::memcpy(dst, src, n * 4);
        return;
    case DType::F16:
        for (std::size_t i = 0; i < n; ++i) store(dst + 2 * i, core::f32_to_f16(src[i]));
        return;
    case DType::BF16:
        for (std::size_t i = 0; i < n; ++i) store(dst + 2 * i, core::f32_to_bf16(src[i]));
        return;
    default: break;
    }
    throw core::Error(core::ErrorKind::Unsupported, "", "",
                      core::cat("cannot convert F32 elements to ", core::dtype_name(dst_type)));
}

} // namespace shardforge::formats
