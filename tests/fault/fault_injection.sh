#!/usr/bin/env bash
# fault.injection.npN: with SHARDFORGE_FAULT (src/exec/fault.hpp) making one I/O call or one rank fail, an export
# with N ranks must stop on every rank (no hang) with exactly one clear error line and the documented exit code
# (5 = I/O), rename nothing to its final name (the *.partial files and the resume journal stay), and `--resume`
# without the fault must produce the reference bytes and leave no partial or journal.
# Harmless faults (short reads/writes, a slow rank) must give byte-identical outputs. die_rank (a crashed rank):
# all ranks end, nonzero exit, no final file; --resume then completes.
# Self-test (SF_SELFTEST_WRONG=1): the first failing fault is expected to exit 4.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
formats=safetensors,gguf:q8_0
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format "$formats" --max-shard-size 2MB)
run() {  # run OUT [extra args...]: export into OUT; sets rc, err
  local out=$1; shift
  try timeout 300 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" --out "$out" "$@" \
    >"$work/stdout" 2>"$work/stderr"
  rc=$RC
  err=$( (grep '^shardforge: error:' "$work/stderr" || :) | sort -u)
}
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
# The output lock of a crashed rank 0 stays (the next run takes it over): not an output.
finals_in() { if [ -d "$1" ]; then find "$1" -path '*/.shardforge-resume' -prune -o -type f ! -name '*.partial' ! -name '.shardforge.lock' -print | sed -n 1,3p; fi; }
leftovers_in() { find "$1" -name '*.partial' -o -name .shardforge-resume | sed -n 1,3p; }
same_as_ref() { diff -q <(sums "$1") "$work/ref.sum" >/dev/null; }

export SHARDFORGE_FAULT=
run "$work/ref"
[ $rc -eq 0 ] || { echo "FAIL: reference export failed ($rc)"; cat "$work/stderr"; exit 1; }
sums "$work/ref" >"$work/ref.sum"
nref=$(wc -l <"$work/ref.sum")

# Failing faults: exit 5 everywhere, one distinct error line naming the cause, nothing final-named.
want=$(sf_expect 5 4)
for spec in eio_write:3 enospc:5 eio_read:2 truncate_input:4 "eio_write:2:rank=$((SF_NP - 1))" \
            "eio_read:3:rank=$((SF_NP - 1))"; do
  out="$work/out-${spec//[:=]/_}"
  export SHARDFORGE_FAULT=$spec
  run "$out"
  case $spec in eio*) text="Input/output error";; enospc*) text="No space left";; truncate*) text="file ends at";; esac
  check "$spec: exit $want (got $rc; stderr: $(head -c 600 "$work/stderr"))" [ $rc -eq "$want" ]
  check "$spec: one distinct error line (got: $err)" [ "$(printf '%s\n' "$err" | grep -c . || :)" -eq 1 ]
  check "$spec: the error says '$text'" grep -q "$text" <<<"$err"
  check "$spec: no final-named output ($(finals_in "$out"))" [ -z "$(finals_in "$out")" ]
  # The fault is gone: --resume into the same directory succeeds and gives the reference bytes.
  export SHARDFORGE_FAULT=
  run "$out" --resume
  check "$spec: --resume without the fault exits 0 (got $rc: $err)" [ $rc -eq 0 ]
  check "$spec: the resumed output equals the reference" same_as_ref "$out"
  check "$spec: no partial or journal left after --resume ($(leftovers_in "$out"))" [ -z "$(leftovers_in "$out")" ]
done

# Harmless faults: same bytes as the reference.
for spec in short_write:1 short_write:4 short_read:1 short_read:3 "slow_rank:$((SF_NP - 1)):ms=20"; do
  out="$work/ok-${spec//[:=]/_}"
  export SHARDFORGE_FAULT=$spec
  run "$out"
  check "$spec: the export exits 0 (got $rc: $err)" [ $rc -eq 0 ]
  check "$spec: the output equals the reference" same_as_ref "$out"
done

# A crashed rank: every rank ends (timeout 300 above), nonzero exit, no final-named output.
spec="die_rank:$((SF_NP - 1)):after_items=2"
out="$work/die"
export SHARDFORGE_FAULT=$spec
run "$out"
check "$spec: a nonzero exit, not a hang (got $rc; 0 = not detected, 124 = hang)" [ $rc -ne 0 -a $rc -ne 124 ]
check "$spec: no final-named output ($(finals_in "$out"))" [ -z "$(finals_in "$out")" ]
# mpirun may return while it still ends the other ranks: the lock names rank 0, which --resume would (rightly)
# refuse while it lives.
if [ -e "$out/.shardforge.lock" ]; then
  holder=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$out/.shardforge.lock")
  for ((t = 0; t < 600; t++)); do kill -0 "$holder" 2>/dev/null || break; sleep 0.05; done
fi
export SHARDFORGE_FAULT=
run "$out" --resume
check "$spec: --resume exits 0 (got $rc: $err)" [ $rc -eq 0 ]
check "$spec: the resumed output equals the reference" same_as_ref "$out"
check "$spec: no lock left after --resume" [ ! -e "$out/.shardforge.lock" ]

# A malformed SHARDFORGE_FAULT is a usage error, not silently ignored.
export SHARDFORGE_FAULT=eio_write:x
run "$work/bad-spec"
check "malformed SHARDFORGE_FAULT: exit 2 (got $rc)" [ $rc -eq 2 ]
echo "fault injection at -np $SF_NP ($nref reference files)"
finish
