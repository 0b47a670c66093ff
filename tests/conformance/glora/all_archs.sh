#!/bin/bash
# conformance.glora_archs: for every architecture variant, llama.cpp applying our GGUF LoRA adapter to the F32
# base GGUF gives the logits of our merged F32 GGUF, for an rsLoRA adapter (weight 1) and one with rank/alpha
# patterns (adapter weight 0.5) — the cases llama.cpp's alpha/r scaling gets wrong unless the PEFT scale is folded
# into lora_b — and, for the MoE variants, an rsLoRA adapter on the experts only (3-D *_exps LoRA pairs, applied
# by llama.cpp's build_lora_mm_id). Per architecture, one `shardforge run` job (base + both adapters, base read once) and one llama.cpp
# process (node-llama-cpp) evaluating all five models. The adapters target every 2-D *_proj of the decoder layers
# (attention, dense MLPs; Qwen3.5's linear attention in_proj_qkv/z/a/b and out_proj, whose V-head reorder applies to
# lora_b's rows and lora_a's columns). The job also writes
# the Ollama Modelfile.lora (FROM the base variant's GGUF, ADAPTER the LoRA), checked here.
# The numpy forward-pass comparison of these adapters is tests/conformance/glora/run.sh (llama, qwen3, phi3).
# Self-test (SF_SELFTEST_WRONG=1): the first architecture's rsLoRA model is compared with the plain base instead of
# its merged model, which must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=${SHARDFORGE_SOURCE_DIR:?}
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
CONF=$SRC/tests/conformance
HERE=$CONF/glora
check "node is installed" command -v node
check "node-llama-cpp is installed in tests/conformance" [ -d "$CONF/node_modules/node-llama-cpp" ]
check "$PY has numpy" $PY -c "import numpy"
T=$(mktemp -d /tmp/sf-glora-archs.XXXXXX)
on_exit "rm -rf '$T'"
start=$(date +%s.%N)
TOKS="635,12,501,77,300,45,610,233,5,402,188,97,356,21,444,630,8,275,150,333"
ARCHS=${GLORA_ARCHS:-"llama mistral qwen2 qwen3 llama3 mixtral qwen2moe qwen3moe gemma gemma2 gemma3 phi3 qwen35 qwen35moe mistral3 ministral3 glm4moe qwen3next gemma4 gemma4moe deepseek2 gpt-oss minimax-m2 llama4 gemma3n"}
n=0
models=() nm=0   # llama_eval arguments; number of models among them
for arch in $ARCHS; do
    W=$T/$arch
    "$BIN" demo --arch "$arch" "$W" >/dev/null
    kinds="rslora patterns"; case $arch in mixtral|qwen2moe|qwen3moe|glm4moe|qwen3next|deepseek2|minimax-m2) kinds="$kinds experts";; esac
    for kind in $kinds; do $PY "$HERE/make_adapter.py" "$W/base" "$W/ad_$kind" "$kind"; done
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
    case $kinds in *experts*) printf '[[variant]]\nname = "experts"\nadapter = "ad_experts"\nformats = ["gguf:f32", "gguf-lora:f32"]\n' >> "$W/job.toml";; esac
    try "$BIN" run "$W/job.toml" >"$W/run.log" 2>&1
    check "$arch: the batch job runs (exit $RC)" [ "$RC" -eq 0 ]
    [ "$RC" -eq 0 ] || cat "$W/run.log"
    O=$W/out
    for v in $kinds; do
        check "$arch: Modelfile.lora of $v is FROM the base GGUF" grep -qx "FROM ../plain/plain.F32.gguf" "$O/$v/Modelfile.lora"
        check "$arch: Modelfile.lora of $v has the ADAPTER" grep -qx "ADAPTER ./$v-lora-f32.gguf" "$O/$v/Modelfile.lora"
    done
    if [ "$arch" = qwen2moe ]; then
        # LoRA on some experts of a stacked tensor only: refused (llama.cpp's 3-D pair covers every expert).
        $PY - "$W/ad_experts" "$W/ad_partial" <<'PY'
import json, os, shutil, struct, sys
src, dst = sys.argv[1:]
shutil.copytree(src, dst)
p = os.path.join(dst, "adapter_model.safetensors")
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
data, out, off = b[8 + n:], [], 0
for k in [k for k in h if k != "__metadata__"]:
    if ".experts.1." in k:
        del h[k]
        continue
    s0, s1 = h[k]["data_offsets"]
    out.append(data[s0:s1]); h[k]["data_offsets"] = [off, off + s1 - s0]; off += s1 - s0
