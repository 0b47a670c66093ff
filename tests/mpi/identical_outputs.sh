#!/usr/bin/env bash
# mpi.identical_outputs.npN: an export with N ranks x 3 threads writes exactly the bytes of a 1-rank, 1-thread export (every file,
# every format), and no *.partial file is left behind; in both write modes (--write direct|gather), and with a
# memory budget small enough to split most tensors into row blocks (the plan must report split tensors).
# Self-test (SF_SELFTEST_WRONG=1): the 1-rank reference uses adapter weight 0.5 (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
formats=${SF_FORMATS:-safetensors,gguf:f32,gguf:q8_0,gguf:bf16,gguf:q4_k_m}
args=(export --base "$work/demo/base" --format "$formats" --max-shard-size 2MB --split-max-tensors 16)
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
ad=$work/demo/adapter
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --adapter "$(sf_expect "$ad" "$ad:0.5")" --threads 1 --out "$work/one" >/dev/null
args+=(--adapter "$ad")
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 3 --out "$work/many" >/dev/null
sums "$work/one" >"$work/one.sum"
sums "$work/many" >"$work/many.sum"
n=$(wc -l <"$work/one.sum")
check "at least 10 output files (got $n)" [ "$n" -ge 10 ]
check "the outputs of -np $SF_NP equal those of -np 1" diff "$work/one.sum" "$work/many.sum"
check "no partial files are left" [ -z "$(find "$work/many" -name '*.partial')" ]
# Row blocks (budget: about 1 MB per worker above the fixed overhead) x both write modes.
split=$("$SHARDFORGE_BIN" "${args[@]}" --threads 3 --max-memory-per-rank 56MB --out "$work/dry" --dry-run |
        sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
check ">= 10 tensors split into row blocks (got '${split}')" [ "${split:-0}" -ge 10 ]
balanced() { awk -v b="$1" -v n="$SF_NP" 'BEGIN { exit !(b != "" && b >= 0.999 && b <= n + 0.001) }'; }
for mode in direct gather; do
  rm -rf "$work/blk"
  try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 3 --write "$mode" --max-memory-per-rank 56MB \
      --out "$work/blk" >"$work/blk.log" 2>&1
  check "--write $mode with row blocks succeeds (exit $RC)" [ "$RC" -eq 0 ]
  [ "$RC" -eq 0 ] || cat "$work/blk.log"
  sums "$work/blk" >"$work/blk.sum"
  check "--write $mode with row blocks equals -np 1" diff "$work/one.sum" "$work/blk.sum"
  # The run summary reports the load balance (max/mean rank busy time, >= 1) and the stage split.
  bal=$(sed -n 's/.*load balance max\/mean rank busy time \([0-9.]*\).*/\1/p' "$work/blk.log")
  check "--write $mode: load balance figure '$bal' within [1, $SF_NP]" balanced "$bal"
  check "--write $mode: the run summary has the stage split" grep -q \
    'stages (all ranks, thread-seconds): read .* s, dequant .* s, merge .* s, quantize .* s, write .* s' "$work/blk.log"
done
check "the safetensors output is sharded" grep -q 'model-00001-of-' "$work/one.sum"
check "the GGUF output is split" grep -q -- 'gguf.*-00001-of-\|-00001-of-.*gguf' "$work/one.sum"
finish
