#!/usr/bin/env bash
# run.sh [ARCH...]: `shardforge export --format gguf:f32,gguf:f16,gguf:q8_0` (demo adapter merged) against llama.cpp's
# own convert_hf_to_gguf.py run on the same merged checkpoint, for every `shardforge demo --arch` (or the ARCHs
# given). Byte identity of the whole file: KV keys, order, types and values; tensor names, order, types, shapes and
# data (tests/conformance/quantize/compare_gguf.py, no --unordered). See tests/conformance/converter/README.md.
# The converter is the llama.cpp release node-llama-cpp bundles (cloned once per run from its git bundle), run
# unchanged with Debian's python3 (numpy, torch, sentencepiece) and the stand-in `transformers` of stub/.
# Then libllama's llama_model_quantize (lq_quantize) on the converter's F32 at Q4_K_M and IQ4_XS against our
# gguf:q4_k_m and gguf:iq4_xs of the same export: the user's whole chain, byte for byte.
# qwen3next also without its mtp.* tensors: ours against the converter's --no-mtp (its default refuses it).
# The vision-language demos (VL_ARCHS: gemma3-vl, Gemma3ForConditionalGeneration; mistral3,
# Mistral3ForConditionalGeneration's Pixtral tower): the text GGUF as above, and our mmproj-NAME-TYPE.gguf against the
# converter's --mmproj at f32/f16/q8_0/bf16; then a text-only LoRA leaves the projector byte-identical to the base's, the
# vision-tower LoRA changes it, --no-mmproj writes no projector, and @huggingface/gguf parses both files.
# Env: SHARDFORGE_BIN, SHARDFORGE_SOURCE_DIR, LQ_QUANTIZE; SF_CONV_KEEP=1 keeps the work dir.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=$SHARDFORGE_SOURCE_DIR
HERE=$SRC/tests/conformance/converter
BIN=${SHARDFORGE_BIN:?}
LQ=${LQ_QUANTIZE:?LQ_QUANTIZE not set (tests/conformance/quantize/lq_quantize.cpp)}
PY=/usr/bin/python3
CMP=$SRC/tests/conformance/quantize/compare_gguf.py
BUNDLE=$SRC/tests/conformance/node_modules/node-llama-cpp/llama/gitRelease.bundle
ARCHS=${*:-llama llama3 mistral mixtral qwen2 qwen2moe qwen3 qwen3moe gemma gemma2 gemma3 phi3 mistral3 ministral3 glm4moe qwen3next gemma4 gemma4moe deepseek2 gpt-oss minimax-m2 llama4 gemma3-vl gemma3n}
# Archs with a 2-D tensor llama-quantize keeps unquantized (gemma4's and gemma3n's per_layer_model_proj, gemma3n's
# altup and laurel tensors): ours keeps the type of
# the intermediate a user quantizes (the base's bf16), so the converter's bf16 output is quantized too and such
# tensors are compared with that run (compare_gguf.py --alt); everything quantized still against the F32 run.
ALT_BF16=" gemma4 gemma3n "
VL_ARCHS=" gemma3-vl mistral3 "
W=$(mktemp -d /tmp/sf-conv-XXXXXX)
[ "${SF_CONV_KEEP:-0}" = 1 ] || on_exit "rm -rf '$W'"
now() { date +%s.%N; }
# logged LOG CMD...: CMD's output appended to LOG; on failure the end of LOG is shown.
logged() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1 || { tail -n 20 "$log"; return 1; }
}
since() { echo "$(now) - $1" | bc | sed 's/^\./0./'; }
t_all=$(now)

check "Debian python3 with numpy, torch and sentencepiece" "$PY" -c "import numpy, torch, sentencepiece"
check "node-llama-cpp's llama.cpp git bundle is installed ($BUNDLE)" [ -f "$BUNDLE" ]
t=$(now)
check "clone of the llama.cpp release (convert_hf_to_gguf.py, conversion/, gguf-py/)" \
    git -c advice.detachedHead=false clone -q "$BUNDLE" "$W/llama.cpp"
