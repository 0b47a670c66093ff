#!/usr/bin/env bash
# engine.scale_minimax_m2: MiniMax-M2 (MiniMaxM2ForCausalLM, ~230B parameters, ~230 GB of FP8) planned under
# --max-memory-per-rank 8GB from a header-only sparse checkpoint (tests/data/gen_minimax_m2.py: its config and tensor
# names/shapes in the Hub layout, FP8 attention and per-expert w1/w2/w3 with 128x128 weight_scale_inv, all-zero data
# that costs no disk). `--dry-run` to gguf:q4_k_m for 16 and 128 ranks (--dry-run-ranks): the planned peak per rank
# is within the budget, every rank has a share, the ranks' planned reads add up to the checkpoint once (no tensor
# read twice), every FP8 weight is dequantized, every GGUF split is under the default --split-max-size 48G, the
# splits hold every tensor (the 256 experts of each of the 62 layers stacked into 3 tensors, the scales not
# written) and their size is that of Q4_K_M for the model's parameters (4.5-5.2 bits each).
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
budget=8GB
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

scale_checkpoint minimax-m2 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_minimax_m2.py" "$work/big" 225000000000 235000000000 40 "about 230B FP8 parameters"
# Expected from the index and the headers (not from shardforge): GGUF tensors (each layer's per-expert tensors
# become 3 stacked ones, the scales are not written), FP8 weights (one scale grid each) and parameters.
read -r want_tensors want_fp8 params < <(/usr/bin/python3 - "$work/big" <<'PY'
import json, os, re, struct, sys
d = sys.argv[1]
names = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
scales = [n for n in names if n.endswith(".weight_scale_inv")]
experts = [n for n in names if re.search(r"\.block_sparse_moe\.experts\.\d+\.w[123]\.weight$", n)]
layers = {re.match(r"model\.layers\.(\d+)\.", n).group(1) for n in experts}
params = 0
for f in sorted(set(names.values())):
    with open(os.path.join(d, f), "rb") as fh:
        h = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    for k, v in h.items():
        if k != "__metadata__" and not k.endswith(".weight_scale_inv"):
            n = 1
            for x in v["shape"]:
                n *= x
            params += n
print(len(names) - len(scales) - len(experts) + 3 * len(layers), len(scales), params)
PY
)
args=(export --base "$work/big" --format gguf:q4_k_m --max-memory-per-rank $budget --threads 2 --out "$work/dry")
limit=$(bytes "$(sf_expect 8.00 0.001)" GB)
for n in 16 128; do
  scale_dry_run "$n ranks" $n $budget "$limit" 3 "$want_tensors" "${args[@]}"
  reads=$(scale_reads_sum)
  rr=$(awk -v a="$reads" -v b="$total" 'BEGIN { printf "%.4f", a / b }')
  check "$n ranks: the ranks' reads add up to the checkpoint once ($reads B of $total B: $rr)" between "$rr" 0.99 1.01
  deq=$(sed -n 's/.*quantized base: \([0-9]*\) tensors dequantized.*/\1/p' "$report")
  check "$n ranks: every FP8 weight is dequantized (${deq:-?} of $want_fp8)" [ "${deq:-0}" -eq "$want_fp8" ]
  bpw=$(awk -v a="$sum" -v p="$params" 'BEGIN { printf "%.3f", 8 * a / p }')
  check "$n ranks: Q4_K_M output ($sum B) is 4.5-5.2 bits per parameter (${bpw})" between "$bpw" 4.5 5.2
  scale_summary "$n ranks"
done
finish
