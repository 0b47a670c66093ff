// shardforge core: errors, element types, shapes, bit-exact scalar conversions, hashing, environment, logging.
// The only module every other module includes. Knows nothing of files, MPI or formats.
#pragma once

#include <shardforge/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#if defined(__CUDACC__)
#define SF_HD __host__ __device__ inline
#else
#define SF_HD inline
#endif

namespace shardforge::core {

// ---------------------------------------------------------------- strings
// GCC 12 has no <format>: core::cat("wrote ", path, " (", n, " tensors)").
template <class... Args>
[[nodiscard]] std::string cat(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

// std::visit with one lambda per alternative: std::visit(core::Overloaded{[](const A&) {...}, [](const B&) {...}}, v).
template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// ---------------------------------------------------------------- errors
enum class ErrorKind { Usage, BadInput, Unsupported, Io, Network, Verify, Interrupted, Internal };

[[nodiscard]] std::string_view to_string(ErrorKind k) noexcept;
// Process exit code for an error kind (README.md, "Exit codes"): 1 internal, 2 usage, 3 bad input,
// 4 unsupported, 5 I/O, 6 network, 7 verify, 75 interrupted (resumable).
[[nodiscard]] int exit_code(ErrorKind k) noexcept;

// One exception type; what() is the single line the user sees:
//   "<file>: tensor '<tensor>': <why>"   (file/tensor parts omitted when empty)
class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, std::string file, std::string tensor, std::string why);
    ErrorKind kind() const noexcept { return kind_; }
    const std::string& file() const noexcept { return file_; }
    const std::string& tensor() const noexcept { return tensor_; }
    const std::string& why() const noexcept { return why_; }

private:
    ErrorKind kind_;
    std::string file_, tensor_, why_;
};

[[noreturn]] void fail_check(const char* cond, const char* file, int line, const std::string& msg);

#define SF_CHECK(cond, msg)                                                     \
    do {                                                                        \
        if (!(cond)) ::shardforge::core::fail_check(#cond, __FILE__, __LINE__, (msg)); \
    } while (0)

// ---------------------------------------------------------------- element types
// Element types of safetensors / HF checkpoints. ggml block types live in quant.hpp.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

[[nodiscard]] std::size_t dtype_size(DType t) noexcept;          // bytes per element
[[nodiscard]] std::string_view dtype_name(DType t) noexcept;     // safetensors spelling: "BF16"
[[nodiscard]] bool parse_dtype(std::string_view s, DType& out) noexcept;  // "BF16" -> BF16
[[nodiscard]] bool is_float(DType t) noexcept;

using Shape = std::vector<std::int64_t>;
[[nodiscard]] std::int64_t numel(const Shape& s) noexcept;
[[nodiscard]] std::string shape_str(const Shape& s);  // "[256, 768]"

// ---------------------------------------------------------------- scalar conversions
// Bit-exact, branchy-but-portable routines shared by CPU and CUDA code (SF_HD). All float -> narrower
// conversions round to nearest, ties to even, as PyTorch's .to() and ggml's GGML_FP32_TO_FP16 do.
SF_HD std::uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
}
SF_HD float bits_f32(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}

SF_HD float bf16_to_f32(std::uint16_t h) { return bits_f32(std::uint32_t{h} << 16); }

// RNE; NaN stays NaN (quiet bit set), as torch and ggml do.
SF_HD std::uint16_t f32_to_bf16(float f) {
    std::uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 64u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}

