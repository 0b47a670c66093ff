#!/usr/bin/env bash
# mpi.determinism: an export's bytes are a function of its inputs and options only (docs/engine.md, "Determinism").
# Three inputs (the 3-shard Llama demo with its LoRA, a sharded Qwen3-MoE demo, the Llama demo with a DoRA adapter),
# each exported to safetensors, gguf:f32, gguf:q8_0, gguf:q4_k_m and bnb-nf4, under every launch below; every
# file's sha256 must equal the reference launch's (1 rank, 1 thread, default binding, OPENBLAS_NUM_THREADS=1, the
# widest SIMD path):
#   ranks 2, 3 and 4; Open MPI's default binding and --bind-to none; --threads 1 and 2; OPENBLAS_NUM_THREADS 1 and 2;
#   SHARDFORGE_SIMD=scalar and avx2 (the host kernels' vector paths capped); a memory budget that splits tensors
#   into row blocks; --write gather.
# Self-test (mpi.determinism.selftest, SF_SELFTEST_WRONG=1): the Llama input's reference and one launch with one
# option changed (adapter weight 0.5), expected to give the same bytes: the comparison must fail.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_MPIRUN:?}"
PY=/usr/bin/python3
mpirun_bin=${SF_MPIRUN%% *}
unbound="$SF_MPIRUN"                                                       # the suite's flags: --bind-to none
bound="$mpirun_bin --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1"  # Open MPI's default binding
work=$(mktemp -d)
on_exit "rm -rf '$work'"

"$SHARDFORGE_BIN" demo "$work/llama" --shards 3 >/dev/null
"$SHARDFORGE_BIN" demo "$work/moe" --arch qwen3moe --shards 3 >/dev/null
$PY "$SHARDFORGE_SOURCE_DIR/tests/mpi/make_dora.py" "$work/llama/adapter" "$work/dora"
# bnb-nf4 writes the same file names as safetensors, so each launch runs two exports: main/ and bnb/.
formats=safetensors,gguf:f32,gguf:q8_0,gguf:q4_k_m

# launch NAME INPUT MPI NP ENV... -- ARGS...: one export into $work/out/INPUT/NAME, its sums into NAME.sum
launch() {
  local name=$1 input=$2 mpi=$3 np=$4; shift 4
  local envs=()
  while [ "$1" != -- ]; do envs+=("-x" "$1"); shift; done
  shift
  local base="$work/$input/base" adapter="$work/$input/adapter" out="$work/out/$input/$name"
  [ "$input" = dora ] && { base="$work/llama/base"; adapter="$work/dora"; }
  mkdir -p "$work/out/$input"
  # Every launch passes OPENBLAS_NUM_THREADS and SHARDFORGE_SIMD explicitly (-x), so nothing leaks in from the
  # caller's environment; later -x entries override earlier ones.
  local part fmt
  for part in main bnb; do
    local extra=()
    fmt=$formats; [ $part = bnb ] && fmt=bnb-nf4
    [ $part = main ] && [ -n "${main_args:-}" ] && read -r -a extra <<<"$main_args"
    try $mpi -np "$np" -x OPENBLAS_NUM_THREADS=1 -x SHARDFORGE_SIMD=avx512 "${envs[@]}" "$SHARDFORGE_BIN" export \
          --base "$base" --adapter "$adapter${adapter_suffix:-}" --format "$fmt" --max-shard-size 1MB \
          --out "$out/$part" "$@" "${extra[@]}" >"$out.$part.log" 2>&1
    [ "$RC" -eq 0 ] || cat "$out.$part.log"
    check "$input/$name: the export ($fmt) exits 0" [ "$RC" -eq 0 ]
  done
  (cd "$out" && find . -type f | sort | xargs sha256sum) >"$out.sum"
}

# rowblock_budget INPUT: a --max-memory-per-rank that splits tensors into row blocks: the fixed per-rank overhead
# the binary reports (it differs between builds, e.g. under ASan) plus 5 MB. bnb-nf4 tensors cannot be split, so
# the budget applies to the main/ export only.
rowblock_budget() {
  local base="$work/$1/base" overhead
  [ "$1" = dora ] && base="$work/llama/base"
  # (a 1 MB budget is refused, exit 2: the refusal names the overhead)
  overhead=$( ("$SHARDFORGE_BIN" export --base "$base" --format "$formats" --threads 2 --max-memory-per-rank 1MB \
               --out "$work/dry" --dry-run 2>&1 || :) | sed -n 's/.*overhead of about \([0-9]*\) bytes.*/\1/p')
  echo $(( ${overhead:-0} + 5000000 ))
}
same_sums() { diff -q "$1" "$2" >/dev/null || { diff "$1" "$2" | sed -n 1,5p; return 1; }; }
inputs=(llama moe dora); sf_wrong && inputs=(llama)
for input in "${inputs[@]}"; do
  launch ref "$input" "$bound" 1 -- --threads 1
  n=$(wc -l <"$work/out/$input/ref.sum")
  check "$input: at least 8 output files (got $n)" [ "$n" -ge 8 ]
  if sf_wrong; then
    adapter_suffix=:0.5 launch np2-scalar "$input" "$bound" 2 SHARDFORGE_SIMD=scalar -- --threads 2
    check "$input: np2-scalar (adapter weight 0.5) writes the reference bytes" \
      same_sums "$work/out/$input/ref.sum" "$work/out/$input/np2-scalar.sum"
  fi
  launch np2 "$input" "$bound" 2 -- --threads 1
  launch np3-unbound "$input" "$unbound" 3 -- --threads 2
  launch np4-t2 "$input" "$bound" 4 -- --threads 2
  launch np1-unbound-blas2-t2 "$input" "$unbound" 1 OPENBLAS_NUM_THREADS=2 -- --threads 2
  launch np2-scalar "$input" "$bound" 2 SHARDFORGE_SIMD=scalar -- --threads 2
  launch np1-avx2 "$input" "$unbound" 1 SHARDFORGE_SIMD=avx2 OPENBLAS_NUM_THREADS=2 -- --threads 1
  main_args="--max-memory-per-rank $(rowblock_budget "$input")" launch np3-rowblocks "$input" "$unbound" 3 -- --threads 2
  launch np2-gather "$input" "$bound" 2 SHARDFORGE_SIMD=scalar -- --threads 2 --write gather
  for s in "$work/out/$input"/*.sum; do
    [ "$s" = "$work/out/$input/ref.sum" ] && continue
    check "$input: $(basename "$s" .sum) writes the reference bytes" same_sums "$work/out/$input/ref.sum" "$s"
  done
  echo "$input: $n files, $(ls "$work/out/$input"/*.sum | wc -l) launches compared"
done
# The row-block launch must really split tensors (else it proves nothing about row blocks).
split=$("$SHARDFORGE_BIN" export --base "$work/llama/base" --adapter "$work/llama/adapter" --format "$formats" \
          --max-shard-size 1MB --threads 2 --max-memory-per-rank "$(rowblock_budget llama)" --out "$work/dry" --dry-run |
        sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
check "the row-block launch splits ${split:-no} tensors (expected >= 5)" [ "${split:-0}" -ge 5 ]
finish
