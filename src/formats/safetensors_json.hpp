// Strict JSON for safetensors headers and index files: nlohmann's parser, plus rejection of duplicate keys
// (nlohmann silently keeps the last one, which would let two tensors share a name).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace shardforge::formats::detail {

// Thrown by parse_json_no_duplicates; `path` is the chain of keys down to the duplicate (last = duplicate key).
struct DuplicateKey {
    std::vector<std::string> path;
};

// Thrown for text that is not one valid JSON value (invalid UTF-8 and NUL bytes included: nlohmann's lexer
// would take a NUL as the end of input and ignore whatever follows it).
struct InvalidJson {
    std::string why;
};

// Throws InvalidJson, or DuplicateKey on a repeated key in any object.
[[nodiscard]] nlohmann::json parse_json_no_duplicates(std::string_view text);

} // namespace shardforge::formats::detail
