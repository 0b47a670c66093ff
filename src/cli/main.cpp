// shardforge command line: CLI11 -> one library entry point per subcommand. Each subcommand is one function below
// that defines its options and returns what runs it; main() parses, runs the chosen one and is the only place that
// maps errors to exit codes (README.md, "Exit codes").
#include <shardforge/exec.hpp>
#include <shardforge/hub.hpp>
#include <shardforge/model.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "export.hpp"
#include "hub_cli.hpp"
#include "inspect.hpp"

namespace sf = shardforge;
namespace fs = std::filesystem;
using sf::cli::BatchArgs;
using sf::cli::ExportArgs;

namespace {

constexpr const char* exit_codes_help =
    "Exit codes: 0 ok, 1 internal error, 2 usage error (also: --out held by another run), 3 bad input,\n"
    "            4 unsupported input, 5 I/O error, 6 network/Hub error, 7 verification failed (resumable),\n"
    "            75 interrupted (resumable).";

// A subcommand: its CLI11 app, and what runs it once the command line is parsed (returns the exit status).
struct Command {
    CLI::App* app;
    std::function<int()> run;
};

// export: inputs and outputs.
void add_export_io_options(CLI::App* exp, ExportArgs& ex) {
    exp->add_option("--base", ex.base,
                    "Base model directory (config.json, *.safetensors [+ index]), or a Hub repo ORG/NAME[@REV] resolved "
                    "from the Hugging Face cache (HF_HOME / HF_HUB_CACHE) or fetched with --download")
        ->required();
    exp->add_option("--adapter", ex.adapters,
                    "PEFT LoRA adapter directory, optionally with a weight: DIR[:WEIGHT]. Repeatable; applied in "
                    "order. Omit to convert the base alone.");
    exp->add_option("--out", ex.out, "Output directory (must be empty unless --overwrite)")->required();
    exp->add_option("--format", ex.formats,
                    "Comma-separated outputs, all from one read of the inputs: safetensors, gguf:TYPE (f32, f16, "
                    "bf16, q8_0, auto, or a llama-quantize type such as q4_k_m), gguf-lora[:f32|f16|bf16|q8_0] (the adapter "
                    "as a llama.cpp LoRA; PEFT scaling folded into lora_b), bnb-nf4 or bnb-fp4 (bitsandbytes 4-bit "
                    "checkpoint for transformers), gguf-mtp:TYPE (GLM-4.5's MTP layer alone, as a speculative draft)")
        ->capture_default_str();
    exp->add_option("--dtype", ex.dtype, "safetensors output dtype: bf16, f16 or f32 (default: the base's)");
    exp->add_option("--max-shard-size", ex.max_shard_size, "safetensors shard size limit, HF syntax (500MB, 5GB)")
        ->capture_default_str();
    exp->add_option("--split-max-size", ex.split_max_size, "GGUF split size limit (decimal, like gguf-split)")
        ->capture_default_str();
    exp->add_option("--split-max-tensors", ex.split_max_tensors, "GGUF split: max tensors per file (0 = no limit)");
    exp->add_option("--save-method", ex.save_method, "merged (default) or lora (validate and re-save the adapter)")
        ->capture_default_str();
    exp->add_option("--name", ex.name, "Model name for GGUF file names and general.name (default: base dir name)");
}

// export: compute and quantization.
void add_export_compute_options(CLI::App* exp, ExportArgs& ex) {
    exp->add_option("--threads", ex.threads, "Worker threads per rank (default: the cores available to the rank)");
    exp->add_option("--device", ex.device,
                    "cpu (default), cuda (the rank's GPU: local rank mod visible devices; error if none) or auto "
                    "(cuda when the rank sees a GPU, else cpu)")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    exp->add_option("--max-gpu-memory", ex.max_gpu_memory,
                    "Bound on the device buffers per rank, e.g. 4G, 512M (default: a quarter of the free memory, at most 1G)");
    exp->add_option("--output-tensor-type", ex.output_tensor_type,
                    "llama-quantize: type of output.weight (e.g. q8_0), for gguf:<ftype> outputs");
    exp->add_option("--token-embedding-type", ex.token_embedding_type, "llama-quantize: type of token_embd.weight");
    exp->add_option("--tensor-type", ex.tensor_types,
                    "llama-quantize: REGEX=TYPE for matching tensor names (repeatable, first match wins)");
    exp->add_option("--imatrix", ex.imatrix,
                    "llama.cpp importance matrix (GGUF or legacy .dat) for gguf:<ftype> outputs; required by the "
                    "IQ2/IQ1 types");
    exp->add_flag("--double-quant", ex.double_quant,
                  "bnb-nf4/bnb-fp4: also quantize the absmax (bnb_4bit_use_double_quant)");
    exp->add_flag("--no-mmproj", ex.no_mmproj,
                  "gguf:TYPE of a vision-language model: write the text model only, not mmproj-NAME-TYPE.gguf");
    exp->add_flag("--pure", ex.pure, "llama-quantize: no k-quant mixture, every tensor in the ftype's default type");
    exp->add_flag("--leave-output-tensor", ex.leave_output_tensor, "llama-quantize: keep output.weight unquantized");
    exp->add_option("--merge-into", ex.merge_into,
                    "Quantized (bitsandbytes/FP8) bases: merge into the dequantized weights (default) or into the "
                    "--original-base checkpoint's tensors")
        ->check(CLI::IsMember({"dequantized", "original"}))
        ->capture_default_str();
    exp->add_option("--original-base", ex.original_base,
                    "16-bit checkpoint directory matching a quantized base, for --merge-into original");
}

// export: Ollama, run control, progress and report, the Hub.
void add_export_run_options(CLI::App* exp, ExportArgs& ex) {
    exp->add_option("--ollama-create", ex.ollama_create,
                    "Create model NAME on an Ollama server from the GGUF output and the written Modelfile");
    exp->add_option("--ollama-host", ex.ollama_host, "Ollama server URL (default: $OLLAMA_HOST or http://127.0.0.1:11434)");
    exp->add_flag("--ollama-push", ex.ollama_push, "After --ollama-create, push NAME (namespace/name[:tag])");
    exp->add_flag("--overwrite", ex.overwrite, "Allow a non-empty output directory (files we write are replaced)");
    exp->add_flag("--dry-run", ex.dry_run,
                  "Print the plan (files, sizes, per-rank bytes, estimated time per stage, memory, disk) and stop");
    exp->add_option("--dry-run-ranks", ex.dry_run_ranks,
                    "With --dry-run: show the per-rank split for N ranks instead of this run's (the plan itself, "
                    "and its memory per rank, does not depend on the rank count)")
        ->check(CLI::Range(1, 65536));  // one line per rank is printed
    exp->add_option("--write", ex.write,
                    "direct (default: every rank writes at final offsets, shared filesystem) or gather (only rank 0 "
                    "writes; other ranks stream row blocks to it over MPI)");
    exp->add_option("--max-memory-per-rank", ex.max_memory_per_rank,
                    "Memory budget per rank (HF size syntax: 256MB, 2GB); row blocks are sized to fit, refused at "
                    "planning time if impossible");
    exp->add_option("--block-size", ex.block_size,
                    "Target f32 bytes per row block (default 64MiB; smaller blocks balance better, larger ones "
                    "cost less overhead)");
    exp->add_flag("--resume", ex.resume,
                  "Continue an interrupted run in --out (same command line): journaled work is verified against the "
                  "partial files and skipped; refused if the inputs or options changed. Starts afresh if there is "
                  "nothing to resume");
    exp->add_option("--progress-json", ex.progress_json, "Append one JSON progress line per update to FILE (rank 0)");
    exp->add_option("--progress-interval", ex.progress_interval,
                    "Seconds between plain progress lines when stderr is not a terminal (0 = none)")
        ->capture_default_str();
    exp->add_option("--report", ex.report, "Write an HDF5 run report (per output tensor: type, shape, bytes, rank, "
                                           "time, SHA-256, LoRA delta ratio, quantization error, NaN count) to FILE");
    exp->add_option("--push-to-hub", ex.push_to_hub,
                    "After the export, push the output dir to this Hub repo (ORG/NAME): every rank uploads its share "
                    "of the large files, rank 0 commits once");
    exp->add_flag("--download", ex.hub.download,
                  "Fetch --base/--adapter repo ids missing from the HF cache from the Hub (only the files an export reads)");
    sf::cli::add_hub_options(exp, ex.hub);
}

Command export_command(CLI::App& app) {
    auto ex = std::make_shared<ExportArgs>();
    auto* exp = app.add_subcommand("export", "Merge adapters into a base model and write the requested outputs");
    add_export_io_options(exp, *ex);
    add_export_compute_options(exp, *ex);
    add_export_run_options(exp, *ex);
    return {exp, [ex] { return sf::cli::run_export(*ex); }};
}

Command push_command(CLI::App& app) {
    struct Args {
        std::string dir, repo;
        sf::hub::JobOptions hub;
    };
    auto a = std::make_shared<Args>();
    auto* push = app.add_subcommand("push", "Push an output directory to a Hugging Face Hub model repo (one commit)");
    push->add_option("dir", a->dir, "Directory to push (files under .cache/ and *.partial are skipped)")->required();
    push->add_option("--repo", a->repo, "Target repo ORG/NAME (created if missing)")->required();
    sf::cli::add_hub_options(push, a->hub);
    return {push, [a] {
                auto comm = sf::exec::make_mpi_comm();
                sf::hub::run_push(a->dir, a->repo, a->hub, *comm);
                return 0;
            }};
}

Command download_command(CLI::App& app, int rank) {
    struct Args {
        std::string repo;
        bool adapter = false;
        sf::hub::JobOptions hub;
    };
    auto a = std::make_shared<Args>();
    auto* dl = app.add_subcommand("download", "Fetch a Hub model (what an export reads) or adapter into the Hugging "
                                              "Face cache, resuming partial files; prints the snapshot directory");
    dl->add_option("repo", a->repo, "ORG/NAME[@REVISION]")->required();
    dl->add_flag("--adapter", a->adapter, "An adapter repo (adapter_config.json, adapter_model.safetensors)");
    dl->add_option("--include", a->hub.include,
                   "Fetch only the files whose repo path matches this fnmatch pattern, at any depth (repeatable; "
                   "'*' also matches '/', 'dir/' = everything under dir), instead of what an export reads");
    dl->add_option("--transfer", a->hub.transfer,
                   "How Xet-stored files travel: auto or xet (through the Xet CAS's reconstruction API) or lfs (the "
                   "plain resolve URL)")
        ->check(CLI::IsMember({"auto", "lfs", "xet"}))
        ->capture_default_str();
    sf::cli::add_hub_connection_options(dl, a->hub);
    return {dl, [a, rank] {
                auto comm = sf::exec::make_mpi_comm();
                const std::string snap = sf::hub::run_download(a->repo, a->adapter, a->hub, *comm);
                if (rank == 0) std::cout << snap << "\n";
                return 0;
            }};
}

Command demo_command(CLI::App& app, int rank) {
    struct Args {
        std::string dir, arch = "llama", dtype = "bf16";
        sf::model::DemoOptions opt;
    };
    auto a = std::make_shared<Args>();
    auto* demo = app.add_subcommand("demo", "Write a tiny deterministic model (DIR/base; Llama architecture by default) and a "
                                            "LoRA adapter (DIR/adapter) with a real byte-level BPE tokenizer");
    demo->add_option("dir", a->dir, "Directory to create")->required();
    demo->add_option("--layers", a->opt.n_layer, "Decoder layers")->capture_default_str();
    demo->add_option("--hidden", a->opt.hidden, "Hidden size")->capture_default_str();
    demo->add_option("--intermediate", a->opt.intermediate, "MLP size")->capture_default_str();
    demo->add_option("--vocab", a->opt.vocab, "Vocabulary size")->capture_default_str();
    demo->add_option("--shards", a->opt.n_shards, "Number of safetensors shards")->capture_default_str();
    demo->add_flag("--tied", a->opt.tie_word_embeddings, "Tie lm_head to the embeddings");
    demo->add_option("--arch", a->arch, "Architecture variant: llama, llama3, mistral, mixtral, qwen2, qwen2moe, qwen3, qwen3moe, qwen35, qwen35moe, gemma, gemma2, gemma3, phi3, mistral3, ministral3, glm4moe, qwen3next, gemma4, gemma4moe, deepseek2, gpt-oss, gpt-oss-mxfp4, kimi-k2-int4, minimax-m2, llama4, gemma3-vl, gemma3n")->capture_default_str();
    demo->add_option("--heads", a->opt.n_head, "Attention heads")->capture_default_str();
    demo->add_option("--kv-heads", a->opt.n_kv_head, "Key/value heads (GQA)")->capture_default_str();
    demo->add_option("--dtype", a->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
    demo->add_option("--seed", a->opt.seed, "Seed of the deterministic weights")->capture_default_str();
    demo->add_option("--lora-rank", a->opt.lora_rank, "Rank of the demo LoRA adapter")->capture_default_str();
    demo->add_option("--lora-alpha", a->opt.lora_alpha, "lora_alpha of the demo adapter")->capture_default_str();
    return {demo, [a, rank] {
                if (!sf::model::parse_demo_arch(a->arch, a->opt.arch))
                    throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "demo --arch: unknown variant '" + a->arch + "'");
                if (a->dtype == "bf16") a->opt.dtype = sf::core::DType::BF16;
                else if (a->dtype == "f16") a->opt.dtype = sf::core::DType::F16;
                else if (a->dtype == "f32") a->opt.dtype = sf::core::DType::F32;
                else throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "demo --dtype must be bf16, f16 or f32");
                if (rank == 0) {
                    sf::model::write_demo(a->dir, a->opt);
                    sf::core::log::info(sf::core::cat("demo model written to ", (fs::path(a->dir) / "base").string(),
                                                      ", adapter to ", (fs::path(a->dir) / "adapter").string()));
                }
                return 0;
            }};
}

