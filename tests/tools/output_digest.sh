#!/usr/bin/env bash
# output_digest.sh SHARDFORGE_BIN OUT.txt: a refactoring check, not a ctest. Runs a fixed matrix of exports (every
# demo architecture with its LoRA to every output kind, DoRA, quantized NF4 double-quant and FP8 block-scaled bases,
# a batch job with variants, gguf-lora, the llama-quantize mixtures and options) on one rank and writes
# "CASE/FILE SHA256" for every file written, sorted. Run it with the binary from before a change and after it and
# diff the two lists: a refactor that is meant to change no arithmetic must leave every line equal (docs/testing.md).
set -euo pipefail
bin=$(readlink -f "${1:?usage: output_digest.sh SHARDFORGE_BIN OUT.txt}")
out=$(readlink -f "$(dirname "${2:?}")")/$(basename "$2")
src=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
ex() {  # CASE ARGS...: one export into $work/out/CASE
  local c=$1; shift
  "$bin" export --out "$work/out/$c" --threads 2 "$@" >"$work/$c.log" 2>&1 || { cat "$work/$c.log" >&2; echo "FAILED: $c" >&2; exit 1; }
}
all=safetensors,gguf:f32,gguf:f16,gguf:bf16,gguf:q8_0,gguf:q4_k_m,gguf:iq4_xs,gguf:q6_k,gguf-lora
for arch in llama llama3 mistral mixtral qwen2 qwen2moe qwen3 qwen3moe gemma gemma2 gemma3 phi3; do
  "$bin" demo "$work/d_$arch" --arch "$arch" --layers 2 --hidden 256 --intermediate 512 --vocab 640 >/dev/null
  ex "$arch" --base "$work/d_$arch/base" --adapter "$work/d_$arch/adapter" --format "$all" --name "$arch"
  ex "$arch-nf4dq" --base "$work/d_$arch/base" --adapter "$work/d_$arch/adapter" --format bnb-nf4 --double-quant
done
d="$work/d_llama"
"$bin" demo "$work/d_tied" --tied --layers 2 --hidden 256 --intermediate 512 --vocab 640 --dtype f16 >/dev/null
ex tied --base "$work/d_tied/base" --adapter "$work/d_tied/adapter" --format "$all" --dtype bf16
ex base-only --base "$d/base" --format safetensors,gguf:q4_0,gguf:q3_k_m
ex fp4 --base "$d/base" --adapter "$d/adapter" --format bnb-fp4
ex options --base "$d/base" --adapter "$d/adapter:0.5" --format gguf:q4_k_m,gguf:q5_k_s --pure \
  --output-tensor-type q8_0 --token-embedding-type f16 --max-shard-size 1MB --split-max-size 2M
$PY "$src/tests/mpi/make_dora.py" "$d/adapter" "$work/dora"
ex dora --base "$d/base" --adapter "$work/dora" --format safetensors,gguf:q8_0,gguf:q4_k_m
for layout in nf4dq fp8block; do
  $PY "$src/tests/reference/quant_ref.py" make "$layout" "$d/base" "$work/q_$layout"
  ex "q-$layout" --base "$work/q_$layout" --adapter "$d/adapter" --format safetensors,gguf:q4_k_m,gguf-lora
  ex "q-$layout-bnb" --base "$work/q_$layout" --adapter "$work/dora" --format bnb-nf4
done
mkdir -p "$work/jobs"
cat >"$work/jobs/job.toml" <<TOML
base = "../q_nf4dq"
out = "../out/batch"
formats = ["safetensors", "gguf:q4_k_m", "gguf-lora"]
threads = 2

[[variant]]
name = "plain"
adapter = "$d/adapter"

[[variant]]
name = "dora"
adapter = "../dora"
formats = ["bnb-nf4"]
TOML
"$bin" run "$work/jobs/job.toml" >"$work/batch.log" 2>&1 || { cat "$work/batch.log" >&2; echo "FAILED: batch" >&2; exit 1; }
(cd "$work/out" && find . -type f | sort | xargs sha256sum | awk '{print substr($2, 3), $1}') >"$out"
echo "output_digest: $(wc -l <"$out") files in $(( $(date +%s) - t0 )) s -> $out"
