// shardforge command line: CLI11 -> plan::Options -> plan (rank 0) -> broadcast -> exec (all ranks).
// The only place that maps errors to exit codes (README.md, "Exit codes").
#include <shardforge/exec.hpp>
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/ollama.hpp>
#include <shardforge/plan.hpp>
#include <shardforge/quant.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "hub_cli.hpp"
#include "inspect.hpp"

namespace sf = shardforge;
namespace fs = std::filesystem;

namespace {

constexpr const char* exit_codes_help =
    "Exit codes: 0 ok, 1 internal error, 2 usage error, 3 bad input, 4 unsupported input, 5 I/O error,\n"
    "            6 network/Hub error, 7 verification failed, 75 interrupted (resumable).";

struct ExportArgs {
    std::string base, out, formats = "safetensors", dtype, max_shard_size = "5GB", split_max_size = "48G";
    std::vector<std::string> adapters;
    std::uint32_t split_max_tensors = 0;
    std::string save_method = "merged", name;
    bool overwrite = false, dry_run = false;
    int threads = 0;
    std::string device = "cpu", max_gpu_memory;
    std::string write = "direct", max_memory_per_rank, block_size;
    std::string output_tensor_type, token_embedding_type;
    std::vector<std::string> tensor_types;
    bool pure = false, leave_output_tensor = false;
    std::string ollama_create, ollama_host, imatrix;
    std::string merge_into = "dequantized", original_base;
    bool ollama_push = false;
    bool resume = false;
    std::string progress_json, report;
    double progress_interval = 10;
    std::string push_to_hub;   // ORG/NAME (hub_cli.hpp)
    sf::cli::HubArgs hub;
    bool double_quant = false;
};

sf::quant::GgmlType parse_ggml_type_arg(const std::string& opt, const std::string& v) {
    sf::quant::GgmlType t;
    if (!sf::quant::parse_type(v, t))
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", opt + ": unknown ggml type '" + v + "'");
    return t;
}

// gguf-split / convert_hf_to_gguf size syntax: N with an optional K/M/G/T suffix (decimal); otherwise HF syntax.
std::uint64_t parse_split_size(const std::string& s) {
    if (!s.empty()) {
        const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
        const std::string digits = s.substr(0, s.size() - 1);
        const bool all_digits = !digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos;
        if (all_digits && (u == 'K' || u == 'M' || u == 'G' || u == 'T')) {
            const std::uint64_t mult = u == 'K' ? 1000ULL : u == 'M' ? 1000000ULL : u == 'G' ? 1000000000ULL : 1000000000000ULL;
            return std::stoull(digits) * mult;
        }
    }
    return sf::formats::parse_hf_size(s);
}

sf::plan::Options to_options(const ExportArgs& a) {
    sf::plan::Options o;
    o.base = a.base;
    o.out = a.out;
    for (const auto& s : a.adapters) o.adapters.push_back(sf::lora::parse_adapter_arg(s));
    o.outputs = sf::plan::parse_formats(a.formats);
    if (!a.dtype.empty()) {
        std::string d = a.dtype;
        for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (d == "bf16" || d == "bfloat16") o.dtype = sf::core::DType::BF16;
        else if (d == "f16" || d == "fp16" || d == "float16") o.dtype = sf::core::DType::F16;
        else if (d == "f32" || d == "fp32" || d == "float32") o.dtype = sf::core::DType::F32;
        else throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--dtype must be bf16, f16 or f32");
    }
    o.max_shard_size = sf::formats::parse_hf_size(a.max_shard_size);
    o.split_max_size = parse_split_size(a.split_max_size);
    o.split_max_tensors = a.split_max_tensors;
    o.save_method = a.save_method;
    o.name = a.name;
    o.overwrite = a.overwrite || a.resume;  // --resume continues in a directory that holds the partials
    auto& ov = o.quant_overrides;
    if (!a.output_tensor_type.empty()) ov.output_type = parse_ggml_type_arg("--output-tensor-type", a.output_tensor_type);
    if (!a.token_embedding_type.empty())
        ov.token_embd_type = parse_ggml_type_arg("--token-embedding-type", a.token_embedding_type);
    for (const auto& tt : a.tensor_types) {
        sf::quant::TensorTypeOverride x;
        if (!sf::quant::parse_tensor_type_override(tt, x))
            throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--tensor-type: expected REGEX=TYPE, got '" + tt + "'");
        ov.tensor_types.push_back(x);
    }
    ov.pure = a.pure;
    o.imatrix = a.imatrix;
    o.bnb_double_quant = a.double_quant;
    o.merge_into = a.merge_into;
    o.original_base = a.original_base;
    ov.leave_output = a.leave_output_tensor;
    o.threads = a.threads > 0 ? a.threads : sf::exec::default_threads();
    if (a.write != "direct" && a.write != "gather")
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--write must be direct or gather");
    o.gather = a.write == "gather";
    if (!a.block_size.empty()) {
        o.block_target_bytes = sf::formats::parse_hf_size(a.block_size);
        if (o.block_target_bytes == 0) throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--block-size must be positive");
    }
    if (!a.max_memory_per_rank.empty()) {
        o.max_memory_per_rank = sf::formats::parse_hf_size(a.max_memory_per_rank);
        if (o.max_memory_per_rank == 0)
            throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--max-memory-per-rank must be positive");
    }
    if (o.max_shard_size == 0 || o.split_max_size == 0)
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "size limits must be positive");
    return o;
}

