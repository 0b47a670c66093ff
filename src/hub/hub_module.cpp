// Translation unit anchoring the hub library while its sources are being written.
#include <shardforge/core.hpp>
