#!/usr/bin/env bash
# engine.scale_llama4: Llama 4 Maverick (Llama4ForConditionalGeneration, ~400B parameters, ~800 GB of bf16) planned
# under --max-memory-per-rank 4GB from a header-only sparse checkpoint (tests/data/gen_llama4.py: its config and
# tensor names/shapes in the checkpoint's layout, the fused experts gate_up_proj of 21.5 GB each, the vision tower
# beside the text model, all-zero data that costs no disk). `--dry-run` to gguf:q4_k_m for 8 and 64 ranks
# (--dry-run-ranks): the planned peak per rank is within the budget (a fused expert tensor is planned in row blocks of
# whole experts, never whole), every rank has a share, every GGUF split is under the default --split-max-size 48G,
# the splits hold every text tensor (each gate_up_proj split into gate and up; the vision tower and projector not
# converted) and their size is that of Q4_K_M for the model's weights.
# Then a real export on SF_NP ranks of a full-width 2-layer Maverick slice (layer 0 dense, layer 1 MoE with its fused
# experts and shared expert) to gguf:q4_k_m under --max-memory-per-rank 4GB: peak RSS of every rank (reported, and
# measured by GNU time) under the budget, and the slice's tensors all written. 8 experts by default instead of 128
# (SF_L4_EXPERTS=128 for the full layer): a row block is one expert either way, so the peak does not depend on it.
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
budget=4GB
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

scale_checkpoint llama4 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_llama4.py" "$work/big" 790000000000 815000000000 50 "about 400B bf16 parameters"
# Expected GGUF tensors, text bytes and fused gate_up_proj bytes, from the index and the headers (not from
# shardforge): the text model's tensors, each fused gate_up_proj giving two.
read -r want_tensors text_bytes gate_up_bytes < <(/usr/bin/python3 - "$work/big" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
names = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
text = [n for n in names if n.startswith("language_model.")]
size = gate_up = 0
for f in sorted(set(names.values())):
    with open(os.path.join(d, f), "rb") as fh:
        h = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    for k, v in h.items():
        if k.startswith("language_model."):
            size += v["data_offsets"][1] - v["data_offsets"][0]
            gate_up += (v["data_offsets"][1] - v["data_offsets"][0]) if k.endswith(".experts.gate_up_proj") else 0
print(len(text) + sum(n.endswith(".experts.gate_up_proj") for n in text), size, gate_up)
PY
)
args=(export --base "$work/big" --format gguf:q4_k_m --max-memory-per-rank $budget --threads 2 --out "$work/dry")
limit=$(bytes "$(sf_expect 4.00 0.001)" GB)
for n in 8 64; do
  scale_dry_run "$n ranks" $n $budget "$limit" 4 "$want_tensors" "${args[@]}"
  ratio=$(awk -v a="$sum" -v b="$text_bytes" 'BEGIN { printf "%.3f", a / b }')
  check "$n ranks: Q4_K_M output ($sum B) is 0.27-0.34 of the bf16 text weights (${ratio})" between "$ratio" 0.27 0.34
  # Reads: every text byte once, plus the known re-read (docs/formats.md, Llama 4): gate and up each read whole
  # experts of gate_up_proj. The vision tower is not read.
  read_sum=$(scale_reads_sum)
  check "$n ranks: the ranks read $read_sum B: the text weights plus gate_up_proj once more (at most 1% over)" \
    between "$read_sum" "$text_bytes" "$(( (text_bytes + gate_up_bytes) / 100 * 101 ))"
  scale_summary "$n ranks"
done

experts=${SF_L4_EXPERTS:-8}
read -r two_bytes two_tensors < <(/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_llama4.py" "$work/two" \
                                   --tokenizer-from "$work/demo/base" --layers 2 --experts "$experts")
want_two=$(/usr/bin/python3 - "$work/two" <<'PY'
import json, os, sys
names = json.load(open(os.path.join(sys.argv[1], "model.safetensors.index.json")))["weight_map"]
text = [n for n in names if n.startswith("language_model.")]
print(len(text) + sum(n.endswith(".experts.gate_up_proj") for n in text))
PY
)
scale_slice_export "$work/two" $budget 4000 "the 2-layer export ($experts experts, $two_bytes B)"
got_two=$(gguf_tensor_count "$work"/out/*.Q4_K_M.gguf)
check "the Q4_K_M output holds the slice's $want_two text tensors (got $got_two)" [ "$got_two" -eq "$want_two" ]
echo "2-layer export ($experts experts): $slice_s s," \
     "peak RSS ${peak} MB, GNU time $(tr '\n' ' ' <<<"$peaks")KB, $(stat -c %s "$work"/out/*.Q4_K_M.gguf) B"
sed -n 's/^.*  per rank: /per rank: /p' "$work/log"
finish
