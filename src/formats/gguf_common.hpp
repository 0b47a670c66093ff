// Private helpers shared by the GGUF writer, reader and dump: padding, little-endian packing.
#pragma once
#include <shardforge/formats.hpp>

#include <bit>
#include <cstring>
#include <type_traits>

namespace shardforge::formats::detail {

inline constexpr char gguf_magic[4] = {'G', 'G', 'U', 'F'};
inline constexpr std::uint32_t gguf_version = 3;
inline constexpr std::uint64_t gguf_max_string_length = std::uint64_t{1} << 30;  // GGUF_MAX_STRING_LENGTH
inline constexpr std::uint64_t gguf_max_array_elements = std::uint64_t{1} << 30;  // GGUF_MAX_ARRAY_ELEMENTS
inline constexpr std::size_t ggml_max_name = 64;                                // GGML_MAX_NAME (incl. NUL)
inline constexpr std::size_t ggml_max_dims = 4;

// GGML_PAD: round x up to a multiple of n (n a power of two or not; no overflow check).
[[nodiscard]] constexpr std::uint64_t pad_to(std::uint64_t x, std::uint64_t n) noexcept {
    return (x + n - 1) / n * n;
}

// Host is little-endian (x86-64, aarch64); the build would need byte swaps elsewhere.
static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

template <class T>
void put(std::string& out, T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

inline void put_str(std::string& out, std::string_view s) {
    put<std::uint64_t>(out, s.size());
    out.append(s.data(), s.size());
}

[[nodiscard]] inline bool valid_value_type(std::uint32_t id) noexcept { return id < gguf_value_type_count; }

}  // namespace shardforge::formats::detail
