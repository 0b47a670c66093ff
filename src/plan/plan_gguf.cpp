// GGUF outputs of the plan (being integrated).
#include "plan_internal.hpp"

namespace shardforge::plan::detail {
void add_gguf_output(const Options&, const OutputSpec&, Tables&, const nlohmann::json&, Plan&) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "GGUF output is not wired yet");
}
}  // namespace shardforge::plan::detail
