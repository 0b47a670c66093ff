// `shardforge inspect PATH`: text summaries of safetensors files, GGUF files, model and adapter directories.
#pragma once
#include <string>

namespace shardforge::cli {
[[nodiscard]] std::string inspect(const std::string& path);
}
