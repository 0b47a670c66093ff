#!/usr/bin/env bash
# Regenerates the committed seed corpora tests/fuzz/corpus/<target>/: tiny write_demo variants of every
# architecture (configs, adapter configs, safetensors, SentencePiece models), a small GGUF from our writer, plans
# from make_plan, and the tokenizer fixtures in tests/data/tokenizers. Optional SHARDFORGE_BIN adds small GGUF
# exports. Usage: make_seeds.sh FUZZ_PLAN_SEED_BIN [SHARDFORGE_BIN]
set -euo pipefail
SEED=$1 BIN=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
C=$here/corpus
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# Hand-written corpora (corpus/job/: job files, corpus/hub/) are kept.
rm -rf "$C"/{safetensors,gguf,adapter_config,hf_config,tokenizer,sentencepiece,plan,bnb_quant_state}
mkdir -p "$C"/{safetensors,gguf,adapter_config,hf_config,tokenizer,sentencepiece,plan,bnb_quant_state}
# bitsandbytes quant_state seeds: byte 0 = key suffix (0 nf4, 1 fp4), then the packed JSON (QuantState.as_dict in
# bitsandbytes/functional.py).
B=$C/bnb_quant_state
printf '\x00{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.012345599941909313}' >"$B/nf4-double-quant.bin"
printf '\x01{"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [7, 9]}' >"$B/fp4-odd.bin"
printf '\x00{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [3, 100], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 1e-05}' >"$B/nf4-rows-cross-blocks.bin"
printf '\x00{"quant_type": "nf4", "blocksize": 4096, "dtype": "bfloat16", "shape": [0, 5]}' >"$B/empty.bin"
for a in llama qwen2 qwen3 llama3 mixtral qwen2moe gemma gemma2 gemma3 phi3; do
  "$SEED" --demo "$work/$a" "$a" >/dev/null
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
"$SEED" --gguf "$C/gguf/small.gguf"
# imatrix seeds: the legacy .dat and GGUF forms of tests/imatrix's generators (small: one layer for GGUF).
rm -rf "$C/imatrix"; mkdir -p "$C/imatrix"
/usr/bin/python3 "$here/../imatrix/make_imatrix.py" "$C/imatrix/legacy-demo.dat"
/usr/bin/python3 "$here/../imatrix/make_gguf_imatrix.py" "$C/imatrix/gguf-dense.gguf" --layers 1
/usr/bin/python3 "$here/../imatrix/make_gguf_imatrix.py" "$C/imatrix/gguf-moe.gguf" --layers 1 --experts 2
"$SEED" "$work/llama/base" "$work/llama/adapter" "$work/p1" safetensors,gguf:q8_0 "$C/plan/llama-merged.cbor" >/dev/null
"$SEED" "$work/gemma/base" - "$work/p2" gguf:q4_k_m "$C/plan/gemma-q4km.cbor" >/dev/null
if [ -n "$BIN" ]; then
  "$BIN" export --base "$work/llama/base" --out "$work/out" --format gguf:q8_0 >/dev/null
  for f in "$work"/out/*.gguf; do cp "$f" "$C/gguf/export-$(basename "$f" | tr 'A-Z' 'a-z')"; done
fi
du -sh "$C"/*
