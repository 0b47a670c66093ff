// The output files of a run (outputs.hpp).
#include "outputs.hpp"

#include "fault.hpp"
#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <set>

#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace shardforge::exec {

std::string partial_path(const plan::Plan& p, const plan::FileOut& f) {
    return (fs::path(p.out_dir) / (f.name + ".partial")).string();
}
std::string final_path(const plan::Plan& p, const plan::FileOut& f) { return (fs::path(p.out_dir) / f.name).string(); }

void prepare_outputs(const plan::Plan& p) {
    fs::create_directories(p.out_dir);
    for (const auto& f : p.files)  // batch jobs: files in subdirectories of out_dir
        if (f.name.find('/') != std::string::npos) fs::create_directories(fs::path(final_path(p, f)).parent_path());
    for (const auto& f : p.files) {
        if (f.kind != plan::FileKind::Tensors) continue;
        const std::string path = partial_path(p, f);
        UniqueFd fd = open_write(path, true);
        if (::ftruncate(fd.get(), static_cast<off_t>(f.size)) != 0)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot size file to ", f.size, " bytes"));
        pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
    }
}

void prepare_resumed_outputs(const plan::Plan& p) {
    for (const auto& f : p.files) {
        if (f.kind != plan::FileKind::Tensors) continue;
        const std::string path = partial_path(p, f);
        std::error_code ec;
        if (!fs::exists(path) && fs::is_regular_file(final_path(p, f)) && !fs::is_symlink(final_path(p, f)))
            fs::rename(final_path(p, f), path, ec);
        if (!fs::is_regular_file(path) || fs::is_symlink(path) || fs::file_size(path, ec) != f.size) {
            plan::Plan one;
            one.out_dir = p.out_dir;
            one.files = {f};
            prepare_outputs(one);
            continue;
        }
        UniqueFd fd = open_write(path, false);
        pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
    }
}

namespace {
// The directories holding the outputs, so that their renames are durable.
void fsync_dirs(const plan::Plan& p) {
    std::set<std::string> dirs{p.out_dir};
    for (const auto& f : p.files) dirs.insert(fs::path(final_path(p, f)).parent_path().string());
    for (const auto& d : dirs)
        if (UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); fd) ::fsync(fd.get());
}
}  // namespace

// Each step may be cut short by kill -9 and redone by --resume (prepare_resumed_outputs puts final-named tensor
// files back under their partial names; text and copied files are written again): the phase record only tells how
// far a run got. The fault points (fault.hpp, die_at) name every step.
void finish_outputs(const plan::Plan& p) {
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        const auto& f = p.files[i];
        const std::string path = partial_path(p, f);
        if (f.kind == plan::FileKind::Text) {
            UniqueFd fd = open_write(path, true);
            pwrite_all(fd.get(), std::as_bytes(std::span(f.header.data(), f.header.size())), 0, path, "");
        } else if (f.kind == plan::FileKind::Copy) {
            std::error_code ec;
            fs::remove(path, ec);  // a symlink at the partial's path is replaced, never written through
            fs::copy_file(f.copy_from, path, fs::copy_options::overwrite_existing, ec);
            if (ec) throw core::Error(core::ErrorKind::Io, f.copy_from, "", "cannot copy: " + ec.message());
        }
        fault::point("write", static_cast<long>(i));  // tensor files: nothing to write here, still a step
    }
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        const auto& f = p.files[i];
        const std::string path = partial_path(p, f);
        std::error_code ec;
        const auto size = fs::file_size(path, ec);
        if (ec) throw core::Error(core::ErrorKind::Io, path, "", "missing after write: " + ec.message());
        if (f.kind == plan::FileKind::Tensors && size != f.size)
            throw core::Error(core::ErrorKind::Verify, path, "", core::cat("size ", size, " != planned ", f.size));
        UniqueFd fd = open_write(path, false);
        fsync_or_throw(fd.get(), path);
        fault::point("fsync", static_cast<long>(i));
    }
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        const auto& f = p.files[i];
        resume::write_phase(p, core::cat("renaming ", i + 1, " of ", p.files.size()));
        std::error_code ec;
        fs::rename(partial_path(p, f), final_path(p, f), ec);
        if (ec) throw core::Error(core::ErrorKind::Io, final_path(p, f), "", "cannot rename: " + ec.message());
        fault::point("rename", static_cast<long>(i));
    }
    fsync_dirs(p);
    resume::write_phase(p, "renamed");
    fault::point("renamed");
}

void remove_partials(const plan::Plan& p) {
    for (const auto& f : p.files) {
        std::error_code ec;
        fs::remove(partial_path(p, f), ec);
    }
}

}  // namespace shardforge::exec