std::string human_rate(double bytes, double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f GB/s", s > 0 ? bytes / s / 1e9 : 0.0);
    return buf;
}

// The prologue of every run: rank 0 builds the plan with `make` and preflights it (disk space, write permission:
// before any tensor I/O); every rank learns a failure and throws it. --dry-run: rank 0 prints the plan, all return
// nullopt. Otherwise the plan is broadcast and every rank returns it.
std::optional<sf::plan::Plan> plan_on_rank0(sf::exec::Comm& comm, bool dry_run,
                                            const std::function<sf::plan::Plan()>& make) {
    std::optional<sf::core::Error> err;
    std::string bytes;
    sf::plan::Plan p;
    std::string preflight;
    if (comm.rank() == 0) {
        try {
            p = make();
            preflight = sf::exec::preflight(p);
            bytes = sf::plan::to_json(p);
        } catch (const sf::core::Error& e) {
            err = e;
        }
    }
    if (auto e = sf::exec::agree_on_error(comm, err)) throw *e;
    if (dry_run) {
        if (comm.rank() == 0) std::cout << sf::plan::describe(p, comm.size()) << "  " << preflight << "\n" << std::flush;
        return std::nullopt;
    }
    if (comm.rank() == 0) sf::core::log::debug(preflight);
    comm.broadcast(bytes, 0);
    if (comm.rank() != 0) p = sf::plan::from_json(bytes);
    return p;
}

// Option combinations refused before any work (no download, no plan, no output file): pure functions of the
// arguments, so every rank reaches the same verdict.
void check_export_usage(const ExportArgs& a) {
    if (!a.ollama_create.empty()) {
        bool gguf = false;
        for (const auto& o : sf::plan::parse_formats(a.formats)) gguf = gguf || o.format == sf::plan::Format::Gguf;
        if (!gguf)
            throw sf::core::Error(sf::core::ErrorKind::Usage, "", "",
                                  "--ollama-create needs a gguf:TYPE output in --format (Ollama imports the GGUF "
                                  "model and the Modelfile written beside it)");
    }
    if (a.ollama_push && a.ollama_create.empty())
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--ollama-push needs --ollama-create NAME");
}

