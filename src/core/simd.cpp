// SIMD dispatch level: CPU support (cpuid through the compiler's builtin), capped by SHARDFORGE_SIMD.
#include <shardforge/core.hpp>


namespace shardforge::core {
namespace {
SimdLevel detect() noexcept {
    SimdLevel cpu = SimdLevel::Scalar;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) cpu = SimdLevel::Avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        cpu = SimdLevel::Avx512;
#endif
    SimdLevel cap = SimdLevel::Avx512;
    if (const std::string v = env("SHARDFORGE_SIMD"); !v.empty()) {
        if (v == "scalar") cap = SimdLevel::Scalar;
        else if (v == "avx2") cap = SimdLevel::Avx2;
        // "avx512" (or anything else): no cap below the CPU's level
    }
    return cpu < cap ? cpu : cap;
}
}  // namespace

SimdLevel simd_level() noexcept {
    static const SimdLevel level = detect();
    return level;
}

std::string_view to_string(SimdLevel l) noexcept {
    switch (l) {
        case SimdLevel::Scalar: return "scalar";
        case SimdLevel::Avx2: return "avx2";
        case SimdLevel::Avx512: return "avx512";
    }
    return "?";
}

}  // namespace shardforge::core
