// Translation unit anchoring the lora library while its sources are being written.
#include <shardforge/core.hpp>
