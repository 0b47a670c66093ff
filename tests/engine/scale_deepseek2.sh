#!/usr/bin/env bash
# engine.scale_deepseek2.npN: DeepSeek-V3 (671B, FP8) and Kimi-K2 (1T, FP8) under --max-memory-per-rank 8GB, from
# header-only sparse checkpoints (tests/data/gen_deepseek2.py: the published configs and tensor names/shapes, FP8
# e4m3 weights with 128x128 F32 weight_scale_inv, per-expert 2-D tensors, DeepSeek-V3's MTP layer 61, sharded into
# the releases' 163 and 61 files; all-zero data that costs no disk). Kimi-K2's own tokenizer (tiktoken.model) is
# refused (docs/formats.md, deepseek2), so both take the deepseek2 demo's tokenizer.json: only sizes matter here.
#  - `--dry-run` for 16 and 128 ranks (--dry-run-ranks): the planned peak per rank is within the budget, every GGUF
#    split is at most the default --split-max-size 48G (so under the Hub's 50 GB per-file limit, docs/hub.md), the
#    splits hold every text tensor (the MTP layer dropped, each layer's experts stacked, kv_b_proj split in two;
#    counted from the index, not from shardforge) at a Q4_K_M size for the model's weights, and every rank writes
#    a share.
#  - DeepseekV32ForCausalLM (DeepSeek-V3.2) is refused, exit 4, naming its indexer tensors.
#  - A real export on SF_NP ranks of a full-width 2-layer DeepSeek-V3 slice (hidden 7168, layer 0 dense, layer 1
#    MoE with experts of 2048 and the shared expert, FP8 input, its MTP layer) to gguf:q4_k_m under
#    --max-memory-per-rank 2GB: peak RSS of every rank (reported, and measured by GNU time) under the budget, and the
#    per-rank balance the run prints (busy time, units, bytes written) within a factor of 2. 32 routed experts by
#    default instead of 256 (SF_DS2_EXPERTS=256 for the full layer: it writes 9.1 GB, not 2.7 GB, and took 458 s
#    instead of 153 s on the shared 2-vCPU machine; the per-rank peak, 313 MB either way, does not depend on the
#    expert count; docs/performance.md).
# Self-test (SF_SELFTEST_WRONG=1): the planned peak is held to 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
gen=$SHARDFORGE_SOURCE_DIR/tests/data/gen_deepseek2.py
experts=${SF_DS2_EXPERTS:-32}
# Bytes from the dry run's human sizes ("47.96 GB", "430 B").
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"
# Expected GGUF tensors and the text weights' parameter count, from the index and config.json (not from
# shardforge): no weight_scale_inv (the FP8 grids are applied, not written), no MTP layer (model.layers.N for
# N >= num_hidden_layers), one stacked tensor per layer for each expert projection, kv_b_proj as attn_k_b + attn_v_b.
expected() {
  /usr/bin/python3 - "$1" <<'PY'
import json, os, re, struct, sys
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
names = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
def text(n):
    m = re.match(r"model\.layers\.(\d+)\.", n)
    return not n.endswith(".weight_scale_inv") and not (m and int(m.group(1)) >= cfg["num_hidden_layers"])
out = {re.sub(r"\.experts\.\d+\.", ".experts.", n) for n in names if text(n)}
params = 0
for f in sorted(set(names.values())):
    with open(os.path.join(d, f), "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        for k, t in json.loads(fh.read(n)).items():
            if k != "__metadata__" and text(k):
                p = 1
                for x in t["shape"]:
                    p *= x
                params += p
print(len(out) + sum(n.endswith("kv_b_proj.weight") for n in out), params)
PY
}

"$SHARDFORGE_BIN" demo "$work/demo" --arch deepseek2 >/dev/null
limit=$(bytes "$(sf_expect 8.00 0.001)" GB)
# family, its file count, the checkpoint's size range in bytes (about 671B / 1T mostly-FP8 parameters)
while read -r family n_files lo hi; do
  read -r total n_tensors < <(/usr/bin/python3 "$gen" "$work/$family" --family "$family" \
                                --tokenizer-from "$work/demo/base")
  check "$family: the checkpoint holds ${n_tensors} tensors, ${total} B" between "$total" "$lo" "$hi"
  shards=$(ls "$work/$family"/model-*-of-*.safetensors | wc -l)
  check "$family: sharded like the Hub release ($shards of $n_files safetensors files)" [ "$shards" -eq "$n_files" ]
  check "$family: the sparse checkpoint costs no disk space ($(du -sk "$work/$family" | cut -f1) KB)" \
    [ "$(du -sk "$work/$family" | cut -f1)" -lt 100000 ]
  read -r want_tensors params < <(expected "$work/$family")
  args=(export --base "$work/$family" --format gguf:q4_k_m --max-memory-per-rank 8GB --threads 2 --out "$work/dry")
  for n in 16 128; do
    scale_dry_run "$family, $n ranks" $n 8GB "$limit" 5 "$want_tensors" "${args[@]}"
    # Q4_K (4.5 bits per weight) for most weights, Q6_K (6.56) for the output and some ffn_down, Q5_0 (5.5) for
    # attn_k_b (its rows of 128 are not Q4_K blocks): 0.56-0.70 bytes per parameter.
    bpw=$(awk -v a="$sum" -v b="$params" 'BEGIN { printf "%.3f", a / b }')
    check "$family, $n ranks: Q4_K_M output ($sum B) for $params parameters (${bpw} B each)" between "$bpw" 0.56 0.70
    scale_summary "$family, $n ranks"
  done
done <<'EOF_FAMILIES'
deepseek-v3 163 680000000000 695000000000
kimi-k2 61 1020000000000 1040000000000
EOF_FAMILIES

# A full-width 2-layer slice: layer 0 dense, layer 1 MoE, layer 2 the MTP layer (dropped).
/usr/bin/python3 "$gen" "$work/two" --family deepseek-v3 --tokenizer-from "$work/demo/base" --layers 2 --dense 1 \
  --experts "$experts" --shards 4 >/dev/null
read -r want_two _ < <(expected "$work/two")

# DeepSeek-V3.2: the same layout plus its sparse-attention indexer; refused, naming the indexer.
cp -r "$work/two" "$work/v32"
/usr/bin/python3 - "$work/v32/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(architectures=["DeepseekV32ForCausalLM"], model_type="deepseek_v32", index_n_heads=64, index_head_dim=128,
         index_topk=2048)
