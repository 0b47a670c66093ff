// The output files of a run: *.partial files created at their planned size (or kept for --resume), the descriptors
// the workers share, and the final fsync + rename that makes them visible only once every byte is written.
#pragma once
#include <shardforge/formats.hpp>
#include <shardforge/plan.hpp>

#include "io.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace shardforge::exec {

[[nodiscard]] std::string partial_path(const plan::Plan& p, const plan::FileOut& f);
[[nodiscard]] std::string final_path(const plan::Plan& p, const plan::FileOut& f);

// Open files lazily and share the descriptors between threads (pread/pwrite need no lock).
class FileTable {
public:
    explicit FileTable(const plan::Plan& p) : p_(p), in_(p.input_files.size()), out_(p.files.size()) {}
    int input(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (!in_[i]) in_[i] = open_read(p_.input_files[i]);
        return in_[i].get();
    }
    int output(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (!out_[i]) out_[i] = open_write(partial_path(p_, p_.files[i]), false);
        return out_[i].get();
    }
    const formats::SafetensorsReader& adapter(std::uint32_t i) {
        std::lock_guard lock(mu_);
        if (adapters_.size() < p_.adapter_files.size()) adapters_.resize(p_.adapter_files.size());
        if (!adapters_[i]) adapters_[i] = std::make_unique<formats::SafetensorsReader>(
                               formats::SafetensorsReader::open(p_.adapter_files[i]));
        return *adapters_[i];
    }

private:
    const plan::Plan& p_;
    std::mutex mu_;
    std::vector<UniqueFd> in_, out_;
    std::vector<std::unique_ptr<formats::SafetensorsReader>> adapters_;
};

// Rank 0, fresh run: out_dir (and the subdirectories of batch jobs) and every tensor file's partial, sized, with its
// header written.
void prepare_outputs(const plan::Plan& p);
// Rank 0, --resume: keep the partials (their journaled units are verified later); a missing or mis-sized one is
// created afresh, a final-named one (killed during the renames) goes back to its partial name. Headers are rewritten.
void prepare_resumed_outputs(const plan::Plan& p);
// Rank 0, after every rank's writes: text and copied files, fsync of every partial, then all renamed at once.
void finish_outputs(const plan::Plan& p);
// Rank 0, after a failure that cannot be resumed.
void remove_partials(const plan::Plan& p);

}  // namespace shardforge::exec
