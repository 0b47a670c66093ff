// Shared by the quantizer oracle tests: ggml's prebuilt libggml-base.so (the one node-llama-cpp ships, built from the
// reference commit) loaded with dlopen, deterministic input generators, and byte/bit comparisons that print the
// first ten mismatches. Header-only; each test binary gets its own copy (one translation unit per test file).
#pragma once
#include <shardforge/quant.hpp>

#include "quant/quantize_at.hpp"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace oracle {

namespace sf = shardforge;
using sf::quant::GgmlType;

using QuantizeChunkFn = std::size_t (*)(int type, const float* src, void* dst, std::int64_t start, std::int64_t nrows,
                                        std::int64_t n_per_row, const float* imatrix);
using DequantizeRowFn = void (*)(const void* x, float* y, std::int64_t k);
using RequiresImatrixFn = bool (*)(int type);

// Directory of node-llama-cpp's prebuilt libraries (libggml-base.so, libllama.*.so).
inline std::string prebuilt_dir() {
    std::string root = SHARDFORGE_TEST_SOURCE_DIR;
    if (const char* s = std::getenv("SHARDFORGE_SOURCE_DIR")) root = s;
    return root + "/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
}

class Ggml {
public:
    static Ggml& get() {
        static Ggml g;
        return g;
    }
    bool ok() const { return chunk_ != nullptr; }
    const std::string& why() const { return why_; }
    void* symbol(const char* name) const { return handle_ ? dlsym(handle_, name) : nullptr; }

    std::vector<std::uint8_t> quantize(GgmlType t, const std::vector<float>& x, std::int64_t nrows, std::int64_t n,
                                       const float* imatrix) const {
        std::vector<std::uint8_t> out(sf::quant::row_bytes(t, n) * static_cast<std::size_t>(nrows) + 1, 0xA5);
        const std::size_t r = chunk_(static_cast<int>(t), x.data(), out.data(), 0, nrows, n, imatrix);
        EXPECT_EQ(r, out.size() - 1);
        EXPECT_EQ(out.back(), 0xA5) << "ggml wrote past the row bytes";
        out.pop_back();
        return out;
    }
    DequantizeRowFn dequantizer(GgmlType t) const {
        std::string name;
        if (t == GgmlType::F16) name = "ggml_fp16_to_fp32_row";
        else if (t == GgmlType::BF16) name = "ggml_bf16_to_fp32_row";
        else name = "dequantize_row_" + std::string(sf::quant::traits(t).name);
        return reinterpret_cast<DequantizeRowFn>(symbol(name.c_str()));
    }
    RequiresImatrixFn requires_imatrix() const {
        return reinterpret_cast<RequiresImatrixFn>(symbol("ggml_quantize_requires_imatrix"));
    }

private:
    Ggml() {
        const std::string p = prebuilt_dir() + "/libggml-base.so";
        if (!std::filesystem::exists(p)) {
            why_ = "ggml oracle not installed: " + p + " is missing (tests/run.sh installs node-llama-cpp)";
            return;
        }
        handle_ = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) {
            why_ = std::string("dlopen failed: ") + dlerror();
            return;
        }
        chunk_ = reinterpret_cast<QuantizeChunkFn>(symbol("ggml_quantize_chunk"));
        if (!chunk_) why_ = "libggml-base.so has no ggml_quantize_chunk";
    }
    void* handle_ = nullptr;
    QuantizeChunkFn chunk_ = nullptr;
    std::string why_;
};

#define REQUIRE_GGML()                                                             \
    do {                                                                           \
        if (!::oracle::Ggml::get().ok()) GTEST_SKIP() << ::oracle::Ggml::get().why(); \
    } while (0)