int run_export(ExportArgs a) {
    check_export_usage(a);
    auto comm = sf::exec::make_mpi_comm();
    sf::core::set_log_rank(comm->rank());
    // --base / --adapter given as ORG/NAME[@REV]: the HF cache (offline) or --download.
    a.base = sf::cli::resolve_model_arg(a.base, false, a.hub, *comm);
    for (auto& ad : a.adapters) ad = sf::cli::resolve_model_arg(ad, true, a.hub, *comm);
    std::optional<sf::plan::Plan> planned = plan_on_rank0(*comm, a.dry_run, [&] {
        sf::plan::Plan p = sf::plan::make_plan(to_options(a));
        if (!a.push_to_hub.empty()) sf::cli::check_plan_for_hub(p, a.hub);
        return p;
    });
    if (!planned) return 0;
    sf::plan::Plan& p = *planned;
    sf::cli::fetch_rank_inputs(p, a.hub, *comm);   // multi-rank --download: each rank fetches what it reads
    if (comm->rank() == 0)
        sf::core::log::info(sf::core::cat("shardforge: ", p.items.size(), " tensors -> ", p.files.size(),
                                          " files in ", p.out_dir, " on ", comm->size(), " rank(s)"));
    for (const auto& n : p.notes)
        if (comm->rank() == 0) sf::core::log::info("note: " + n);
    sf::exec::RunOptions ro;
    ro.threads = a.threads;
    ro.resume = a.resume;
    ro.progress_json = a.progress_json;
    ro.progress_interval_s = a.progress_interval;
    ro.report = a.report;
    ro.device = a.device;
    if (!a.max_gpu_memory.empty()) ro.max_gpu_memory = sf::exec::parse_memory_size(a.max_gpu_memory);
    ro.write = a.write == "gather" ? sf::exec::WriteMode::Gather : sf::exec::WriteMode::Direct;
    // --push-to-hub: files are hashed while written and uploaded while the export goes on (hub_cli.hpp).
    std::unique_ptr<sf::cli::OverlapPush> hub_push;
    if (!a.push_to_hub.empty()) {
        hub_push = std::make_unique<sf::cli::OverlapPush>(p, a.push_to_hub, a.hub, *comm);
        ro.hash_outputs = true;
        ro.on_file_hashed = [&hub_push](std::uint32_t f, const std::string& sha, const std::string& partial) {
            hub_push->file_hashed(f, sha, partial);
        };
    }
    const sf::exec::RunStats st = sf::exec::run(p, *comm, ro);
    if (hub_push) hub_push->finish(st, *comm);
    // Rank 0's summary, re-quantization report and Ollama calls may fail; every rank learns it before the Hub push
    // (a collective), so no rank waits for a rank that has stopped.
    std::optional<sf::core::Error> post;
    if (comm->rank() == 0) try {
        char bal[32];
        std::snprintf(bal, sizeof bal, "%.2f", st.mean_rank_seconds > 0 ? st.max_rank_seconds / st.mean_rank_seconds : 1.0);
        sf::core::log::info(sf::core::cat("done: ", st.items, " tensors, read ", st.bytes_read / 1000000, " MB (",
                                          human_rate(static_cast<double>(st.bytes_read), st.seconds), "), wrote ",
                                          st.bytes_written / 1000000, " MB in ", st.seconds,
                                          " s; load balance max/mean rank busy time ", bal,
                                          st.units_resumed ? sf::core::cat("; resumed ", st.units_resumed,
                                                                           " verified work units") : std::string()));
        std::string stages;
        for (int k = 0; k < sf::exec::kStages; ++k) {
            char b[48];
            std::snprintf(b, sizeof b, "%s %.2f s", sf::exec::stage_names[k], st.stage_seconds[k]);
            stages += (k ? ", " : "") + std::string(b);
        }
        char busy[96];
        std::snprintf(busy, sizeof busy, "rank busy time max %.2f s, mean %.2f s; ", st.max_rank_seconds,
                      st.mean_rank_seconds);
        sf::core::log::info(sf::core::cat("  ", st.units, " units of work; ", busy, "stages (all ranks, thread-seconds): ",
                                          stages));
        sf::core::log::info(sf::core::cat("  peak RSS of the largest rank: ", st.max_rank_peak_rss / 1000000, " MB",
                                          p.max_memory_per_rank ? sf::core::cat(" (budget ", p.max_memory_per_rank / 1000000, " MB)")
                                                                : std::string()));
        if (!a.report.empty()) sf::core::log::info("run report: " + a.report);
        for (const auto& f : p.files) sf::core::log::info("  " + (fs::path(p.out_dir) / f.name).string());
        const std::string q = sf::exec::summarize_quant_errors(p, st.quant_errors);
        if (!q.empty()) sf::core::log::info(q.substr(0, q.size() - 1));
        const std::string bnb = sf::exec::report_bnb_requant(p, st.bnb_stats);
        if (!bnb.empty()) sf::core::log::warn(bnb);
        if (!a.ollama_create.empty()) {
            if (!fs::exists(fs::path(p.out_dir) / "Modelfile"))  // checked before the export; kept for odd names
                throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--ollama-create: no Modelfile was written");
            // Same inputs the plan used for the Modelfile it wrote.
            sf::ollama::ModelfileInput in = sf::ollama::read_hf_chat_config(a.base);
            in.from = sf::plan::preferred_gguf(p);
            const sf::ollama::Modelfile mf = sf::ollama::make_modelfile(in);
            const std::string host = sf::ollama::normalize_host(a.ollama_host);
            sf::ollama::create_model(host, a.ollama_create, p.out_dir, mf,
                                     [](const std::string& s) { sf::core::log::info("ollama: " + s); });
            if (a.ollama_push)
                sf::ollama::push_model(host, a.ollama_create,
                                       [](const std::string& s) { sf::core::log::info("ollama push: " + s); });
        }
    } catch (const sf::core::Error& e) {
        post = e;
    }
    if (auto e = sf::exec::agree_on_error(*comm, post)) throw *e;
    if (!a.push_to_hub.empty()) {
        sf::cli::push_dir(p.out_dir, a.push_to_hub, a.hub, *comm);   // the one commit
        hub_push->cleanup(*comm);
    }
    return 0;
}

