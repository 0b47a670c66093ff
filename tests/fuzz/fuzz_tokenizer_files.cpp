// Fuzz target: the tokenizer side files read beside tokenizer.json. The input is split at NUL bytes into up to
// five files of a private temp directory: tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// added_tokens.json, merges.txt (a missing part: the file is absent); then model::read_tokenizer, the GGUF arch
// cycling with the size (llama, qwen2, gemma3, phi3, glm4moe, deepseek2), as in fuzz_tokenizer.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include "fuzz_common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const char* const names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json", "merges.txt"};
    static const char* const archs[] = {"llama", "qwen2", "gemma3", "phi3", "glm4moe", "deepseek2"};
    const std::string arch = archs[size % (sizeof(archs) / sizeof(archs[0]))];
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    for (std::size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        const std::filesystem::path p = sf_fuzz::temp_dir("sf_fuzz_tokf") / names[i];
        std::error_code ec;
        std::filesystem::remove(p, ec);
        if (rest.empty() && i > 0) continue;
        const std::size_t nul = rest.find('\0');
        const std::string_view part = rest.substr(0, nul);
        rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f.write(part.data(), static_cast<std::streamsize>(part.size()));
    }
    sf_fuzz::expect_only_core_errors("fuzz_tokenizer_files(read_tokenizer)", [&] {
        (void)shardforge::model::read_tokenizer(sf_fuzz::temp_dir("sf_fuzz_tokf"), nlohmann::json::object(), arch, 1000);
    });
    return 0;
}
