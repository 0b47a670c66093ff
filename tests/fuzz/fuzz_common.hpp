// Shared by every fuzz entry point: what counts as a finding. A parser may reject input only with
// core::Error (one line naming the file); any other exception escaping it is reported and aborts, so libFuzzer
// records a crash and the replay test fails. Memory errors are found by ASan/UBSan in the fuzz build.
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include <unistd.h>

namespace sf_fuzz {

// A private directory for targets whose parser reads files: created on first use (`prefix` + a random suffix under
// the system temp directory), removed when the fuzzer exits.
inline const std::filesystem::path& temp_dir(const char* prefix) {
    struct Dir {
        std::filesystem::path path;
        explicit Dir(const char* p) {
            std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(p) + "_XXXXXX")).string();
            if (!::mkdtemp(tmpl.data())) std::abort();
            path = tmpl;
        }
        ~Dir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    };
    static const Dir dir(prefix);
    return dir.path;
}

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
