// The Hub options shared by `push` and `export` (docs/hub.md "Usage"), as CLI11 options filling hub::JobOptions.
// The jobs themselves (resolve, download, push) are in the hub module (include/shardforge/hub.hpp).
#pragma once
#include <shardforge/hub.hpp>

#include <CLI/CLI.hpp>

namespace shardforge::cli {

// --endpoint, --token-file, --ca-bundle (what `download` needs too).
void add_hub_connection_options(CLI::App* app, hub::JobOptions& a);
// Those, then --revision, --commit-message, --commit-description, --private,
// --create-pr, --hub-parallel, --no-card, --base-model, --license.
void add_hub_options(CLI::App* app, hub::JobOptions& a);

}  // namespace shardforge::cli
