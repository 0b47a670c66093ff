#!/usr/bin/env bash
# Peak RSS per rank under --max-memory-per-rank for a generated model of several GB (sparse safetensors, see
# tests/data/gen_big_model.py), with the unbudgeted plan's figure for comparison. The CI version is
# tests/engine/memory_budget.sh (447 MB model).
#   bash tests/bench/memory_bench.sh [build/shardforge] [budget, default 256MB] [layers, default 8]
set -euo pipefail
bin=${1:-build/shardforge}
budget=${2:-256MB}
layers=${3:-8}
src=$(cd "$(dirname "$0")/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" demo "$work/tiny" --layers "$layers" >/dev/null
bytes=$(/usr/bin/python3 "$src/tests/data/gen_big_model.py" "$work/tiny" "$work/big" --scale 16 --intermediate 14336)
echo "model: $bytes bytes (bf16), budget $budget"
args=(export --base "$work/big/base" --adapter "$work/big/adapter" --format gguf:q4_k_m --threads 2)
echo "unbudgeted plan: $("$bin" "${args[@]}" --out "$work/o" --dry-run | grep 'peak memory per rank')"
for mode in direct gather; do
  rm -rf "$work/o"
  /usr/bin/time -f "%e s wall" mpirun -np 2 /usr/bin/time -f "rank maxrss %M KB" "$bin" "${args[@]}" \
      --max-memory-per-rank "$budget" --write "$mode" --out "$work/o" 2>&1 |
    grep -E "maxrss|peak RSS|wall|units of work" | sed "s/^/$mode: /"
done
