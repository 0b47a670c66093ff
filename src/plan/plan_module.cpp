// Translation unit anchoring the plan library while its sources are being written.
#include <shardforge/core.hpp>
