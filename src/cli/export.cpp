// The export and batch flows (export.hpp): rank 0 plans and preflights, every rank runs the plan (exec), with the
// Hub (hub::resolve_model_arg, hub::OverlapPush, hub::run_push) and Ollama around an export.
#include "export.hpp"

#include <shardforge/exec.hpp>
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/ollama.hpp>
#include <shardforge/plan.hpp>
#include <shardforge/quant.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>

namespace shardforge::cli {
namespace sf = shardforge;
namespace fs = std::filesystem;

namespace {

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
            const std::uint64_t max = std::numeric_limits<std::uint64_t>::max() / mult;
            if (digits.size() > 19 || std::stoull(digits) > max)
                throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--split-max-size " + s + " is too large");
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
    o.mmproj = !a.no_mmproj;
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
// nullopt (`describe_ranks` > 0: the per-rank split is shown for that many ranks; the plan is rank-independent).
// Otherwise the plan is broadcast and every rank returns it.
// Not a dry run: once the preflight passed, rank 0 takes the output directory's lock (`lock`, held by the caller
// to the end of the run) before anything in it is created, truncated or removed.
std::optional<sf::plan::Plan> plan_on_rank0(sf::core::Comm& comm, bool dry_run,
                                            const std::function<sf::plan::Plan()>& make,
                                            std::unique_ptr<sf::exec::OutputLock>& lock, bool resume,
                                            int describe_ranks = 0) {
    std::optional<sf::core::Error> err;
    std::string bytes;
    sf::plan::Plan p;
    std::string preflight;
    if (comm.rank() == 0) {
        err = sf::core::capture([&] {
            p = make();
            preflight = sf::exec::preflight(p, dry_run);
            if (!dry_run) lock = std::make_unique<sf::exec::OutputLock>(p.out_dir, resume);
            bytes = sf::plan::to_json(p);
        });
    }
    if (auto e = sf::core::agree_on_error(comm, err)) throw *e;
    if (dry_run) {
        const int n = describe_ranks > 0 ? describe_ranks : comm.size();
        if (comm.rank() == 0) std::cout << sf::plan::describe(p, n) << "  " << preflight << "\n" << std::flush;
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
    if (a.dry_run_ranks > 0 && !a.dry_run)
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--dry-run-ranks needs --dry-run");
    if (a.ollama_push && a.ollama_create.empty())
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--ollama-push needs --ollama-create NAME");
    // A compute node without network (the convert step of a stage / convert / publish chain, docs/slurm.md).
    if (sf::hub::hub_offline() && (a.hub.download || !a.push_to_hub.empty()))
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "",
                              std::string(a.hub.download ? "--download" : "--push-to-hub") +
                                  " with HF_HUB_OFFLINE set: this node must not reach the Hub (stage the inputs with "
                                  "`shardforge download`, publish with `shardforge push` on a node that may)");
}

// --base / --adapter given as ORG/NAME[@REV]: the HF cache (offline) or --download.
void resolve_hub_inputs(ExportArgs& a, sf::core::Comm& comm) {
    a.base = sf::hub::resolve_model_arg(a.base, false, a.hub, comm);
    for (auto& ad : a.adapters) ad = sf::hub::resolve_model_arg(ad, true, a.hub, comm);
}

sf::exec::RunOptions run_options(const ExportArgs& a) {
    sf::exec::RunOptions ro;
    ro.threads = a.threads;
    ro.resume = a.resume;
    ro.progress_json = a.progress_json;
    ro.progress_interval_s = a.progress_interval;
    ro.report = a.report;
    ro.device = a.device;
    if (!a.max_gpu_memory.empty()) ro.max_gpu_memory = sf::exec::parse_memory_size(a.max_gpu_memory);
    ro.write = a.write == "gather" ? sf::exec::WriteMode::Gather : sf::exec::WriteMode::Direct;
    return ro;
}

// Rank 0, after the export: the `done` line, stage times, memory, the files, quantization errors and the bnb
// re-quantization report.
void log_export_summary(const sf::plan::Plan& p, const sf::exec::RunStats& st, const ExportArgs& a) {
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
    // The balance per rank, one line: busy seconds, work units, MB read and written, peak RSS.
    std::string per_rank;
    for (std::size_t r = 0; r < st.ranks.size(); ++r) {
        const sf::exec::RankStat& k = st.ranks[r];
        char b[160];
        std::snprintf(b, sizeof b, "%s%zu: %.2f s, %llu units, read %llu MB, wrote %llu MB, peak RSS %llu MB",
                      r ? "; " : "", r, k.busy_s, static_cast<unsigned long long>(k.units),
                      static_cast<unsigned long long>(k.bytes_read / 1000000),
                      static_cast<unsigned long long>(k.bytes_written / 1000000),
                      static_cast<unsigned long long>(k.peak_rss / 1000000));
        per_rank += b;
    }
    sf::core::log::info("  per rank: " + per_rank);
    sf::core::log::info(sf::core::cat("  peak RSS of the largest rank: ", st.max_rank_peak_rss / 1000000, " MB",
                                      p.max_memory_per_rank ? sf::core::cat(" (budget ", p.max_memory_per_rank / 1000000, " MB)")
                                                            : std::string()));
    if (!a.report.empty()) sf::core::log::info("run report: " + a.report);
    for (const auto& f : p.files) sf::core::log::info("  " + (fs::path(p.out_dir) / f.name).string());
    const std::string q = sf::exec::summarize_quant_errors(p, st.quant_errors);
    if (!q.empty()) sf::core::log::info(q.substr(0, q.size() - 1));
    const std::string bnb = sf::exec::report_bnb_requant(p, st.bnb_stats);
    if (!bnb.empty()) sf::core::log::warn(bnb);
}

// Rank 0, --ollama-create [--ollama-push]: the model created on the Ollama server from the written GGUF and
// Modelfile, then pushed.
void publish_to_ollama(const sf::plan::Plan& p, const ExportArgs& a) {
    if (a.ollama_create.empty()) return;
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

// collective. --resume into a directory whose previous run was killed after its final renames (while removing its
// journal or its lock, or during the Hub push): rank 0 took over a lock that records this very plan as complete,
// and every output file has its final name and planned size. Rank 0 then says so and removes what is left of the
// journal; the export is not redone. Not with --report (the report comes after the renames and may be missing).
bool already_complete(const sf::plan::Plan& p, const ExportArgs& a, const sf::exec::OutputLock* lock,
                      sf::core::Comm& comm) {
    std::string verdict = "0";
    std::optional<sf::core::Error> err;
    if (comm.rank() == 0 && lock && a.resume && a.report.empty() &&
        lock->took_over_complete() == sf::exec::plan_digest(p)) {
        err = sf::core::capture([&] {
            for (const auto& f : p.files) {
                std::error_code ec;
                const fs::path path = fs::path(p.out_dir) / f.name;
                const auto size = fs::file_size(path, ec);
                if (ec || fs::is_symlink(path) || (f.kind == sf::plan::FileKind::Tensors && size != f.size)) return;
            }
            std::error_code ec;
            fs::remove_all(fs::path(p.out_dir) / ".shardforge-resume", ec);
            sf::core::log::info("resume: the run in " + p.out_dir +
                                " had already completed (it was stopped after its final renames); nothing to redo");
            verdict = "1";
        });
    }
    if (auto e = sf::core::agree_on_error(comm, err)) throw *e;
    comm.broadcast(verdict, 0);
    return verdict == "1";
}

}  // namespace

int run_export(ExportArgs a) {
    check_export_usage(a);
    auto comm = sf::exec::make_mpi_comm();
    sf::core::set_log_rank(comm->rank());
    resolve_hub_inputs(a, *comm);
    std::unique_ptr<sf::exec::OutputLock> lock;  // rank 0: one writer per output directory, held to the end
    std::optional<sf::plan::Plan> planned = plan_on_rank0(*comm, a.dry_run, [&] {
        // A directory another live run holds is refused naming that run, before planning judges its contents.
        if (!a.dry_run && !a.out.empty()) sf::exec::OutputLock::check_free(a.out);
        sf::plan::Plan p = sf::plan::make_plan(to_options(a));
        if (!a.push_to_hub.empty()) sf::hub::check_plan_for_hub(p, a.hub);
        return p;
    }, lock, a.resume, a.dry_run_ranks);
    if (!planned) return 0;
    sf::plan::Plan& p = *planned;
    if (already_complete(p, a, lock.get(), *comm)) {
        // Only what follows the renames is left: the Ollama model and the Hub commit (each idempotent).
        std::optional<sf::core::Error> post;
        if (comm->rank() == 0) post = sf::core::capture([&] { publish_to_ollama(p, a); });
        if (auto e = sf::core::agree_on_error(*comm, post)) throw *e;
        if (!a.push_to_hub.empty()) sf::hub::run_push(p.out_dir, a.push_to_hub, a.hub, *comm);
        comm->barrier();
        if (lock) lock->release();
        return 0;
    }
    sf::hub::fetch_rank_inputs(p, a.hub, *comm);   // multi-rank --download: each rank fetches what it reads
    if (comm->rank() == 0)
        sf::core::log::info(sf::core::cat("shardforge: ", p.items.size(), " tensors -> ", p.files.size(),
                                          " files in ", p.out_dir, " on ", comm->size(), " rank(s)"));
    for (const auto& n : p.notes)
        if (comm->rank() == 0) sf::core::log::info("note: " + n);
    sf::exec::RunOptions ro = run_options(a);
    if (lock) ro.on_outputs_final = [&lock](const std::string& digest) { lock->mark_complete(digest); };
    // --push-to-hub: files are hashed while written and uploaded while the export goes on (hub::OverlapPush).
    std::unique_ptr<sf::hub::OverlapPush> hub_push;
    if (!a.push_to_hub.empty()) {
        hub_push = std::make_unique<sf::hub::OverlapPush>(p, a.push_to_hub, a.hub, *comm);
        ro.hash_outputs = true;
        ro.on_file_hashed = [&hub_push](std::uint32_t f, const std::string& sha, const std::string& partial) {
            hub_push->file_hashed(f, sha, partial);
        };
    }
    const sf::exec::RunStats st = sf::exec::run(p, *comm, ro);
    if (hub_push) hub_push->finish({st.files_hashed, st.hashed_from_memory, st.hashed_read_back}, *comm);
    // Rank 0's summary, re-quantization report and Ollama calls may fail; every rank learns it before the Hub push
    // (a collective), so no rank waits for a rank that has stopped.
    std::optional<sf::core::Error> post;
    if (comm->rank() == 0) {
        post = sf::core::capture([&] {
            log_export_summary(p, st, a);
            publish_to_ollama(p, a);
        });
    }
    if (auto e = sf::core::agree_on_error(*comm, post)) throw *e;
    if (!a.push_to_hub.empty()) {
        sf::hub::run_push(p.out_dir, a.push_to_hub, a.hub, *comm);   // the one commit
        hub_push->cleanup(*comm);
    }
    comm->barrier();  // no rank touches the directory any more
    if (lock) lock->release();  // the last step of a successful run
    return 0;
}

int run_batch(const BatchArgs& a) {
    auto comm = sf::exec::make_mpi_comm();
    int threads = a.threads;
    std::unique_ptr<sf::exec::OutputLock> lock;  // rank 0: on the variants' common parent, held to the end
    std::optional<sf::plan::Plan> planned = plan_on_rank0(*comm, a.dry_run, [&] {
        std::ifstream in(a.job, std::ios::binary);
        if (!in) throw sf::core::Error(sf::core::ErrorKind::BadInput, a.job, "", "cannot read the job file");
        std::ostringstream text;
        text << in.rdbuf();
        sf::plan::Job job = sf::plan::parse_job(text.str(), fs::absolute(a.job).parent_path(), a.job);
        if (a.overwrite)
            for (auto& v : job.variants) v.overwrite = true;
        if (threads == 0) threads = job.threads;
        if (!a.dry_run)
            for (const auto& v : job.variants) sf::exec::OutputLock::check_free(fs::absolute(v.out).parent_path());
        return sf::plan::make_batch_plan(job);
    }, lock, false);
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
    comm->barrier();
    if (lock) lock->release();
    return 0;
}

}  // namespace shardforge::cli
