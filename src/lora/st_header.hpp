// Minimal safetensors header reader for adapter files (headers only; the data is read by the caller at the
// absolute offsets). Kept private to lora so the module does not depend on the formats implementation's progress;
// it validates what the merge relies on (dtype, shape, data range inside the file, nbytes = numel * size).
#pragma once
#include <shardforge/lora.hpp>

#include <filesystem>
#include <vector>

namespace shardforge::lora::detail {

[[nodiscard]] std::vector<AdapterTensor> read_st_header(const std::filesystem::path& file);

}  // namespace shardforge::lora::detail
