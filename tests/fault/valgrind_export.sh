#!/usr/bin/env bash
# safety.valgrind_export (docs/testing.md "Reliability"): memcheck on a small single-process export of the demo
# (safetensors + GGUF q8_0 and q4_k_m). Any invalid access / use of uninitialised values / definite leak fails the test.
# Run without mpirun (singleton MPI init); Open MPI's own one-time allocations are "still reachable", not errors.
# Self-test (SF_SELFTEST_WRONG=1): the export asks for an unknown format, so it must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
check "valgrind is installed (jobs/install-deps.sh installs it)" command -v valgrind
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" --layers 1 --hidden 64 --intermediate 128 --heads 2 --kv-heads 1 --vocab 300 >/dev/null
start=$(date +%s)
try valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --track-origins=yes --num-callers=30 \
  --suppressions="$SHARDFORGE_SOURCE_DIR/tests/fault/valgrind.supp" --log-file="$work/vg.log" \
  "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" --out "$work/out" \
  --format "$(sf_expect safetensors,gguf:q8_0,gguf:q4_k_m gguf:nonsense)" --threads 2 >"$work/stdout" 2>"$work/stderr"
echo "valgrind export: exit $RC in $(( $(date +%s) - start )) s"
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$work/vg.log" || :
check "memcheck finds no error and the export succeeds (exit $RC)" [ "$RC" -eq 0 ]
if [ "$RC" -ne 0 ]; then
  tail -5 "$work/stderr"
  grep -B2 -A25 -m5 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|[0-9,]+ bytes in .* definitely)' "$work/vg.log" | head -150 || :
fi
n=$(find "$work/out" -maxdepth 1 -type f | wc -l)
check "at least 4 output files (got $n)" [ "$n" -ge 4 ]
finish
