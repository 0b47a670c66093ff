// shardforge ollama (not yet implemented; see the ollama issue).
#pragma once
#include <shardforge/core.hpp>

namespace shardforge::ollama {
}  // namespace shardforge::ollama
