#!/usr/bin/env bash
# engine.scale_qwen3moe.npN: one read of the inputs for every output of a full-size MoE. Qwen3-235B-A22B (~470 GB of
# bf16, per-expert 2-D expert tensors) with a LoRA on every linear layer, experts included, from a header-only sparse
# checkpoint (tests/data/gen_qwen3moe.py: the published config and tensor names/shapes, all-zero data that costs no
# disk). `--dry-run --dry-run-ranks 8` of safetensors, gguf:q4_k_m and safetensors,gguf:q4_k_m: the planned reads
# of all ranks equal the checkpoint's tensor bytes (counted from the safetensors headers, not by shardforge) in
# every case: the stacked GGUF expert tensors and the per-expert safetensors tensors come from the same read
# (plan/plan_gguf.cpp add_map_emit; docs/engine.md). The outputs still hold every tensor: the safetensors files every
# base tensor, the GGUF every tensor with each layer's experts stacked.
# Self-test (SF_SELFTEST_WRONG=1): the combined export is expected to plan twice the input bytes.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
. "$SHARDFORGE_SOURCE_DIR/tests/engine/scale_lib.sh"

"$SHARDFORGE_BIN" demo "$work/demo" --arch qwen3moe >/dev/null
read -r total n_tensors < <(/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_qwen3moe.py" "$work/big" \
                              --tokenizer-from "$work/demo/base")
check "the checkpoint holds ${n_tensors} tensors, ${total} B (about 235B bf16 parameters)" \
  between "$total" 465000000000 475000000000
check "the sparse checkpoint and adapter cost no disk space ($(du -sk "$work/big" | cut -f1) KB)" \
  [ "$(du -sk "$work/big" | cut -f1)" -lt 100000 ]
# From the headers: the tensor bytes, the tensor count, and the GGUF tensor count (each layer's experts stacked).
read -r hdr_bytes hdr_tensors want_gguf < <(/usr/bin/python3 - "$work/big/base" <<'EOF'
import glob, json, os, re, struct, sys
size, names = 0, []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "model-*.safetensors"))):
    with open(f, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        for k, t in json.loads(fh.read(n)).items():
            if k != "__metadata__":
                size += t["data_offsets"][1] - t["data_offsets"][0]
                names.append(k)
print(size, len(names), len({re.sub(r"\.experts\.\d+\.", ".experts.", n) for n in names}))
EOF
)
check "the headers hold ${hdr_bytes} B in ${hdr_tensors} tensors" [ "$hdr_bytes" -eq "$total" ]

for formats in safetensors gguf:q4_k_m safetensors,gguf:q4_k_m; do
  want=$total
  [ "$formats" != safetensors,gguf:q4_k_m ] || want=$(sf_expect "$total" "$((2 * total))")
  report=$work/dry.$formats.txt
  dry "$SHARDFORGE_BIN" export --base "$work/big/base" --adapter "$work/big/adapter" --format "$formats" \
    --out "$work/out" --dry-run --dry-run-ranks 8 >"$report"
  planned=$(sed -n 's/^  planned reads, all ranks: \([0-9]*\) bytes.*/\1/p' "$report")
  check "$formats: planned reads (${planned} B) equal the input's tensor bytes (${want} B)" [ "${planned:-0}" -eq "$want" ]
  check "$formats: 8 ranks, each reads a share" [ "$(grep -c '^  rank [0-9]*: reads [1-9]' "$report" || :)" -eq 8 ]
  st=$(sed -n 's/^    model-[0-9]*-of-[0-9]*\.safetensors .*(\([0-9]*\) tensors)$/\1/p' "$report" | awk '{ s += $1 } END { print s + 0 }')
  gg=$(sed -n 's/^    [^ ]*\.Q4_K_M[-0-9of]*\.gguf .*(\([0-9]*\) tensors)$/\1/p' "$report" | awk '{ s += $1 } END { print s + 0 }')
  case $formats in *safetensors*)
    check "$formats: the safetensors files hold every base tensor ($st of $hdr_tensors)" [ "$st" -eq "$hdr_tensors" ] ;;
  esac
  case $formats in *gguf*)
    check "$formats: the GGUF holds every tensor, experts stacked ($gg of $want_gguf)" [ "$gg" -eq "$want_gguf" ] ;;
  esac
done
finish