echo "   clone: $(since "$t") s"
LL=$W/llama.cpp
export PYTHONPATH="$HERE/stub:$LL/gguf-py" PYTHONDONTWRITEBYTECODE=1   # nothing written into the source tree
check "the stand-in tokenizer encodes llama.cpp's Llama 3 and Qwen2 tokenizer test texts as HF tokenizers did" \
    "$PY" "$HERE/stub/check_bpe.py" "$HERE/stub" "$LL/models"
# The demo's byte-level BPE copies Llama 3's pre-tokenizer; its fingerprint is taken with Llama 3's vocabulary
# (stub/transformers/__init__.py, "The one documented deviation").
export SF_STUB_FINGERPRINT_VOCAB=$LL/models/ggml-vocab-llama-bpe.gguf

t_conv=0
# compare ARCH NAME CKPT OURS_DIR TYPE...: convert_hf_to_gguf.py on CKPT (a directory named NAME) at each TYPE, and
# our OURS_DIR/NAME.TYPE.gguf against it. CONV_EXTRA (e.g. --mtp) is passed to the converter, OURS_PREFIX (mtp-)
# put before our file name, OURS_SEP (default .) between name and type, REF_TAG (mtp) names the converter's file.
compare() {
    local arch=$1 name=$2 ckpt=$3 ours=$4 d ty U t tc ref
    shift 4
    d=$(dirname "$ckpt")
    # What the converter cannot know from the checkpoint, given through its own options: the model name
    # (--model-name) and the base model a fine-tune was made from (--metadata, as a model card would).
    printf '{"general.base_models": [{"name": "base"}]}\n' >"$d/meta.json"
    local meta=(--metadata "$d/meta.json") args=()
    case $name in base | *-cg) meta=() ;; esac   # exported without an adapter: no fine-tune
    for ty in "$@"; do
        args+=(--then "$ckpt" ${CONV_EXTRA:-} --outtype "$ty" --outfile "$d/ref${REF_TAG:+.$REF_TAG}.$ty.gguf" \
            --model-name "$name" "${meta[@]}")
    done
    t=$(now)
    # one process for the outtypes of a checkpoint: torch is imported once (stub/run_converter.py)
    check "$arch: convert_hf_to_gguf.py ${CONV_EXTRA:+$CONV_EXTRA }--outtype $*" logged "$d/convert.log" "$PY" \
        "$HERE/stub/run_converter.py" "$LL/convert_hf_to_gguf.py" "${args[@]:1}"
    tc=$(since "$t")
    t_conv=$(echo "$t_conv + $tc" | bc)
    echo "   $arch ($name): converter ($# outtypes, one process) $tc s"
    for ty in "$@"; do
        U=${ty^^}
        # self-test: our F32 against the converter's F16 must fail
        ref=$d/ref${REF_TAG:+.$REF_TAG}.$(sf_expect "$ty" f16).gguf
        try "$PY" "$CMP" "$ours/${OURS_PREFIX:-}$name${OURS_SEP:-.}$U.gguf" "$ref" --label "$arch ${OURS_PREFIX:-}$U" >"$d/cmp.$ty.txt"
        cat "$d/cmp.$ty.txt"
        check "$arch ${OURS_PREFIX:-}$U: byte-identical to convert_hf_to_gguf.py ${CONV_EXTRA:+$CONV_EXTRA }--outtype $ty" [ "$RC" -eq 0 ]
    done
}