Command run_command(CLI::App& app) {
    auto b = std::make_shared<BatchArgs>();
    auto* runc = app.add_subcommand("run", "Run a batch job file (TOML): one base, several adapter variants, each "
                                           "with its outputs, from one read of the base (see jobs/sweep.toml)");
    runc->add_option("job", b->job, "Job file (.toml)")->required();
    runc->add_option("--threads", b->threads, "Worker threads per rank (default: the job's threads, else the cores available to the rank)");
    runc->add_flag("--overwrite", b->overwrite, "Allow non-empty output directories (files we write are replaced)");
    runc->add_flag("--dry-run", b->dry_run, "Print the fused plan (files, sizes, per-rank bytes, memory) and stop");
    return {runc, [b] { return sf::cli::run_batch(*b); }};
}

Command inspect_command(CLI::App& app, int rank) {
    auto path = std::make_shared<std::string>();
    auto* insp = app.add_subcommand("inspect", "Summarize a .safetensors/.gguf file, a model or an adapter directory");
    insp->add_option("path", *path, "File or directory")->required();
    return {insp, [path, rank] {
                if (rank == 0) std::cout << sf::cli::inspect(*path) << std::flush;
                return 0;
            }};
}

Command report_command(CLI::App& app, int rank) {
    auto path = std::make_shared<std::string>();
    auto html = std::make_shared<std::string>();
    auto* rep = app.add_subcommand("report", "Summarize an HDF5 run report written by export --report");
    rep->add_option("file", *path, "Run report (.h5)")->required();
    rep->add_option("--html", *html, "Also write one self-contained HTML page: per-rank timeline of work units, "
                                     "bytes and time per stage, quantization error by layer and tensor kind");
    return {rep, [path, html, rank] {
                if (rank != 0) return 0;
                std::cout << sf::exec::summarize_report(*path) << std::flush;
                if (!html->empty()) {
                    sf::exec::write_report_html(*path, *html);
                    std::cout << "wrote " << *html << "\n" << std::flush;
                }
                return 0;
            }};
}