// `shardforge run JOB.toml`: every variant of the job from one read of the base (plan::make_batch_plan).
struct BatchArgs {
    std::string job;
    int threads = 0;
    bool dry_run = false, overwrite = false;
};

int run_batch(const BatchArgs& a) {
    auto comm = sf::exec::make_mpi_comm();
    int threads = a.threads;
    std::optional<sf::plan::Plan> planned = plan_on_rank0(*comm, a.dry_run, [&] {
        std::ifstream in(a.job, std::ios::binary);
        if (!in) throw sf::core::Error(sf::core::ErrorKind::BadInput, a.job, "", "cannot read the job file");
        std::ostringstream text;
        text << in.rdbuf();
        sf::plan::Job job = sf::plan::parse_job(text.str(), fs::absolute(a.job).parent_path(), a.job);
        if (a.overwrite)
            for (auto& v : job.variants) v.overwrite = true;
        if (threads == 0) threads = job.threads;
        return sf::plan::make_batch_plan(job);
    });
    if (!planned) return 0;
    sf::plan::Plan& p = *planned;
    std::string threads_str = std::to_string(threads);  // the job file's threads, read on rank 0
    comm->broadcast(threads_str, 0);
    threads = std::stoi(threads_str);
    std::size_t n_variants = 0;
    for (const auto& it : p.items) n_variants += it.variants.size();
    if (comm->rank() == 0) {
        sf::core::log::info(sf::core::cat("shardforge run: ", p.items.size(), " work items (", n_variants,
                                          " extra merge variants) -> ", p.files.size(), " files under ", p.out_dir,
                                          " on ", comm->size(), " rank(s)"));
        for (const auto& n : p.notes) sf::core::log::info("note: " + n);
    }
    sf::exec::RunOptions ro;
    ro.threads = threads;
    const sf::exec::RunStats st = sf::exec::run(p, *comm, ro);
    if (comm->rank() == 0) {
        sf::core::log::info(sf::core::cat("done: ", st.items, " work items, read ", st.bytes_read, " bytes (input files ",
                                          st.input_bytes_read, " bytes, base files hold ", p.input_bytes, "; ",
                                          human_rate(static_cast<double>(st.bytes_read), st.seconds), "), wrote ",
                                          st.bytes_written, " bytes in ", st.seconds, " s"));
        for (const auto& f : p.files) sf::core::log::info("  " + (fs::path(p.out_dir) / f.name).string());
        const std::string q = sf::exec::summarize_quant_errors(p, st.quant_errors);
        if (!q.empty()) sf::core::log::info(q.substr(0, q.size() - 1));
    }
    return 0;
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
    if (const std::string l = sf::core::env("SHARDFORGE_LOG"); !l.empty()) {
        if (l == "debug") sf::core::set_log_level(sf::core::LogLevel::Debug);
        else if (l == "warn") sf::core::set_log_level(sf::core::LogLevel::Warn);
        else if (l == "error") sf::core::set_log_level(sf::core::LogLevel::Error);
    }

    CLI::App app{"shardforge: merge PEFT LoRA adapters into Hugging Face models and export sharded safetensors and "
                 "GGUF across MPI ranks, in bounded memory."};
    app.footer(exit_codes_help);
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("shardforge ") + SHARDFORGE_VERSION_STRING + "\n" +
                                          sf::exec::gpu_backend_info());

    ExportArgs ex;
    auto* exp = app.add_subcommand("export", "Merge adapters into a base model and write the requested outputs");
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
                    "checkpoint for transformers)")
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
    exp->add_flag("--pure", ex.pure, "llama-quantize: no k-quant mixture, every tensor in the ftype's default type");
    exp->add_flag("--leave-output-tensor", ex.leave_output_tensor, "llama-quantize: keep output.weight unquantized");
    exp->add_option("--merge-into", ex.merge_into,
                    "Quantized (bitsandbytes/FP8) bases: merge into the dequantized weights (default) or into the "
                    "--original-base checkpoint's tensors")
        ->check(CLI::IsMember({"dequantized", "original"}))
        ->capture_default_str();
    exp->add_option("--original-base", ex.original_base,
                    "16-bit checkpoint directory matching a quantized base, for --merge-into original");
    exp->add_option("--ollama-create", ex.ollama_create,
                    "Create model NAME on an Ollama server from the GGUF output and the written Modelfile");
    exp->add_option("--ollama-host", ex.ollama_host, "Ollama server URL (default: $OLLAMA_HOST or http://127.0.0.1:11434)");
    exp->add_flag("--ollama-push", ex.ollama_push, "After --ollama-create, push NAME (namespace/name[:tag])");
    exp->add_flag("--overwrite", ex.overwrite, "Allow a non-empty output directory (files we write are replaced)");
    exp->add_flag("--dry-run", ex.dry_run,
                  "Print the plan (files, sizes, per-rank bytes, estimated time per stage, memory, disk) and stop");
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

    std::string push_dir_arg, push_repo;
    sf::cli::HubArgs push_args;
    auto* push = app.add_subcommand("push", "Push an output directory to a Hugging Face Hub model repo (one commit)");
    push->add_option("dir", push_dir_arg, "Directory to push (files under .cache/ and *.partial are skipped)")->required();
    push->add_option("--repo", push_repo, "Target repo ORG/NAME (created if missing)")->required();
    sf::cli::add_hub_options(push, push_args);

    std::string demo_dir;
    sf::model::DemoOptions demo_opt;
    auto* demo = app.add_subcommand("demo", "Write a tiny deterministic model (DIR/base; Llama architecture by default) and a "
                                            "LoRA adapter (DIR/adapter) with a real byte-level BPE tokenizer");
    demo->add_option("dir", demo_dir, "Directory to create")->required();
    demo->add_option("--layers", demo_opt.n_layer, "Decoder layers")->capture_default_str();
    demo->add_option("--hidden", demo_opt.hidden, "Hidden size")->capture_default_str();
    demo->add_option("--intermediate", demo_opt.intermediate, "MLP size")->capture_default_str();
    demo->add_option("--vocab", demo_opt.vocab, "Vocabulary size")->capture_default_str();
    demo->add_option("--shards", demo_opt.n_shards, "Number of safetensors shards")->capture_default_str();
    demo->add_flag("--tied", demo_opt.tie_word_embeddings, "Tie lm_head to the embeddings");
    std::string demo_arch = "llama", demo_dtype = "bf16";
    demo->add_option("--arch", demo_arch, "Architecture variant: llama, llama3, mistral, mixtral, qwen2, qwen2moe, qwen3, qwen3moe, gemma, gemma2, gemma3, phi3, mistral3, ministral3")->capture_default_str();
    demo->add_option("--heads", demo_opt.n_head, "Attention heads")->capture_default_str();
    demo->add_option("--kv-heads", demo_opt.n_kv_head, "Key/value heads (GQA)")->capture_default_str();
    demo->add_option("--dtype", demo_dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
    demo->add_option("--seed", demo_opt.seed, "Seed of the deterministic weights")->capture_default_str();
    demo->add_option("--lora-rank", demo_opt.lora_rank, "Rank of the demo LoRA adapter")->capture_default_str();
    demo->add_option("--lora-alpha", demo_opt.lora_alpha, "lora_alpha of the demo adapter")->capture_default_str();

    BatchArgs batch;
    auto* runc = app.add_subcommand("run", "Run a batch job file (TOML): one base, several adapter variants, each "
                                           "with its outputs, from one read of the base (see jobs/sweep.toml)");
    runc->add_option("job", batch.job, "Job file (.toml)")->required();
    runc->add_option("--threads", batch.threads, "Worker threads per rank (default: the job's threads, else the cores available to the rank)");
    runc->add_flag("--overwrite", batch.overwrite, "Allow non-empty output directories (files we write are replaced)");
    runc->add_flag("--dry-run", batch.dry_run, "Print the fused plan (files, sizes, per-rank bytes, memory) and stop");

    std::string inspect_path;
    auto* insp = app.add_subcommand("inspect", "Summarize a .safetensors/.gguf file, a model or an adapter directory");
    insp->add_option("path", inspect_path, "File or directory")->required();

    std::string report_path;
    auto* rep = app.add_subcommand("report", "Summarize an HDF5 run report written by export --report");
    rep->add_option("file", report_path, "Run report (.h5)")->required();

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
        if (*exp) return run_export(ex);
        if (*runc) return run_batch(batch);
        if (*push) {
            auto comm = sf::exec::make_mpi_comm();
            sf::cli::push_dir(push_dir_arg, push_repo, push_args, *comm);
            return 0;
        }
        if (*demo) {
            if (!sf::model::parse_demo_arch(demo_arch, demo_opt.arch))
                throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "demo --arch: unknown variant '" + demo_arch + "'");
            if (demo_dtype == "bf16") demo_opt.dtype = sf::core::DType::BF16;
            else if (demo_dtype == "f16") demo_opt.dtype = sf::core::DType::F16;
            else if (demo_dtype == "f32") demo_opt.dtype = sf::core::DType::F32;
            else throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "demo --dtype must be bf16, f16 or f32");
            if (rank == 0) {
                sf::model::write_demo(demo_dir, demo_opt);
                sf::core::log::info(sf::core::cat("demo model written to ", (fs::path(demo_dir) / "base").string(),
                                                  ", adapter to ", (fs::path(demo_dir) / "adapter").string()));
            }
            return 0;
        }
        if (*rep) {
            if (rank == 0) std::cout << sf::exec::summarize_report(report_path) << std::flush;
            return 0;
        }
        if (*insp) {
            if (rank == 0) std::cout << sf::cli::inspect(inspect_path) << std::flush;
            return 0;
        }
    } catch (const sf::core::Error& e) {
        if (rank == 0 || e.kind() == sf::core::ErrorKind::Internal) std::cerr << "shardforge: error: " << e.what() << "\n";
        return sf::core::exit_code(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "shardforge: internal error: " << e.what() << " (this is a bug, please report it)\n";
        return 1;
    }
    return 0;
}
