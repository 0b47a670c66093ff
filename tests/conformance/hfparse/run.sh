#!/usr/bin/env bash
# conformance.hf_parse_exports: @huggingface/gguf parses every kind of GGUF file shardforge exports.
# Self-test (SF_SELFTEST_WRONG=1): a GGUF file cut short must be rejected (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
conf=$SHARDFORGE_SOURCE_DIR/tests/conformance
check "node is installed" command -v node
check "@huggingface/gguf is installed in tests/conformance" [ -d "$conf/node_modules/@huggingface/gguf" ]
w=$(mktemp -d)
on_exit "rm -rf '$w'"
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
"$SHARDFORGE_BIN" demo "$w/m" --arch mixtral --layers 2 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/d/base" --adapter "$w/d/adapter" --out "$w/o" \
  --format gguf:f32,gguf:f16,gguf:bf16,gguf:q8_0,gguf:q4_k_m,gguf:q6_k,gguf:iq4_xs,gguf:tq2_0,gguf-lora,gguf-lora:q8_0 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/d/base" --out "$w/o" --overwrite --name split --format gguf:q5_k_s --split-max-tensors 10 >/dev/null
"$SHARDFORGE_BIN" export --base "$w/m/base" --out "$w/o" --overwrite --name moe --format gguf:q4_k_m,gguf:mxfp4_moe >/dev/null
if sf_wrong; then truncate -s -100 "$w/o/base.Q8_0.gguf"; fi
check "@huggingface/gguf parses every exported GGUF with the spec's key types and offsets" \
  sh -c 'cd "$1" && node hfparse/parse_exports.mjs "$2"' _ "$conf" "$w/o"
finish
