// Fuzz target: batch job files (`shardforge run JOB.toml`): TOML text -> plan::parse_job (toml++ then our key and
// value checks). Reads no other file; every rejection must be a one-line core::Error.
#include <shardforge/plan.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    sf_fuzz::expect_only_core_errors("fuzz_job", [&] {
        const auto job = shardforge::plan::parse_job(text, "/jobs", "job.toml");
        if (job.variants.empty() || job.names.size() != job.variants.size()) std::abort();  // parse_job's contract
        for (const auto& v : job.variants)
            if (v.base.empty() || v.out.empty() || v.outputs.empty()) std::abort();
    });
    return 0;
}