for arch in $ARCHS; do
    d=$W/$arch
    t=$(now)
    # gpt-oss is published in MXFP4: its user's chain also ends at llama-quantize's MXFP4_MOE
    LQ_TYPES=Q4_K_M,IQ4_XS
    [ "$arch" != gpt-oss ] || LQ_TYPES=Q4_K_M,IQ4_XS,MXFP4_MOE
    FORMATS=$(echo "$LQ_TYPES" | tr 'A-Z' 'a-z' | sed 's/^/gguf:/; s/,/,gguf:/g')
    # One base shard: the converter orders tensors by file, then by name within a file, and the merged
    # checkpoint we hand it is one file (README.md, "Tensor order and the shard layout").
    check "$arch: demo" logged "$d.log" "$BIN" demo "$d" --arch "$arch" --shards 1
    alt=0
    case "$ALT_BF16" in *" $arch "*) alt=1 ;; esac
    conv_types="f32 f16 q8_0"
    [ $alt = 0 ] || conv_types="$conv_types bf16"
    # glm4moe: also the converter's --mtp output (the MTP layer as a draft GGUF) as gguf-mtp:TYPE
    mtp=""
    [ "$arch" != glm4moe ] || mtp=",gguf-mtp:f32,gguf-mtp:f16,gguf-mtp:q8_0,gguf-mtp:q4_k_m"
    fmt=""
    for ty in $conv_types; do fmt="$fmt,gguf:$ty"; done
    fmt="${fmt#,},$FORMATS$mtp"
    check "$arch: export $fmt" logged "$d.log" "$BIN" export --base "$d/base" \
        --adapter "$d/adapter" --out "$d/ours" --name "$arch" --format "$fmt"
    # The merged checkpoint in f32: the exact merged values both tools start from.
    check "$arch: export safetensors (merged, f32)" logged "$d.log" "$BIN" export --base "$d/base" \
        --adapter "$d/adapter" --out "$d/$arch" --format safetensors --dtype f32
    echo "   $arch: shardforge demo and exports $(since "$t") s"
    # GLM's fingerprint: stub/run_converter.py, SF_STUB_GLM4_PRE (the demo must split as Llama 3 / GLM-4.5 do)
    if [ "$arch" = glm4moe ]; then export SF_STUB_GLM4_PRE=1; else unset SF_STUB_GLM4_PRE; fi
    compare "$arch" "$arch" "$d/$arch" "$d/ours" $conv_types
    # llama-quantize of the converter's F32 (the exact merged values; tests/conformance/quantize/README.md)
    t=$(now)
    mkdir -p "$d/lq"
    check "$arch: llama_model_quantize(converter F32) at $LQ_TYPES" logged "$d/lq.log" "$LQ" \
        "$d/ref.f32.gguf" "$d/lq" "$LQ_TYPES" --threads 2
    altref=()
    if [ $alt = 1 ]; then
        mkdir -p "$d/lq16"
        check "$arch: llama_model_quantize(converter BF16) at $LQ_TYPES" logged "$d/lq.log" "$LQ" \
            "$d/ref.bf16.gguf" "$d/lq16" "$LQ_TYPES" --threads 2
    fi
    echo "   $arch: llama_model_quantize $(since "$t") s"
    for U in ${LQ_TYPES//,/ }; do
        [ $alt = 0 ] || altref=(--alt "$d/lq16/$U.gguf")
        try "$PY" "$CMP" "$d/ours/$arch.$U.gguf" "$d/lq/$U.gguf" --label "$arch $U" "${altref[@]}" >"$d/cmp.$U.txt"
        cat "$d/cmp.$U.txt"
        check "$arch $U: byte-identical to llama_model_quantize of the converter's F32" [ "$RC" -eq 0 ]
    done
    if [ -n "$mtp" ]; then
        CONV_EXTRA=--mtp OURS_PREFIX=mtp- REF_TAG=mtp compare "$arch" "$arch" "$d/$arch" "$d/ours" f32 f16 q8_0
        mkdir -p "$d/lq-mtp"
        check "$arch: llama_model_quantize(converter --mtp F32) at Q4_K_M" logged "$d/lq.log" "$LQ" \
            "$d/ref.mtp.f32.gguf" "$d/lq-mtp" Q4_K_M --threads 2
        try "$PY" "$CMP" "$d/ours/mtp-$arch.Q4_K_M.gguf" "$d/lq-mtp/Q4_K_M.gguf" --label "$arch mtp-Q4_K_M" >"$d/cmp.mtp.txt"
        cat "$d/cmp.mtp.txt"
        check "$arch mtp-Q4_K_M: byte-identical to llama_model_quantize of the converter's --mtp F32" [ "$RC" -eq 0 ]
    fi
    if [ "$arch" = qwen3next ]; then
        # Qwen3-Next's config has no mtp_num_hidden_layers: without mtp.* tensors the converter's default stops on an
        # assertion; ours is its --no-mtp output (docs/formats.md, Qwen3-Next)
        n=$d/nomtp
        check "$arch: the merged checkpoint without its mtp.* tensors" "$PY" "$HERE/drop_mtp.py" "$d/$arch" "$n/ckpt"
        check "$arch without MTP: export gguf:f32" logged "$d.log" "$BIN" export --base "$n/ckpt" --out "$n/ours" \
            --name "$arch" --format gguf:f32
        try "$PY" "$HERE/stub/run_converter.py" "$LL/convert_hf_to_gguf.py" "$n/ckpt" --outtype f32 \
            --outfile "$n/default.gguf" --model-name "$arch" >"$n/default.log" 2>&1
        check "$arch without MTP: convert_hf_to_gguf.py's default refuses it (exit $RC)" [ "$RC" -ne 0 ]
        check "$arch without MTP: convert_hf_to_gguf.py --no-mtp" logged "$n/convert.log" "$PY" \
            "$HERE/stub/run_converter.py" "$LL/convert_hf_to_gguf.py" "$n/ckpt" --outtype f32 \
            --outfile "$n/ref.gguf" --model-name "$arch" --no-mtp
        try "$PY" "$CMP" "$n/ours/$arch.F32.gguf" "$(sf_expect "$n/ref.gguf" "$d/ref.f32.gguf")" --label "$arch no MTP F32"
        check "$arch without MTP F32: byte-identical to convert_hf_to_gguf.py --no-mtp" [ "$RC" -eq 0 ]
    fi
    if [ "$arch" = gemma4 ]; then
        # The same text model as a text-only fine-tune of Gemma4ForConditionalGeneration stores it (gemma4_cg.py:
        # model.language_model.*, vision and audio towers beside it, text_config): only the text is written.
        cg=$d/cg/gemma4-cg
        check "gemma4: the merged checkpoint in the ConditionalGeneration layout" \
            "$PY" "$HERE/gemma4_cg.py" "$d/$arch" "$cg"
        check "gemma4 (ConditionalGeneration): export gguf:f32" logged "$d.log" "$BIN" export --base "$cg" \
            --out "$d/cg/ours" --name gemma4-cg --format gguf:f32
        compare gemma4-cg gemma4-cg "$cg" "$d/cg/ours" f32
    fi
    case "$VL_ARCHS" in *" $arch "*) vl=1 ;; *) vl=0 ;; esac
    if [ $vl = 1 ]; then
        # the projector also at bf16 (our gguf:bf16 export beside the others)
        check "$arch: export gguf:bf16" logged "$d.log" "$BIN" export --base "$d/base" --adapter "$d/adapter" \
            --out "$d/ours-bf16" --name "$arch" --format gguf:bf16
        cp "$d/ours-bf16/mmproj-$arch-BF16.gguf" "$d/ours/"
        CONV_EXTRA=--mmproj OURS_PREFIX=mmproj- OURS_SEP=- REF_TAG=mmproj compare "$arch" "$arch" "$d/$arch" "$d/ours" \
            f32 f16 q8_0 bf16
        check "$arch: the text GGUF holds no vision tensor" sh -c "! grep -q 'v.blk.0' '$d/ours/$arch.F32.gguf'"
        # The base alone, a text-only LoRA (the demo adapter without its vision_tower / multi_modal_projector
        # factors) and the vision LoRA:
        # the projector depends on the tower's merge only.
        check "$arch: a text-only adapter (the demo's without vision_tower.*, multi_modal_projector.*)" \
            "$PY" "$HERE/text_only_adapter.py" "$d/adapter" "$d/adapter-text"
        check "$arch: export the base alone, gguf:f32,f16" logged "$d.log" "$BIN" export --base "$d/base" \
            --out "$d/plain" --name "$arch" --format gguf:f32,gguf:f16
        check "$arch: export with the text-only LoRA, gguf:f32,f16" logged "$d.log" "$BIN" export --base "$d/base" \
            --adapter "$d/adapter-text" --out "$d/textlora" --name "$arch" --format gguf:f32,gguf:f16
        for U in F32 F16; do
            check "$arch text-only LoRA: mmproj-$arch-$U.gguf written" [ -f "$d/textlora/mmproj-$arch-$U.gguf" ]
            # every tensor byte-identical; the KVs differ by the fine-tune's general.base_model.* only (the
            # converter's --metadata writes them into both files)
            try "$PY" "$CMP" "$d/textlora/mmproj-$arch-$U.gguf" "$d/plain/mmproj-$arch-$U.gguf" \
                --label "$arch text-only LoRA vs base projector $U" >"$d/cmp.text.$U.txt"
            cat "$d/cmp.text.$U.txt"
            check "$arch text-only LoRA: the projector $U's tensors byte-identical to the base's" \
                sh -c "[ \$(grep -c . '$d/cmp.text.$U.txt') = 2 ] && [ \$(grep -c 'KV general.base_model.*extra in ours' '$d/cmp.text.$U.txt') = 2 ]"
            check "$arch text-only LoRA: the text model $U differs from the base's" \
                sh -c "! cmp -s '$d/textlora/$arch.$U.gguf' '$d/plain/$arch.$U.gguf'"
            # the vision factors of the demo adapter leave the text GGUF as the text-only LoRA writes it
            check "$arch: the vision LoRA leaves the text model $U unchanged" \
                cmp "$d/textlora/$arch.$U.gguf" "$d/ours/$arch.$U.gguf"
        done
        # general.base_model.* differ too, so the tensor data is compared (the projector moved by the vision LoRA)
        try "$PY" "$CMP" "$d/ours/mmproj-$arch-F32.gguf" "$d/plain/mmproj-$arch-F32.gguf" \
            --label "$arch vision LoRA vs base projector" >"$d/cmp.vis.txt"
        cat "$d/cmp.vis.txt"
        check "$arch: the vision-tower LoRA changes the projector's tensors" grep -q 'v.blk.0.attn_q.weight' "$d/cmp.vis.txt"
        check "$arch: --no-mmproj" logged "$d.log" "$BIN" export --base "$d/base" --adapter "$d/adapter" \
            --out "$d/nomm" --name "$arch" --format gguf:f32 --no-mmproj
        check "$arch --no-mmproj: the text GGUF is written" [ -f "$d/nomm/$arch.F32.gguf" ]
        check "$arch --no-mmproj: no projector is written" sh -c "! ls '$d/nomm' | grep -q mmproj"
        check "$arch --no-mmproj: the same text GGUF" cmp "$d/nomm/$arch.F32.gguf" "$d/ours/$arch.F32.gguf"
        check "$arch: the Modelfile's FROM lines are the text GGUF and the F16 projector" \
            sh -c "[ \"\$(grep '^FROM ' '$d/ours/Modelfile')\" = \"\$(printf 'FROM ./$arch.Q4_K_M.gguf\nFROM ./mmproj-$arch-F16.gguf')\" ]"
        check "$arch: @huggingface/gguf parses the text and projector GGUFs" \
            sh -c 'cd "$1/tests/conformance" && node hfparse/parse_exports.mjs "$2"' _ "$SRC" "$d/ours"
    fi
    if [ "$arch" = deepseek2 ] || [ "$arch" = minimax-m2 ]; then
        # The FP8 base itself (no adapter): the converter dequantizes weight * weight_scale_inv in 128x128 blocks
        # (llama.cpp's conversion/base.py dequant_model), we do too (src/plan/plan_quant.cpp). Debian's torch 1.13
        # cannot load float8, so the converter reads the checkpoint as its dequant_model step leaves it
        # (stub/dequant_fp8.py: the same float32 products, written out).
        check "$arch: export the FP8 base alone, gguf:f32,f16,q8_0" logged "$d.log" "$BIN" export --base "$d/base" \
            --out "$d/ours-fp8" --name base --format gguf:f32,gguf:f16,gguf:q8_0
        mkdir -p "$d/fp8"
        check "$arch: the FP8 base as the converter's dequant_model leaves it" \
            "$PY" "$HERE/stub/dequant_fp8.py" "$d/base" "$d/fp8/base"
        check "$arch: the demo base holds F8_E4M3 weights" grep -q '"F8_E4M3"' "$d/base/model.safetensors"
        check "$arch: the demo base holds weight_scale_inv tensors" grep -q 'weight_scale_inv' "$d/base/model.safetensors"
        compare "$arch (FP8 base)" base "$d/fp8/base" "$d/ours-fp8" f32 f16 q8_0
    fi
    [ "${SF_CONV_KEEP:-0}" = 1 ] || rm -rf "$d"
