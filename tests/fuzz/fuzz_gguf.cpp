// Fuzz target: a whole GGUF file held in memory (GgufReader::parse), then every accepted tensor is read back.
#include <shardforge/formats.hpp>

#include "fuzz_common.hpp"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    sf_fuzz::expect_only_core_errors("fuzz_gguf", [&] {
        const auto r = shardforge::formats::GgufReader::parse(bytes, "fuzz.gguf");
        std::vector<std::byte> buf;
        for (const auto& t : r.tensors()) {
            if (t.offset > size || t.nbytes > size - t.offset) std::abort();  // accepted data must be in the file
            buf.resize(static_cast<std::size_t>(t.nbytes));
            r.read(t, 0, buf);
        }
        for (const auto& kv : r.kvs()) (void)r.find(kv.key);
    });
    return 0;
}
