#!/usr/bin/env bash
# mpi.identical_outputs.npN: an export with N ranks x 3 threads writes exactly the bytes of a 1-rank, 1-thread export (every file,
# every format), and no *.partial file is left behind; in both write modes (--write direct|gather), and with a
# memory budget small enough to split most tensors into row blocks (the plan must report split tensors).
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
formats=${SF_FORMATS:-safetensors,gguf:f32,gguf:q8_0,gguf:bf16,gguf:q4_k_m}
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format "$formats" --max-shard-size 2MB
      --split-max-tensors 16)
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --threads 1 --out "$work/one" >/dev/null
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 3 --out "$work/many" >/dev/null
(cd "$work/one" && find . -type f | sort | xargs sha256sum) > "$work/one.sum"
(cd "$work/many" && find . -type f | sort | xargs sha256sum) > "$work/many.sum"
n=$(wc -l < "$work/one.sum")
[ "$n" -ge 10 ] || { echo "FAIL: expected at least 10 output files, got $n"; cat "$work/one.sum"; exit 1; }
if ! diff "$work/one.sum" "$work/many.sum"; then
  echo "FAIL: outputs of -np $SF_NP differ from -np 1"; exit 1
fi
if find "$work/many" -name '*.partial' | grep -q .; then echo "FAIL: partial files left"; exit 1; fi
# Row blocks (budget: about 1 MB per worker above the fixed overhead) x both write modes.
split=$("$SHARDFORGE_BIN" "${args[@]}" --threads 3 --max-memory-per-rank 56MB --out "$work/dry" --dry-run |
        sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
[ "${split:-0}" -ge 10 ] || { echo "FAIL: expected >= 10 tensors split into row blocks, got '${split}'"; exit 1; }
for mode in direct gather; do
  rm -rf "$work/blk"
  $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 3 --write "$mode" --max-memory-per-rank 56MB \
      --out "$work/blk" > "$work/blk.log" 2>&1 || { cat "$work/blk.log"; echo "FAIL: --write $mode exited $?"; exit 1; }
  (cd "$work/blk" && find . -type f | sort | xargs sha256sum) > "$work/blk.sum"
  diff "$work/one.sum" "$work/blk.sum" || { echo "FAIL: --write $mode with row blocks differs from -np 1"; exit 1; }
  # The run summary reports the load balance (max/mean rank busy time, >= 1) and the stage split.
  bal=$(sed -n 's/.*load balance max\/mean rank busy time \([0-9.]*\).*/\1/p' "$work/blk.log")
  awk -v b="$bal" -v n="$SF_NP" 'BEGIN { exit !(b != "" && b >= 0.999 && b <= n + 0.001) }' ||
    { cat "$work/blk.log"; echo "FAIL: load balance figure '$bal' missing or outside [1, $SF_NP]"; exit 1; }
  grep -q 'stages (all ranks, thread-seconds): read .* s, dequant .* s, merge .* s, quantize .* s, write .* s' "$work/blk.log" ||
    { cat "$work/blk.log"; echo "FAIL: no stage split in the run summary"; exit 1; }
done
grep -q 'model-00001-of-' "$work/one.sum" || { echo "FAIL: safetensors output was not sharded"; exit 1; }
grep -q -- '-00001-of-' <(grep gguf "$work/one.sum") || { echo "FAIL: GGUF output was not split"; exit 1; }
echo "PASS: $n files identical for -np 1 and -np $SF_NP (direct, and direct/gather with row blocks)"
