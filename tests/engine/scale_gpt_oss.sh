#!/usr/bin/env bash
# engine.scale_gpt_oss: gpt-oss-120b (GptOssForCausalLM, ~117B parameters, 65 GB with MXFP4 experts) planned under
# --max-memory-per-rank 8GB from a header-only sparse checkpoint (tests/data/gen_gpt_oss.py: its config and tensor
# names/shapes in the Hub layout, MXFP4 *_blocks / *_scales experts, BF16 attention, router and embeddings, all-zero
# data that costs no disk). `--dry-run` for 16 and 128 ranks (--dry-run-ranks), to gguf:mxfp4_moe (what gpt-oss is
# shipped as) and to gguf:q4_k_m: the planned peak per rank is within the budget, every rank has a share, the ranks'
# planned reads add up to the checkpoint plus the known re-read (docs/formats.md, gpt-oss: gate and up, the even and
# odd rows of gate_up_proj, each read its rows' whole range), every MXFP4 expert tensor is dequantized (its scales not written),
# every GGUF split is under the default --split-max-size 48G, the splits hold every tensor (gate_up_proj and its bias
# split into gate and up; counted from the index, not from shardforge) and their size is that of the type for the
# model's parameters: MXFP4_MOE keeps the experts at 4.25 bits and writes the rest as Q8_0 (4.25-4.6 bits per
# parameter); Q4_K_M falls back to Q5_0 / Q8_0 for the experts, whose rows of 2880 are not Q4_K / Q6_K blocks of
# 256 (llama-quantize's fallback rule, docs/formats.md), so 5.5-6.8 bits per parameter.
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
budget=8GB
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

scale_checkpoint gpt-oss-mxfp4 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_gpt_oss.py" "$work/big" 64000000000 66500000000 10 "about 117B parameters, MXFP4 experts"
# Expected from the index and the headers (not from shardforge): GGUF tensors (no *_scales; gate_up_proj_blocks and
# gate_up_proj_bias each become a gate and an up tensor), MXFP4 tensors (one *_blocks each) and parameters (32 per
# 16-byte MXFP4 block), and the bytes of gate_up_proj (blocks, scales, bias).
read -r want_tensors want_mxfp4 params gate_up_bytes < <(/usr/bin/python3 - "$work/big" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
names = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
blocks = [n for n in names if n.endswith("_blocks")]
scales = [n for n in names if n.endswith("_scales")]
gate_up = [n for n in names if n.endswith("gate_up_proj_blocks") or n.endswith("gate_up_proj_bias")]
params = gate_up_bytes = 0
for f in sorted(set(names.values())):
    with open(os.path.join(d, f), "rb") as fh:
        h = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    for k, v in h.items():
        if k == "__metadata__":
            continue
        if "gate_up_proj" in k:
            gate_up_bytes += v["data_offsets"][1] - v["data_offsets"][0]
        if k.endswith("_scales"):
            continue
        n = 1
        for x in v["shape"]:
            n *= x
        params += 2 * n if k.endswith("_blocks") else n
print(len(names) - len(scales) + len(gate_up), len(blocks), params, gate_up_bytes)
PY
)
limit=$(bytes "$(sf_expect 8.00 0.001)" GB)
while read -r type format lo hi; do
  scale_type=$type
  args=(export --base "$work/big" --format "$format" --max-memory-per-rank $budget --threads 2 --out "$work/dry")
  for n in 16 128; do
    scale_dry_run "$type, $n ranks" $n $budget "$limit" 2 "$want_tensors" "${args[@]}"
    reads=$(scale_reads_sum)
    check "$type, $n ranks: the ranks read $reads B: the checkpoint ($total B) plus gate_up_proj once more (at most 1% over)" \
      between "$reads" "$total" "$(( (total + gate_up_bytes) / 100 * 101 ))"
    deq=$(sed -n 's/.*quantized base: \([0-9]*\) tensors dequantized.*/\1/p' "$report")
    check "$type, $n ranks: every MXFP4 expert tensor is dequantized (${deq:-?} of $want_mxfp4)" \
      [ "${deq:-0}" -eq "$want_mxfp4" ]
    bpw=$(awk -v a="$sum" -v p="$params" 'BEGIN { printf "%.3f", 8 * a / p }')
    check "$type, $n ranks: output ($sum B) is $lo-$hi bits per parameter (${bpw})" between "$bpw" "$lo" "$hi"
    scale_summary "$type, $n ranks"
  done
done <<'EOF_TYPES'
MXFP4_MOE gguf:mxfp4_moe 4.25 4.6
Q4_K_M gguf:q4_k_m 5.5 6.8
EOF_TYPES
finish
