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
set -euo pipefail
SRC=${SHARDFORGE_SOURCE_DIR:?}
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
CONF=$SRC/tests/conformance
HERE=$CONF/glora
if ! command -v node >/dev/null || [ ! -d "$CONF/node_modules/node-llama-cpp" ]; then
    echo "FAIL: node or tests/conformance/node_modules/node-llama-cpp missing (npm install in tests/conformance)"; exit 1
fi
$PY -c "import numpy" 2>/dev/null || { echo "FAIL: $PY has no numpy"; exit 1; }
T=$(mktemp -d /tmp/sf-glora-archs.XXXXXX)
trap 'rm -rf "$T"' EXIT
start=$(date +%s.%N)
TOKS="635,12,501,77,300,45,610,233,5,402,188,97,356,21,444,630,8,275,150,333"
ARCHS=${GLORA_ARCHS:-"llama mistral qwen2 qwen3 llama3 mixtral qwen2moe qwen3moe gemma gemma2 gemma3 phi3 qwen35 qwen35moe"}
n=0
models=() nm=0   # llama_eval arguments; number of models among them
for arch in $ARCHS; do
    W=$T/$arch
    "$BIN" demo --arch "$arch" "$W" >/dev/null
    kinds="rslora patterns"; case $arch in mixtral|qwen2moe|qwen3moe) kinds="$kinds experts";; esac
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
    "$BIN" run "$W/job.toml" >"$W/run.log" 2>&1 || { cat "$W/run.log"; echo "FAIL $arch: shardforge run"; exit 1; }
    O=$W/out
    for v in $kinds; do
        grep -qx "FROM ../plain/plain.F32.gguf" "$O/$v/Modelfile.lora" && grep -qx "ADAPTER ./$v-lora-f32.gguf" "$O/$v/Modelfile.lora" \
            || { cat "$O/$v/Modelfile.lora"; echo "FAIL $arch: Modelfile.lora of $v"; exit 1; }
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
        set +e; "$BIN" export --base "$W/base" --adapter "$W/ad_partial" --out "$W/partial" --format gguf-lora \
            >/dev/null 2>"$W/partial.err"; rc=$?; set -e
        grep -q "needs every expert" "$W/partial.err" && [ $rc -eq 4 ] \
            || { cat "$W/partial.err"; echo "FAIL $arch: LoRA on some experts not refused (exit $rc)"; exit 1; }
        echo "ok   $arch: LoRA on some experts of a stacked tensor refused: $(head -c 160 "$W/partial.err")"
    fi
    # Checks: "arch kind index(base + lora) index(merged) index(plain)" over the models list.
    plain=$nm; models+=("$O/plain/plain.F32.gguf"); nm=$((nm + 1))
    for v in $kinds; do
        models+=("$O/plain/plain.F32.gguf" --lora "$O/$v/$v-lora-f32.gguf" "$O/$v/$v.F32.gguf")
        echo "$arch $v $nm $((nm + 1)) $plain" >> "$T/checks.txt"
        nm=$((nm + 2))
    done
    n=$((n + 1))
done
# One llama.cpp process for every model (5 per architecture, in order).
node "$CONF/llama_eval.mjs" --tokens "$TOKS" "${models[@]}" --out "$T/ll.jsonl"
$PY - "$T/ll.jsonl" "$T/checks.txt" <<'PY'
import json, sys
import numpy as np
rows = [np.array(json.loads(l)["logits"], dtype=np.float64) for l in open(sys.argv[1])]
bad = False
n = 0
for line in open(sys.argv[2]):
    arch, kind, i_lora, i_merged, i_plain = line.split()
    lora, merged, plain = rows[int(i_lora)], rows[int(i_merged)], rows[int(i_plain)]
    # Gemma*: ggml evaluates GELU through an f16 lookup table, so the rounding difference between x@(W + s*B@A) and x@W
    # + s*(x@A)@B can move a pre-activation across an f16 step; the Gemma bound of tests/conformance/README.md (1e-3)
    # applies.
    tol = 1e-3 if arch.startswith("gemma") else 1e-5
    d = np.max(np.abs(lora - merged)); effect = np.max(np.abs(merged - plain))
    ok = d <= tol and effect >= 0.05
    bad |= not ok
    n += 1
    print(f"{'ok  ' if ok else 'FAIL'} {arch} {kind}: llama(base + our lora) vs llama(our merged) {d:.2e} "
          f"(<= {tol}); LoRA effect {effect:.3f} (>= 0.05)")
if n < 2:
    print("FAIL: no checks ran"); bad = True
sys.exit(1 if bad else 0)
PY
echo "PASS: $n architectures in $($PY -c "print(round($(date +%s.%N) - $start, 1))") s"
