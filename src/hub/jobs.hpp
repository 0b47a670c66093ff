// Private to src/hub: what the collective jobs (jobs.cpp, overlap.cpp) share.
#pragma once
#include <shardforge/comm.hpp>
#include <shardforge/hub.hpp>

#include <optional>
#include <string>

namespace shardforge::hub {

// The client configuration of a job: endpoint and token discovery, --ca-bundle, --hub-parallel, the rank in the
// User-Agent, and the test knobs of docs/hub.md (SHARDFORGE_HUB_MAX_FILE_SIZE, ..._BACKOFF_BASE_S,
// ..._COMMIT_TIMEOUT_S).
[[nodiscard]] Config make_config(const JobOptions& o, int rank = 0);

// The commit options shared by `push` and `export --push-to-hub`; the repo id must be ORG/NAME (no @REV), else
// Usage naming `option`.
[[nodiscard]] PushOptions push_options(const std::string& repo_id, const JobOptions& o, const std::string& option);

inline void log_info(const std::string& s) { core::log::info(s); }
inline void log_warn(const std::string& s) { core::log::warn(s); }

// Runs f on rank 0 only; every rank then throws the same error if it failed. Collective.
template <class F>
void on_root(core::Comm& comm, F&& f) {
    std::optional<core::Error> err;
    if (comm.rank() == 0) err = core::capture(f);
    if (auto e = core::agree_on_error(comm, err)) throw *e;
}

}  // namespace shardforge::hub
