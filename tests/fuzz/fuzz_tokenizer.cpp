// Fuzz target: tokenizer.json text. detect_bpe_pre on the parsed JSON, then read_tokenizer on a private temp
// directory holding it as tokenizer.json. The GGUF arch (which breaks pre-tokenizer ties) cycles with the size.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include "fuzz_common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const char* const archs[] = {"llama", "qwen2", "gemma3", "phi3", "starcoder2", "llama4"};
    const std::string arch = archs[size % (sizeof(archs) / sizeof(archs[0]))];
    const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded())
        sf_fuzz::expect_only_core_errors("fuzz_tokenizer(detect_bpe_pre)", [&] {
            (void)shardforge::model::detect_bpe_pre(j, nlohmann::json::object(), arch, "tokenizer.json");
        });
    {
        std::ofstream f(sf_fuzz::temp_dir("sf_fuzz_tok") / "tokenizer.json", std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    sf_fuzz::expect_only_core_errors("fuzz_tokenizer(read_tokenizer)", [&] {
        (void)shardforge::model::read_tokenizer(sf_fuzz::temp_dir("sf_fuzz_tok"), nlohmann::json::object(), arch, 1000);
    });
    return 0;
}
