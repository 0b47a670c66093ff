#!/usr/bin/env bash
# engine.gather_faults.npN: --write gather stops cleanly on failures: rank 0 failing to write a chunk it received
# (or its own), another rank failing to read, or running out of space: every rank exits with the I/O code (5), one
# error line, no hang (the other ranks keep streaming to rank 0, which drains them) and no output file under its
# final name; --resume without the fault then gives the bytes of a direct 1-rank run, as does a clean gather run.
# Self-test (SF_SELFTEST_WRONG=1): the first fault is expected to exit 0 (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m --threads 2
      --max-memory-per-rank 56MB)
last=$((SF_NP - 1))
sums() { (cd "$1" && sha256sum ./*); }
# Files under their final names (the *.partial files and the resume journal stay for --resume after an I/O error).
final_files() { [ -d "$1" ] || return 0; find "$1" -path '*/.shardforge-resume' -prune -o -type f ! -name '*.partial' -print; }
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --out "$work/one" >/dev/null
for f in eio_write:5:rank=0 enospc:40:rank=0 "eio_read:4:rank=$last"; do
  rm -rf "$work/o"
  try env SHARDFORGE_FAULT="$f" timeout 120 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" \
      --write gather --out "$work/o" >"$work/log" 2>"$work/err"
  want=5; [ "$f" = eio_write:5:rank=0 ] && want=$(sf_expect 5 0)
  check "$f: every rank exits with the I/O code $want (got $RC; 124 = hang)" [ "$RC" -eq "$want" ]
  check "$f: one error line" [ "$(grep -c '^shardforge: error:' "$work/err" || :)" -eq 1 ]
  check "$f: no output file under its final name" [ -z "$(final_files "$work/o")" ]
  # The fault is gone: --resume finishes with the bytes of the direct 1-rank run.
  try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --write gather --out "$work/o" --resume >/dev/null 2>&1
  check "$f: --resume after the fault succeeds (exit $RC)" [ "$RC" -eq 0 ]
  check "$f: the resumed gather output equals the direct 1-rank run" diff <(sums "$work/one") <(sums "$work/o")
done
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --write gather --out "$work/g" >/dev/null
check "a clean gather run succeeds (exit $RC)" [ "$RC" -eq 0 ]
check "a clean gather run equals the direct 1-rank run" diff <(sums "$work/one") <(sums "$work/g")
finish
