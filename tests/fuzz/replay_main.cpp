// Replay driver for normal (non-libFuzzer) builds: runs the fuzz entry point once on every file named on the
// command line or found (recursively) in a directory named there. A missing directory counts as empty (no
// regressions yet); no input at all is a failure, so a lost seed corpus cannot pass silently.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run_one(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replay %s (%zu bytes)\n", p.c_str(), bytes.size());
    // A copy in an exactly sized heap block, so reads past the end are caught by ASan builds.
    std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t n = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        if (std::filesystem::is_directory(arg)) {
            std::vector<std::filesystem::path> files;
            for (const auto& e : std::filesystem::recursive_directory_iterator(arg))
                if (e.is_regular_file()) files.push_back(e.path());
            std::sort(files.begin(), files.end());
            for (const auto& f : files) run_one(f), ++n;
        } else if (std::filesystem::is_regular_file(arg)) {
            run_one(arg), ++n;
        }
    }
    std::printf("replayed %zu inputs\n", n);
    if (n == 0) {
        std::fprintf(stderr, "no inputs found: the seed corpus is missing\n");
        return 1;
    }
    return 0;
}
