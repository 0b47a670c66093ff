// Translation unit anchoring the ollama library while its sources are being written.
#include <shardforge/core.hpp>
