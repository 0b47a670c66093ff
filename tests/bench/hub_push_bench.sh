#!/usr/bin/env bash
# Hub push benchmark (not part of CI): `export --push-to-hub` (files hashed while written, uploaded while the export
# goes on, one commit) against `export` followed by `shardforge push` of the same output, in the same run, each
# against its own fresh loopback test Hub (tests/hub/server.mjs) whose storage uploads are throttled to emulate an
# uplink (default 100 MB/s per upload stream; SF_BENCH_RATE=bytes/s to change).
#   tests/bench/hub_push_bench.sh [BUILD_DIR] [NP]
# Prints wall times and the ratio overlapped / sequential.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
np=${2:-2}
bin=$build/shardforge
rate=${SF_BENCH_RATE:-100000000}
work=${SF_BENCH_DIR:-$(mktemp -d /tmp/sf-hubbench-XXXX)}
# The servers start inside $(...), so their pids never reach this shell: stop them by their data directory.
cleanup() { pkill -f -- "--data $work/" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HF_TOKEN=hf_bench_token HF_HOME=$work/hfhome
mpirun_=(mpirun --oversubscribe --allow-run-as-root -np "$np")
now() { date +%s.%N; }
start_hub() {  # start_hub NAME -> URL on stdout
  mkfifo "$work/$1.fifo"
  node "$root/tests/hub/server.mjs" --data "$work/$1" --port 0 --chunk-size 16777216 --multipart-threshold 33554432 \
      --faults "put=throttlex1000000/$rate,part=throttlex1000000/$rate" >"$work/$1.fifo" 2>/dev/null &
  exec {fd}<"$work/$1.fifo"
  read -r line <&$fd
  cat <&$fd >/dev/null &
  echo "${line#listening }"
}
hub_a=$(start_hub hubA)
hub_b=$(start_hub hubB)

"$bin" demo "$work/m" --layers 16 --hidden 1024 --intermediate 3072 --vocab 8192 --shards 4 >/dev/null
cat "$work/m/base"/* "$work/m/adapter"/* >/dev/null
args=(--base "$work/m/base" --adapter "$work/m/adapter" --format safetensors,gguf:q4_k_m --max-shard-size 100MB)

t0=$(now)
HF_ENDPOINT=$hub_a "${mpirun_[@]}" "$bin" export "${args[@]}" --out "$work/a" --push-to-hub bench/overlap >"$work/a.log" 2>&1
t1=$(now)
HF_ENDPOINT=$hub_b "${mpirun_[@]}" "$bin" export "${args[@]}" --out "$work/b" >"$work/b.log" 2>&1
t2=$(now)
HF_ENDPOINT=$hub_b "${mpirun_[@]}" "$bin" push "$work/b" --repo bench/sequential >>"$work/b.log" 2>&1
t3=$(now)

out=$(du -sb --exclude=.cache "$work/a" | cut -f1)
ov=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
ex=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b-a}')
pu=$(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.2f", b-a}')
echo "output: $((out / 1000000)) MB on $np rank(s), uploads throttled to $((rate / 1000000)) MB/s per stream"
echo "sequential: export ${ex}s + push ${pu}s = $(awk -v a="$ex" -v b="$pu" 'BEGIN{printf "%.2f", a+b}')s"
echo "overlapped: export --push-to-hub ${ov}s"
grep "hub: sha256\|hub: uploads" "$work/a.log" | sed 's/^/  /'
echo "ratio overlapped / sequential = $(awk -v o="$ov" -v a="$ex" -v b="$pu" 'BEGIN{printf "%.2f", o/(a+b)}')"
