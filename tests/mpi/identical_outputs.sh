#!/usr/bin/env bash
# mpi.identical_outputs.npN: an export with N ranks x 3 threads writes exactly the bytes of a 1-rank, 1-thread export (every file,
# every format), and no *.partial file is left behind.
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
grep -q 'model-00001-of-' "$work/one.sum" || { echo "FAIL: safetensors output was not sharded"; exit 1; }
grep -q -- '-00001-of-' <(grep gguf "$work/one.sum") || { echo "FAIL: GGUF output was not split"; exit 1; }
echo "PASS: $n files identical for -np 1 and -np $SF_NP"
