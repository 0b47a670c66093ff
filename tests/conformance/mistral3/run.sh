#!/usr/bin/env bash
# run.sh: Mistral 3 (`mistral3`) on the consumer side. For `shardforge demo --arch mistral3` (the text of
# Mistral3ForConditionalGeneration, Pixtral tower beside it) and `--arch ministral3` (Ministral3ForCausalLM, yarn rope
# and Llama 4 query scaling), the merged `gguf:f32` and `gguf:q4_k_m` exports load in llama.cpp (node-llama-cpp
# 3.22.1) as arch mistral3; the F32 logits equal an independent numpy forward of the base with the LoRA merged
# (tests/reference/forward.py, max |diff| <= 1e-4) and differ from the base's (the LoRA moves them). Refusals:
# a tekken.json without tokenizer.json and model_type "mistral4" exit 4 naming the reason. Byte identity with
# convert_hf_to_gguf.py is the converter harness's job (tests/conformance/converter). See README.md here.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=$SHARDFORGE_SOURCE_DIR
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
EVAL=$SRC/tests/conformance/llama_eval.mjs
W=$(mktemp -d /tmp/sf-mistral3-XXXXXX)
on_exit "rm -rf '$W'"
TOKS=1,2,3,100,200,300,400,500,600,17,42,99,250,251,252,639

# maxdiff A.json B.json: max |a - b| over the last position's logits (first row of forward.py's list)
maxdiff() {
    "$PY" -c 'import json,sys
a=json.load(open(sys.argv[1]))["logits"]; b=json.load(open(sys.argv[2]))["logits"]
a=a[0] if isinstance(a[0], list) else a; b=b[0] if isinstance(b[0], list) else b
assert len(a) == len(b)
print(max(abs(x - y) for x, y in zip(a, b)))' "$1" "$2"
}
# arch_is FILE ARCH: general.architecture read by @huggingface/gguf
arch_is() {
    (cd "$SRC/tests/conformance" && node --input-type=module -e "import { gguf } from '@huggingface/gguf';
const { metadata } = await gguf(process.argv[1], { allowLocalFile: true });
process.exit(metadata['general.architecture'] === process.argv[2] ? 0 : 1)" "$1" "$2")
}
quiet() { "$@" >/dev/null 2>&1; }
le() { "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }

for arch in mistral3 ministral3; do
    d=$W/$arch
    check "$arch: demo" "$BIN" demo "$d" --arch "$arch"
    check "$arch: merged export gguf:f32,gguf:q4_k_m" quiet "$BIN" export --base "$d/base" --adapter "$d/adapter" \
        --out "$d/merged" --name m --format gguf:f32,gguf:q4_k_m
    check "$arch: base export gguf:f32" quiet "$BIN" export --base "$d/base" --out "$d/plain" --name b --format gguf:f32
    try node "$EVAL" "$d/merged/m.F32.gguf" --info --out "$d/info.json"
    check "$arch: llama.cpp loads the F32 GGUF" [ "$RC" -eq 0 ]
    check "$arch: general.architecture is mistral3 (@huggingface/gguf)" arch_is "$d/merged/m.F32.gguf" mistral3
    try node "$EVAL" "$d/merged/m.F32.gguf" --tokens "$TOKS" --out "$d/ll.json"
    check "$arch: llama.cpp evaluates the merged F32 GGUF" [ "$RC" -eq 0 ]
    try node "$EVAL" "$d/plain/b.F32.gguf" --tokens "$TOKS" --out "$d/ll_base.json"
    check "$arch: llama.cpp evaluates the base F32 GGUF" [ "$RC" -eq 0 ]
    try node "$EVAL" "$d/merged/m.Q4_K_M.gguf" --tokens "$TOKS" --out "$d/ll_q4.json"
    check "$arch: llama.cpp loads and evaluates the Q4_K_M GGUF" [ "$RC" -eq 0 ]
    # self-test: the reference without the LoRA must not match the merged model
    lora=(--lora "$d/adapter")
    sf_wrong && lora=()
    check "$arch: numpy forward" "$PY" "$SRC/tests/reference/forward.py" "$d/base" "${lora[@]}" --tokens "$TOKS" \
        --out "$d/np.json"
    diff_np=$(maxdiff "$d/ll.json" "$d/np.json")
    check "$arch: llama.cpp F32 logits equal the numpy forward with the LoRA merged (max |diff| $diff_np <= 1e-4)" \
        le "$diff_np" 1e-4
    moved=$(maxdiff "$d/ll.json" "$d/ll_base.json")
    check "$arch: the LoRA moves the logits (max |merged - base| $moved > 1e-3)" le 1e-3 "$moved"
    check "$arch: Q4_K_M logits are finite" "$PY" -c 'import json, math, sys
sys.exit(0 if all(math.isfinite(x) for x in json.load(open(sys.argv[1]))["logits"]) else 1)' "$d/ll_q4.json"
done

# Refusals (exit 4, one line naming the reason)
t=$W/tekken
mkdir -p "$t"
cp "$W/mistral3/base/"*.json "$W/mistral3/base/"*.safetensors "$t/"
rm "$t/tokenizer.json"
printf '{"config": {"pattern": ""}, "vocab": []}\n' >"$t/tekken.json"
try "$BIN" export --base "$t" --out "$W/t_out" --format gguf:f32 >"$W/tekken.log" 2>&1
check "tekken.json without tokenizer.json: exit 4 (got $RC)" [ "$RC" -eq 4 ]
check "tekken.json without tokenizer.json: the message names tekken.json" grep -q "tekken.json" "$W/tekken.log"
m4=$W/mistral4
mkdir -p "$m4"
cp "$W/mistral3/base/"* "$m4/"
"$PY" -c 'import json,sys
p=sys.argv[1]; c=json.load(open(p)); c["text_config"]["model_type"]="mistral4"; json.dump(c, open(p, "w"))' "$m4/config.json"
try "$BIN" export --base "$m4" --out "$W/m4_out" --format gguf:f32 >"$W/m4.log" 2>&1
check "model_type mistral4: exit 4 (got $RC)" [ "$RC" -eq 4 ]
check "model_type mistral4: the message names it" grep -q "mistral4" "$W/m4.log"
finish
