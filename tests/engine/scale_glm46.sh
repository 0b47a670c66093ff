#!/usr/bin/env bash
# engine.scale_glm46: GLM-4.6 (Glm4MoeForCausalLM, ~355B parameters, ~714 GB of bf16) planned under
# --max-memory-per-rank 8GB from a header-only sparse checkpoint (tests/data/gen_glm46.py: its config and tensor
# names/shapes in the Hub layout, per-expert tensors, the MTP layer, all-zero data that costs no disk). `--dry-run`
# to gguf:q4_k_m for 16 and 128 ranks (--dry-run-ranks): the planned peak per rank is within the budget, every rank
# has a share, every GGUF split is under the default --split-max-size 48G, the splits hold every tensor (the 160
# experts of each of the 90 MoE layers stacked into 3 tensors, the MTP layer kept) and their size is that of
# Q4_K_M for the model's weights.
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
budget=8GB
bytes() { awk -v v="$1" -v u="$2" 'BEGIN { m["B"]=1; m["KB"]=1e3; m["MB"]=1e6; m["GB"]=1e9; m["TB"]=1e12
                                         if (!(u in m) || v == "") exit 1; printf "%.0f\n", v * m[u] }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }
between() { awk -v a="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(a != "" && a + 0 >= lo && a + 0 <= hi) }'; }

"$SHARDFORGE_BIN" demo "$work/demo" --arch glm4moe >/dev/null
read -r total n_tensors < <(/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_glm46.py" "$work/big" \
                             --tokenizer-from "$work/demo/base")
check "the checkpoint holds ${n_tensors} tensors, ${total} B (about 355B bf16 parameters)" \
  between "$total" 700000000000 730000000000
shards=$(ls "$work/big"/model-*-of-*.safetensors | wc -l)
check "sharded like the Hub checkpoint (${shards} safetensors files)" [ "$shards" -ge 100 ]
check "the sparse checkpoint costs no disk space ($(du -sk "$work/big" | cut -f1) KB)" \
  [ "$(du -sk "$work/big" | cut -f1)" -lt 100000 ]
# Expected GGUF tensors, from the index (not from shardforge): each layer's per-expert tensors become 3 stacked ones.
want_tensors=$(/usr/bin/python3 - "$work/big" <<'PY'
import json, os, re, sys
names = json.load(open(os.path.join(sys.argv[1], "model.safetensors.index.json")))["weight_map"]
experts = [n for n in names if re.search(r"\.mlp\.experts\.\d+\.", n)]
layers = {re.match(r"model\.layers\.(\d+)\.", n).group(1) for n in experts}
print(len(names) - len(experts) + 3 * len(layers))
PY
)
args=(export --base "$work/big" --format gguf:q4_k_m --max-memory-per-rank $budget --threads 2 --out "$work/dry")
dry() { SHARDFORGE_FAULT=statvfs_free:100000000000000 "$@"; }  # a fixed free space: the same output every run
limit=$(bytes "$(sf_expect 8.00 0.001)" GB)
for n in 16 128; do
  t0=$(date +%s.%N)
  dry "$SHARDFORGE_BIN" "${args[@]}" --dry-run --dry-run-ranks $n >"$work/dry$n.txt"
  t1=$(date +%s.%N)
  peak=$(sed -n 's/.*peak memory per rank: about \([0-9.]*\) \([KMGT]*B\) .*/\1 \2/p' "$work/dry$n.txt")
  check "$n ranks: planned peak per rank (${peak}) within the ${budget} budget" lt "$(bytes $peak)" "$limit"
  check "$n ranks: one line per rank" [ "$(grep -c '^  rank [0-9]*: reads' "$work/dry$n.txt" || :)" -eq $n ]
  check "$n ranks: every rank writes a share" [ "$(grep -c '^  rank [0-9]*: reads .*, writes 0 B' "$work/dry$n.txt" || :)" -eq 0 ]
  splits=$(sed -n 's/^    [^ ]*\.Q4_K_M-[0-9]*-of-\([0-9]*\)\.gguf  \([0-9.]*\) \([KMGT]*B\)  (\([0-9]*\) tensors)$/\2 \3 \4/p' \
           "$work/dry$n.txt")
  n_splits=$(wc -l <<<"$splits")
  check "$n ranks: the GGUF is split ($n_splits files)" [ "$n_splits" -ge 4 ]
  sum=0 got_tensors=0 over=0
  while read -r v u k; do
    b=$(bytes "$v" "$u")
    sum=$((sum + b)) got_tensors=$((got_tensors + k))
    lt "$b" 48000000000 || over=$((over + 1))
  done <<<"$splits"
  check "$n ranks: every split under 48G ($over over)" [ "$over" -eq 0 ]
  check "$n ranks: the splits hold every tensor ($got_tensors of $want_tensors)" [ "$got_tensors" -eq "$want_tensors" ]
  ratio=$(awk -v a="$sum" -v b="$total" 'BEGIN { printf "%.3f", a / b }')
  check "$n ranks: Q4_K_M output ($sum B) is 0.27-0.34 of the bf16 weights (${ratio})" between "$ratio" 0.27 0.34
  echo "$n ranks: dry run in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; $peak peak per rank; $n_splits splits, $sum B"
done
finish
