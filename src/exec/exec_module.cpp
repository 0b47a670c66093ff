// Translation unit anchoring the exec library while its sources are being written.
#include <shardforge/core.hpp>
