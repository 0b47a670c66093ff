#!/usr/bin/env bash
# engine.scale_qwen35moe.npN: the largest published Qwen3.5 MoE (Qwen3.5-397B-A17B, ~807 GB of bf16) under
# --max-memory-per-rank 4GB, from a header-only sparse checkpoint (tests/data/gen_qwen35moe.py: its config and
# tensor names/shapes, transformers' sharded layout with fused 3-D experts, all-zero data that costs no disk).
#  - `--dry-run` for 8 and 64 ranks (--dry-run-ranks; the 8-rank one also under mpirun -np 8, same output): the
#    planned peak per rank is within the budget, every GGUF split is under the default --split-max-size 48G, the GGUF
#    holds every text tensor (the fused gate_up_proj as two) and its size is that of Q4_K_M for the model's weights,
#    and every rank has a share. Each layer's fused gate_up_proj (8.6 GB) must be split into blocks of whole experts
#    for this to fit (plan/schedule.cpp granularity); the refusal at 7+ threads is a known limit (docs/performance.md).
#  - Row blocks of fused experts are byte-neutral: the qwen35moe demo exported whole on 1 rank and in 64 KB blocks on
#    SF_NP ranks gives the same files.
#  - A real export of a full-width 2-layer checkpoint (8 experts instead of 512, so it writes 1.9 GB and not 10 GB)
#    to gguf:q4_k_m on SF_NP ranks: peak RSS of every rank (reported and measured by GNU time) under the budget.
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
gen=$SHARDFORGE_SOURCE_DIR/tests/data/gen_qwen35moe.py
budget=4GB
# Bytes from the dry run's human sizes ("47.96 GB", "430 B").
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

scale_checkpoint qwen35moe "$gen" "$work/big" 780000000000 830000000000 100 "about 400B bf16 parameters"
# Expected GGUF tensors, from the index (not from shardforge): every text tensor, the vision tower dropped, each
# fused gate_up_proj written as ffn_gate_exps + ffn_up_exps.
read -r want_tensors text_bytes < <(/usr/bin/python3 - "$work/big" <<'EOF'
import json, os, struct, sys
d = sys.argv[1]
names = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
text = [n for n in names if not n.startswith("model.visual.")]
size = 0
for f in sorted(set(names.values())):
    with open(os.path.join(d, f), "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        for k, t in json.loads(fh.read(n)).items():
            if k != "__metadata__" and not k.startswith("model.visual."):
                size += t["data_offsets"][1] - t["data_offsets"][0]
print(len(text) + sum(n.endswith("mlp.experts.gate_up_proj") for n in text), size)
EOF
)

args=(export --base "$work/big" --format gguf:q4_k_m --max-memory-per-rank $budget --threads 2 --out "$work/dry")
limit=$(bytes "$(sf_expect 4.00 0.001)" GB)
for n in 8 64; do
  scale_dry_run "$n ranks" $n $budget "$limit" 5 "$want_tensors" "${args[@]}"
  ratio=$(awk -v a="$sum" -v b="$text_bytes" 'BEGIN { printf "%.3f", a / b }')
  check "$n ranks: Q4_K_M output ($sum B) is 0.27-0.34 of the bf16 text weights (${ratio})" between "$ratio" 0.27 0.34
  scale_summary "$n ranks"
done
try dry $SF_MPIRUN -np 8 --oversubscribe "$SHARDFORGE_BIN" "${args[@]}" --dry-run >"$work/mpi8.txt"
check "mpirun -np 8 --dry-run exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "mpirun -np 8 --dry-run prints what --dry-run-ranks 8 printed" cmp -s "$work/mpi8.txt" "$work/dry8.txt"
try "$SHARDFORGE_BIN" "${args[@]}" --dry-run-ranks 8 2>"$work/usage.err"
check "--dry-run-ranks without --dry-run: exit 2 (got $RC)" [ "$RC" -eq 2 ]

# Row blocks of whole experts from the fused gate_up_proj: byte-neutral.
demo_args=(export --base "$work/demo/base" --format gguf:q4_k_m,gguf:q8_0)
"$SHARDFORGE_BIN" "${demo_args[@]}" --threads 1 --out "$work/whole" >/dev/null 2>&1
split=$("$SHARDFORGE_BIN" "${demo_args[@]}" --threads 2 --block-size 64KB --out "$work/dry" --dry-run |
        sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
check "the demo's tensors split into row blocks at 64KB (${split})" [ "${split:-0}" -ge 20 ]
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${demo_args[@]}" --threads 2 --block-size 64KB --out "$work/blocks" \
  >/dev/null 2>&1
sums() { (cd "$1" && sha256sum -- *); }
check "fused experts in row blocks on $SF_NP ranks: the same bytes as whole on 1" \
  diff <(sums "$work/whole") <(sums "$work/blocks")

# A real export of a full-width 2-layer checkpoint under the budget, peak RSS measured.
/usr/bin/python3 "$gen" "$work/two" --tokenizer-from "$work/demo/base" --layers 2 --experts 8 >/dev/null
scale_slice_export "$work/two" $budget 4000 "the 2-layer export"
size=$(stat -c %s "$work"/out/*.Q4_K_M.gguf)
check "the Q4_K_M output has the 2-layer model's size (${size} B > 1.5 GB)" [ "$size" -gt 1500000000 ]
echo "2-layer export: $slice_s s, peak RSS ${peak} MB," \
     "GNU time $(tr '\n' ' ' <<<"$peaks")KB, ${size} B"
finish
