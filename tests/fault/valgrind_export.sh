#!/usr/bin/env bash
# safety.valgrind_export (docs/testing.md "Reliability"): memcheck on a small single-process export of the demo
# (safetensors + GGUF q8_0 and q4_k_m). Any invalid access / use of uninitialised values / definite leak fails the test.
# Run without mpirun (singleton MPI init); Open MPI's own one-time allocations are "still reachable", not errors.
set -uo pipefail
: "${SHARDFORGE_BIN:?}"
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (jobs/install-deps.sh installs it)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" --layers 1 --hidden 64 --intermediate 128 --heads 2 --kv-heads 1 --vocab 300 >/dev/null
supp=()
[ -f "${SHARDFORGE_SOURCE_DIR:-}/tests/fault/valgrind.supp" ] && supp=(--suppressions="$SHARDFORGE_SOURCE_DIR/tests/fault/valgrind.supp")
start=$(date +%s)
valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --track-origins=yes --num-callers=30 "${supp[@]}" --log-file="$work/vg.log" \
  "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" --out "$work/out" \
  --format safetensors,gguf:q8_0,gguf:q4_k_m --threads 2 >"$work/stdout" 2>"$work/stderr"
rc=$?
echo "valgrind export: exit $rc in $(( $(date +%s) - start )) s"
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$work/vg.log"
if [ $rc -ne 0 ]; then
  echo "FAIL: valgrind/export exit $rc"; cat "$work/stderr" | tail -5
  grep -B2 -A25 -m5 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|[0-9,]+ bytes in .* definitely)' "$work/vg.log" | head -150
  exit 1
fi
n=$(ls "$work/out" | wc -l)
[ "$n" -ge 4 ] || { echo "FAIL: only $n output files"; exit 1; }
echo "PASS: memcheck clean, $n output files"
