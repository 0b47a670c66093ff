#!/usr/bin/env bash
# engine.gather_faults.npN: --write gather stops cleanly on failures: rank 0 failing to write a chunk it received
# (or its own), another rank failing to read, or running out of space: every rank exits with the I/O code (5), one
# error line, no hang (the other ranks keep streaming to rank 0, which drains them) and no output file under its
# final name; --resume without the fault then gives the bytes of a direct 1-rank run, as does a clean gather run.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m --threads 2
      --max-memory-per-rank 56MB)
last=$((SF_NP - 1))
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --out "$work/one" >/dev/null
for f in eio_write:5:rank=0 enospc:40:rank=0 "eio_read:4:rank=$last"; do
  rm -rf "$work/o"
  set +e
  SHARDFORGE_FAULT=$f timeout 120 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" \
      --write gather --out "$work/o" > "$work/log" 2> "$work/err"
  rc=$?
  set -e
  [ "$rc" -eq 5 ] || { cat "$work/err"; echo "FAIL: $f: exit $rc, expected 5 (124 = hang)"; exit 1; }
  [ "$(grep -c '^shardforge: error:' "$work/err")" -eq 1 ] || { cat "$work/err"; echo "FAIL: $f: expected one error line"; exit 1; }
  # The *.partial files and the resume journal (.shardforge-resume/) stay for --resume after an I/O error.
  if [ -d "$work/o" ] && find "$work/o" -path '*/.shardforge-resume' -prune -o -type f ! -name '*.partial' -print | grep -q .; then
    echo "FAIL: $f: final-named output files left"; find "$work/o"; exit 1
  fi
  # The fault is gone: --resume finishes with the bytes of the direct 1-rank run.
  $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --write gather --out "$work/o" --resume >/dev/null 2>&1 ||
    { echo "FAIL: $f: --resume after the fault failed"; exit 1; }
  diff <(cd "$work/one" && sha256sum ./*) <(cd "$work/o" && sha256sum ./*) >/dev/null ||
    { echo "FAIL: $f: resumed gather output differs"; exit 1; }
done
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --write gather --out "$work/g" >/dev/null
diff <(cd "$work/one" && sha256sum ./*) <(cd "$work/g" && sha256sum ./*) || { echo "FAIL: clean gather run differs"; exit 1; }
echo "PASS: gather mode stops cleanly on write/space/read faults at $SF_NP ranks"
