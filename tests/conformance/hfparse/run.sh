#!/usr/bin/env bash
# conformance.hf_parse_exports: @huggingface/gguf parses every kind of GGUF file shardforge exports.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SHARDFORGE_SOURCE_DIR:?}"
conf=$SHARDFORGE_SOURCE_DIR/tests/conformance
command -v node >/dev/null || { echo "FAIL: node not installed"; exit 1; }
[ -d "$conf/node_modules/@huggingface/gguf" ] || { echo "FAIL: run npm install in tests/conformance"; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
"$SHARDFORGE_BIN" demo "$w/m" --arch mixtral --layers 2 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/d/base" --adapter "$w/d/adapter" --out "$w/o" \
  --format gguf:f32,gguf:f16,gguf:bf16,gguf:q8_0,gguf:q4_k_m,gguf:q6_k,gguf:iq4_xs,gguf:tq2_0,gguf-lora,gguf-lora:q8_0 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/d/base" --out "$w/o" --overwrite --name split --format gguf:q5_k_s --split-max-tensors 10 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/m/base" --out "$w/o" --overwrite --name moe --format gguf:q4_k_m,gguf:mxfp4_moe >/dev/null
cd "$conf" && node hfparse/parse_exports.mjs "$w/o"
