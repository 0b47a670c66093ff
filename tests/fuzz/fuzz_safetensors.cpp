// Fuzz target: a whole .safetensors file. The u64 prefix and header bytes go to parse_safetensors_header with
// the real file size, as SafetensorsReader::open does.
#include <shardforge/formats.hpp>

#include "fuzz_common.hpp"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n > size - 8) return 0;  // open() rejects this before parsing (checked by the reader tests)
    const std::string_view header(reinterpret_cast<const char*>(data) + 8, static_cast<std::size_t>(n));
    sf_fuzz::expect_only_core_errors("fuzz_safetensors", [&] {
        const auto h = shardforge::formats::parse_safetensors_header(header, 8 + n, size, "fuzz.safetensors");
        // Accepted headers must describe data inside the file.
        for (const auto& t : h.tensors)
            if (t.offset < h.data_start || t.offset > size || t.nbytes > size - t.offset) std::abort();
    });
    return 0;
}
