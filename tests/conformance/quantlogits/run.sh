#!/usr/bin/env bash
# conformance.quant_logits: every quantized GGUF we write loads in llama.cpp and its next-token distribution stays
# close to the F32 file's (KL bound per type, ~5x the value measured on the demo model), and the error grows as
# the bits shrink (Q8_0 < Q6_K < Q4_K_M < Q2_K), which a broken quantizer or a wrong tensor type would violate.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SHARDFORGE_SOURCE_DIR:?}"
conf=$SHARDFORGE_SOURCE_DIR/tests/conformance
command -v node >/dev/null || { echo "FAIL: node not installed"; exit 1; }
[ -d "$conf/node_modules/node-llama-cpp" ] || { echo "FAIL: run npm ci in tests/conformance"; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
types="F32 Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K IQ4_XS Q4_0 Q5_1"
fmt=$(for t in $types; do printf 'gguf:%s,' "${t,,}"; done)
"$SHARDFORGE_BIN" export --base "$w/d/base" --adapter "$w/d/adapter" --out "$w/o" --format "${fmt%,}" >/dev/null
toks=635,100,200,300,17,45,99,400,512,33,250,251,7
for t in $types; do
  node "$conf/llama_eval.mjs" "$w/o/base.$t.gguf" --tokens "$toks" --out "$w/$t.json" >/dev/null
done
/usr/bin/python3 - "$w" <<'PY'
import json, math, sys
w = sys.argv[1]
ref = json.load(open(f"{w}/F32.json"))["logprobs"]
bound = {"Q8_0": 1e-4, "Q6_K": 1e-3, "Q5_K_M": 2e-3, "Q4_K_M": 1e-2, "Q3_K_M": 2.5e-2, "Q2_K": 7e-2,
         "IQ4_XS": 1e-2, "Q4_0": 2e-2, "Q5_1": 5e-3}
kl = {}
fails = 0
for t, b in bound.items():
    q = json.load(open(f"{w}/{t}.json"))["logprobs"]
    kl[t] = sum(math.exp(a) * (a - c) for a, c in zip(ref, q))
    ok = math.isfinite(kl[t]) and 0 <= kl[t] <= b
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {t}: KL(F32||{t}) = {kl[t]:.3g} (bound {b:g})")
order = ["Q8_0", "Q6_K", "Q4_K_M", "Q2_K"]
if not all(kl[a] < kl[b] for a, b in zip(order, order[1:])):
    print("FAIL: KL does not grow as bits shrink:", [f"{t}={kl[t]:.3g}" for t in order]); fails += 1
print(f"quant logits: {len(bound) + 1 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
