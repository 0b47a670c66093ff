// shardforge model: Hugging Face model directories: config.json, architectures (HF -> GGUF tensor map, transforms,
// metadata), tokenizers, and the built-in demo model. Depends on core and formats.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/formats.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace shardforge::model {

// ==== architectures and config (section owned by the architecture work) ====

// ==== end architectures ====

// ==== tokenizers (section owned by the tokenizer work) ====

// ==== end tokenizers ====

// ==== demo model (section owned by the demo work) ====

// ==== end demo ====

}  // namespace shardforge::model
