// shardforge formats: on-disk file formats (safetensors, GGUF). Readers validate strictly and name the file and
// tensor in every error; writers produce header bytes from a plan so ranks can write data at final offsets.
// Depends on core and quant (ggml type sizes) only.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::formats {

// ==== safetensors (section owned by the safetensors work) ====

// ==== end safetensors ====

// ==== GGUF (section owned by the GGUF work) ====

// ==== end GGUF ====

}  // namespace shardforge::formats
