#!/usr/bin/env bash
# engine.memory_budget.npN: a generated model larger than the budget (447 MB of bf16 with a 235 MB f32 MLP tensor
# that no whole-tensor worker could hold) exports under --max-memory-per-rank 256MB: the plan splits the big tensors
# into row blocks, and the peak RSS of every rank (VmHWM, reported by shardforge and measured by GNU time) stays
# under the budget. Without the budget the plan itself says a rank would need more.
# Self-test (SF_SELFTEST_WRONG=1): the budget the peak is held to is 1 MB (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"
budget_mb=256
"$SHARDFORGE_BIN" demo "$work/tiny" --layers 1 >/dev/null
model_bytes=$(/usr/bin/python3 "$SHARDFORGE_SOURCE_DIR/tests/data/gen_big_model.py" "$work/tiny" "$work/big" \
              --scale 16 --intermediate 14336)
check "the model ($model_bytes B) is larger than 1.5x the budget" [ "$model_bytes" -gt $((budget_mb * 1000000 * 3 / 2)) ]
args=(export --base "$work/big/base" --adapter "$work/big/adapter" --format gguf:q8_0 --threads 2)

# The unbudgeted plan needs more than the budget per rank (whole 14336 x 4096 tensors in f32).
"$SHARDFORGE_BIN" "${args[@]}" --out "$work/dry" --dry-run >"$work/nobudget.txt"
nobudget=$(sed -n 's/.*peak memory per rank: about \([0-9.]*\) MB.*/\1/p' "$work/nobudget.txt")
[ -n "$nobudget" ] || nobudget=$(sed -n 's/.*peak memory per rank: about \([0-9.]*\) GB.*/\1/p' "$work/nobudget.txt" |
                                 awk '{print $1 * 1000}')
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a > b) }'; }
check "without a budget the plan needs more than ${budget_mb} MB per rank (${nobudget} MB)" above "$nobudget" "$budget_mb"
"$SHARDFORGE_BIN" "${args[@]}" --max-memory-per-rank ${budget_mb}MB --out "$work/dry" --dry-run >"$work/dry.txt"
split=$(sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p' "$work/dry.txt")
check "the big tensors are split into row blocks (${split} tensors)" [ "${split:-0}" -ge 3 ]

# GNU time writes one file per rank (-o): its report on stderr could be interleaved mid-line with the other ranks'
# output by mpirun's forwarding (the probable cause of a failure under load, see docs/testing.md "Reliability").
check "GNU time is installed (/usr/bin/time)" [ -x /usr/bin/time ]
timer=(bash -c 'exec /usr/bin/time -f "maxrss_kb %M" -o "$0/time.${OMPI_COMM_WORLD_RANK:-0}" "$@"' "$work")
try $SF_MPIRUN -np "$SF_NP" "${timer[@]}" "$SHARDFORGE_BIN" "${args[@]}" --max-memory-per-rank ${budget_mb}MB \
    --out "$work/out" >"$work/log" 2>&1
check "the budgeted export succeeds (exit $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$work/log"
limit_mb=$(sf_expect "$budget_mb" 1)
peak=$(sed -n 's/.*peak RSS of the largest rank: \([0-9]*\) MB.*/\1/p' "$work/log")
positive_under() { [ "${1:-0}" -gt 0 ] && [ "${1:-0}" -lt "$2" ]; }
check "the reported peak RSS (${peak} MB) is under ${limit_mb} MB" positive_under "$peak" "$limit_mb"
peaks=$(cat "$work"/time.* 2>/dev/null | sed -n 's/^maxrss_kb \([0-9]*\)$/\1/p')
check "one GNU time report per rank" [ "$(wc -w <<<"$peaks")" -eq "$SF_NP" ]
for kb in $peaks; do
  check "a rank's measured peak (${kb} KB) is under ${limit_mb} MB" [ "$((kb * 1024))" -lt $((limit_mb * 1000000)) ]
done
size=$(cat "$work/out"/*.Q8_0.gguf | wc -c)
check "the Q8_0 output has the model's size (${size} B > 200 MB)" [ "$size" -gt 200000000 ]
finish
