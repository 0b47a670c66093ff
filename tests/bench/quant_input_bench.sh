#!/usr/bin/env bash
# Quantized-base benchmark (not part of CI): dequantize + LoRA merge + bf16 safetensors export throughput for a
# bitsandbytes NF4 (double-quant) base and an FP8 128x128 block-scaled base, against the same model in bf16,
# measured in one run, with 1 thread and with every core. Prints the time ratios quantized / bf16.
#   tests/bench/quant_input_bench.sh [BUILD_DIR]        (env SF_BENCH_DIR: work dir, SF_BENCH_REPS: repetitions)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bin=$build/shardforge
work=${SF_BENCH_DIR:-$(mktemp -d /tmp/sf-qbench-XXXX)}
reps=${SF_BENCH_REPS:-3}
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
cores=$(nproc)

"$bin" demo "$work/m" --layers 6 --hidden 1024 --intermediate 2816 --vocab 2048 --heads 16 --kv-heads 4 \
    --shards 2 >/dev/null
for l in nf4dq fp8block; do
  /usr/bin/python3 "$root/tests/reference/quant_ref.py" make "$l" "$work/m/base" "$work/$l"
done
declare -A base=([bf16]="$work/m/base" [nf4]="$work/nf4dq" [fp8]="$work/fp8block")
n=$(/usr/bin/python3 -c "
import json,sys; sys.path.insert(0,'$root/tests/reference'); import quant_ref as q
t=q.read_dir_raw('$work/m/base'); print(sum(int(__import__('numpy').prod(s)) for d,s,b in t.values()))")
echo "model: $n parameters (6 layers, hidden 1024, MLP 2816); input bytes: bf16 $(du -sb "$work/m/base" | cut -f1)," \
     "nf4 $(du -sb "$work/nf4dq" | cut -f1), fp8 $(du -sb "$work/fp8block" | cut -f1)"
cat "$work"/m/base/*.safetensors "$work"/nf4dq/*.safetensors "$work"/fp8block/*.safetensors >/dev/null
declare -A best
for th in 1 "$cores"; do
  for k in bf16 nf4 fp8; do
    b=1e9
    for ((r = 0; r < reps; ++r)); do
      rm -rf "$work/o"
      t0=$(now)
      "$bin" export --base "${base[$k]}" --adapter "$work/m/adapter" --out "$work/o" --format safetensors \
          --dtype bf16 --threads "$th" >/dev/null
      t1=$(now)
      b=$(awk -v a="$t0" -v c="$t1" -v b="$b" 'BEGIN{s=c-a; print (s<b)?s:b}')
    done
    best[$k,$th]=$b
    echo "threads $th, $k base: best of $reps ${b}s, $(awk -v n="$n" -v s="$b" 'BEGIN{printf "%.0f", n/s/1e6}') M params/s"
  done
  for k in nf4 fp8; do
    echo "threads $th: time ratio $k / bf16 = $(awk -v a="${best[$k,$th]}" -v b="${best[bf16,$th]}" 'BEGIN{printf "%.2f", a/b}')"
  done
done
