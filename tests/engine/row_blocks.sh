#!/usr/bin/env bash
# engine.row_blocks.npN: row blocks never change bytes. For every recipe a block boundary must respect — fused QKV
# split into sliced sources (phi3), Gemma's norm +1 (gemma2), stacked experts from 2-D sources (mixtral), 3-D
# expert tensors (qwen3moe), the llama Q/K head permutation and an importance matrix (llama) — an export whose
# memory budget forces row blocks (the plan must report split tensors) writes exactly the bytes of an unsplit
# 1-thread export.
set -euo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}" "${SHARDFORGE_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/imatrix/make_imatrix.py" "$work/im.dat" >/dev/null
for arch in phi3 gemma2 mixtral qwen3moe llama; do
  d="$work/$arch"
  "$SHARDFORGE_BIN" demo "$d" --arch "$arch" >/dev/null
  fmt=safetensors,gguf:f32,gguf:q4_k_m; extra=(); budget=56MB
  case $arch in
    llama) fmt=$fmt,gguf:iq2_xxs; extra=(--imatrix "$work/im.dat");;
    mixtral|qwen3moe) budget=64MB;;
  esac
  args=(export --base "$d/base" --adapter "$d/adapter" --format "$fmt" "${extra[@]}")
  "$SHARDFORGE_BIN" "${args[@]}" --threads 1 --out "$d/whole" >/dev/null
  split=$("$SHARDFORGE_BIN" "${args[@]}" --threads 2 --max-memory-per-rank $budget --out "$d/blocks" --dry-run |
          sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
  [ "${split:-0}" -ge 5 ] || { echo "FAIL: $arch: expected row blocks, plan split '${split}' tensors"; exit 1; }
  $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 2 --max-memory-per-rank $budget \
      --out "$d/blocks" >/dev/null
  diff <(cd "$d/whole" && sha256sum ./*) <(cd "$d/blocks" && sha256sum ./*) ||
    { echo "FAIL: $arch: row-block export differs from the unsplit one"; exit 1; }
  echo "$arch: $split tensors split, identical"
done
echo "PASS: row blocks are byte-neutral for every recipe"
