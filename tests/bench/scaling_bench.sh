#!/usr/bin/env bash
# Strong scaling of a Q4_K_M export (merge + quantize) with 1, 2 and 4 ranks on this machine: wall time, speedup,
# efficiency, load balance and the stage split from the run summary, plus the dry run's estimate (cost table).
# Also --write gather at the largest rank count (same bytes checked).
#   bash tests/bench/scaling_bench.sh [build/shardforge] [threads per rank, default 1]
set -euo pipefail
bin=${1:-build/shardforge}
threads=${2:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" demo "$work/m" --layers 8 --hidden 1024 --intermediate 2816 --heads 16 --kv-heads 4 --shards 4 >/dev/null
echo "model: $(du -sh "$work/m/base" | cut -f1) bf16, 8 layers, hidden 1024; gguf:q4_k_m with its LoRA merged; $threads thread(s)/rank; $(nproc) CPUs"
args=(export --base "$work/m/base" --adapter "$work/m/adapter" --format gguf:q4_k_m --threads "$threads")
t1=""
printf "%-7s %-7s %8s %8s %10s %8s  %s\n" mode ranks wall_s speedup efficiency balance "stages (thread-seconds)"
for spec in direct:1 direct:2 direct:4 gather:4; do
  mode=${spec%%:*}; np=${spec##*:}
  rm -rf "$work/o"
  est=$(mpirun -np "$np" "$bin" "${args[@]}" --write "$mode" --out "$work/o" --dry-run | sed -n 's/.*wall about \([0-9.]*\) s.*/\1/p')
  s=$(date +%s.%N)
  mpirun -np "$np" "$bin" "${args[@]}" --write "$mode" --out "$work/o" > "$work/log" 2>&1
  e=$(date +%s.%N)
  wall=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }')
  [ -n "$t1" ] || t1=$wall
  bal=$(sed -n 's/.*max\/mean rank busy time \([0-9.]*\).*/\1/p' "$work/log")
  stages=$(sed -n 's/.*stages (all ranks, thread-seconds): //p' "$work/log")
  sha=$(sha256sum "$work/o/base.Q4_K_M.gguf" | cut -c1-16)
  awk -v m="$mode" -v n="$np" -v w="$wall" -v t="$t1" -v b="$bal" -v s="$stages" -v est="$est" -v h="$sha" \
    'BEGIN { printf "%-7s %-7d %8.2f %8.2f %9.0f%% %8s  %s (estimate %s s; sha %s)\n", m, n, w, t / w, 100 * t / w / n, b, s, est, h }'
done
