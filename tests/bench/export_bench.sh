#!/usr/bin/env bash
# Export benchmark (not part of CI): throughput of merge+export against a plain `cp` of the same input bytes, and
# peak RSS per rank (GNU time -v) for the demo model and for a generated model 20x larger, measured in one run.
#   tests/bench/export_bench.sh [BUILD_DIR]
# Prints ratios (ours / reference). Warm page cache for both sides (each input is read once before timing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bin=$build/shardforge
work=${SF_BENCH_DIR:-$(mktemp -d /tmp/sf-bench-XXXX)}
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun_=(mpirun --oversubscribe --bind-to none)
now() { date +%s.%N; }
rss_kb() { grep "Maximum resident set size" "$1" | awk '{print $NF}'; }

# ---- memory: demo (4 layers) vs 20x the layers (80 layers), same tensor sizes
"$bin" demo "$work/small" >/dev/null
"$bin" demo "$work/large" --layers 80 --shards 8 >/dev/null
for m in small large; do
  /usr/bin/time -v "$bin" export --base "$work/$m/base" --adapter "$work/$m/adapter" --out "$work/out-$m" \
      --format safetensors,gguf:q8_0 --threads 2 >/dev/null 2>"$work/time-$m.txt"
  in=$(du -sb "$work/$m/base" | cut -f1)
  echo "memory: $m model: input $((in / 1000000)) MB, peak RSS $(( $(rss_kb "$work/time-$m.txt") / 1024 )) MiB"
done
ratio=$(awk -v a="$(rss_kb "$work/time-large.txt")" -v b="$(rss_kb "$work/time-small.txt")" 'BEGIN{printf "%.2f", a/b}')
echo "memory: peak RSS 20x model / demo model = $ratio (bounded by threads x largest tensor, not model size)"

# ---- throughput: a ~640 MB bf16 model
"$bin" demo "$work/big" --layers 24 --hidden 1024 --intermediate 3072 --vocab 4096 --shards 4 >/dev/null
in=$(du -sb "$work/big/base" | cut -f1)
cat "$work/big/base"/*.safetensors "$work/big/adapter"/* > /dev/null
t0=$(now); cp -r "$work/big/base" "$work/cp-copy"; sync; t1=$(now)
cp_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
rm -rf "$work/cp-copy"
echo "reference: cp of $((in / 1000000)) MB: ${cp_s}s ($(awk -v b="$in" -v s="$cp_s" 'BEGIN{printf "%.2f", b/s/1e9}') GB/s)"
run() {  # name np format
  rm -rf "$work/o"
  t0=$(now)
  "${mpirun_[@]}" -np "$2" "$bin" export --base "$work/big/base" --adapter "$work/big/adapter" --out "$work/o" \
      --format "$3" >/dev/null
  sync; t1=$(now)
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  echo "$1 (np $2, $3): ${s}s, $(awk -v b="$in" -v s="$s" 'BEGIN{printf "%.2f", b/s/1e9}') GB/s of input, time ratio ours/cp = $(awk -v a="$s" -v b="$cp_s" 'BEGIN{printf "%.2f", a/b}')"
}
run "merge+safetensors" 1 safetensors
run "merge+safetensors" 2 safetensors
run "merge+GGUF BF16" 2 gguf:bf16
run "merge+GGUF Q8_0" 2 gguf:q8_0
run "merge+GGUF Q4_K_M" 2 gguf:q4_k_m
