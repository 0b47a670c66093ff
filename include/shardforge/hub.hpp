// shardforge hub (not yet implemented; see the hub issue).
#pragma once
#include <shardforge/core.hpp>

namespace shardforge::hub {
}  // namespace shardforge::hub
