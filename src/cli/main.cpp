#include <shardforge/core.hpp>
int main() { return 0; }
