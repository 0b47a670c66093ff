// Translation unit anchoring the model library while its sources are being written.
#include <shardforge/core.hpp>