json.dump(c, open(sys.argv[1], "w"))
PY
try "$SHARDFORGE_BIN" export --base "$work/v32" --format gguf:q4_k_m --out "$work/v32out" --dry-run \
  >/dev/null 2>"$work/v32.err"
check "DeepSeek-V3.2 is refused, exit 4 (got $RC)" [ "$RC" -eq 4 ]
check "... in one line naming its indexer tensors" \
  [ "$(grep -c 'DeepSeek-V3.2.*indexer' "$work/v32.err" || :)" -eq 1 -a "$(grep -vc '^$' "$work/v32.err" || :)" -eq 1 ]

scale_slice_export "$work/two" 2GB 2000 "the 2-layer export ($experts experts)"
# "per rank: 0: 12.34 s, 17 units, read 8123 MB, wrote 3740 MB, peak RSS 480 MB; 1: ..."
balance=$(sed -n 's/^.*  per rank: //p' "$work/log" | tr ';' '\n' |
          sed -n 's/^ *[0-9]*: \([0-9.]*\) s, \([0-9]*\) units, read \([0-9]*\) MB, wrote \([0-9]*\) MB, peak RSS \([0-9]*\) MB$/\1 \2 \4 \5/p')
check "the run prints one balance entry per rank" [ "$(wc -l <<<"$balance")" -eq "$SF_NP" ]
spread() { awk -v k="$1" '{ v = $k + 0; if (NR == 1 || v < lo) lo = v; if (v > hi) hi = v }
                          END { if (lo > 0) printf "%.2f\n", hi / lo; else print "inf" }' <<<"$balance"; }
check "every rank did work units and wrote bytes" awk '$2 == 0 || $3 == 0 { bad = 1 } END { exit bad }' <<<"$balance"
check "busy time per rank within a factor of 2 (max/min $(spread 1))" between "$(spread 1)" 1 2
check "bytes written per rank within a factor of 2 (max/min $(spread 3))" between "$(spread 3)" 1 2
check "each rank's printed peak RSS is under the budget" awk '$4 >= 2000 { bad = 1 } END { exit bad }' <<<"$balance"
got_two=$(gguf_tensor_count "$work"/out/*.Q4_K_M.gguf)
check "the Q4_K_M output holds the slice's $want_two text tensors (got $got_two)" [ "$got_two" -eq "$want_two" ]
echo "2-layer export ($experts experts): $slice_s s," \
     "peak RSS ${peak} MB, GNU time $(tr '\n' ' ' <<<"$peaks")KB, $(stat -c %s "$work"/out/*.Q4_K_M.gguf) B"
sed -n 's/^.*  per rank: /per rank: /p; s/^.*\(load balance .*\)/\1/p' "$work/log"
finish
