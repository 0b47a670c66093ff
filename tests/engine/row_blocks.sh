#!/usr/bin/env bash
# engine.row_blocks.npN: row blocks never change bytes. For every recipe a block boundary must respect — fused QKV
# split into sliced sources (phi3), Gemma's norm +1 (gemma2), stacked experts from 2-D sources (mixtral), 3-D
# expert tensors (qwen3moe), the llama Q/K head permutation and an importance matrix (llama) — an export whose
# memory budget forces row blocks (the plan must report split tensors) writes exactly the bytes of an unsplit
# 1-thread export.
# Self-test (SF_SELFTEST_WRONG=1): the unsplit reference of phi3 is exported with adapter weight 0.5, so the byte
# comparison must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/imatrix/make_imatrix.py" "$work/im.dat" >/dev/null
sums() { (cd "$1" && sha256sum ./*); }
for arch in phi3 gemma2 mixtral qwen3moe llama; do
  d="$work/$arch"
  "$SHARDFORGE_BIN" demo "$d" --arch "$arch" >/dev/null
  fmt=safetensors,gguf:f32,gguf:q4_k_m; extra=(); budget=56MB
  case $arch in
    llama) fmt=$fmt,gguf:iq2_xxs; extra=(--imatrix "$work/im.dat");;
    mixtral|qwen3moe) budget=64MB;;
  esac
  args=(export --base "$d/base" --format "$fmt" "${extra[@]}")
  ref_adapter=$d/adapter; [ "$arch" = phi3 ] && ref_adapter=$(sf_expect "$d/adapter" "$d/adapter:0.5")
  "$SHARDFORGE_BIN" "${args[@]}" --adapter "$ref_adapter" --threads 1 --out "$d/whole" >/dev/null
  args+=(--adapter "$d/adapter")
  split=$("$SHARDFORGE_BIN" "${args[@]}" --threads 2 --max-memory-per-rank $budget --out "$d/blocks" --dry-run |
          sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
  check "$arch: the plan splits >= 5 tensors into row blocks (got '${split}')" [ "${split:-0}" -ge 5 ]
  try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --threads 2 --max-memory-per-rank $budget \
      --out "$d/blocks" >/dev/null
  check "$arch: the row-block export on $SF_NP rank(s) succeeds (exit $RC)" [ "$RC" -eq 0 ]
  check "$arch: the row-block export is byte-identical to the unsplit one" diff <(sums "$d/whole") <(sums "$d/blocks")
done
finish
