#!/usr/bin/env bash
# Regenerates the committed seed corpora tests/fuzz/corpus/<target>/ from `shardforge demo` (tiny variants of
# every architecture), our GGUF writer (small exports) and the tokenizer fixtures in tests/data/tokenizers.
# Usage: make_seeds.sh SHARDFORGE_BIN FUZZ_PLAN_SEED_BIN
set -euo pipefail
BIN=$1 PLANSEED=$2
here=$(cd "$(dirname "$0")" && pwd)
C=$here/corpus
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
rm -rf "$C"; mkdir -p "$C"/{safetensors,gguf,adapter_config,hf_config,tokenizer,sentencepiece,plan}
small=(--layers 1 --hidden 32 --intermediate 64 --heads 2 --kv-heads 1 --vocab 270 --shards 1)
for a in llama qwen2 qwen3 llama3 mixtral qwen2moe gemma gemma2 gemma3 phi3; do
  "$BIN" demo "$work/$a" --arch "$a" "${small[@]}" >/dev/null
  cp "$work/$a/base/config.json" "$C/hf_config/$a.json"
  cp "$work/$a/adapter/adapter_config.json" "$C/adapter_config/$a.json"
  [ -f "$work/$a/base/tokenizer.model" ] && cp "$work/$a/base/tokenizer.model" "$C/sentencepiece/$a.model"
done
cp "$work/llama/base/tokenizer.json" "$C/tokenizer/demo.json"
cp "$here/../data/tokenizers/llama3-bpe/tokenizer.json" "$C/tokenizer/llama3-bpe.json"
cp "$here/../data/tokenizers/qwen2-bpe/tokenizer.json" "$C/tokenizer/qwen2-bpe.json"
cp "$here/../data/tokenizers/tiny.model" "$C/sentencepiece/tiny.model"
cp "$work/llama/base/model.safetensors" "$C/safetensors/llama-base.safetensors"
cp "$work/llama/adapter/adapter_model.safetensors" "$C/safetensors/llama-adapter.safetensors"
cp "$work/qwen2/adapter/adapter_model.safetensors" "$C/safetensors/qwen2-adapter.safetensors"
"$BIN" export --base "$work/llama/base" --adapter "$work/llama/adapter" --out "$work/out" \
  --format gguf:f32,gguf:q8_0,gguf:q4_k_m >/dev/null
for f in "$work"/out/*.gguf; do cp "$f" "$C/gguf/$(basename "$f" | tr 'A-Z' 'a-z')"; done
"$PLANSEED" "$work/llama/base" "$work/llama/adapter" "$work/p1" safetensors,gguf:q8_0 "$C/plan/llama-merged.cbor"
"$PLANSEED" "$work/gemma/base" - "$work/p2" gguf:q4_k_m "$C/plan/gemma-q4km.cbor"
du -sh "$C"/*
