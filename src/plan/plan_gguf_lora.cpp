// GGUF LoRA adapter output (issue 9; being written).
#include "plan_internal.hpp"

namespace shardforge::plan::detail {
void add_gguf_lora_output(const Options&, const OutputSpec&, const std::vector<lora::Adapter>&, Tables&,
                          const nlohmann::json&, Plan&) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "--format gguf-lora is not implemented yet");
}
}  // namespace shardforge::plan::detail
