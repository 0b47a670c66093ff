#!/usr/bin/env bash
# run.sh: Qwen3.5 (qwen35) against llama.cpp's own convert_hf_to_gguf.py, byte for byte (compare_gguf.py, whole
# files: KVs with order and types, tensor names, order, types, shapes and data), on three checkpoints:
#   1. `shardforge demo --arch qwen35` (Qwen3_5ForCausalLM, one MTP layer, K heads != V heads) and
#      `--arch qwen35moe` (Qwen3_5MoeForCausalLM, fused 3-D experts, shared expert) with their LoRA adapters merged
#      (every projection of both layer kinds): gguf:f32, f16, q8_0. qwen35moe's ffn_gate_inp_shexp is [n_embd, 1]
#      as the converter writes it (converter outputs keep every dimension, tests/conformance/converter);
#   2. the same merged weights in the Hub layout of Qwen3_5ForConditionalGeneration (to_vl.py: text_config,
#      model.language_model.*, a vision tower to leave out): gguf:f32;
#   3. that layout without the mtp.* tensors (transformers' save_pretrained) against the converter's --no-mtp
#      output (our documented deviation, docs/formats.md), and llama.cpp loads and evaluates ours.
# The converter runs unchanged under Debian's python3 with the stand-in transformers of
# tests/conformance/converter/stub (same setup as tests/conformance/converter/run.sh).
# Env: SHARDFORGE_BIN, SHARDFORGE_SOURCE_DIR; SF_CONV_KEEP=1 keeps the work dir.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=$SHARDFORGE_SOURCE_DIR
HERE=$SRC/tests/conformance/qwen35
STUB=$SRC/tests/conformance/converter/stub
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
CMP=$SRC/tests/conformance/quantize/compare_gguf.py
BUNDLE=$SRC/tests/conformance/node_modules/node-llama-cpp/llama/gitRelease.bundle
W=$(mktemp -d /tmp/sf-qwen35-XXXXXX)
[ "${SF_CONV_KEEP:-0}" = 1 ] || on_exit "rm -rf '$W'"

check "Debian python3 with numpy, torch and sentencepiece" "$PY" -c "import numpy, torch, sentencepiece"
check "the stand-in transformers of tests/conformance/converter/stub" [ -f "$STUB/run_converter.py" ]
check "node-llama-cpp's llama.cpp git bundle is installed ($BUNDLE)" [ -f "$BUNDLE" ]
check "clone of the llama.cpp release" git -c advice.detachedHead=false clone -q "$BUNDLE" "$W/llama.cpp"
LL=$W/llama.cpp
export PYTHONPATH="$STUB:$LL/gguf-py"
# the demo's byte-level BPE copies Llama 3's pre-tokenizer (tests/conformance/converter/stub/transformers)
export SF_STUB_FINGERPRINT_VOCAB=$LL/models/ggml-vocab-llama-bpe.gguf

convert() {  # DIR OUTTYPE OUT [converter options...]
    local dir=$1 ty=$2 out=$3
    shift 3
    "$PY" "$STUB/run_converter.py" "$LL/convert_hf_to_gguf.py" "$dir" --outtype "$ty" --outfile "$out" \
        --model-name qwen35 "$@" >"$out.log" 2>&1
}
same() {  # LABEL OURS REF
    try "$PY" "$CMP" "$2" "$3" --label "$1"
    check "$1: byte-identical to convert_hf_to_gguf.py" [ "$RC" -eq 0 ]
}

for arch in qwen35 qwen35moe; do
    d=$W/$arch
    check "demo --arch $arch" "$BIN" demo "$d" --arch "$arch" --shards 1
    check "$arch: export gguf:f32,f16,q8_0 (adapter merged)" "$BIN" export --base "$d/base" --adapter "$d/adapter" \
        --out "$d/ours" --name qwen35 --format gguf:f32,gguf:f16,gguf:q8_0
    check "$arch: export safetensors f32 (the merged checkpoint the converter reads)" "$BIN" export \
        --base "$d/base" --adapter "$d/adapter" --out "$d/merged" --format safetensors --dtype f32
    printf '{"general.base_models": [{"name": "base"}]}\n' >"$d/meta.json"
    for ty in f32 f16 q8_0; do
        check "$arch: convert_hf_to_gguf.py --outtype $ty" convert "$d/merged" "$ty" "$d/ref.$ty.gguf" \
            --metadata "$d/meta.json"
    done
    for ty in f32 f16 q8_0; do
        # self-test: our F32 against the converter's F16 must fail
        same "$arch ${ty^^}" "$d/ours/qwen35.${ty^^}.gguf" "$d/ref.$(sf_expect "$ty" f16).gguf"
    done
done
d=$W/qwen35

check "to_vl.py: Qwen3_5ForConditionalGeneration layout" "$PY" "$HERE/to_vl.py" "$d/merged" "$W/vl"
check "export gguf:f32 of the vision-language layout" "$BIN" export --base "$W/vl" --out "$W/vl_ours" \
    --name qwen35 --format gguf:f32
check "convert_hf_to_gguf.py --outtype f32 (vision-language layout)" convert "$W/vl" f32 "$W/vl_ref.gguf"
same "qwen35 text of Qwen3_5ForConditionalGeneration F32" "$W/vl_ours/qwen35.F32.gguf" "$W/vl_ref.gguf"

check "to_vl.py --drop-mtp" "$PY" "$HERE/to_vl.py" "$d/merged" "$W/nomtp" --drop-mtp
check "export gguf:f32 without MTP tensors" "$BIN" export --base "$W/nomtp" --out "$W/nomtp_ours" --name qwen35 \
    --format gguf:f32
check "convert_hf_to_gguf.py --no-mtp" convert "$W/nomtp" f32 "$W/nomtp_ref.gguf" --no-mtp
same "qwen35 without MTP tensors F32 (vs --no-mtp)" "$W/nomtp_ours/qwen35.F32.gguf" "$W/nomtp_ref.gguf"
check "llama.cpp loads and evaluates it" node "$SRC/tests/conformance/llama_eval.mjs" \
    "$W/nomtp_ours/qwen35.F32.gguf" --tokens 1,2,3 --out "$W/nomtp.json"
finish
