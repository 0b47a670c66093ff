// Fuzz target: an importance-matrix file (llama-imatrix's legacy .dat or its GGUF form), written to a private temp
// file and read by formats::read_imatrix (the reader takes a path: the GGUF branch maps the file).
#include <shardforge/imatrix.hpp>

#include "fuzz_common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path p = sf_fuzz::temp_dir("sf_fuzz_imatrix") / "imatrix.dat";
    {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    sf_fuzz::expect_only_core_errors("fuzz_imatrix", [&] { (void)shardforge::formats::read_imatrix(p); });
    return 0;
}
