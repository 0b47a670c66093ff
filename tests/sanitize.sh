#!/usr/bin/env bash
# Sanitizer builds (issue 10 item 3):
#   1. ASan+UBSan build (-DSHARDFORGE_SANITIZE=address,undefined) and ctest -L "unit|corpus|mpi|reference" there;
#   2. TSan build of unit_quant only (the threaded quantizer, quantize_rows_parallel), run under TSan.
# Prints the wall time of each step. Usage: tests/sanitize.sh [asan|tsan|all]   (default all)
# Env: SF_SAN_BUILD_PREFIX (default /work/build-, else ./build-), SF_SAN_JOBS (default 2), CTEST_ARGS.
set -uo pipefail
what=${1:-all}
SRC=$(cd "$(dirname "$0")/.." && pwd)
prefix=${SF_SAN_BUILD_PREFIX:-$( [ -d /work ] && echo /work/build- || echo "$PWD/build-" )}
jobs=${SF_SAN_JOBS:-2}
status=0
t() { date +%s; }

# Open MPI under ASan: LeakSanitizer reports Open MPI's (and hwloc's/PMIx's) intentional one-time allocations
# at exit, so leak detection is off in MPI processes; ASan's other checks stay on. UBSan stops at the first error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [ "$what" = all ] || [ "$what" = asan ]; then
  b=${prefix}asan; s=$(t)
  cmake -S "$SRC" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_SANITIZE=address,undefined \
    -DSHARDFORGE_BUILD_BENCH=OFF -DSHARDFORGE_WITH_CUDA=OFF >"$b.cmake.log" 2>&1 || { echo "asan: cmake failed ($b.cmake.log)"; exit 2; }
  ninja -C "$b" -j"$jobs" >"$b.ninja.log" 2>&1 || { echo "asan: build failed ($b.ninja.log)"; tail -20 "$b.ninja.log"; exit 2; }
  sb=$(t)
  (cd "$b" && ctest -L "unit|corpus|mpi|reference" -j"$jobs" --output-on-failure ${CTEST_ARGS:-}) >"$b.ctest.log" 2>&1 || status=1
  e=$(t)
  grep -E 'tests passed|tests failed' "$b.ctest.log"
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)' "$b.ctest.log" | head -40
  echo "asan+ubsan: build $((sb - s)) s, ctest $((e - sb)) s (log $b.ctest.log)"
fi

if [ "$what" = all ] || [ "$what" = tsan ]; then
  b=${prefix}tsan; s=$(t)
  cmake -S "$SRC" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_SANITIZE=thread \
    -DSHARDFORGE_BUILD_BENCH=OFF -DSHARDFORGE_WITH_CUDA=OFF >"$b.cmake.log" 2>&1 || { echo "tsan: cmake failed ($b.cmake.log)"; exit 2; }
  ninja -C "$b" -j"$jobs" unit_quant >"$b.ninja.log" 2>&1 || { echo "tsan: build failed ($b.ninja.log)"; tail -20 "$b.ninja.log"; exit 2; }
  sb=$(t)
  # halt_on_error: a data race fails the run instead of only printing a report.
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} "$b/unit_quant" >"$b.run.log" 2>&1 || status=1
  e=$(t)
  grep -E '^\[  (PASSED|FAILED) |WARNING: ThreadSanitizer' "$b.run.log" | sort | uniq -c
  echo "tsan unit_quant: build $((sb - s)) s, run $((e - sb)) s (log $b.run.log)"
fi
exit $status