done

# gpt-oss as OpenAI publishes it: MXFP4 experts (*_blocks / *_scales). The converter reads the checkpoint itself (no
# adapter) and repacks the blocks; our outputs carry them without re-quantizing (a third of the demo's blocks would
# get other bytes from ggml's quantizer), at every outtype and through libllama's MXFP4_MOE, which copies them.
case " $ARCHS " in *" gpt-oss "*)
    d=$W/gpt-oss-mxfp4
    check "gpt-oss-mxfp4: demo" logged "$d.log" "$BIN" demo "$d" --arch gpt-oss-mxfp4 --shards 1
    check "gpt-oss-mxfp4: export gguf:f32,f16,bf16,q8_0,mxfp4_moe" logged "$d.log" "$BIN" export --base "$d/base" \
        --out "$d/ours" --format gguf:f32,gguf:f16,gguf:bf16,gguf:q8_0,gguf:mxfp4_moe
    compare gpt-oss-mxfp4 base "$d/base" "$d/ours" f32 f16 bf16 q8_0
    mkdir -p "$d/lq"
    check "gpt-oss-mxfp4: llama_model_quantize(converter F32) at MXFP4_MOE" logged "$d/lq.log" "$LQ" \
        "$d/ref.f32.gguf" "$d/lq" MXFP4_MOE --threads 2
    try "$PY" "$CMP" "$d/ours/base.MXFP4_MOE.gguf" "$d/lq/MXFP4_MOE.gguf" --label "gpt-oss-mxfp4 MXFP4_MOE" >"$d/cmp.mx.txt"
    cat "$d/cmp.mx.txt"
    check "gpt-oss-mxfp4 MXFP4_MOE: byte-identical to llama_model_quantize of the converter's F32" [ "$RC" -eq 0 ]
    ;;
