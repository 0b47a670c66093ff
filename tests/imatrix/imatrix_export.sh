#!/usr/bin/env bash
# imatrix.export.npN: --imatrix drives the quantizers (Q4_K_M bytes change with it; IQ2_XXS/IQ3_XXS are refused
# without it and produced with it), outputs are identical across rank counts, and llama.cpp loads the IQ2_XXS file.
# Self-test (SF_SELFTEST_WRONG=1): the imatrix is expected to leave Q4_K_M unchanged (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
w=$(mktemp -d)
on_exit "rm -rf '$w'"
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/imatrix/make_imatrix.py" "$w/im.dat" >/dev/null
args=(export --base "$w/d/base" --adapter "$w/d/adapter")
try "$SHARDFORGE_BIN" "${args[@]}" --out "$w/no" --format gguf:iq2_xxs >/dev/null 2>"$w/err"
check "iq2_xxs without an imatrix is refused with a usage error (exit $RC)" [ "$RC" -eq 2 ]
check "the refusal mentions --imatrix" grep -q -- "--imatrix" "$w/err"
fmts=gguf:iq2_xxs,gguf:iq3_xxs,gguf:q4_k_m
$SF_MPIRUN -np 1 "$SHARDFORGE_BIN" "${args[@]}" --out "$w/one" --format $fmts --imatrix "$w/im.dat" >/dev/null
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --out "$w/many" --format $fmts --imatrix "$w/im.dat" >/dev/null
"$SHARDFORGE_BIN" "${args[@]}" --out "$w/plain" --format gguf:q4_k_m >/dev/null
for f in base.IQ2_XXS.gguf base.IQ3_XXS.gguf base.Q4_K_M.gguf; do
  check "$f is identical at -np 1 and -np $SF_NP" cmp -s "$w/one/$f" "$w/many/$f"
done
same() { cmp -s "$1" "$2"; }
differ() { ! cmp -s "$1" "$2"; }
check "the imatrix changes Q4_K_M" "$(sf_expect differ same)" "$w/one/base.Q4_K_M.gguf" "$w/plain/base.Q4_K_M.gguf"
check "node-llama-cpp is installed in tests/conformance" [ -d "$SHARDFORGE_SOURCE_DIR/tests/conformance/node_modules/node-llama-cpp" ]
try node "$SHARDFORGE_SOURCE_DIR/tests/conformance/llama_eval.mjs" "$w/one/base.IQ2_XXS.gguf" --tokens 635,100,200,300 \
    --out "$w/ll.json" >/dev/null
check "llama.cpp loads and evaluates our IQ2_XXS file (exit $RC)" [ "$RC" -eq 0 ]
check "its 640 logits are finite" /usr/bin/python3 -c \
  "import json,math,sys; l=json.load(open(sys.argv[1]))['logits']; sys.exit(not (all(math.isfinite(x) for x in l) and len(l)==640))" "$w/ll.json"
finish
