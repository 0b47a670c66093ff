// POSIX file helpers for exec.
#include "io.hpp"

#include "fault.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shardforge::exec {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

UniqueFd::~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
}

UniqueFd open_read(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot open: ", std::strerror(errno)));
    return UniqueFd(fd);
}

UniqueFd open_write(const std::string& path, bool create_truncate) {
    // Never write through a symlink (or into a hard-linked file) that happens to sit at an output path: a new
    // file replaces whatever was there, and later opens refuse symlinks.
    int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
    if (create_truncate) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot replace: ", std::strerror(errno)));
        flags |= O_CREAT | O_EXCL;
    }
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0)
        throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot open for writing: ", std::strerror(errno)));
    return UniqueFd(fd);
}

void pread_all(int fd, std::span<std::byte> out, std::uint64_t offset, const std::string& path,
               const std::string& tensor) {
    std::size_t done = 0;
    while (done < out.size()) {
        std::size_t len = out.size() - done;
        const int fault = fault::before_pread(len);
        if (fault > 0) errno = fault;
        const ssize_t n = fault > 0 ? -1
                          : fault < 0 ? 0
                                      : ::pread(fd, out.data() + done, len, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw core::Error(core::ErrorKind::Io, path, tensor, core::cat("read failed: ", std::strerror(errno)));
        }
        if (n == 0)
            throw core::Error(core::ErrorKind::Io, path, tensor,
                              core::cat("file ends at ", offset + done, " but data extends to ", offset + out.size(),
                                        " (truncated while reading?)"));
        done += static_cast<std::size_t>(n);
    }
}

void pwrite_all(int fd, std::span<const std::byte> in, std::uint64_t offset, const std::string& path,
                const std::string& tensor) {
    std::size_t done = 0;
    while (done < in.size()) {
        std::size_t len = in.size() - done;
        const int fault = fault::before_pwrite(len);
        if (fault > 0) errno = fault;
        const ssize_t n = fault > 0 ? -1 : ::pwrite(fd, in.data() + done, len, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw core::Error(core::ErrorKind::Io, path, tensor, core::cat("write failed: ", std::strerror(errno)));
        }
        if (n == 0) throw core::Error(core::ErrorKind::Io, path, tensor, "write made no progress");
        done += static_cast<std::size_t>(n);
    }
}

void fsync_or_throw(int fd, const std::string& path) {
    if (::fsync(fd) != 0)
        throw core::Error(core::ErrorKind::Io, path, "", core::cat("fsync failed: ", std::strerror(errno)));
}

void advise_willneed(int fd, std::uint64_t offset, std::uint64_t len) noexcept {
    if (len > 0) (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_WILLNEED);
}

}  // namespace shardforge::exec