// SHARDFORGE_LOG=debug|warn|error (default: info on rank 0, warn elsewhere).
void set_log_level_from_env() {
    if (const std::string l = sf::core::env("SHARDFORGE_LOG"); !l.empty()) {
        if (l == "debug") sf::core::set_log_level(sf::core::LogLevel::Debug);
        else if (l == "warn") sf::core::set_log_level(sf::core::LogLevel::Warn);
        else if (l == "error") sf::core::set_log_level(sf::core::LogLevel::Error);
    }
}

}  // namespace

int main(int argc, char** argv) {
    sf::exec::MpiSession mpi(argc, argv);
    int rank = 0;
    {
        auto c = sf::exec::make_mpi_comm();
        rank = c->rank();
    }
    sf::core::set_log_rank(rank);
    set_log_level_from_env();

    CLI::App app{"shardforge: merge PEFT LoRA adapters into Hugging Face models and export sharded safetensors and "
                 "GGUF across MPI ranks, in bounded memory."};
    app.footer(exit_codes_help);
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("shardforge ") + SHARDFORGE_VERSION_STRING + "\n" +
                                          sf::exec::gpu_backend_info());
    const std::vector<Command> commands = {export_command(app),      push_command(app),
                                           demo_command(app, rank),  run_command(app),
                                           inspect_command(app, rank), report_command(app, rank),
                                           download_command(app, rank)};

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (rank == 0) {
            const int code = app.exit(e);
            return code == 0 ? 0 : 2;
        }
        return e.get_exit_code() == 0 ? 0 : 2;
    }

    try {
        for (const auto& c : commands)
            if (*c.app) return c.run();
    } catch (const sf::core::Error& e) {
        if (rank == 0 || e.kind() == sf::core::ErrorKind::Internal) std::cerr << "shardforge: error: " << e.what() << "\n";
        return sf::core::exit_code(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "shardforge: internal error: " << e.what() << " (this is a bug, please report it)\n";
        return 1;
    }
    return 0;
}
