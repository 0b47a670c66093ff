// Environment lookup and byte counts for messages.
#include <shardforge/core.hpp>

#include <cstdio>
#include <cstdlib>

namespace shardforge::core {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

std::string human_size(std::uint64_t b) {
    char buf[32];
    const double x = static_cast<double>(b);
    if (b >= 1000000000ULL) std::snprintf(buf, sizeof buf, "%.2f GB", x / 1e9);
    else if (b >= 1000000ULL) std::snprintf(buf, sizeof buf, "%.1f MB", x / 1e6);
    else if (b >= 1000ULL) std::snprintf(buf, sizeof buf, "%.1f kB", x / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
    return buf;
}

}  // namespace shardforge::core
