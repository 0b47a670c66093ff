// Translation unit anchoring the formats library while its sources are being written.
#include <shardforge/core.hpp>
