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
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

scale_checkpoint glm4moe "$SHARDFORGE_SOURCE_DIR/tests/data/gen_glm46.py" "$work/big" 700000000000 730000000000 100 "about 355B bf16 parameters"
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
limit=$(bytes "$(sf_expect 8.00 0.001)" GB)
for n in 16 128; do
  scale_dry_run "$n ranks" $n $budget "$limit" 4 "$want_tensors" "${args[@]}"
  ratio=$(awk -v a="$sum" -v b="$total" 'BEGIN { printf "%.3f", a / b }')
  check "$n ranks: Q4_K_M output ($sum B) is 0.27-0.34 of the bf16 weights (${ratio})" between "$ratio" 0.27 0.34
  scale_summary "$n ranks"
done
finish
