// Seed maker for fuzz_plan: writes plan::to_json (the bytes rank 0 broadcasts) of make_plan on a model directory.
// Usage: fuzz_plan_seed BASE ADAPTER|- OUTDIR FORMATS FILE   (used by tests/fuzz/make_seeds.sh)
#include <shardforge/plan.hpp>

#include <cstdio>
#include <fstream>

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s BASE ADAPTER|- OUTDIR FORMATS FILE\n", argv[0]);
        return 2;
    }
    try {
        shardforge::plan::Options o;
        o.base = argv[1];
        if (std::string(argv[2]) != "-") o.adapters = {{argv[2], 1.0f}};
        o.out = argv[3];
        o.outputs = shardforge::plan::parse_formats(argv[4]);
        o.max_shard_size = 20'000;
        o.split_max_tensors = 8;
        const std::string bytes = shardforge::plan::to_json(shardforge::plan::make_plan(o));
        std::ofstream(argv[5], std::ios::binary) << bytes;
        std::printf("%s: %zu bytes\n", argv[5], bytes.size());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