hb = json.dumps(h).encode(); hb += b" " * ((8 - len(hb) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(out))
PY
        try "$BIN" export --base "$W/base" --adapter "$W/ad_partial" --out "$W/partial" --format gguf-lora \
            >/dev/null 2>"$W/partial.err"
        check "$arch: LoRA on some experts of a stacked tensor is refused with exit 4 (got $RC)" [ "$RC" -eq 4 ]
        check "$arch: the refusal says the pair needs every expert: $(head -c 160 "$W/partial.err")" \
            grep -q "needs every expert" "$W/partial.err"
    fi
    if [ "$arch" = deepseek2 ]; then
        # The demo's own adapter targets the MLA projections, which llama.cpp's deepseek2 graph multiplies without
        # LoRA (src/models/deepseek2.cpp): a GGUF LoRA for them is refused, not written to be ignored.
        try "$BIN" export --base "$W/base" --adapter "$W/adapter" --out "$W/mla" --format gguf-lora \
            >/dev/null 2>"$W/mla.err"
        check "$arch: a GGUF LoRA on the MLA projections is refused with exit 4 (got $RC)" [ "$RC" -eq 4 ]
        check "$arch: the refusal names the tensor llama.cpp ignores: $(head -c 200 "$W/mla.err")" \
            grep -q "applies no LoRA to blk.0.attn_" "$W/mla.err"
    fi
    if [ "$arch" = gemma3n ]; then
        # The demo's own adapter also targets the AltUp router and coefficients, which llama.cpp's gemma3n graph
        # multiplies without LoRA (src/models/gemma3n.cpp): a GGUF LoRA for them is refused.
        try "$BIN" export --base "$W/base" --adapter "$W/adapter" --out "$W/altup" --format gguf-lora \
            >/dev/null 2>"$W/altup.err"
        check "$arch: a GGUF LoRA on the AltUp router/coefficients is refused with exit 4 (got $RC)" [ "$RC" -eq 4 ]
        check "$arch: the refusal names the tensor llama.cpp ignores: $(head -c 200 "$W/altup.err")" \
            grep -q "applies no LoRA to blk.0.altup_" "$W/altup.err"
    fi
    # Checks: "arch kind index(base + lora) index(merged) index(plain)" over the models list.
    plain=$nm; models+=("$O/plain/plain.F32.gguf"); nm=$((nm + 1))
    for v in $kinds; do
        models+=("$O/plain/plain.F32.gguf" --lora "$O/$v/$v-lora-f32.gguf" "$O/$v/$v.F32.gguf")
        merged_i=$((nm + 1)); [ "$n$v" = 0rslora ] && merged_i=$(sf_expect $merged_i $plain)
        echo "$arch $v $nm $merged_i $plain" >> "$T/checks.txt"
        nm=$((nm + 2))
    done
    n=$((n + 1))
done
# One llama.cpp process for every model (5 per architecture, in order).
try node "$CONF/llama_eval.mjs" --tokens "$TOKS" "${models[@]}" --out "$T/ll.jsonl"
check "llama.cpp evaluates the $nm models (exit $RC)" [ "$RC" -eq 0 ]
# One line per check: arch kind max|lora - merged| tolerance LoRA-effect
$PY - "$T/ll.jsonl" "$T/checks.txt" >"$T/results.txt" <<'PY'
import json, sys
import numpy as np
rows = [np.array(json.loads(l)["logits"], dtype=np.float64) for l in open(sys.argv[1])]
for line in open(sys.argv[2]):
    arch, kind, i_lora, i_merged, i_plain = line.split()
    lora, merged, plain = rows[int(i_lora)], rows[int(i_merged)], rows[int(i_plain)]
    # Gemma*: ggml evaluates GELU through an f16 lookup table, so the rounding difference between x@(W + s*B@A) and x@W
    # + s*(x@A)@B can move a pre-activation across an f16 step; the Gemma bound of tests/conformance/README.md (1e-3)
    # applies.
    tol = 1e-3 if arch.startswith("gemma") else 1e-5
    print(arch, kind, f"{np.max(np.abs(lora - merged)):.3e}", tol, f"{np.max(np.abs(merged - plain)):.4f}")
PY
check "one result per check ($(wc -l <"$T/checks.txt"))" [ "$(wc -l <"$T/results.txt")" -eq "$(wc -l <"$T/checks.txt")" ]
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a == a + 0 && a <= b) }'; }
while read -r arch kind d tol effect; do
  check "$arch $kind: llama(base + our lora) vs llama(our merged) $d (<= $tol)" le "$d" "$tol"
  check "$arch $kind: LoRA effect $effect (>= 0.05)" le 0.05 "$effect"
done <"$T/results.txt"
check "at least 2 architectures ran ($n)" [ "$n" -ge 2 ]
echo "glora_archs: $n architectures in $($PY -c "print(round($(date +%s.%N) - $start, 1))") s"
finish
