# !/usr/bin/env bash fault.injection.npN (docs/testing.md "Reliability"): with SHARDFORGE_FAULT (src/exec/fault.hpp)
# making one I/O call or one rank fail, an export with N ranks must stop on every rank (no hang) with exactly one clear
# error line and the documented exit code (5 = I/O), rename nothing to its final name (the *.partial files and the
# resume journal stay), and `--resume` without the fault must produce the reference bytes and leave no partial or
# journal.
# Harmless faults (short reads/writes, a slow rank) must give byte-identical outputs. die_rank (a crashed rank):
# all ranks end, nonzero exit, no final file; --resume then completes.
set -uo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
if ! grep -q SHARDFORGE_FAULT "$SHARDFORGE_BIN"; then
  echo "SKIP: $SHARDFORGE_BIN has no SHARDFORGE_FAULT hook (src/exec/fault.cpp not built in)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
formats=safetensors,gguf:q8_0
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format "$formats" --max-shard-size 2MB)
run() {  # run OUT [extra args...]: export into OUT; sets rc, err
  local out=$1; shift
  timeout 300 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" --out "$out" "$@" \
    >"$work/stdout" 2>"$work/stderr"
  rc=$?
  err=$(grep '^shardforge: error:' "$work/stderr" | sort -u)
}
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
finals_in() { find "$1" -path '*/.shardforge-resume' -prune -o -type f ! -name '*.partial' -print | head -3; }
leftovers_in() { find "$1" -name '*.partial' -o -name .shardforge-resume | head -3; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

export SHARDFORGE_FAULT=
run "$work/ref"
[ $rc -eq 0 ] || { echo "FAIL: reference export failed ($rc)"; cat "$work/stderr"; exit 1; }
sums "$work/ref" >"$work/ref.sum"
nref=$(wc -l <"$work/ref.sum")

# Failing faults: exit 5 everywhere, one distinct error line naming the cause, nothing final-named.
for spec in eio_write:3 enospc:5 eio_read:2 truncate_input:4 "eio_write:2:rank=$((SF_NP - 1))" \
            "eio_read:3:rank=$((SF_NP - 1))"; do
  out="$work/out-${spec//[:=]/_}"
  export SHARDFORGE_FAULT=$spec
  run "$out"
  case $spec in eio*) want="Input/output error";; enospc*) want="No space left";; truncate*) want="file ends at";; esac
  [ $rc -eq 5 ] || fail "$spec: exit $rc, expected 5; stderr: $(head -c 600 "$work/stderr")"
  [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] || fail "$spec: expected one distinct error line, got: $err"
  grep -q "$want" <<<"$err" || fail "$spec: error does not say '$want': $err"
  if [ -d "$out" ]; then
    finals=$(finals_in "$out")
    [ -z "$finals" ] || fail "$spec: final-named outputs exist: $finals"
  fi
  # The fault is gone: --resume into the same directory succeeds and gives the reference bytes.
  export SHARDFORGE_FAULT=
  run "$out" --resume
  if [ $rc -ne 0 ]; then fail "$spec: --resume without the fault failed ($rc): $err"
  elif ! diff -q <(sums "$out") "$work/ref.sum" >/dev/null; then fail "$spec: resumed output differs from reference"
  elif [ -n "$(leftovers_in "$out")" ]; then fail "$spec: partials or journal left after --resume: $(leftovers_in "$out")"
  fi
  echo "checked $spec"
done

# Harmless faults: same bytes as the reference.
for spec in short_write:1 short_write:4 short_read:1 short_read:3 "slow_rank:$((SF_NP - 1)):ms=20"; do
  out="$work/ok-${spec//[:=]/_}"
  export SHARDFORGE_FAULT=$spec
  run "$out"
  if [ $rc -ne 0 ]; then fail "$spec: export failed ($rc): $err"
  elif ! diff -q <(sums "$out") "$work/ref.sum" >/dev/null; then fail "$spec: output differs from the reference"
  fi
  echo "checked $spec"
done

# A crashed rank: every rank ends (timeout 300 above), nonzero exit, no final-named output.
spec="die_rank:$((SF_NP - 1)):after_items=2"
out="$work/die"
export SHARDFORGE_FAULT=$spec
run "$out"
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$spec: exit $rc (0 = not detected, 124 = hang)"
if [ -d "$out" ]; then
  finals=$(finals_in "$out")
  [ -z "$finals" ] || fail "$spec: final-named outputs exist: $finals"
fi
export SHARDFORGE_FAULT=
run "$out" --resume
if [ $rc -ne 0 ]; then fail "$spec: --resume failed ($rc): $err"
elif ! diff -q <(sums "$out") "$work/ref.sum" >/dev/null; then fail "$spec: resumed output differs"
fi
echo "checked $spec"

# A malformed SHARDFORGE_FAULT is a usage error, not silently ignored.
export SHARDFORGE_FAULT=eio_write:x
run "$work/bad-spec"
[ $rc -eq 2 ] || fail "malformed SHARDFORGE_FAULT: exit $rc, expected 2"

[ $fails -eq 0 ] || { echo "FAIL: $fails fault case(s) failed"; exit 1; }
echo "PASS: fault injection at -np $SF_NP ($nref reference files)"
