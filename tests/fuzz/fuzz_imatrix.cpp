// Fuzz target: an importance-matrix file (llama-imatrix's legacy .dat or its GGUF form), written to a private temp
// file and read by formats::read_imatrix (the reader takes a path: the GGUF branch maps the file).
#include <shardforge/imatrix.hpp>

#include "fuzz_common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

const std::filesystem::path& temp_dir() {
    static const std::filesystem::path dir = [] {
        std::string tmpl = (std::filesystem::temp_directory_path() / "sf_fuzz_imatrix_XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) std::abort();
        return std::filesystem::path(tmpl);
    }();
    return dir;
}

struct Cleanup {
    ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(temp_dir(), ec);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Cleanup cleanup;
    const std::filesystem::path p = temp_dir() / "imatrix.dat";
    {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    sf_fuzz::expect_only_core_errors("fuzz_imatrix", [&] { (void)shardforge::formats::read_imatrix(p); });
    return 0;
}
