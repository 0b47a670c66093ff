// Fuzz target: the serialized plan every rank receives (plan::to_json's bytes, CBOR) -> plan::from_json, then
// a re-serialization round trip and the rank assignment.
#include <shardforge/plan.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    sf_fuzz::expect_only_core_errors("fuzz_plan", [&] {
        const auto p = shardforge::plan::from_json(bytes);
        const auto again = shardforge::plan::from_json(shardforge::plan::to_json(p));
        if (again.files.size() != p.files.size() || again.items.size() != p.items.size()) std::abort();
        (void)shardforge::plan::assign_items(p, 1, 3);
    });
    return 0;
}
