// Fuzz target: adapter_config.json text (lora::parse_adapter_config), then the rank/alpha pattern lookup on a few
// module names (regexes come from the input).
#include <shardforge/lora.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    sf_fuzz::expect_only_core_errors("fuzz_adapter_config", [&] {
        const auto c = shardforge::lora::parse_adapter_config(text, "adapter_config.json");
        for (const char* m : {"model.layers.0.self_attn.q_proj", "model.layers.11.mlp.down_proj", "lm_head"})
            (void)shardforge::lora::module_scale(c, m);
    });
    return 0;
}
