// shardforge lora: PEFT adapters: adapter_config.json semantics, key mapping to base tensors, and the merge math
// (fp32 delta via BLAS, DoRA, one rounding). Depends on core and formats. Spec: shared/specs/peft-merge.md.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/formats.hpp>

namespace shardforge::lora {
}  // namespace shardforge::lora