esac

# DeepSeek-V3's model in Kimi-K2-Thinking's storage: routed experts as compressed-tensors pack-quantized INT4. The
# converter reads the checkpoint itself (conversion/base.py dequant_model, dequant_packed: (code - 8) * scale in
# float32); we dequantize the same way (src/plan/plan_quant.cpp packed_int, quant::dequant_packed_int).
case " $ARCHS " in *" deepseek2 "*)
    d=$W/kimi-k2-int4
    check "kimi-k2-int4: demo" logged "$d.log" "$BIN" demo "$d" --arch kimi-k2-int4 --shards 1
    check "kimi-k2-int4: the demo base holds I32 weight_packed experts" grep -q 'experts.0.up_proj.weight_packed' \
        "$d/base/model.safetensors"
    check "kimi-k2-int4: export the INT4 base alone, gguf:f32,f16,q8_0" logged "$d.log" "$BIN" export --base "$d/base" \
        --out "$d/ours" --format gguf:f32,gguf:f16,gguf:q8_0
    # --no-lazy: the converter's lazy tensors mix meta and cpu devices in dequant_packed under Debian's torch 1.13
    CONV_EXTRA=--no-lazy compare kimi-k2-int4 base "$d/base" "$d/ours" f32 f16 q8_0
    ;;
esac

# The base itself, in two shards (bf16, no adapter): the order across files, and bf16 outputs.
if [ $# -eq 0 ]; then
    d=$W/sharded
    check "sharded: demo --shards 2" logged "$d.log" "$BIN" demo "$d" --shards 2
    check "sharded: export the base alone, gguf:f32,gguf:bf16" logged "$d.log" "$BIN" export --base "$d/base" \
        --out "$d/ours" --format gguf:f32,gguf:bf16
    check "sharded: the base has two safetensors files" [ "$(ls "$d"/base/*.safetensors | wc -l)" -eq 2 ]
    compare sharded base "$d/base" "$d/ours" f32 bf16
fi
echo "   converter runs in all: $t_conv s; total $(since "$t_all") s"
finish
