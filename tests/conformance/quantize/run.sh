#!/usr/bin/env bash
# run.sh CASE: `shardforge export --format gguf:<ftype>` against the real llama-quantize engine.
#   CASE = demo (the demo model), gqa32 (32 layers, GQA 8/2), moe (every MoE arch `shardforge demo --arch` offers),
#          qwen35 (the Qwen3.5 hybrid demos, dense and MoE: linear-attention, full-attention and MTP layers),
#          families (the mistral3, ministral3, glm4moe, qwen3next, gemma4, gemma4moe, deepseek2, gpt-oss, minimax-m2
#          llama4 and gemma3n demos),
#          imatrix (the demo model with --imatrix in both tools: the ftypes that need one, and k-/i-quants with one)
# For each model (adapter merged): one export writes gguf:f32, gguf:bf16 and gguf:<ftype> for every ftype that
# needs no imatrix; then lq_quantize (llama_model_quantize of node-llama-cpp's libllama) quantizes OUR F32 GGUF to
# each ftype and compare_gguf.py checks that our file is byte-identical (KVs with order, tensor names/order/types/
# shapes, data). Why F32: we quantize straight from the merged f32 values, so llama-quantize must see the same
# values; it is also run on our BF16 GGUF (what a user would quantize), where everything but the data must match.
# gguf:f32|f16|bf16|q8_0 are the converter's outputs (convert_hf_to_gguf.py --outtype), not llama-quantize's: for
# them only the tensor/KV sets, types and data are required to match (the order is the converter's).
# Env: SHARDFORGE_BIN, LQ_QUANTIZE (the helper), SF_LQ_KEEP=1 keeps the work dir. Exit 0 = pass, 1 = a failure.
# Self-test (conformance.quantize.selftest, SF_SELFTEST_WRONG=1): the demo case compares our Q4_K_M with
# llama-quantize's Q5_K_M, which must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
CASE=${1:?usage: run.sh demo|gqa32|moe|imatrix|qwen35}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
CMP="$HERE/compare_gguf.py"
BIN=${SHARDFORGE_BIN:?SHARDFORGE_BIN not set}
LQ=${LQ_QUANTIZE:?LQ_QUANTIZE not set}
check "$PY is installed (Debian python3 runs compare_gguf.py)" [ -x "$PY" ]

QUANT_FTYPES="q2_k q3_k_s q3_k_m q3_k_l q4_0 q4_1 q5_0 q5_1 q4_k_s q4_k_m q5_k_s q5_k_m q6_k iq3_s iq3_m iq4_nl iq4_xs tq1_0 tq2_0"
CONV_TYPES="f32 f16 bf16 q8_0"
W=$(mktemp -d /tmp/sf-lq-XXXXXX)
[ "${SF_LQ_KEEP:-0}" = 1 ] || on_exit "rm -rf '$W'"
BF16_SET=all
IMATRIX_ARGS=()   # --imatrix FILE, passed to both tools
COMPARE_CONV=1    # compare gguf:f32|f16|bf16|q8_0 too (not with an imatrix: llama-quantize would add its KVs)
ALT_BF16=0        # 1: tensors llama-quantize keeps unquantized may match the run on our BF16 GGUF (gemma4)
t0=$(date +%s.%N)

# probe the oracle once: it exits 77 when libllama cannot be loaded (a failure here: the npm peers are installed)
try "$LQ" /nonexistent "$W/probe.gguf" Q8_0 >/dev/null 2>"$W/probe.err"
check "lq_quantize loads libllama (jobs/install-deps.sh --test installs it): $(head -c 200 "$W/probe.err")" [ "$RC" -ne 77 ]
# The Q4_K_M bytes from our BF16 GGUF differ from ours (the f32/bf16 distinction is exercised).
differs() { ! "$PY" "$CMP" "$1" "$2" >/dev/null; }

