#!/bin/bash
# conformance.glora_archs: for every architecture of issue 3, llama.cpp applying our GGUF LoRA adapter to the F32
# base GGUF gives the logits of our merged F32 GGUF, for an rsLoRA adapter (weight 1) and one with rank/alpha
# patterns (adapter weight 0.5) — the cases llama.cpp's alpha/r scaling gets wrong unless the PEFT scale is folded
# into lora_b. Per architecture, one `shardforge run` job (base + both adapters, base read once) and one llama.cpp
# process (node-llama-cpp) evaluating all five models. The adapters target every 2-D *_proj of the decoder layers
# (attention, and dense MLPs; the stacked MoE experts are not targeted: gguf-lora refuses them). The job also writes
# the Ollama Modelfile.lora (FROM the base variant's GGUF, ADAPTER the LoRA), checked here.
# The numpy forward-pass comparison of these adapters is tests/conformance/glora/run.sh (llama, qwen3, phi3).
set -euo pipefail
SRC=${SHARDFORGE_SOURCE_DIR:?}
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
CONF=$SRC/tests/conformance
HERE=$CONF/glora
if ! command -v node >/dev/null || [ ! -d "$CONF/node_modules/node-llama-cpp" ]; then
    echo "SKIP: node or tests/conformance/node_modules/node-llama-cpp missing (npm install in tests/conformance)"; exit 77
fi
$PY -c "import numpy" 2>/dev/null || { echo "SKIP: $PY has no numpy"; exit 77; }
T=$(mktemp -d /tmp/sf-glora-archs.XXXXXX)
trap 'rm -rf "$T"' EXIT
start=$(date +%s.%N)
TOKS="635,12,501,77,300,45,610,233,5,402,188,97,356,21,444,630,8,275,150,333"
ARCHS=${GLORA_ARCHS:-"llama mistral qwen2 qwen3 llama3 mixtral qwen2moe qwen3moe gemma gemma2 gemma3 phi3"}
n=0
models=() done_archs=()
for arch in $ARCHS; do
    W=$T/$arch
    "$BIN" demo --arch "$arch" "$W" >/dev/null
    for kind in rslora patterns; do $PY "$HERE/make_adapter.py" "$W/base" "$W/ad_$kind" "$kind"; done
    cat > "$W/job.toml" <<TOML
base = "base"
out = "out"
[[variant]]
name = "plain"
formats = ["gguf:f32"]
[[variant]]
name = "rslora"
adapter = "ad_rslora"
formats = ["gguf:f32", "gguf-lora:f32"]
[[variant]]
name = "patterns"
adapter = "ad_patterns"
weight = 0.5
formats = ["gguf:f32", "gguf-lora:f32"]
TOML
    "$BIN" run "$W/job.toml" >"$W/run.log" 2>&1 || { cat "$W/run.log"; echo "FAIL $arch: shardforge run"; exit 1; }
    O=$W/out
    for v in rslora patterns; do
        grep -qx "FROM ../plain/plain.F32.gguf" "$O/$v/Modelfile.lora" && grep -qx "ADAPTER ./$v-lora-f32.gguf" "$O/$v/Modelfile.lora" \
            || { cat "$O/$v/Modelfile.lora"; echo "FAIL $arch: Modelfile.lora of $v"; exit 1; }
    done
    models+=("$O/plain/plain.F32.gguf" --lora "$O/rslora/rslora-lora-f32.gguf"
             "$O/plain/plain.F32.gguf" --lora "$O/patterns/patterns-lora-f32.gguf"
             "$O/rslora/rslora.F32.gguf" "$O/patterns/patterns.F32.gguf" "$O/plain/plain.F32.gguf")
    done_archs+=("$arch")
    n=$((n + 1))
done
# One llama.cpp process for every model (5 per architecture, in order).
node "$CONF/llama_eval.mjs" --tokens "$TOKS" "${models[@]}" --out "$T/ll.jsonl"
$PY - "$T/ll.jsonl" "${done_archs[@]}" <<'PY'
import json, sys
import numpy as np
rows = [np.array(json.loads(l)["logits"], dtype=np.float64) for l in open(sys.argv[1])]
archs = sys.argv[2:]
assert len(rows) == 5 * len(archs), f"{len(rows)} logit rows for {len(archs)} architectures"
bad = False
for i, arch in enumerate(archs):
    lora_r, lora_p, merged_r, merged_p, plain = rows[5 * i:5 * i + 5]
    # Gemma*: ggml evaluates GELU through an f16 lookup table, so the rounding difference between x@(W + s*B@A)
    # and x@W + s*(x@A)@B can move a pre-activation across an f16 step; the README's Gemma bound (1e-3) applies.
    tol = 1e-3 if arch.startswith("gemma") else 1e-5
    for kind, lora, merged in (("rslora w=1", lora_r, merged_r), ("patterns w=0.5", lora_p, merged_p)):
        d = np.max(np.abs(lora - merged)); effect = np.max(np.abs(merged - plain))
        ok = d <= tol and effect >= 0.05
        bad |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {arch} {kind}: llama(base + our lora) vs llama(our merged) {d:.2e} "
              f"(<= {tol}); LoRA effect {effect:.3f} (>= 0.05)")
sys.exit(1 if bad else 0)
PY
echo "PASS: $n architectures in $($PY -c "print(round($(date +%s.%N) - $start, 1))") s"
