// shardforge exec: executes a plan on MPI ranks.
#pragma once
#include <shardforge/plan.hpp>
namespace shardforge::exec {
}
