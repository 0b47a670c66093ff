# Shared by the full-size scale tests (tests/engine/scale_*.sh), sourced after tests/lib/harness.sh: numbers of the
# dry-run report and the checks every full-size `--dry-run --dry-run-ranks N` makes.

# bytes V U: V of unit U (B, KB, MB, GB, TB) as a byte count; fails on an empty value or an unknown unit
bytes() { awk -v v="$1" -v u="$2" 'BEGIN { m["B"]=1; m["KB"]=1e3; m["MB"]=1e6; m["GB"]=1e9; m["TB"]=1e12
                                         if (!(u in m) || v == "") exit 1; printf "%.0f\n", v * m[u] }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }
between() { awk -v a="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(a != "" && a + 0 >= lo && a + 0 <= hi) }'; }
# The dry run reports the free space of this disk; a fixed fake 100 TB keeps its output the same in every run.
dry() { SHARDFORGE_FAULT=statvfs_free:100000000000000 "$@"; }

# scale_dry_run TAG N BUDGET LIMIT MIN_SPLITS WANT_TENSORS ARGS...: `shardforge ARGS --dry-run --dry-run-ranks N`
# (a gguf:q4_k_m export; $scale_type names another GGUF type, e.g. MXFP4_MOE) into $work/dry$N$scale_type.txt, then,
# each check named "TAG: ...": the planned peak per rank below LIMIT bytes (BUDGET is the --max-memory-per-rank
# text), one report line per rank and a share written by every rank, at least MIN_SPLITS GGUF splits, each at most
# 48G (below the Hub's 50 GB), holding WANT_TENSORS tensors. Leaves peak ("1.02 GB"), n_splits, sum (bytes of all
# splits), report (the file) and dry_s (seconds) to the caller.
scale_dry_run() {
  local tag=$1 n=$2 budget=$3 limit=$4 min_splits=$5 want=$6 type=${scale_type:-Q4_K_M} t0 t1 splits v u k b got=0 over=0
  shift 6
  report=$work/dry$n${scale_type:-}.txt
  t0=$(date +%s.%N)
  dry "$SHARDFORGE_BIN" "$@" --dry-run --dry-run-ranks "$n" >"$report"
  t1=$(date +%s.%N)
  dry_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  peak=$(sed -n 's/.*peak memory per rank: about \([0-9.]*\) \([KMGT]*B\) .*/\1 \2/p' "$report")
  check "$tag: planned peak per rank (${peak}) within the ${budget} budget" lt "$(bytes $peak)" "$limit"
  check "$tag: one line per rank" [ "$(grep -c '^  rank [0-9]*: reads' "$report" || :)" -eq "$n" ]
  check "$tag: every rank writes a share" [ "$(grep -c '^  rank [0-9]*: reads .*, writes 0 B' "$report" || :)" -eq 0 ]
  splits=$(sed -n 's/^    [^ ]*\.'"$type"'-[0-9]*-of-\([0-9]*\)\.gguf  \([0-9.]*\) \([KMGT]*B\)  (\([0-9]*\) tensors)$/\2 \3 \4/p' \
           "$report")
  n_splits=$(wc -l <<<"$splits")
  check "$tag: the GGUF is split ($n_splits files)" [ "$n_splits" -ge "$min_splits" ]
  sum=0
  while read -r v u k; do
    b=$(bytes "$v" "$u")
    sum=$((sum + b)) got=$((got + k))
    [ "$b" -le 48000000000 ] || over=$((over + 1))  # printed to 0.01 GB: 48.00 GB is at the limit
  done <<<"$splits"
  check "$tag: every split at most 48G, below the Hub's 50 GB ($over over)" [ "$over" -eq 0 ]
  check "$tag: the splits hold every tensor to be written ($got of $want)" [ "$got" -eq "$want" ]
}

# scale_checkpoint ARCH GEN DIR LO HI MIN_SHARDS WHAT: `shardforge demo --arch ARCH` into $work/demo (for its
# tokenizer files), then the header-only generator GEN (a tests/data/gen_*.py path) writes DIR; checks the
# checkpoint's tensor bytes within [LO, HI] (WHAT says what they stand for), at least MIN_SHARDS safetensors files and
# no disk space used by the sparse data. Leaves total (bytes) and n_tensors to the caller.
scale_checkpoint() {
  local arch=$1 gen=$2 dir=$3 lo=$4 hi=$5 min_shards=$6 what=$7 shards
  "$SHARDFORGE_BIN" demo "$work/demo" --arch "$arch" >/dev/null
  read -r total n_tensors < <(/usr/bin/python3 "$gen" "$dir" --tokenizer-from "$work/demo/base")
  check "the checkpoint holds ${n_tensors} tensors, ${total} B ($what)" between "$total" "$lo" "$hi"
  shards=$(ls "$dir"/model-*-of-*.safetensors | wc -l)
  check "sharded like the release (${shards} safetensors files, at least $min_shards)" [ "$shards" -ge "$min_shards" ]
  check "the sparse checkpoint costs no disk space ($(du -sk "$dir" | cut -f1) KB)" \
    [ "$(du -sk "$dir" | cut -f1)" -lt 100000 ]
}

# scale_reads_sum: the bytes the ranks of the last scale_dry_run read, summed over its per-rank lines
scale_reads_sum() {
  local v u s=0
  while read -r v u; do s=$((s + $(bytes "$v" "$u"))); done < \
    <(sed -n 's/^  rank [0-9]*: reads \([0-9.]*\) \([KMGT]*B\) from.*/\1 \2/p' "$report")
  echo "$s"
}

# scale_summary TAG: one line of figures for the log
scale_summary() { echo "$1: dry run in $dry_s s; $peak peak per rank; $n_splits splits, $sum B"; }

# scale_slice_export BASE BUDGET LIMIT_MB LABEL: a real `shardforge export --base BASE --format gguf:q4_k_m
# --max-memory-per-rank BUDGET --threads 1 --out $work/out` on $SF_NP ranks, each rank under GNU time: it succeeds
# (LABEL names it), the summary's peak RSS is positive and under LIMIT_MB, and there is one GNU time report per rank,
# each under LIMIT_MB. Leaves peak (MB), peaks (KB, one per rank), slice_s and the log $work/log to the caller.
scale_slice_export() {
  local base=$1 budget=$2 limit_mb=$3 label=$4 t0 t1 kb
  check "GNU time is installed (/usr/bin/time)" [ -x /usr/bin/time ]
  local timer=(bash -c 'exec /usr/bin/time -f "maxrss_kb %M" -o "$0/time.${OMPI_COMM_WORLD_RANK:-0}" "$@"' "$work")
  t0=$(date +%s.%N)
  try $SF_MPIRUN -np "$SF_NP" "${timer[@]}" "$SHARDFORGE_BIN" export --base "$base" --format gguf:q4_k_m \
      --max-memory-per-rank "$budget" --threads 1 --out "$work/out" >"$work/log" 2>&1
  t1=$(date +%s.%N)
  slice_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  check "$label succeeds (exit $RC)" [ "$RC" -eq 0 ]
  [ "$RC" -eq 0 ] || cat "$work/log"
  peak=$(sed -n 's/.*peak RSS of the largest rank: \([0-9]*\) MB.*/\1/p' "$work/log")
  check "the reported peak RSS (${peak} MB) is positive" [ "${peak:-0}" -gt 0 ]
  check "the reported peak RSS (${peak} MB) is under the ${limit_mb} MB budget" [ "${peak:-$limit_mb}" -lt "$limit_mb" ]
  peaks=$(cat "$work"/time.* 2>/dev/null | sed -n 's/^maxrss_kb \([0-9]*\)$/\1/p')
  check "one GNU time report per rank" [ "$(wc -w <<<"$peaks")" -eq "$SF_NP" ]
  for kb in $peaks; do
    check "a rank's measured peak (${kb} KB) is under ${limit_mb} MB" [ "$((kb * 1024))" -lt "$((limit_mb * 1000000))" ]
  done
}

# gguf_tensor_count FILE: the tensor count in a GGUF header (-1 if FILE is not a GGUF)
gguf_tensor_count() {
  /usr/bin/python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    magic, version, n_tensors = struct.unpack("<4sIQ", f.read(16))
print(n_tensors if magic == b"GGUF" else -1)
PY
}
