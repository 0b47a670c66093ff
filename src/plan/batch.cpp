// make_batch_plan: one plan for all variants of a job file. Each variant is planned alone (make_plan, the same
// function `export` uses, so each variant's files are exactly what `export` would write), then the plans are
// fused: items that read the same base bytes into the same shape become one item whose further merges are
// Variants, so every base tensor is read once however many adapters and outputs the job has.
#include <shardforge/ollama.hpp>
#include <shardforge/plan.hpp>

#include "plan_internal.hpp"

#include <map>
#include <set>

namespace fs = std::filesystem;

namespace shardforge::plan {
namespace {

// What an item reads and builds before any merge: equal keys mean equal unmerged f32 values.
std::string source_key(const Item& it) {
    std::string k = core::cat("shape");
    for (auto d : it.shape) k += core::cat(",", d);
    for (const auto& s : it.sources) {
        k += core::cat("|", s.file, ":", s.offset, ":", s.nbytes, ":", core::dtype_name(s.dtype), ":", s.row_begin,
                       ":", s.row_end, ":", s.row_step, ":", s.col_begin, ":", s.col_step, ":", s.col_end, ":", s.transpose, ":");
        for (auto d : s.shape) k += core::cat(d, ",");
    }
    return k;
}

std::vector<std::optional<lora::MergeTarget>> merges_of(const Item& it) {
    std::vector<std::optional<lora::MergeTarget>> m;
    for (const auto& s : it.sources) m.push_back(s.merge);
    return m;
}

bool same_merges(const std::vector<std::optional<lora::MergeTarget>>& a,
                 const std::vector<std::optional<lora::MergeTarget>>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].has_value() != b[i].has_value()) return false;
        if (a[i] && lora::to_json(*a[i]) != lora::to_json(*b[i])) return false;
    }
    return true;
}

void shift_adapters(lora::MergeTarget& m, std::uint32_t by) {
    for (auto& t : m.terms) {
        t.a.adapter += by;
        t.b.adapter += by;
        t.m.adapter += by;
    }
}

// Deepest directory containing every output directory.
fs::path common_root(const std::vector<Plan>& subs) {
    fs::path root = fs::path(subs[0].out_dir).lexically_normal();
    for (const auto& s : subs) {
        const fs::path d = fs::path(s.out_dir).lexically_normal();
        while (true) {
            const fs::path rel = d.lexically_relative(root);
            if (!rel.empty() && *rel.begin() != "..") break;
            if (root == root.parent_path()) break;
            root = root.parent_path();
        }
    }
    return root;
}

}  // namespace

