#!/usr/bin/env bash
# A fuzz campaign that accumulates (tests/fuzz/README.md, "Campaigns"): runs every libFuzzer target for HOURS
# (fractions allowed: 0.1 = 6 minutes), all targets in parallel, each starting from its committed corpus
# (tests/fuzz/corpus/<target>/) and regressions; then minimises what the run found into the committed corpus with
# libFuzzer's set-cover merge (an input is added only if it reaches coverage edges the corpus does not), so the next campaign
# starts where this one stopped. Prints per target: executions, coverage (cov: edges, ft: features) before and
# after, inputs added to the corpus and findings; then the totals and the CPU-hours spent. Exit 1 on any finding.
#
#   tests/fuzz/campaign.sh HOURS
# Env: SF_FUZZ_TARGETS (subset, default every target of tests/fuzz/tests.cmake), SF_FUZZ_PARALLEL (targets at a
#      time, default all), SF_FUZZ_FORK (libFuzzer -fork=N processes per target, default 1: a single process),
#      SF_FUZZ_BUILD / SF_FUZZ_NO_BUILD / SF_FUZZ_JOBS (as run_fuzzers.sh: the clang fuzz build to use or make),
#      SF_FUZZ_WORK (scratch, default $BUILD/campaign), SF_FUZZ_NO_MERGE=1 (leave tests/fuzz/corpus unchanged).
# A finding leaves its reproducer in $WORK/artifacts/<target>/ (crash-*, leak-*, timeout-*, oom-*): fix the parser,
# copy the reproducer to tests/fuzz/regressions/<target>/ (the replay test keeps it fixed), commit both.
set -uo pipefail
HOURS=${1:?usage: campaign.sh HOURS (e.g. 0.25)}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${SF_FUZZ_BUILD:-$( [ -d /work ] && echo /work/build-fuzz || echo "$PWD/build-fuzz" )}
ALL=$(sed -n 's/^set(SF_FUZZ_TARGETS \(.*\))$/\1/p' "$SRC/tests/fuzz/tests.cmake")
TARGETS=${SF_FUZZ_TARGETS:-$ALL}
WORK=${SF_FUZZ_WORK:-$BUILD/campaign}
FORK=${SF_FUZZ_FORK:-1}
SECS=$(awk -v h="$HOURS" 'BEGIN { s = int(h * 3600); if (s < 1) s = 1; print s }')
ntargets=$(echo $TARGETS | wc -w)
PARALLEL=${SF_FUZZ_PARALLEL:-$ntargets}

export CC=${CC:-clang} CXX=${CXX:-clang++}
if [ -z "${SF_FUZZ_NO_BUILD:-}" ]; then  # the same clang fuzz build as run_fuzzers.sh
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_BUILD_FUZZERS=ON \
    -DSHARDFORGE_SANITIZE=address,undefined -DSHARDFORGE_BUILD_BENCH=OFF -DSHARDFORGE_WITH_CUDA=OFF >"$BUILD.cmake.log" 2>&1 \
    || { echo "campaign: cmake failed, see $BUILD.cmake.log"; exit 2; }
  ninja -C "$BUILD" -j"${SF_FUZZ_JOBS:-2}" $(for t in $TARGETS; do echo "fuzz_$t"; done) >"$BUILD.ninja.log" 2>&1 \
    || { echo "campaign: build failed, see $BUILD.ninja.log"; exit 2; }
fi
for t in $TARGETS; do
  [ -x "$BUILD/tests/fuzz_$t" ] || { echo "campaign: $BUILD/tests/fuzz_$t missing (build with SHARDFORGE_BUILD_FUZZERS=ON)"; exit 2; }
done

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
FLAGS=(-max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)

# stats LOG: "execs cov ft" from a libFuzzer log (final stats, else the last status line).
stats() {
  local execs cov ft
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$1" | grep -oE '[0-9]+$' | tail -1)
  [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$1" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$1" | tail -1 | grep -oE '[0-9]+')
  ft=$(grep -oE 'ft: [0-9]+' "$1" | tail -1 | grep -oE '[0-9]+')
  echo "${execs:-0} ${cov:-0} ${ft:-0}"
}

