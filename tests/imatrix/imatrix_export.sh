#!/usr/bin/env bash
# imatrix.export.npN: --imatrix drives the quantizers (Q4_K_M bytes change with it; IQ2_XXS/IQ3_XXS are refused
# without it and produced with it), outputs are identical across rank counts, and llama.cpp loads the IQ2_XXS file.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}" "${SHARDFORGE_SOURCE_DIR:?}"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/imatrix/make_imatrix.py" "$w/im.dat"
args=(export --base "$w/d/base" --adapter "$w/d/adapter")
if "$SHARDFORGE_BIN" "${args[@]}" --out "$w/no" --format gguf:iq2_xxs >/dev/null 2>"$w/err"; then
  echo "FAIL: iq2_xxs without an imatrix was accepted"; exit 1; fi
grep -q -- "--imatrix" "$w/err" || { echo "FAIL: refusal does not mention --imatrix: $(cat "$w/err")"; exit 1; }
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --out "$w/one" --format gguf:iq2_xxs,gguf:iq3_xxs,gguf:q4_k_m --imatrix "$w/im.dat" >/dev/null
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --out "$w/many" --format gguf:iq2_xxs,gguf:iq3_xxs,gguf:q4_k_m --imatrix "$w/im.dat" >/dev/null
"$SHARDFORGE_BIN" "${args[@]}" --out "$w/plain" --format gguf:q4_k_m >/dev/null
for f in base.IQ2_XXS.gguf base.IQ3_XXS.gguf base.Q4_K_M.gguf; do
  cmp -s "$w/one/$f" "$w/many/$f" || { echo "FAIL: $f differs between -np 1 and -np $SF_NP"; exit 1; }
done
if cmp -s "$w/one/base.Q4_K_M.gguf" "$w/plain/base.Q4_K_M.gguf"; then echo "FAIL: imatrix did not change Q4_K_M"; exit 1; fi
if command -v node >/dev/null && [ -d "$SHARDFORGE_SOURCE_DIR/tests/conformance/node_modules/node-llama-cpp" ]; then
  node "$SHARDFORGE_SOURCE_DIR/tests/conformance/llama_eval.mjs" "$w/one/base.IQ2_XXS.gguf" --tokens 635,100,200,300 \
      --out "$w/ll.json" >/dev/null || { echo "FAIL: llama.cpp refused our IQ2_XXS file"; exit 1; }
  /usr/bin/python3 -c "import json,math,sys; l=json.load(open(sys.argv[1]))['logits']; assert all(math.isfinite(x) for x in l) and len(l)==640" "$w/ll.json"
fi
echo "PASS: imatrix quantization (np $SF_NP)"