// Deterministic generators (our own LCG, no std:: distributions whose output varies across libstdc++ versions).
struct Rng {
    std::uint64_t s;
    explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    std::uint32_t next() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>(s >> 32);
    }
    float uniform() { return static_cast<float>(next() >> 8) / 16777216.0f; }  // [0,1)
    float normal() {
        const double u1 = (next() + 1.0) / 4294967297.0, u2 = next() / 4294967296.0;
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

// The golden input of kernels_test.cpp: 64 rows x 512.
inline std::vector<float> golden_input() {
    std::uint32_t s = 12345;
    auto rnd = [&s]() {
        s = s * 1664525u + 1013904223u;
        return static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
    };
    std::vector<float> x(32768);
    for (int i = 0; i < 32768; ++i) {
        const float a = rnd(), b = rnd(), c = rnd();
        float v = (a + b) + c;
        if (i % 97 == 0) v *= 6.0f;
        if ((i / 256) % 7 == 3) v *= 0.01f;
        x[static_cast<std::size_t>(i)] = v * 0.05f;
    }
    for (int i = 2560; i < 2816; ++i) x[static_cast<std::size_t>(i)] = 0;
    return x;
}

// Compares bytes; reports the first ten mismatches with block index and byte offset within the block.
inline ::testing::AssertionResult same_bytes(GgmlType t, const std::vector<std::uint8_t>& got,
                                             const std::vector<std::uint8_t>& want, const std::string& what) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << want.size();
    const std::size_t bb = sf::quant::traits(t).block_bytes;
    std::size_t n_bad = 0;
    std::string msg;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        if (n_bad < 10) {
            char line[160];
            std::snprintf(line, sizeof line, "\n  block %zu byte %zu: got 0x%02x expected 0x%02x", i / bb, i % bb,
                          got[i], want[i]);
            msg += line;
        }
        ++n_bad;
    }
    if (n_bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << " [" << sf::quant::type_upper_name(t) << "]: " << n_bad
                                         << " of " << got.size() << " bytes differ" << msg;
}

// Every SIMD level up to what this CPU (and SHARDFORGE_SIMD) allows: each path must give ggml's bytes.
inline std::vector<sf::core::SimdLevel> simd_levels() {
    using sf::core::SimdLevel;
    std::vector<SimdLevel> l{SimdLevel::Scalar};
    if (sf::core::simd_level() >= SimdLevel::Avx2) l.push_back(SimdLevel::Avx2);
    if (sf::core::simd_level() >= SimdLevel::Avx512) l.push_back(SimdLevel::Avx512);
    return l;
}

// Our quantize_rows (at every SIMD level, and through the public entry point) vs ggml_quantize_chunk on the same
// input; also checks we write exactly the row bytes.
inline ::testing::AssertionResult check_type(GgmlType t, const std::vector<float>& x, std::int64_t nrows,
                                             std::int64_t n, const std::string& what,
                                             const float* imatrix = nullptr) {
    const auto want = Ggml::get().quantize(t, x, nrows, n, imatrix);
    auto check = [&](auto&& quantize, const std::string& path) {
        std::vector<std::uint8_t> got(want.size() + 1, 0x5A);
        quantize(got.data());
        if (got.back() != 0x5A)
            return ::testing::AssertionFailure() << what << " " << path << ": wrote past the row bytes";
        got.pop_back();
        return same_bytes(t, got, want, what + " " + path);
    };
    for (const auto level : simd_levels()) {
        auto r = check([&](void* dst) { sf::quant::quantize_rows_at(level, t, x.data(), dst, nrows, n, imatrix); },
                       std::string("(") + std::string(sf::core::to_string(level)) + ")");
        if (!r) return r;
    }
    return check([&](void* dst) { sf::quant::quantize_rows(t, x.data(), dst, nrows, n, imatrix); }, "(quantize_rows)");
}

inline bool same_float_bits(float a, float b) {
    if (std::isnan(a) && std::isnan(b)) return true;
    std::uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    return ua == ub;
}

// Our dequantize_rows vs ggml's dequantize_row_<type> on the same block bytes: identical float bits.
inline ::testing::AssertionResult check_dequant(GgmlType t, const std::vector<std::uint8_t>& q, std::int64_t n,
                                                const std::string& what) {
    auto fn = Ggml::get().dequantizer(t);
    if (!fn) return ::testing::AssertionFailure() << "no ggml dequantizer for " << sf::quant::type_upper_name(t);
    std::vector<float> want(static_cast<std::size_t>(n)), got(static_cast<std::size_t>(n));
    fn(q.data(), want.data(), n);
    sf::quant::dequantize_rows(t, q.data(), got.data(), 1, n);
    std::size_t n_bad = 0;
    std::string msg;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (same_float_bits(got[i], want[i])) continue;
        if (n_bad < 10) {
            char line[160];
            std::snprintf(line, sizeof line, "\n  element %zu: got %a expected %a", i, static_cast<double>(got[i]),
                          static_cast<double>(want[i]));
            msg += line;
        }
        ++n_bad;
    }
    if (n_bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << " [" << sf::quant::type_upper_name(t) << "]: " << n_bad
                                         << " elements differ" << msg;
}

}  // namespace oracle