SF_HD float f16_to_f32(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    std::uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: value = mant * 2^-24
        int e = -1;
        do {
            ++e;
            mant <<= 1;
        } while ((mant & 0x400u) == 0);
        return bits_f32(sign | ((112u - static_cast<std::uint32_t>(e)) << 23) | ((mant & 0x3ffu) << 13));
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

// RNE with subnormals, overflow to inf, NaN to 0x7e00|sign (ggml_compute_fp32_to_fp16; F16C agrees on non-NaN).
SF_HD std::uint16_t f32_to_f16(float f) {
    const std::uint32_t u = f32_bits(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // ggml: NaN -> 0x7e00|sign
    if (a >= 0x47800000u) {  // >= 65536 before rounding: overflow (values in [65520, 65536) handled below)
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    }
    if (a < 0x38800000u) {  // below the smallest normal 2^-14: subnormal or zero
        if (a < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25: rounds to 0 (2^-25 ties to 0)
        const std::uint32_t e = a >> 23;
        const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // 14..24 (result mantissa = m >> (shift)) relative to 2^-24 units
        const std::uint32_t q = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u);
        const std::uint32_t half = 1u << (shift - 1u);
        std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
        return static_cast<std::uint16_t>(sign | r);
    }
    std::uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // RNE on the 13 dropped bits
    r -= 0x38000000u;                                   // rebias 127 -> 15
    r >>= 13;
    if (r >= 0x7c00u) r = 0x7c00u;
    return static_cast<std::uint16_t>(sign | r);
}

// OCP FP8 E4M3FN (no inf; 0x7f/0xff NaN) and E5M2 to f32. Exact.
SF_HD float f8e4m3_to_f32(std::uint8_t v) {
    const std::uint32_t sign = std::uint32_t{v & 0x80u} << 24;
    const std::uint32_t exp = (v >> 3) & 0xfu;
    const std::uint32_t mant = v & 0x7u;
    if (exp == 0xf && mant == 0x7) return bits_f32(sign | 0x7fc00000u);
    if (exp == 0) {
        const float m = static_cast<float>(mant) * 0.001953125f;  // mant * 2^-9
        return sign ? -m : m;
    }
    return bits_f32(sign | ((exp + 120u) << 23) | (mant << 20));
}
SF_HD float f8e5m2_to_f32(std::uint8_t v) { return f16_to_f32(static_cast<std::uint16_t>(std::uint16_t{v} << 8)); }

// ---------------------------------------------------------------- SIMD dispatch
// The widest vector path the host kernels may use: what the CPU supports, capped by SHARDFORGE_SIMD
// (scalar | avx2 | avx512) when set. Every path computes the same bits (docs/engine.md, "Determinism"); the cap
// exists so tests can prove it. Read once per process.
enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };
[[nodiscard]] SimdLevel simd_level() noexcept;
[[nodiscard]] std::string_view to_string(SimdLevel l) noexcept;

// ---------------------------------------------------------------- hashing (OpenSSL EVP; src/core/hash.cpp)
// SHA-256 for every digest shardforge writes or compares: Hub LFS oids, Ollama blob digests, the resume journal,
// the run report. Hex is lower-case.
using Sha256Digest = std::array<std::uint8_t, 32>;
class Sha256 {  // incremental
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::span<const std::byte> bytes);
    void update(std::string_view bytes);
    [[nodiscard]] Sha256Digest final();  // once

private:
    void* ctx_;
};
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
[[nodiscard]] std::string sha256_hex(std::string_view bytes);
// One sequential read of the file; Error(Io) naming it when it cannot be opened or read.
[[nodiscard]] std::string sha256_file_hex(const std::string& path);

// ---------------------------------------------------------------- small input files (src/core/input.cpp)
// The JSON and text files read whole into memory (config.json, tokenizer files, adapter_config.json, the shard
// index) are untrusted (docs/formats.md, "Hostile inputs"): their size is checked before anything is allocated and
// JSON nesting is bounded before it is parsed.
inline constexpr std::uint64_t max_config_file_bytes = std::uint64_t{16} << 20;      // config-like JSON
inline constexpr std::uint64_t max_tokenizer_file_bytes = std::uint64_t{128} << 20;  // tokenizer files, index
inline constexpr std::size_t max_json_depth = 64;

// The cap for a file of this name: max_tokenizer_file_bytes for tokenizer.json, tokenizer.model, vocab.json,
// merges.txt, tokenizer_config.json, special_tokens_map.json, added_tokens.json, chat templates and
// model.safetensors.index.json; max_config_file_bytes for any other name.
[[nodiscard]] std::uint64_t input_file_cap(std::string_view filename) noexcept;
// The whole file. Error(BadInput) naming it when it is larger than its cap (input_file_cap of its name), or larger
// than `max_bytes` when given; Error(Io) when it cannot be opened or read. Never allocates more than the cap.
[[nodiscard]] std::string read_input_file(const std::string& path, std::uint64_t max_bytes = 0);
// Error(BadInput) naming `file` when `{`/`[` nest deeper than max_json_depth outside strings. A linear scan that
// allocates nothing: call it before handing the text to a JSON parser.
void check_json_depth(std::string_view text, const std::string& file);

// ---------------------------------------------------------------- environment and sizes (src/core/util.cpp)
// The value of an environment variable, "" when it is unset (an empty value reads the same).
[[nodiscard]] std::string env(const char* name);
// A byte count for messages, decimal units: "512 B", "2.0 kB", "3.3 MB", "1.25 GB".
[[nodiscard]] std::string human_size(std::uint64_t bytes);

// ---------------------------------------------------------------- logging
enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };
void set_log_level(LogLevel l) noexcept;
void set_log_rank(int rank) noexcept;  // prefixes "[rank N]" on ranks != 0
[[nodiscard]] LogLevel log_level() noexcept;
namespace log {
void debug(const std::string& msg);
void info(const std::string& msg);   // rank 0 only prints info
void warn(const std::string& msg);
void error(const std::string& msg);
}  // namespace log

}  // namespace shardforge::core