run_model() {  # name, extra ftypes, demo args...
  local name=$1 extra=$2
  shift 2
  local d="$W/$name"
  echo "== $name: shardforge demo $*"
  "$BIN" demo "$d" "$@" >/dev/null
  local fts="$QUANT_FTYPES $extra" fmt="" f
  for f in $CONV_TYPES $fts; do fmt="$fmt,gguf:$f"; done
  local te=$(date +%s.%N)
  try "$BIN" export --base "$d/base" --adapter "$d/adapter" --out "$d/out" --name m --format "${fmt#,}" \
      "${IMATRIX_ARGS[@]}" >"$d/export.log" 2>&1
  check "$name: the export succeeds (exit $RC)" [ "$RC" -eq 0 ]
  [ "$RC" -eq 0 ] || { cat "$d/export.log"; return 0; }
  echo "   export of $(echo $CONV_TYPES $fts | wc -w) outputs: $(echo "$(date +%s.%N) - $te" | bc) s"
  mkdir -p "$d/llama"
  local tl=0 U ts
  # llama-quantize: every ftype from one process per input (ggml's IQ grids are built once per process).
  local cmp_types=$fts f32_list="" bf16_list=""
  [ $COMPARE_CONV = 1 ] && cmp_types="$fts $CONV_TYPES"
  for f in $cmp_types; do f32_list="$f32_list,${f^^}"; done
  # The user's workflow: llama-quantize on the bf16 intermediate. Same choices, different (bf16-rounded) data.
  for f in $fts; do
    [ "$BF16_SET" = all ] || case " $BF16_SET " in *" $f "*) ;; *) continue ;; esac
    bf16_list="$bf16_list,${f^^}"
  done
  mkdir -p "$d/llama/f32" "$d/llama/bf16"
  ts=$(date +%s.%N)
  try "$LQ" "$d/out/m.F32.gguf" "$d/llama/f32" "${f32_list#,}" --threads 2 "${IMATRIX_ARGS[@]}" 2>"$d/lq.err"
  check "$name: llama_model_quantize of our F32 GGUF succeeds (exit $RC)" [ "$RC" -eq 0 ]
  [ "$RC" -eq 0 ] || tail -5 "$d/lq.err"
  tl=$(echo "$(date +%s.%N) - $ts" | bc)
  if [ -n "$bf16_list" ]; then
    try "$LQ" "$d/out/m.BF16.gguf" "$d/llama/bf16" "${bf16_list#,}" --threads 2 "${IMATRIX_ARGS[@]}" 2>"$d/lq.err"
    check "$name: llama_model_quantize of our BF16 GGUF succeeds (exit $RC)" [ "$RC" -eq 0 ]
    [ "$RC" -eq 0 ] || tail -5 "$d/lq.err"
  fi
  for f in $cmp_types; do
    U=${f^^}
    local opt=""
    # converter outputs: the converter's order, and every HF dimension (gguf-py) where ggml drops trailing 1s
    case " $CONV_TYPES " in *" $f "*) opt="--unordered --trailing-ones" ;; esac
    local ref="$d/llama/f32/$U.gguf" alt=()
    [ "$name $U" = "demo Q4_K_M" ] && ref=$(sf_expect "$ref" "$d/llama/f32/Q5_K_M.gguf")
    # a 2-D tensor llama-quantize leaves unquantized keeps its input's type; ours keeps the BF16 intermediate's
    # (gemma4's per_layer_model_proj), so it is compared with the run on our BF16 GGUF (run_options' rule)
    [ "$ALT_BF16" = 0 ] || case ",$bf16_list," in *",$U,"*) alt=(--alt "$d/llama/bf16/$U.gguf") ;; esac
    check "$name $U is byte-identical to llama($U <- our F32)" \
      "$PY" "$CMP" "$d/out/m.$U.gguf" "$ref" --label "$name $U vs llama($U <- our F32)" $opt "${alt[@]}"
    case ",$bf16_list," in *",$U,"*) ;; *) continue ;; esac
    check "$name $U has the types, shapes and KVs of llama($U <- our BF16)" \
      "$PY" "$CMP" "$d/out/m.$U.gguf" "$d/llama/bf16/$U.gguf" --label "$name $U vs llama($U <- our BF16)" --no-data
    # The comparator must see the bf16 rounding of the merged weights (it can fail, and the input matters).
    if [ "$U" = Q4_K_M ]; then
      check "$name: $U from our BF16 differs from ours in data (the f32/bf16 distinction is exercised)" \
        differs "$d/out/m.$U.gguf" "$d/llama/bf16/$U.gguf"
    fi
  done
  rm -rf "$d/llama/f32" "$d/llama/bf16"
  echo "   llama_model_quantize (f32 inputs): $tl s"
  if [ "$name" = demo ] && [ ${#IMATRIX_ARGS[@]} = 0 ]; then run_options "$d"; fi
  rm -rf "$d"
}

# llama-quantize options (same spelling in both tools), one export each. A tensor llama-quantize keeps unquantized
# keeps its intermediate's type: ours follow the BF16 intermediate (the user's workflow), so such tensors are
# checked against the run on our BF16 GGUF (--alt) and everything quantized against the run on our F32 GGUF.
run_options() {
  local d=$1 k=0 ft opts U
  while IFS='|' read -r ft opts; do
    k=$((k + 1))
    U=${ft^^}
    try "$BIN" export --base "$d/base" --adapter "$d/adapter" --out "$d/opt$k" --name m --format "gguf:$ft,gguf:f32,gguf:bf16" \
        $opts >"$d/export.log" 2>&1
    check "demo: export gguf:$ft $opts succeeds (exit $RC)" [ "$RC" -eq 0 ]
    [ "$RC" -eq 0 ] || { cat "$d/export.log"; continue; }
    try "$LQ" "$d/opt$k/m.F32.gguf" "$d/llama/o.f32.gguf" "$U" --threads 2 $opts 2>"$d/lq.err"
    check "demo: llama_model_quantize $U $opts of our F32 GGUF succeeds (exit $RC)" [ "$RC" -eq 0 ]
    try "$LQ" "$d/opt$k/m.BF16.gguf" "$d/llama/o.bf16.gguf" "$U" --threads 2 $opts 2>>"$d/lq.err"
    check "demo: llama_model_quantize $U $opts of our BF16 GGUF succeeds (exit $RC)" [ "$RC" -eq 0 ]
    check "demo $U $opts is byte-identical to llama-quantize's" \
      "$PY" "$CMP" "$d/opt$k/m.$U.gguf" "$d/llama/o.f32.gguf" --alt "$d/llama/o.bf16.gguf" --label "demo $U $opts vs llama"
    rm -rf "$d/opt$k" "$d/llama/o.f32.gguf" "$d/llama/o.bf16.gguf"
  done <<'LIST'
q4_k_m|--pure
q3_k_m|--pure
q4_k_m|--leave-output-tensor
q2_k|--output-tensor-type q8_0 --token-embedding-type q8_0
q5_k_s|--output-tensor-type bf16 --token-embedding-type f16
LIST
}

case "$CASE" in
  demo)
    run_model demo "" ;;
  imatrix)
    # make_imatrix.py: a legacy .dat for the demo's shapes (4 layers, hidden 256, ffn 768) with a trailing chunk
    # count and dataset name, so every quantize.imatrix.* KV is written. The path is given identically to both
    # tools (it is recorded in the file). The model has 2 of those layers (time): the entries of blocks 2-3 match
    # no tensor, which both tools ignore (but count in quantize.imatrix.entries_count).
    "$PY" "$HERE/../../imatrix/make_imatrix.py" "$W/im.dat" >/dev/null
    IMATRIX_ARGS=(--imatrix "$W/im.dat")
    COMPARE_CONV=0
    CONV_TYPES="f32 bf16"   # the inputs of llama-quantize only
    # every ftype that needs an imatrix, and those whose type choice (q4_0: ffn_down guard) or quantizer uses one
    QUANT_FTYPES="iq2_xxs iq2_xs iq2_s iq2_m iq1_s iq1_m iq3_xxs iq3_xs q2_k_s q4_0 q4_k_m iq4_xs"
    BF16_SET="iq2_xxs q2_k_s q4_k_m"
    run_model demo "" --layers 2
    # A GGUF-format imatrix (make_gguf_imatrix.py) with per-expert rows for the Mixtral demo's expert tensors, one
    # expert with count 0 (importances 1.0).
    "$PY" "$HERE/../../imatrix/make_gguf_imatrix.py" "$W/moe.imatrix.gguf" --experts 4 --layers 2 >/dev/null
    IMATRIX_ARGS=(--imatrix "$W/moe.imatrix.gguf")
    QUANT_FTYPES="iq2_xxs iq3_xxs q2_k_s q4_k_m"
    BF16_SET="q4_k_m"
    run_model mixtral "" --arch mixtral --layers 2 ;;
  gqa32)
    BF16_SET="q2_k q3_k_m q4_k_m"  # the BF16-input check (input-type independence) on a subset: time
    run_model gqa32 "" --layers 32 --hidden 256 --intermediate 768 --heads 8 --kv-heads 2 ;;
  moe)
    for a in mixtral qwen2moe qwen3moe; do run_model "$a" "mxfp4_moe" --arch "$a"; done ;;
  qwen35)
    # Qwen3.5's hybrid layers: attn_qkv of the linear layers counts as attn_v-like, attn_gate / ssm_alpha /
    # ssm_beta / ssm_out take the default type, ssm_conv1d stays F32, and the MTP layer counts in n_layer_all.
    run_model qwen35 "" --arch qwen35
    run_model qwen35moe "mxfp4_moe" --arch qwen35moe ;;
  families)
    # the newer families' demos (mistral3: text of Mistral3ForConditionalGeneration with its vision tower beside it;
    # ministral3): the k-quant and i-quant mixtures users pick, on 2 layers (time)
    quant_all=$QUANT_FTYPES
    QUANT_FTYPES="q2_k q3_k_m q4_0 q4_k_m q5_k_m q6_k iq4_xs"
    BF16_SET="q4_k_m"
    for a in mistral3 ministral3; do run_model "$a" "" --arch "$a" --layers 2; done
    # glm4moe (GLM-4.5): a dense layer, a MoE layer with exp_probs_b and shared experts, and the MTP layer (nextn.*,
    # counted in n_layer_all), MXFP4_MOE included
    run_model glm4moe "mxfp4_moe" --arch glm4moe --layers 2
    # qwen3next on its 4 demo layers (3 linear-attention, 1 full-attention) and the MTP layer: ssm_ba (the fused
    # beta/alpha projection), attn_qkv / attn_gate split from in_proj_qkvz, per-expert tensors stacked into *_exps
    run_model qwen3next "mxfp4_moe" --arch qwen3next
    # gemma4 (4 layers: KV-shared layers without attn_k/attn_v, double-wide MLPs; per-layer embeddings):
    # per_layer_token_embd follows token_embd's rules, per_layer_model_proj stays unquantized in its input's type,
    # so every ftype is also run from our BF16 GGUF (--alt above). Our converter outputs (f16, bf16, q8_0) hold that
    # tensor in their own type where llama-quantize keeps F32: they are compared with the real converter instead
    # (conformance.converter).
    BF16_SET=all
    COMPARE_CONV=0
    ALT_BF16=1
    run_model gemma4 "" --arch gemma4 --layers 4
    # gemma4moe (26B-A4B layout): fused ffn_gate_up_exps (an ffn_gate tensor to llama-quantize), ffn_down_exps with
    # its per-expert .scale (F32), the router and its input scale; MXFP4_MOE for the experts
    BF16_SET="q4_k_m"
    COMPARE_CONV=1
    ALT_BF16=0
    run_model gemma4moe "mxfp4_moe" --arch gemma4moe --layers 2
    # deepseek2 (FP8 demo): the MLA tensors attn_q_a / attn_q_b / attn_kv_a_mqa / 3-D attn_k_b and attn_v_b take the
    # default type (llama-quant's category OTHER), exp_probs_b stays F32; a dense layer, then MoE ones (MXFP4_MOE too)
    run_model deepseek2 "mxfp4_moe" --arch deepseek2 --layers 3
    # llama4 (Maverick layout, 4 layers): dense layers (ffn_gate/up/down) and MoE ones (router, 3-D experts split from
    # the fused gate_up_proj, shared expert *_shexp); MXFP4_MOE for the experts
    run_model llama4 "mxfp4_moe" --arch llama4 --layers 4
    # gpt-oss: attention sinks, router and expert biases, 3-D experts split from fused tensors; every ftype that
    # needs no imatrix, and MXFP4_MOE
    QUANT_FTYPES=$quant_all
    run_model gpt-oss "mxfp4_moe" --arch gpt-oss --layers 2
    # minimax-m2 (FP8 demo): full-width attn_q_norm / attn_k_norm and exp_probs_b stay F32, every layer MoE with
    # per-expert tensors stacked into *_exps (MXFP4_MOE too); the k-/i-quant mixtures users pick
    QUANT_FTYPES="q2_k q3_k_m q4_0 q4_k_m q5_k_m q6_k iq4_xs"
    run_model minimax-m2 "mxfp4_moe" --arch minimax-m2 --layers 2
    # gemma3n (4 layers): per_layer_token_embd follows token_embd's rules; per_layer_model_proj, the 3-D altup_proj /
    # altup_unembd_proj, altup_router and laurel_l / laurel_r stay unquantized in their input's type (compared with the
    # run on our BF16 GGUF, --alt), altup_correct_coef / altup_predict_coef stay F32
    BF16_SET=all
    COMPARE_CONV=0
    ALT_BF16=1
    run_model gemma3n "" --arch gemma3n --layers 4 ;;
  *) check "a known case (demo|gqa32|moe|imatrix|qwen35|families), not '$CASE'" false ;;
esac
echo "total: $(echo "$(date +%s.%N) - $t0" | bc) s wall"; times
finish
