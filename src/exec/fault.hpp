// Test-only fault injection (docs/testing.md, "Reliability"): SHARDFORGE_FAULT makes exec's I/O and item loop fail on purpose, so tests
// can check that every rank stops cleanly. Unset (always, in production): one relaxed atomic load per call.
//   SHARDFORGE_FAULT=<fault>[,<fault>...]    each fault optionally ":rank=R" (default: every rank)
//     short_write:N      the Nth pwrite of this process writes only half its bytes (pwrite_all must retry)
//     short_read:N       the Nth pread returns only half its bytes (pread_all must retry)
//     eio_write:N        the Nth pwrite fails with EIO          -> Error(Io), exit 5
//     enospc:N           the Nth pwrite fails with ENOSPC       -> Error(Io), exit 5
//     eio_read:N         the Nth pread fails with EIO           -> Error(Io), exit 5
//     truncate_input:N   the Nth pread sees end of file         -> Error(Io) "file ends at", exit 5
//     die_rank:R:after_items=K   rank R _Exit(86)s after finishing K items (a crashed/killed rank)
//     slow_rank:R:ms=M           rank R sleeps M ms before every item
//     statvfs_free:BYTES         preflight sees BYTES of free space on the output filesystem
//     hold_last_item:R           rank R waits before its last item until the file $SHARDFORGE_FAULT_HOLD_FILE
//                                exists (at most 60 s): a test can act while the export is provably unfinished
//     die_at:POINT[:rank=R]      a rank that reaches the named step raises SIGKILL there (kill -9 at a known
//                                instant); the finishing steps are named in run.cpp (verify, verified, write.I,
//                                fsync.I, renaming, rename.I, renamed, unjournal.I, unjournaled, unlock)
//     corrupt_partial[:rank=R]   after the units, before verification, the rank flips one byte of the first unit it
//                                wrote (the partial changed under the run: verification must refuse, exit 7)
// Counting is per process, from 1, over all threads. A malformed value is a Usage error at the first use.
#pragma once
#include <cstddef>

namespace shardforge::exec::fault {

void set_rank(int rank);                // run() calls this first; until then the rank is 0
// Before one pread/pwrite syscall of `len` bytes: returns 0 (go on; len may have been reduced), an errno value
// to fail with, or -1 for "end of file" (pread only).
int before_pwrite(std::size_t& len);
int before_pread(std::size_t& len);
void before_item();                     // slow_rank
void before_last_item();                // hold_last_item
void after_item();                      // die_rank
bool free_space_override(unsigned long long& bytes);  // statvfs_free: true and sets bytes
void point(const char* name, long index = -1);  // die_at: "name" or "name.index"
bool corrupt_partial();                 // corrupt_partial: true on the ranks it names

}  // namespace shardforge::exec::fault
