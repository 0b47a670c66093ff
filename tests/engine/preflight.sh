#!/usr/bin/env bash
# engine.preflight.npN: refusals before any tensor I/O, and the dry run.
#  - not enough disk space (SHARDFORGE_FAULT=statvfs_free:BYTES fakes the free space): exit 5, one error line
#    giving the exact need, no output file created;
#  - output path below a regular file: exit 5;
#  - a memory budget below what one row block needs: exit 2 at planning time;
#  - --ollama-create without a gguf: output (and --ollama-push without --ollama-create): exit 2 before any work
#    (the base is not even read: a missing one gives the same error), no output directory;
#  - --dry-run prints per-rank bytes (one line per rank, summing to the plan's tensor bytes), the stage estimate,
#    peak memory and disk needed, and the disk figure equals the bytes a real run then writes.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m --threads 2)
run() { set +e; $SF_MPIRUN -np "$SF_NP" "$@" > "$work/out.log" 2> "$work/err.log"; rc=$?; set -e; }

run env SHARDFORGE_FAULT=statvfs_free:1000 "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o1"
[ "$rc" -eq 5 ] || { cat "$work/err.log"; echo "FAIL: disk-space refusal exit $rc, expected 5"; exit 1; }
grep -q "not enough disk space: the outputs need [0-9]* bytes, 1000 bytes are free" "$work/err.log" ||
  { cat "$work/err.log"; echo "FAIL: no disk-space message"; exit 1; }
[ "$(grep -c 'error' "$work/err.log")" -eq 1 ] || { cat "$work/err.log"; echo "FAIL: expected one error line"; exit 1; }
[ ! -e "$work/o1" ] || { find "$work/o1"; echo "FAIL: output created despite the refusal"; exit 1; }

touch "$work/afile"
run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/afile/sub"
[ "$rc" -eq 5 ] || { cat "$work/err.log"; echo "FAIL: output below a file: exit $rc, expected 5"; exit 1; }

run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o2" --max-memory-per-rank 50MB
[ "$rc" -eq 2 ] || { cat "$work/err.log"; echo "FAIL: impossible budget: exit $rc, expected 2"; exit 1; }
grep -q "max-memory-per-rank" "$work/err.log" || { cat "$work/err.log"; echo "FAIL: budget message"; exit 1; }
[ ! -e "$work/o2" ] || { echo "FAIL: output created despite the budget refusal"; exit 1; }

oll=(--ollama-host http://127.0.0.1:9)   # nothing listens there: a request would fail with exit 6, not 2
for base in "$work/demo/base" "$work/no-such-base"; do
  run "$SHARDFORGE_BIN" export --base "$base" --format safetensors,gguf-lora --out "$work/o4" --ollama-create m "${oll[@]}"
  [ "$rc" -eq 2 ] || { cat "$work/err.log"; echo "FAIL: --ollama-create without gguf: ($base): exit $rc, expected 2"; exit 1; }
  grep -q -- "--ollama-create needs a gguf:TYPE output" "$work/err.log" ||
    { cat "$work/err.log"; echo "FAIL: --ollama-create message"; exit 1; }
  [ "$(grep -c 'error' "$work/err.log")" -eq 1 ] || { cat "$work/err.log"; echo "FAIL: expected one error line"; exit 1; }
  [ ! -e "$work/o4" ] || { find "$work/o4"; echo "FAIL: output created despite the --ollama-create refusal"; exit 1; }
done
run "$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --out "$work/o5" --ollama-push "${oll[@]}"
[ "$rc" -eq 2 ] || { cat "$work/err.log"; echo "FAIL: --ollama-push alone: exit $rc, expected 2"; exit 1; }
grep -q -- "--ollama-push needs --ollama-create" "$work/err.log" || { cat "$work/err.log"; echo "FAIL: --ollama-push message"; exit 1; }
[ ! -e "$work/o5" ] || { echo "FAIL: output created despite the --ollama-push refusal"; exit 1; }

run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o3" --dry-run
[ "$rc" -eq 0 ] || { cat "$work/err.log"; echo "FAIL: dry run exit $rc"; exit 1; }
d="$work/out.log"
[ "$(grep -c '^  rank [0-9]*: reads .* from [0-9]* input file(s), writes .*, estimated [0-9.]* s$' "$d")" -eq "$SF_NP" ] ||
  { cat "$d"; echo "FAIL: expected $SF_NP per-rank lines"; exit 1; }
grep -q 'estimated time by stage .*read [0-9.]* s, dequant [0-9.]* s, merge [0-9.]* s, quantize [0-9.]* s, write [0-9.]* s' "$d" ||
  { cat "$d"; echo "FAIL: no stage estimate"; exit 1; }
grep -q 'peak memory per rank: about' "$d" || { cat "$d"; echo "FAIL: no peak memory"; exit 1; }
need=$(sed -n 's/.*preflight: .* writable, disk needed .*/&/p' "$d")
[ -n "$need" ] || { cat "$d"; echo "FAIL: no disk line"; exit 1; }
[ ! -e "$work/o3" ] || { echo "FAIL: dry run created the output directory"; exit 1; }
# Exact figure: "output N (disk space needed)" is the plan's byte count; a real run writes exactly that many bytes.
planned=$("$SHARDFORGE_BIN" "${args[@]}" --out "$work/o3" --dry-run | sed -n 's/^  output \(.*\) (disk space needed)$/\1/p')
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o3" >/dev/null
written=$(find "$work/o3" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
human=$(awk -v b="$written" 'BEGIN { split("B KB MB GB TB", u, " "); v = b; i = 1; while (v >= 1000 && i < 5) { v /= 1000; i++ }
                                    if (i == 1) printf "%.0f %s", v, u[i]; else printf "%.2f %s", v, u[i] }')
[ "$planned" = "$human" ] || { echo "FAIL: dry run said $planned, the run wrote $written B ($human)"; exit 1; }
echo "PASS: preflight refusals (disk 5, path 5, budget 2) and dry run ($planned needed = written)"
