// shardforge core: the communicator every collective goes through (ADIOS2's helper::Comm idea). It has no MPI types,
// so any module may take a `Comm&` (exec runs a plan on it, hub shares uploads and downloads over it); only
// src/exec/mpi_comm.cpp includes <mpi.h> and makes the MPI one (exec::make_mpi_comm).
#pragma once
#include <shardforge/core.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::core {

class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void barrier() = 0;                                          // collective
    virtual void broadcast(std::string& bytes, int root) = 0;            // collective; resizes on receivers
    virtual std::uint64_t max(std::uint64_t local) = 0;                  // collective
    virtual std::uint64_t sum(std::uint64_t local) = 0;                  // collective
    virtual double max(double local) = 0;                                // collective
    virtual std::vector<std::string> gather(const std::string& local, int root) = 0;  // collective; filled on root

    // Non-blocking element-wise sum over ranks (MPI_Iallreduce). The caller polls test() (one thread, the one that
    // started it); result() is valid once test() returned true. Default: a blocking fallback (complete at once).
    class SumRequest {
    public:
        virtual ~SumRequest() = default;
        virtual bool test() = 0;
        virtual const std::vector<std::uint64_t>& result() const = 0;
    };
    virtual std::unique_ptr<SumRequest> isum(const std::vector<std::uint64_t>& local);  // collective
    // collective: a communicator of the same ranks whose traffic never mixes with this one's (MPI_Comm_dup), for
    // progress rounds that run while other collectives are in flight; nullptr when not supported.
    virtual std::unique_ptr<Comm> dup() { return nullptr; }
    // Point-to-point (gather write mode), from the thread that initialised the communicator only.
    // isend: non-blocking; `data` must stay alive and unchanged until wait(request) returns.
    using Request = std::uint64_t;
    virtual Request isend(std::span<const std::byte> data, int dest, int tag) = 0;
    virtual void wait(Request r) = 0;
    // Blocks for the next message with `tag` from any rank; `out` is resized to it. Returns the sender's rank.
    // Messages from one sender arrive in the order they were sent.
    virtual int recv_any(std::vector<std::byte>& out, int tag) = 0;
    [[nodiscard]] virtual std::string backend() const { return "mpi"; }  // "mpi", "serial", "nccl"
};

[[nodiscard]] std::unique_ptr<Comm> make_serial_comm();  // one process (tests, demo, inspect)

// collective: every rank passes its local error (or none); every rank returns the error of the lowest failing
// rank (same kind and message everywhere), so all ranks can stop together without hanging in a collective.
[[nodiscard]] std::optional<Error> agree_on_error(Comm& comm, const std::optional<Error>& local);

// A step's exception as a value, so that every rank can agree on it (agree_on_error) before anyone throws: runs f; a
// core::Error it throws is returned as is, out of memory as Io, anything else as Internal.
template <class F>
[[nodiscard]] std::optional<Error> capture(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return Error(ErrorKind::Io, "", "", "out of memory");
    } catch (const std::exception& e) {
        return Error(ErrorKind::Internal, "", "", e.what());
    }
    return std::nullopt;
}

}  // namespace shardforge::core
