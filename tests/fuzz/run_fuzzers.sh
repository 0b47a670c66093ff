#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 60), starting from the
# committed seed corpus (read only: new inputs go to a scratch corpus). Prints runs/coverage per target and a total.
# A crash leaves its reproducer in $WORK/artifacts/<target>/; copy it to tests/fuzz/regressions/<target>/ so that
# normal ctest (fuzz.replay.<target>) replays it forever. Exit status 1 if any target crashed.
# Env: SF_FUZZ_BUILD (build dir, default /work/build-fuzz or $PWD/build-fuzz), SF_FUZZ_TARGETS (subset),
#      SF_FUZZ_NO_BUILD=1 (skip cmake/ninja; e.g. SF_FUZZ_BUILD=build-san, the sanitizer build of tests/run.sh),
#      SF_FUZZ_PARALLEL (targets run at a time, default 1), SF_FUZZ_JOBS (ninja -j, default 2), CC/CXX (clang).
set -uo pipefail
SECONDS_PER_TARGET=${1:-60}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${SF_FUZZ_BUILD:-$( [ -d /work ] && echo /work/build-fuzz || echo "$PWD/build-fuzz" )}
TARGETS=${SF_FUZZ_TARGETS:-"safetensors gguf adapter_config hf_config tokenizer tokenizer_files sentencepiece plan hub bnb_quant_state job imatrix"}
WORK=${SF_FUZZ_WORK:-$BUILD/fuzz-work}

export CC=${CC:-clang} CXX=${CXX:-clang++}
if [ -z "${SF_FUZZ_NO_BUILD:-}" ]; then  # SF_FUZZ_NO_BUILD=1: reuse the fuzz_* binaries already in $BUILD
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_BUILD_FUZZERS=ON \
  -DSHARDFORGE_SANITIZE=address,undefined -DSHARDFORGE_BUILD_BENCH=OFF -DSHARDFORGE_WITH_CUDA=OFF >"$BUILD.cmake.log" 2>&1 \
  || { echo "run_fuzzers: cmake failed, see $BUILD.cmake.log"; tail -20 "$BUILD.cmake.log"; exit 2; }
ninja -C "$BUILD" -j"${SF_FUZZ_JOBS:-2}" $(for t in $TARGETS; do echo "fuzz_$t"; done) >"$BUILD.ninja.log" 2>&1 \
  || { echo "run_fuzzers: build failed, see $BUILD.ninja.log"; grep -m20 -E 'error|Error' "$BUILD.ninja.log"; exit 2; }
fi

# UBSan findings must stop the run (default is print-and-continue); leaks in a parser are findings too.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
fuzz_one() {  # fuzz_one TARGET: runs it, writes "$WORK/$t.result" (one table line, then CRASH lines)
  local t=$1 log="$WORK/$1.log" rc runs cov ft result
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  local seeds=("$SRC/tests/fuzz/corpus/$t")
  [ -d "$SRC/tests/fuzz/regressions/$t" ] && seeds+=("$SRC/tests/fuzz/regressions/$t")
  "$BUILD/tests/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t/" "$WORK/corpus/$t" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  result=ok
  [ $rc -ne 0 ] && result="CRASH (rc $rc): $(ls "$WORK/artifacts/$t" | head -3 | tr '\n' ' ') log $log"
  {
    printf '%-16s %10s %8s %8s %s\n' "$t" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$result"
    [ $rc -ne 0 ] && grep -m3 -E 'ERROR: |runtime error|escaped|SUMMARY' "$log" | sed 's/^/    /'
  } >"$WORK/$t.result"
  echo "${runs:-0} $rc" >"$WORK/$t.status"
}

# SF_FUZZ_PARALLEL targets at a time (default 1); results printed in target order.
parallel=${SF_FUZZ_PARALLEL:-1}
mkdir -p "$WORK"
start=$(date +%s)
running=0
for t in $TARGETS; do
  rm -f "$WORK/$t.result" "$WORK/$t.status"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$parallel" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
total_runs=0; crashed=0
printf '%-16s %10s %8s %8s %s\n' target runs cov ft result
for t in $TARGETS; do
  cat "$WORK/$t.result" 2>/dev/null || echo "$t: no result"
  read -r runs rc <"$WORK/$t.status" || { runs=0; rc=1; }
  total_runs=$((total_runs + runs))
  [ "$rc" -ne 0 ] && crashed=$((crashed + 1))
done
echo "total: $total_runs executions over $(echo $TARGETS | wc -w) targets, ${SECONDS_PER_TARGET}s each," \
  "$parallel at a time, $(( $(date +%s) - start )) s wall, $crashed crashed"
[ $crashed -eq 0 ]
