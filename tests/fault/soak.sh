#!/usr/bin/env bash
# soak.sh [N]: N (default 200) consecutive exports of the demo model, each at a random rank count (1-3), thread
# count (1-2), write mode (direct / gather) and memory budget (whole tensors or row blocks), with a random fault of
# src/exec/fault.hpp or none. Every export that succeeds must equal the reference bytes (a 1-rank, 1-thread run);
# every failure must be clean: the documented exit code (5 for an I/O fault, 7 for a partial changed before the
# renames, nonzero for a crashed rank), one distinct error line where the rank could print one, nothing final-named;
# and `--resume` without the fault must then complete to the reference bytes and leave no partial or journal.
# Not part of CI (about 3 s an export on 2 cores): run it by hand, e.g.
#   SHARDFORGE_BIN=build/shardforge SHARDFORGE_SOURCE_DIR=$PWD tests/fault/soak.sh 200
# SF_SOAK_SEED fixes the draw (printed at the start); SF_MPIRUN overrides the launcher.
# Self-test (SF_SELFTEST_WRONG=1): a successful export is expected to differ from the reference.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
n_runs=${1:-200}
SF_MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root --bind-to none}
seed=${SF_SOAK_SEED:-$(date +%s)}
RANDOM=$seed
echo "soak: $n_runs exports, seed $seed"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q8_0,gguf:q4_k_m
      --max-shard-size 2MB)
run() {  # run NP OUT [extra args...]: export into OUT with $SHARDFORGE_FAULT; sets rc, err
  local np=$1 out=$2
  shift 2
  try timeout 300 $SF_MPIRUN -np "$np" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" --out "$out" "$@" \
    >"$work/stdout" 2>"$work/stderr"
  rc=$RC
  err=$( (grep '^shardforge: error:' "$work/stderr" || :) | sort -u)
}
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
same_as_ref() { diff -q <(sums "$1") "$work/ref.sum" >/dev/null; }
finals_in() { if [ -d "$1" ]; then find "$1" -path '*/.shardforge-resume' -prune -o -type f ! -name '*.partial' ! -name '.shardforge.lock' -print | sed -n 1,3p; fi; }
leftovers_in() { find "$1" -name '*.partial' -o -name .shardforge-resume | sed -n 1,3p; }
wait_lock_holder() {  # a crashed run's rank 0 may outlive mpirun; --resume rightly refuses while it lives
  local holder t
  [ -e "$1/.shardforge.lock" ] || return 0
  holder=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$1/.shardforge.lock")
  for ((t = 0; t < 600; t++)); do kill -0 "$holder" 2>/dev/null || return 0; sleep 0.05; done
}

export SHARDFORGE_FAULT=
run 1 "$work/ref" --threads 1
[ $rc -eq 0 ] || { echo "FAIL: reference export failed ($rc)"; cat "$work/stderr"; exit 1; }
sums "$work/ref" >"$work/ref.sum"
want_same=$(sf_expect 0 1)  # same_as_ref's status for a successful export
# A budget 3 MB above the fixed per-rank overhead the binary reports: row blocks (as mpi/family_ranks.sh).
overhead=$( ("$SHARDFORGE_BIN" "${args[@]}" --threads 2 --max-memory-per-rank 1MB --out "$work/dry" --dry-run 2>&1 || :) |
           sed -n 's/.*overhead of about \([0-9]*\) bytes.*/\1/p')
check "the binary reports its per-rank overhead (${overhead:-?} B)" [ -n "$overhead" ]
blocks=$((${overhead:-0} + 3000000))
pick() { local a=("$@"); echo "${a[RANDOM % ${#a[@]}]}"; }
declare -A seen=()
for ((i = 1; i <= n_runs; i++)); do
  np=$((1 + RANDOM % 3)) threads=$((1 + RANDOM % 2))
  write=$(pick direct gather)
  budget=$(pick "" "$blocks")
  k=$((1 + RANDOM % 6)) last=$((np - 1))
  fault=$(pick "" "" "short_write:$k" "short_read:$k" "slow_rank:$last:ms=5" "eio_write:$k" "enospc:$k" \
               "eio_read:$k" "truncate_input:$k" "eio_write:$k:rank=$last" "die_rank:$last:after_items=$k" \
               "corrupt_partial:rank=$last")
  tag="#$i np=$np threads=$threads write=$write budget=${budget:-none} fault=${fault:-none}"
  opts=(--threads "$threads" --write "$write")
  [ -z "$budget" ] || opts+=(--max-memory-per-rank "$budget")
  out=$work/out
  rm -rf "$out"
  export SHARDFORGE_FAULT=$fault
  run "$np" "$out" "${opts[@]}"
  kind=${fault%%:*}
  seen[${kind:-none}]=1
  if [ $rc -eq 0 ]; then
    # A fault that fires late (after the last write, past the last item) may leave the run untouched.
    try same_as_ref "$out"
    check "$tag: succeeded with the reference bytes" [ "$RC" -eq "$want_same" ]
    check "$tag: no partial or journal left ($(leftovers_in "$out"))" [ -z "$(leftovers_in "$out")" ]
    continue
  fi
  case $fault in
    die_rank*) check "$tag: a crashed rank ends the run, no hang (exit $rc)" [ $rc -ne 124 ] ;;
    corrupt_partial*) check "$tag: exit 7 (got $rc: $err)" [ $rc -eq 7 ] ;;
    *) check "$tag: exit 5 (got $rc: $err)" [ $rc -eq 5 ]
       check "$tag: one distinct error line (got: $err)" [ "$(printf '%s\n' "$err" | grep -c . || :)" -eq 1 ] ;;
  esac
  check "$tag: no final-named output ($(finals_in "$out"))" [ -z "$(finals_in "$out")" ]
  wait_lock_holder "$out"
  export SHARDFORGE_FAULT=
  run "$np" "$out" "${opts[@]}" --resume
  check "$tag: --resume without the fault exits 0 (got $rc: $err)" [ $rc -eq 0 ]
  check "$tag: the resumed output equals the reference" same_as_ref "$out"
  check "$tag: no partial or journal left after --resume ($(leftovers_in "$out"))" [ -z "$(leftovers_in "$out")" ]
done
echo "soak: fault kinds drawn: ${!seen[*]}"
finish
