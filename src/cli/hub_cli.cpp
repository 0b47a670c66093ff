// CLI11 options of the hub module (see hub_cli.hpp).
#include "hub_cli.hpp"

namespace shardforge::cli {

void add_hub_connection_options(CLI::App* app, hub::JobOptions& a) {
    app->add_option("--endpoint", a.endpoint, "Hub URL (default: $HF_ENDPOINT or https://huggingface.co)");
    app->add_option("--token-file", a.token_file,
                    "File holding the Hub token (default: $HF_TOKEN, then $HF_HOME/token or ~/.cache/huggingface/token). "
                    "Tokens are never accepted on the command line");
    app->add_option("--ca-bundle", a.ca_bundle, "Extra CA certificates (PEM) for TLS through proxies; verification stays on");
}

void add_hub_options(CLI::App* app, hub::JobOptions& a) {
    add_hub_connection_options(app, a);
    app->add_option("--revision", a.revision, "Branch to commit to")->capture_default_str();
    app->add_option("--commit-message", a.commit_message, "Commit title")->capture_default_str();
    app->add_option("--commit-description", a.commit_description, "Commit description");
    app->add_flag("--private", a.private_repo, "Create the repo private (when it does not exist yet)");
    app->add_flag("--create-pr", a.create_pr, "Open a pull request instead of committing to the branch");
    app->add_option("--hub-parallel", a.parallel, "Concurrent object/part uploads per rank")->capture_default_str();
    app->add_option("--transfer", a.transfer,
                    "How LFS files travel: auto (offer Xet, the Hub decides), lfs (Git LFS basic/multipart only) or xet "
                    "(Xet storage; error if the Hub does not pick it)")
        ->check(CLI::IsMember({"auto", "lfs", "xet"}))
        ->capture_default_str();
    app->add_flag("--no-card", a.no_card, "Do not write a model card README.md");
    app->add_option("--base-model", a.base_models, "Model card base_model (repeatable; default: --base when a repo id)");
    app->add_option("--license", a.license, "Model card license (default: the base's license when known)");
}

}  // namespace shardforge::cli
