#!/usr/bin/env bash
# engine.preflight.npN: refusals before any tensor I/O, and the dry run.
#  - not enough disk space (SHARDFORGE_FAULT=statvfs_free:BYTES fakes the free space): exit 5, one error line
#    giving the exact need, no output file created; a dry run reports the shortfall and exits 0;
#  - output path below a regular file: exit 5;
#  - a memory budget below what one row block needs, or a --split-max-size beyond 64 bits: exit 2;
#  - --ollama-create without a gguf: output (and --ollama-push without --ollama-create): exit 2 before any work
#    (the base is not even read: a missing one gives the same error), no output directory;
#  - --dry-run prints per-rank bytes (one line per rank, summing to the plan's tensor bytes), the stage estimate,
#    peak memory and disk needed, and the disk figure equals the bytes a real run then writes.
# Self-test (SF_SELFTEST_WRONG=1): the disk-space refusal is expected to exit 0 (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m --threads 2)
run() { try $SF_MPIRUN -np "$SF_NP" "$@" >"$work/out.log" 2>"$work/err.log"; }
one_error_line() { [ "$(grep -c 'error' "$work/err.log" || :)" -eq 1 ]; }

run env SHARDFORGE_FAULT=statvfs_free:1000 "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o1"
check "disk space: refused with exit $(sf_expect 5 0) (got $RC)" [ "$RC" -eq "$(sf_expect 5 0)" ]
check "disk space: the message gives the need and the free bytes" \
  grep -q "not enough disk space: the outputs need [0-9]* bytes, 1000 bytes are free" "$work/err.log"
check "disk space: one error line" one_error_line
check "disk space: no output created" [ ! -e "$work/o1" ]

run env SHARDFORGE_FAULT=statvfs_free:1000 "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o1" --dry-run
check "disk space: a dry run reports the shortfall and exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "disk space: the dry run's preflight line says a real run would stop" \
  grep -q "preflight: .* free 0.00 GB (not enough disk space here: a real run would stop, exit 5)" "$work/out.log"

touch "$work/afile"
run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/afile/sub"
check "an output below a regular file: exit 5 (got $RC)" [ "$RC" -eq 5 ]

run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o6" --split-max-size 99999999999T
check "a --split-max-size beyond 64 bits is a usage error: exit 2 (got $RC)" [ "$RC" -eq 2 ]
check "... naming the option" grep -q -- "--split-max-size 99999999999T is too large" "$work/err.log"

run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o2" --max-memory-per-rank 50MB
check "an impossible budget: exit 2 (got $RC)" [ "$RC" -eq 2 ]
check "an impossible budget: the message names --max-memory-per-rank" grep -q "max-memory-per-rank" "$work/err.log"
check "an impossible budget: no output created" [ ! -e "$work/o2" ]

oll=(--ollama-host http://127.0.0.1:9)   # nothing listens there: a request would fail with exit 6, not 2
for base in "$work/demo/base" "$work/no-such-base"; do
  run "$SHARDFORGE_BIN" export --base "$base" --format safetensors,gguf-lora --out "$work/o4" --ollama-create m "${oll[@]}"
  check "--ollama-create without gguf ($base): exit 2 (got $RC)" [ "$RC" -eq 2 ]
  check "--ollama-create without gguf: the message" grep -q -- "--ollama-create needs a gguf:TYPE output" "$work/err.log"
  check "--ollama-create without gguf: one error line" one_error_line
  check "--ollama-create without gguf: no output created" [ ! -e "$work/o4" ]
done
run "$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --out "$work/o5" --ollama-push "${oll[@]}"
check "--ollama-push alone: exit 2 (got $RC)" [ "$RC" -eq 2 ]
check "--ollama-push alone: the message" grep -q -- "--ollama-push needs --ollama-create" "$work/err.log"
check "--ollama-push alone: no output created" [ ! -e "$work/o5" ]

run "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o3" --dry-run
check "the dry run succeeds (exit $RC)" [ "$RC" -eq 0 ]
d="$work/out.log"
check "the dry run prints one line per rank ($SF_NP)" \
  [ "$(grep -c '^  rank [0-9]*: reads .* from [0-9]* input file(s), writes .*, estimated [0-9.]* s$' "$d" || :)" -eq "$SF_NP" ]
check "the dry run prints the stage estimate" grep -q \
  'estimated time by stage .*read [0-9.]* s, dequant [0-9.]* s, merge [0-9.]* s, quantize [0-9.]* s, write [0-9.]* s' "$d"
check "the dry run prints the peak memory per rank" grep -q 'peak memory per rank: about' "$d"
check "the dry run prints the disk needed" grep -q 'preflight: .* writable, disk needed ' "$d"
check "the dry run creates no output directory" [ ! -e "$work/o3" ]
# Exact figure: "output N (disk space needed)" is the plan's byte count; a real run writes exactly that many bytes.
planned=$(sed -n 's/^  output \(.*\) (disk space needed)$/\1/p' "$d")
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --out "$work/o3" >/dev/null
check "the real run succeeds (exit $RC)" [ "$RC" -eq 0 ]
written=$(find "$work/o3" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
human=$(awk -v b="$written" 'BEGIN { split("B KB MB GB TB", u, " "); v = b; i = 1; while (v >= 1000 && i < 5) { v /= 1000; i++ }
                                    if (i == 1) printf "%.0f %s", v, u[i]; else printf "%.2f %s", v, u[i] }')
check "the dry run's disk figure ($planned) is what the run wrote ($written B = $human)" [ "$planned" = "$human" ]
finish
