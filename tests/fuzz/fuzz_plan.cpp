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
        double n_units = 0;  // units() enumerates every row block: bound the work on absurd shapes
        for (const auto& it : p.items)
            n_units += it.block_rows > 0 && !it.shape.empty() ? static_cast<double>(it.shape[0]) / static_cast<double>(it.block_rows) : 1;
        if (n_units < 1e5) {
            const auto u = shardforge::plan::units(p);
            (void)shardforge::plan::assign_units(u, p, 1, 3);
        }
    });
    return 0;
}
