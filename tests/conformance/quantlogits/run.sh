#!/usr/bin/env bash
# conformance.quant_logits: every quantized GGUF we write loads in llama.cpp and its next-token distribution stays
# close to the F32 file's (KL bound per type, ~5x the value measured on the demo model), and the error grows as
# the bits shrink (Q8_0 < Q6_K < Q4_K_M < Q2_K), which a broken quantizer or a wrong tensor type would violate.
# Self-test (SF_SELFTEST_WRONG=1): the Q8_0 file is evaluated in place of Q2_K, so the ordering must fail
# (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
conf=$SHARDFORGE_SOURCE_DIR/tests/conformance
check "node is installed" command -v node
check "node-llama-cpp is installed in tests/conformance" [ -d "$conf/node_modules/node-llama-cpp" ]
w=$(mktemp -d)
on_exit "rm -rf '$w'"
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
types="F32 Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K IQ4_XS Q4_0 Q5_1"
fmt=$(for t in $types; do printf 'gguf:%s,' "${t,,}"; done)
"$SHARDFORGE_BIN" export --base "$w/d/base" --adapter "$w/d/adapter" --out "$w/o" --format "${fmt%,}" >/dev/null
toks=635,100,200,300,17,45,99,400,512,33,250,251,7
for t in $types; do
  file=$t; [ "$t" = Q2_K ] && file=$(sf_expect Q2_K Q8_0)
  try node "$conf/llama_eval.mjs" "$w/o/base.$file.gguf" --tokens "$toks" --out "$w/$t.json" >/dev/null
  check "llama.cpp loads and evaluates our $t file (exit $RC)" [ "$RC" -eq 0 ]
done
kl() {  # TYPE: KL(F32 || TYPE) of the next-token distributions
  /usr/bin/python3 - "$w" "$1" <<'PY'
import json, math, sys
ref = json.load(open(f"{sys.argv[1]}/F32.json"))["logprobs"]
q = json.load(open(f"{sys.argv[1]}/{sys.argv[2]}.json"))["logprobs"]
print(repr(sum(math.exp(a) * (a - c) for a, c in zip(ref, q))))
PY
}
within() { awk -v k="$1" -v b="$2" 'BEGIN { exit !(k == k + 0 && k >= 0 && k <= b) }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
declare -A KL
for tb in Q8_0:1e-4 Q6_K:1e-3 Q5_K_M:2e-3 Q4_K_M:1e-2 Q3_K_M:2.5e-2 Q2_K:7e-2 IQ4_XS:1e-2 Q4_0:2e-2 Q5_1:5e-3; do
  t=${tb%%:*} b=${tb#*:}
  KL[$t]=$(kl "$t")
  check "KL(F32||$t) = ${KL[$t]} is within [0, $b]" within "${KL[$t]}" "$b"
done
check "KL grows as bits shrink: Q8_0 ${KL[Q8_0]} < Q6_K ${KL[Q6_K]}" less "${KL[Q8_0]}" "${KL[Q6_K]}"
check "KL grows as bits shrink: Q6_K ${KL[Q6_K]} < Q4_K_M ${KL[Q4_K_M]}" less "${KL[Q6_K]}" "${KL[Q4_K_M]}"
check "KL grows as bits shrink: Q4_K_M ${KL[Q4_K_M]} < Q2_K ${KL[Q2_K]}" less "${KL[Q4_K_M]}" "${KL[Q2_K]}"
finish
