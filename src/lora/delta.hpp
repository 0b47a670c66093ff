// lora::delta_f32 at a chosen SIMD level (tests compare every level the CPU has; delta_f32 uses core::simd_level()).
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>

namespace shardforge::lora {

// C = B @ A in the order of kernels/delta.hpp with the given path; a level above the CPU's support is not checked
// here (the caller caps it, as core::simd_level() does).
void delta_f32_at(core::SimdLevel level, const float* b, const float* a, std::int64_t m, std::int64_t k,
                  std::int64_t n, float* c) noexcept;

}  // namespace shardforge::lora