Plan make_batch_plan(const Job& job) {
    if (job.variants.empty()) throw core::Error(core::ErrorKind::Usage, "", "", "the job has no variant");
    std::vector<Plan> subs;
    for (std::size_t v = 0; v < job.variants.size(); ++v) {
        try {
            subs.push_back(make_plan(job.variants[v]));
        } catch (const core::Error& e) {
            throw core::Error(e.kind(), e.file(), e.tensor(), core::cat("variant '", job.names.at(v), "': ", e.why()));
        }
    }
    Plan p;
    p.out_dir = common_root(subs).string();
    // Ollama Modelfiles for GGUF LoRA outputs: FROM the base GGUF a variant without adapters exports (Ollama applies
    // the adapter to it), ADAPTER the LoRA. Named Modelfile, or Modelfile.lora beside a merged model's Modelfile.
    std::string base_gguf;  // absolute path of the first adapter-less variant's preferred GGUF
    for (std::size_t v = 0; v < subs.size() && base_gguf.empty(); ++v)
        if (job.variants[v].adapters.empty() && !preferred_gguf(subs[v]).empty())
            base_gguf = (fs::path(subs[v].out_dir) / preferred_gguf(subs[v])).string();
    for (std::size_t v = 0; v < subs.size() && !base_gguf.empty(); ++v) {
        const std::string lora = lora_gguf(subs[v]);
        if (lora.empty()) continue;
        ollama::ModelfileInput in = ollama::read_hf_chat_config(job.variants[v].base);
        in.from = fs::path(base_gguf).lexically_relative(subs[v].out_dir).string();
        in.adapter = lora;
        const ollama::Modelfile mf = ollama::make_modelfile(in);
        const bool has_merged = !preferred_gguf(subs[v]).empty();
        subs[v].files.push_back({has_merged ? "Modelfile.lora" : "Modelfile", FileKind::Text, mf.text, "", 0});
        subs[v].notes.push_back(core::cat(subs[v].files.back().name, ": FROM ", in.from, " ADAPTER ./", lora));
    }
    p.input_bytes = subs[0].input_bytes;
    std::map<std::string, std::uint32_t> input_index;  // the base's files, and adapters a gguf-lora output reads
    std::map<std::string, std::string> owner_of_file;  // output path -> variant name
    std::map<std::string, std::size_t> item_by_key;
    std::set<std::size_t> fused;  // items that received emits or variants of a later plan
    for (std::size_t v = 0; v < subs.size(); ++v) {
        Plan& s = subs[v];
        const std::string& name = job.names.at(v);
        std::vector<std::uint32_t> input_of;
        for (const auto& f : s.input_files) {
            const auto [it, fresh] = input_index.emplace(f, static_cast<std::uint32_t>(p.input_files.size()));
            if (fresh) p.input_files.push_back(f);
            input_of.push_back(it->second);
        }
        const auto file0 = static_cast<std::uint32_t>(p.files.size());
        const auto adapter0 = static_cast<std::uint32_t>(p.adapter_files.size());
        const fs::path rel = fs::path(s.out_dir).lexically_normal().lexically_relative(p.out_dir);
        for (auto f : s.files) {
            f.name = (rel.empty() || rel == ".") ? f.name : (rel / f.name).string();
            const auto [it, fresh] = owner_of_file.emplace(f.name, name);
            if (!fresh)
                throw core::Error(core::ErrorKind::Usage, (fs::path(p.out_dir) / f.name).string(), "",
                                  core::cat("variants '", it->second, "' and '", name,
                                            "' both write this file (give them different out or gguf_name)"));
            p.files.push_back(std::move(f));
        }
        p.adapter_files.insert(p.adapter_files.end(), s.adapter_files.begin(), s.adapter_files.end());
        for (const auto& n : s.notes) p.notes.push_back(core::cat("variant '", name, "': ", n));
        p.output_bytes += s.output_bytes;
        for (auto& it : s.items) {
            for (auto& e : it.emits) e.file += file0;
            for (auto& src : it.sources) {
                src.file = input_of.at(src.file);
                if (src.merge) shift_adapters(*src.merge, adapter0);
            }
            if (!it.generated.empty()) {  // computed values read nothing: nothing to share
                p.items.push_back(std::move(it));
                continue;
            }
            const std::string key = source_key(it);
            const auto found = item_by_key.find(key);
            if (found == item_by_key.end()) {
                item_by_key.emplace(key, p.items.size());
                p.items.push_back(std::move(it));
                continue;
            }
            fused.insert(found->second);
            Item& dst = p.items[found->second];
            auto m = merges_of(it);
            std::vector<Emit>* emits = nullptr;
            if (same_merges(merges_of(dst), m)) emits = &dst.emits;
            for (auto& var : dst.variants)
                if (!emits && same_merges(var.merges, m)) emits = &var.emits;
            if (!emits) {
                dst.variants.push_back(Variant{std::move(m), {}});
                emits = &dst.variants.back().emits;
            }
            emits->insert(emits->end(), it.emits.begin(), it.emits.end());
        }
    }
    // Fused items run whole (no row blocks): the unit pipeline (src/exec/pipeline.cpp) builds every variant from the
    // whole unmerged sources, and emits gathered from several variants may need other block boundaries than the
    // first one's.
    std::uint64_t overhead = 0;
    for (const auto& s : subs) {
        p.peak_item_bytes = std::max(p.peak_item_bytes, s.peak_item_bytes);
        overhead = std::max(overhead, s.peak_rank_bytes - std::min(s.peak_rank_bytes,
                                                                   static_cast<std::uint64_t>(s.threads) * s.peak_item_bytes));
    }
    p.threads = subs[0].threads;
    p.gather_window = subs[0].gather_window;
    p.max_memory_per_rank = subs[0].max_memory_per_rank;
    for (const std::size_t i : fused) {
        Item& it = p.items[i];
        it.block_rows = 0;
        // Working set: the item in f32, each source raw and in f32 plus its kept unmerged copy, one encoded emit.
        std::uint64_t ws = static_cast<std::uint64_t>(core::numel(it.shape)) * 4, out = 0;
        for (const auto& s : it.sources) ws += static_cast<std::uint64_t>(core::numel(s.shape)) * 8 + s.nbytes;
        for (const auto& e : it.emits) out = std::max(out, e.nbytes);
        for (const auto& var : it.variants)
            for (const auto& e : var.emits) out = std::max(out, e.nbytes);
        p.peak_item_bytes = std::max(p.peak_item_bytes, ws + out);
    }
    p.peak_rank_bytes = overhead + static_cast<std::uint64_t>(p.threads) * p.peak_item_bytes;
    if (p.max_memory_per_rank > 0 && p.peak_rank_bytes > p.max_memory_per_rank)
        throw core::Error(core::ErrorKind::Usage, "", "",
                          core::cat("a batch job reads each base tensor whole for all its variants: about ",
                                    p.peak_rank_bytes, " bytes per rank, over the memory budget"));
    // Unit costs from the cost table; an item with variants does the merge and encoding once per variant.
    const std::vector<Unit> all = units(p);
    for (auto& it : p.items) it.cost = 0;
    for (const auto& u : all) p.items[u.item].cost += u.cost;
    for (auto& it : p.items) it.cost *= 1 + it.variants.size();
    return p;
}

}  // namespace shardforge::plan
