// shardforge plan: the export plan as data (see plan.cpp).
#pragma once
#include <shardforge/core.hpp>
namespace shardforge::plan {
}
