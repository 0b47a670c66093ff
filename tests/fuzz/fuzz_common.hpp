// Shared by every fuzz entry point: what counts as a finding. A parser may reject input only with
// core::Error (one line naming the file); any other exception escaping it is reported and aborts, so libFuzzer
// records a crash and the replay test fails. Memory errors are found by ASan/UBSan in the fuzz build.
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

namespace sf_fuzz {

template <class F>
void expect_only_core_errors(const char* target, F&& f) {
    try {
        f();
    } catch (const shardforge::core::Error& e) {
        // Contract: one line. A newline inside the message would break the CLI's "one error line" promise.
        if (std::string_view(e.what()).find('\n') != std::string_view::npos) {
            std::fprintf(stderr, "%s: core::Error message spans several lines: %s\n", target, e.what());
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: exception other than core::Error escaped: %s\n", target, e.what());
        std::abort();
    }
}

}  // namespace sf_fuzz
