#!/bin/bash
# Conformance of `shardforge export --format gguf-lora:TYPE` (docs/formats.md): llama.cpp applying our GGUF LoRA adapter
# to the F32 base GGUF must give the logits of our merged F32 GGUF and of an independent numpy forward pass with
# the PEFT adapter merged (tests/reference/forward.py), for adapters the reference converter mis-scales (rsLoRA,
# rank/alpha patterns, an adapter weight). File contents are checked by check.py through @huggingface/gguf.
# Env: SHARDFORGE_BIN, SHARDFORGE_SOURCE_DIR; optional GLORA_ARCHS (default "llama qwen3 phi3"), SF_NP/SF_MPIRUN.
# Self-test (conformance.glora.selftest, SF_SELFTEST_WRONG=1): llama.cpp applies our LoRA at scale 0.5 where the
# reference has 1, so the first logits comparison must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=${SHARDFORGE_SOURCE_DIR:?}
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
CONF=$SRC/tests/conformance
HERE=$CONF/glora
check "node is installed (llama.cpp via node-llama-cpp)" command -v node
check "node-llama-cpp is installed in tests/conformance" [ -d "$CONF/node_modules/node-llama-cpp" ]
check "$PY has numpy" $PY -c "import numpy"

T=$(mktemp -d /tmp/sf-glora.XXXXXX)
on_exit "rm -rf '$T'"
start=$(date +%s.%N)
RUN=("$BIN")
if [ "${SF_NP:-1}" -gt 1 ]; then read -r -a RUN <<<"${SF_MPIRUN:?} -np $SF_NP $BIN"; fi
TOKS1="635,100,200,300"
TOKS2="635,12,501,77,300,45,610,233,5,402,188,97,356,21,444,630,8,275,150,333,64,599,111,480,37,260,520,199,73,410,6,345,88,570,240,128,460,19,390,615,55"

# max |x - y| over the last-position logits of two JSON files (forward.py rows or llama_eval one row)
maxdiff() {
    $PY - "$1" "$2" <<'EOF'
import json, sys
import numpy as np
def row(p):
    j = json.load(open(p))
    l = j["logits"]
    return np.array(l[-1] if isinstance(l[0], list) else l, dtype=np.float64)
print(f"{np.max(np.abs(row(sys.argv[1]) - row(sys.argv[2]))):.3e}")
EOF
}
bound() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { exit !(v == v + 0 && (op == "le" ? v <= l : v >= l)) }'; }
within() {  # within LABEL VALUE le|ge LIMIT: a numeric bound, as a check
    check "$1 = $2 ($3 $4)" bound "$2" "$3" "$4"
}
ll() { node "$CONF/llama_eval.mjs" "$@"; }

fail_expected() {  # fail_expected LABEL WANT_EXIT WANT_TEXT cmd...
    local label=$1 want=$2 text=$3; shift 3
    try "$@" >"$T/neg.out" 2>"$T/neg.err"
    check "$label refused with exit $want (got $RC)" [ "$RC" -eq "$want" ]
    check "$label: the message mentions '$text': $(head -c 200 "$T/neg.err")" grep -q -- "$text" "$T/neg.err"
}

