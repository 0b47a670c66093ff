// Test doubles of core::Comm: the collectives of a rank that sees only its own values (the point-to-point calls,
// rank and size are left to each test's fake).
#pragma once
#include <shardforge/exec.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sf_test {

class LocalCollectives : public shardforge::core::Comm {
public:
    void barrier() override {}
    void broadcast(std::string&, int) override {}
    std::uint64_t max(std::uint64_t v) override { return v; }
    std::uint64_t sum(std::uint64_t v) override { return v; }
    double max(double v) override { return v; }
    std::vector<std::string> gather(const std::string& v, int) override { return {v}; }
};

}  // namespace sf_test
