// POSIX file helpers for exec: RAII descriptors, full pread/pwrite with errors naming the file.
#pragma once
#include <shardforge/core.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace shardforge::exec {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    UniqueFd& operator=(UniqueFd&& o) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd();
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

UniqueFd open_read(const std::string& path);
UniqueFd open_write(const std::string& path, bool create_truncate);
// Reads exactly out.size() bytes at offset; short file or EIO -> core::Error(Io) naming path and tensor.
void pread_all(int fd, std::span<std::byte> out, std::uint64_t offset, const std::string& path,
               const std::string& tensor);
void pwrite_all(int fd, std::span<const std::byte> in, std::uint64_t offset, const std::string& path,
                const std::string& tensor);
void fsync_or_throw(int fd, const std::string& path);
// posix_fadvise(WILLNEED): the kernel reads the range ahead, asynchronously. Errors are ignored (a hint).
void advise_willneed(int fd, std::uint64_t offset, std::uint64_t len) noexcept;

}  // namespace shardforge::exec