campaign_one() {  # TARGET: baseline coverage, fuzz for SECS into a scratch corpus, merge, write $WORK/$t.result
  local t=$1 bin="$BUILD/tests/fuzz_$1" corpus="$SRC/tests/fuzz/corpus/$1" reg="$SRC/tests/fuzz/regressions/$1"
  local d="$WORK/$t" rc
  rm -rf "$d"; mkdir -p "$d/grown" "$d/empty" "$WORK/artifacts/$t" "$corpus"
  local seeds=("$corpus"); [ -d "$reg" ] && seeds+=("$reg")
  local before; before=$(ls "$corpus" | wc -l)
  # Coverage of the committed corpus alone (every input once).
  "$bin" -runs=0 "${FLAGS[@]}" "$d/empty" "${seeds[@]}" >"$d/base.log" 2>&1
  read -r _ cov0 ft0 < <(stats "$d/base.log")
  local extra=(); [ "$FORK" -gt 1 ] && extra=(-fork="$FORK" -ignore_crashes=0)
  "$bin" -max_total_time="$SECS" "${FLAGS[@]}" "${extra[@]}" -artifact_prefix="$WORK/artifacts/$t/" \
    "$d/grown" "${seeds[@]}" >"$d/fuzz.log" 2>&1
  rc=$?
  read -r execs cov ft < <(stats "$d/fuzz.log")
  local added=0
  if [ -z "${SF_FUZZ_NO_MERGE:-}" ] && [ -n "$(ls "$d/grown")" ]; then
    # Every committed input stays; a grown one is added only if it reaches coverage edges the corpus does not
    # (-use_counters=0: edges, not hit-count buckets, which would keep an input per loop count; -set_cover_merge:
    # a greedy set cover, fewer inputs than -merge=1 for the same edges).
    "$bin" -set_cover_merge=1 -use_counters=0 "${FLAGS[@]}" "$corpus" "$d/grown" >"$d/merge.log" 2>&1 \
      || echo "merge failed: $d/merge.log" >>"$d/notes"
    added=$(( $(ls "$corpus" | wc -l) - before ))
  fi
  local findings; findings=$(ls "$WORK/artifacts/$t" | grep -cE '^(crash|leak|timeout|oom|slow-unit)-' || true)
  local result=ok
  if [ $rc -ne 0 ] || [ "$findings" -gt 0 ]; then result="FINDINGS (rc $rc): $(ls "$WORK/artifacts/$t" | head -3 | tr '\n' ' ')"; fi
  {
    printf '%-16s %12s %7s %7s %7s %7s %6s %6s  %s\n' "$t" "$execs" "$cov0" "$cov" "$ft0" "$ft" "$before" "+$added" "$result"
    [ "$result" != ok ] && grep -m3 -E 'ERROR: |runtime error|escaped|SUMMARY' "$d/fuzz.log" | sed 's/^/    /'
    [ -f "$d/notes" ] && sed 's/^/    /' "$d/notes"
  } >"$WORK/$t.result"
  echo "$execs $findings $rc" >"$WORK/$t.status"
}

mkdir -p "$WORK"
echo "campaign: $ntargets targets x ${SECS} s, $PARALLEL at a time, -fork=$FORK; build $BUILD; scratch $WORK"
start=$(date +%s)
running=0
for t in $TARGETS; do
  rm -f "$WORK/$t.result" "$WORK/$t.status"
  campaign_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$PARALLEL" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
wall=$(( $(date +%s) - start ))
total=0; bad=0
printf '%-16s %12s %7s %7s %7s %7s %6s %6s  %s\n' target executions cov0 cov ft0 ft corpus added result
for t in $TARGETS; do
  cat "$WORK/$t.result" 2>/dev/null || echo "$t: no result"
  read -r execs findings rc <"$WORK/$t.status" || { execs=0; findings=1; rc=1; }
  total=$((total + execs))
  { [ "$findings" -gt 0 ] || [ "$rc" -ne 0 ]; } && bad=$((bad + 1))
done
cpu_h=$(awk -v n="$ntargets" -v s="$SECS" -v f="$FORK" 'BEGIN { printf "%.2f", n * s * f / 3600 }')
echo "total: $total executions, $ntargets targets x ${SECS} s x $FORK process(es) = $cpu_h CPU-hours fuzzing, $wall s wall;" \
  "targets with findings: $bad (reproducers in $WORK/artifacts/)"
[ -z "${SF_FUZZ_NO_MERGE:-}" ] && echo "corpus: tests/fuzz/corpus/ updated (git status shows the added inputs; commit them)"
[ $bad -eq 0 ]
