#!/usr/bin/env bash
# The README's test command (and CI's, through .ci/run): installs dependencies, builds, runs every test once.
#
#   tests/run.sh                    full run, what CI runs (phases below)
#   tests/run.sh -L unit            extra arguments are ctest arguments, given to the ctest runs of both builds (a
#                                   label/regex only matches in the build that owns it); the fuzzing and TSan phases
#                                   run only in a full run (no arguments)
#   SF_SKIP_SANITIZE=1 tests/run.sh [ctest args]
#                                   quick local run: the normal build only, every test label there (as before)
#
# Phases of a full run (each test runs in exactly one build; a timestamped summary is printed at the end):
#   install   jobs/install-deps.sh --test
#   build     normal build: gcc, -Werror in CI, CUDA when found; only the targets the normal labels need
#             (shardforge, conformance/GPU helpers, benchmarks), not the unit tests or fuzz replays (built and run
#             in the sanitizer build)
#   san-build sanitizer build ($build-san): clang, -fsanitize=address,undefined, libFuzzer coverage on the libraries,
#             no CUDA: shardforge, the unit tests, the path-safety tests and the libFuzzer targets
#   san-ctest ctest there: every label except $SF_NORMAL_LABELS (unit, mpi, reference, corpus, fault, safety, engine,
#             resume, batch, report, fuzz replays, layering, imatrix...)
#   fuzz      every libFuzzer target for $SF_FUZZ_SECONDS (default 30) from its seeds and regressions, 2 at a time
#             (tests/fuzz/run_fuzzers.sh; a crash fails the run)
#   tsan      ThreadSanitizer build of the quant library + tsan_quant ($build-tsan), ctest -L tsan
#   ctest     normal build: ctest -L "$SF_NORMAL_LABELS": conformance (node/go/ggml peers, slow under ASan), hub
#             (node servers), gpu (CUDA, not in the sanitizer build), bench, valgrind (memcheck cannot run an ASan
#             binary), scale (full-size plans and multi-GB exports whose peak RSS is the point; minutes under ASan)
# A failing test phase does not stop the later ones; the exit status is 1 if any phase failed.
# Skips: after every ctest run the skipped tests are printed with their reasons (tests/lib/ctest_skips.py); only
# gpu-labelled tests may skip, any other skip fails that phase (docs/testing.md, "Skips").
# Env: SHARDFORGE_BUILD_DIR (default ./build), SF_FUZZ_SECONDS, SF_NORMAL_LABELS, SF_SKIP_SANITIZE=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHARDFORGE_BUILD_DIR:-$root/build}
jobs=$(nproc)
werror=OFF; [ "${CI:-}" = "true" ] && werror=ON
normal_labels=${SF_NORMAL_LABELS:-conformance|hub|gpu|bench|valgrind|native|scale}
fuzz_seconds=${SF_FUZZ_SECONDS:-30}
full=1; [ $# -gt 0 ] && full=0
sanitize=1; [ "${SF_SKIP_SANITIZE:-0}" = 1 ] && sanitize=0

t0=$(date +%s); t_last=$t0; summary=(); failed=()
# run_ctest DIR [ctest args]: ctest in DIR, then the skip report; fails if ctest failed or a non-gpu test skipped.
run_ctest() {
  local dir=$1 st=0; shift
  (cd "$dir" && ctest --output-junit "$dir/ctest-junit.xml" "$@") || st=1
  /usr/bin/python3 "$root/tests/lib/ctest_skips.py" "$dir" "$dir/ctest-junit.xml" || st=1
  return $st
}
phase_done() {  # phase_done NAME STATUS [NOTE]: a summary line with the wall time since the previous phase
  local now; now=$(date +%s)
  summary+=("$(printf '%s  %-10s %5d s  %s %s' "$(date -u +%H:%M:%S)" "$1" $((now - t_last)) "$2" "${3:-}")")
  t_last=$now
  [ "$2" = ok ] || failed+=("$1")
}
print_summary() {
  echo; echo "== tests/run.sh phases (wall time, load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%s\n' "${summary[@]}"
  echo "total $(( $(date +%s) - t0 )) s; failed: ${failed[*]:-none}"
}
trap print_summary EXIT

bash "$root/jobs/install-deps.sh" --test
phase_done install ok

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_WERROR=$werror >/dev/null
if [ $sanitize = 0 ]; then
  cmake --build "$build" -j "$jobs"
  phase_done build ok
  st=ok; run_ctest "$build" --output-on-failure -j "$jobs" --timeout 900 "$@" || st=FAILED
  phase_done ctest $st
  [ $st = ok ]; exit
fi

# Normal build: every executable except the unit tests, the path-safety test and the fuzz replays.
executables() { ninja -C "$1" -t targets all | sed -n 's/: CXX_EXECUTABLE_LINKER.*//p' | grep -E '^[a-z0-9_/]+$'; }
mapfile -t normal_targets < <(executables "$build" | grep -vE '(^|/)(unit_[a-z0-9_]+|fault_path_safety|fuzz_replay_[a-z0-9_]+|fuzz_plan_seed)$')
cmake --build "$build" -j "$jobs" --target "${normal_targets[@]}"
phase_done build ok

san=${build}-san
CC=clang CXX=clang++ cmake -S "$root" -B "$san" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHARDFORGE_SANITIZE=address,undefined -DSHARDFORGE_BUILD_FUZZERS=ON -DSHARDFORGE_BUILD_BENCH=OFF \
  -DSHARDFORGE_WITH_CUDA=OFF >/dev/null
mapfile -t san_targets < <(executables "$san" | grep -E '(^|/)(shardforge|unit_[a-z0-9_]+|fault_path_safety|fuzz_[a-z0-9_]+|ollama_client_conformance)$')
cmake --build "$san" -j "$jobs" --target "${san_targets[@]}"
phase_done san-build ok

# Open MPI under ASan: LeakSanitizer would report Open MPI's (hwloc's, PMIx's) one-time allocations at exit, so leak
# detection is off there (the fuzz replays and fuzzing keep it on); every other ASan check stays on. UBSan findings
# stop the process (default: print and go on).
st=ok
ASAN_OPTIONS=detect_leaks=0:strict_string_checks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_ctest "$san" --output-on-failure -j "$jobs" --timeout 900 -LE "$normal_labels" "$@" || st=FAILED
phase_done san-ctest $st

if [ $full = 1 ]; then
  st=ok
  SF_FUZZ_BUILD="$san" SF_FUZZ_NO_BUILD=1 SF_FUZZ_PARALLEL="$jobs" bash "$root/tests/fuzz/run_fuzzers.sh" "$fuzz_seconds" \
    || st=FAILED
  phase_done fuzz "$st" "(${fuzz_seconds} s per target)"

  tsan=${build}-tsan
  CC=clang CXX=clang++ cmake -S "$root" -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSHARDFORGE_SANITIZE=thread -DSHARDFORGE_BUILD_BENCH=OFF -DSHARDFORGE_WITH_CUDA=OFF >/dev/null
  cmake --build "$tsan" -j "$jobs" --target tsan_quant
  st=ok; run_ctest "$tsan" --output-on-failure -L tsan || st=FAILED
  phase_done tsan $st
fi

st=ok
run_ctest "$build" --output-on-failure -j "$jobs" --timeout 900 -L "$normal_labels" "$@" || st=FAILED
phase_done ctest $st
[ ${#failed[@]} -eq 0 ]
