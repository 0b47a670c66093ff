// Preflight (docs/engine.md, "The distributed engine"): before any tensor I/O, rank 0 checks that the output directory is writable and
// that its filesystem has room for the plan's exact output size.
#include <shardforge/exec.hpp>

#include "fault.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace shardforge::exec {

std::string preflight(const plan::Plan& p, bool dry_run) {
    // The output directory may not exist yet: check the nearest existing ancestor (where it will be created).
    fs::path dir = fs::path(p.out_dir);
    std::error_code ec;
    while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.parent_path()) dir = dir.parent_path();
    if (dir.empty()) dir = ".";
    if (!fs::is_directory(dir, ec))
        throw core::Error(core::ErrorKind::Io, dir.string(), "", "output path is below a file, not a directory");
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw core::Error(core::ErrorKind::Io, dir.string(), "", "output directory is not writable");
    struct statvfs vfs {};
    if (::statvfs(dir.c_str(), &vfs) != 0)
        throw core::Error(core::ErrorKind::Io, dir.string(), "", "cannot query free space (statvfs)");
    unsigned long long free_bytes =
        static_cast<unsigned long long>(vfs.f_bavail) * static_cast<unsigned long long>(vfs.f_frsize);
    fault::free_space_override(free_bytes);
    // *.partial files coexist with any old outputs until the rename: the full size is needed.
    const unsigned long long need = p.output_bytes;
    const bool short_of_space = need > free_bytes;
    if (short_of_space && !dry_run)
        throw core::Error(core::ErrorKind::Io, dir.string(), "",
                          core::cat("not enough disk space: the outputs need ", need, " bytes, ", free_bytes,
                                    " bytes are free"));
    char buf[160];
    std::snprintf(buf, sizeof buf, "preflight: %s writable, disk needed %.2f GB, free %.2f GB", dir.c_str(),
                  static_cast<double>(need) / 1e9, static_cast<double>(free_bytes) / 1e9);
    // A dry run plans a job for another machine too: it reports the shortfall instead of refusing.
    return std::string(buf) + (short_of_space ? " (not enough disk space here: a real run would stop, exit 5)" : "");
}

}  // namespace shardforge::exec