for arch in ${GLORA_ARCHS:-llama qwen3 phi3}; do
    W=$T/$arch
    "$BIN" demo --arch "$arch" "$W" >/dev/null
    for kind in rslora patterns dora; do $PY "$HERE/make_adapter.py" "$W/base" "$W/ad_$kind" "$kind"; done
    "${RUN[@]}" export --base "$W/base" --out "$W/plain" --format gguf:f32 >/dev/null
    BASE_GGUF=$(ls "$W"/plain/*.gguf)
    # vs forward.py: 1e-5 (tolerances in tests/conformance/README.md), Gemma 1e-3 (ggml's f16 GELU table); llama vs
    # llama: 1e-5
    TOL=1e-5; case $arch in gemma*) TOL=1e-3;; esac

    # rsLoRA at adapter weight 1 (llama.cpp scale 1 and 0.5); patterns at adapter weight 0.5 (folded into B)
    for spec in "rslora 1" "patterns 0.5"; do
        read -r kind w <<<"$spec"
        arg="$W/ad_$kind"; [ "$w" != 1 ] && arg="$W/ad_$kind:$w"
        "${RUN[@]}" export --base "$W/base" --adapter "$arg" --out "$W/out_$kind" --format gguf:f32,gguf-lora:f32 >/dev/null
        LORA=$(ls "$W"/out_$kind/*-lora-f32.gguf)
        MERGED=$(ls "$W"/out_$kind/*.gguf | grep -v -- -lora-)
        check "$arch $kind: the adapter file is named base-lora-f32.gguf ($(basename "$LORA"))" \
            [ "$(basename "$LORA")" = base-lora-f32.gguf ]
        node "$HERE/gguf_dump.mjs" "$LORA" >"$W/dump_$kind.json"
        check "$arch $kind: check.py accepts the adapter file's keys, types and values" \
            $PY "$HERE/check.py" "$W/dump_$kind.json" "$LORA" "$W/base" "$W/ad_$kind" f32 --weight "$w"
        toklists=("$TOKS2"); [ "$arch" = llama ] && toklists=("$TOKS1" "$TOKS2")
        for toks in "${toklists[@]}"; do
            n=$(tr ',' '\n' <<<"$toks" | wc -l)
            $PY "$SRC/tests/reference/forward.py" "$W/base" --tokens "$toks" --out "$W/ref0.json"
            $PY "$SRC/tests/reference/forward.py" "$W/base" --tokens "$toks" --lora "$W/ad_$kind" --lora-scale "$w" --out "$W/ref1.json"
            ll "$MERGED" --tokens "$toks" --out "$W/ll_merged.json"
            ll "$BASE_GGUF" --tokens "$toks" --lora "$LORA" --scale "$(sf_expect 1 0.5)" --out "$W/ll_lora.json"
            within "$arch $kind w=$w ${n}tok: LoRA effect |ref(lora)-ref(base)|" "$(maxdiff "$W/ref1.json" "$W/ref0.json")" ge 0.05
            within "$arch $kind w=$w ${n}tok: llama(base+our lora) vs forward.py --lora" "$(maxdiff "$W/ll_lora.json" "$W/ref1.json")" le $TOL
            within "$arch $kind w=$w ${n}tok: llama(base+our lora) vs llama(our merged f32)" "$(maxdiff "$W/ll_lora.json" "$W/ll_merged.json")" le 1e-5
            within "$arch $kind w=$w ${n}tok: llama(our merged f32) vs forward.py --lora" "$(maxdiff "$W/ll_merged.json" "$W/ref1.json")" le $TOL
        done
        if [ "$kind" = rslora ]; then
            $PY "$SRC/tests/reference/forward.py" "$W/base" --tokens "$TOKS2" --lora "$W/ad_$kind" --lora-scale 0.5 --out "$W/ref_h.json"
            ll "$BASE_GGUF" --tokens "$TOKS2" --lora "$LORA" --scale 0.5 --out "$W/ll_h.json"
            within "$arch $kind llama --scale 0.5 vs forward.py --lora-scale 0.5" "$(maxdiff "$W/ll_h.json" "$W/ref_h.json")" le $TOL
        fi
    done

    if [ "$arch" = llama ]; then
        # Other types: keys/types by check.py, llama.cpp loads and applies them (loose bounds: factor rounding).
        "${RUN[@]}" export --base "$W/base" --adapter "$W/ad_patterns" --out "$W/types" \
            --format gguf-lora:f16,gguf-lora:bf16,gguf-lora:q8_0 >/dev/null
        $PY "$SRC/tests/reference/forward.py" "$W/base" --tokens "$TOKS2" --lora "$W/ad_patterns" --out "$W/ref_t.json"
        for typ in f16 bf16 q8_0; do
            F="$W/types/base-lora-$typ.gguf"
            node "$HERE/gguf_dump.mjs" "$F" >"$W/dump_t.json"
            check "$arch patterns lora $typ: check.py accepts the file" \
                $PY "$HERE/check.py" "$W/dump_t.json" "$F" "$W/base" "$W/ad_patterns" "$typ"
            ll "$BASE_GGUF" --tokens "$TOKS2" --lora "$F" --out "$W/ll_t.json"
            lim=2e-3; [ "$typ" = bf16 ] && lim=2e-2; [ "$typ" = q8_0 ] && lim=5e-2
            within "$arch patterns lora $typ: llama(base+lora) vs forward.py --lora" "$(maxdiff "$W/ll_t.json" "$W/ref_t.json")" le $lim
        done
        # Token-embedding LoRA (lora_a = A^T, llama.cpp's convert_lora_to_gguf.py): reference = forward.py on a base
        # pre-merged with the embedding delta by premerge_embed.py, plus the linear modules through --lora.
        $PY "$HERE/make_adapter.py" "$W/base" "$W/ad_embed" embed
        "${RUN[@]}" export --base "$W/base" --adapter "$W/ad_embed" --out "$W/out_embed" --format gguf:f32,gguf-lora:f32 >/dev/null
        node "$HERE/gguf_dump.mjs" "$W/out_embed/base-lora-f32.gguf" >"$W/dump_e.json"
        check "$arch embed: check.py accepts the file" \
            $PY "$HERE/check.py" "$W/dump_e.json" "$W/out_embed/base-lora-f32.gguf" "$W/base" "$W/ad_embed" f32
        $PY "$HERE/premerge_embed.py" "$W/base" "$W/ad_embed" "$W/premerged"
        $PY "$SRC/tests/reference/forward.py" "$W/premerged" --tokens "$TOKS2" --lora "$W/ad_embed" --out "$W/ref_e.json"
        $PY "$SRC/tests/reference/forward.py" "$W/base" --tokens "$TOKS2" --lora "$W/ad_embed" --out "$W/ref_e0.json"
        ll "$BASE_GGUF" --tokens "$TOKS2" --lora "$W/out_embed/base-lora-f32.gguf" --out "$W/ll_e.json"
        ll "$W/out_embed/base.F32.gguf" --tokens "$TOKS2" --out "$W/ll_em.json"
        within "$arch embed: effect of the embedding LoRA alone" "$(maxdiff "$W/ref_e.json" "$W/ref_e0.json")" ge 0.05
        within "$arch embed: llama(base+our lora) vs reference" "$(maxdiff "$W/ll_e.json" "$W/ref_e.json")" le 1e-5
        within "$arch embed: llama(base+our lora) vs llama(our merged f32)" "$(maxdiff "$W/ll_e.json" "$W/ll_em.json")" le 1e-5
        # Byte-identical across rank counts (when mpirun is available)
        if [ -n "${SF_MPIRUN:-}" ] && [ "${SF_NP:-1}" -eq 1 ]; then
            read -r -a MPI <<<"$SF_MPIRUN"
            "${MPI[@]}" -np 2 "$BIN" export --base "$W/base" --adapter "$W/ad_rslora" --out "$W/np2" --format gguf-lora:f32 >/dev/null
            check "$arch: the -np 2 adapter is byte-identical to -np 1" \
                cmp "$W/np2/base-lora-f32.gguf" "$W/out_rslora/base-lora-f32.gguf"
        fi
        # Refusals (exit 4 = unsupported input) that point at the merged export
        fail_expected "DoRA adapter" 4 "gguf:" "$BIN" export --base "$W/base" --adapter "$W/ad_dora" --out "$W/neg1" --format gguf-lora:f32
        fail_expected "two adapters" 4 "gguf:" "$BIN" export --base "$W/base" --adapter "$W/ad_rslora" --adapter "$W/ad_patterns" --out "$W/neg2" --format gguf-lora:f32
        fail_expected "no adapter" 2 "adapter" "$BIN" export --base "$W/base" --out "$W/neg3" --format gguf-lora:f32
    fi
done
echo "glora: done in $($PY -c "print(round($(date +%s.%N) - $start, 1))") s"
finish
