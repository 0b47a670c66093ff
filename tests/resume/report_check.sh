#!/usr/bin/env bash
# resume.report.npN (docs/engine.md "Resume, progress and run report"): an export with --report and --progress-json on N
# ranks; the HDF5 report (written collectively; by rank 0 alone with SF_WRITE=gather) is read with Debian's h5py and
# checked against the output files themselves (see report_check.py), `shardforge report` summarizes it, and the progress
# JSON lines parse with matching totals.
set -uo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
py=/usr/bin/python3
$py -c 'import h5py, numpy' 2>/dev/null || { echo "FAIL: /usr/bin/python3 lacks h5py/numpy (python3-h5py, installed by jobs/install-deps.sh)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
# Three NaNs in model.norm.weight (not a LoRA target, so they pass through to both outputs).
$py - "$work/demo/base" <<'PY'
import glob, json, struct, sys
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    b = bytearray(open(f, "rb").read()); n = struct.unpack_from("<Q", b)[0]; h = json.loads(b[8:8 + n])
    if "model.norm.weight" in h:
        t = h["model.norm.weight"]; assert t["dtype"] == "BF16"
        start = 8 + n + t["data_offsets"][0]
        for i in (0, 5, 17): b[start + 2 * i:start + 2 * i + 2] = b"\xc0\x7f"
        open(f, "wb").write(b)
PY
out="$work/out"
# rank 0 sleeps 10 ms per unit (test-only hook) so that the work outlasts a few progress intervals anywhere.
if ! SHARDFORGE_FAULT=slow_rank:0:ms=10 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" export \
     --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q8_0 --dtype f32 \
     --max-shard-size 2MB --out "$out" --report "$work/run.h5" \
     --progress-json "$work/progress.jsonl" --write "${SF_WRITE:-direct}" --progress-interval 0.05 \
     >"$work/log" 2>&1; then
  echo "FAIL: export failed"; cat "$work/log"; exit 1
fi
$py "$(dirname "$0")/report_check.py" "$work/run.h5" "$out" "$work/demo/base" "$work/progress.jsonl" "$SF_NP" || exit 1
# Batch-log progress lines (stderr is not a terminal here); gather mode prints none during the work.
if [ "${SF_WRITE:-direct}" = direct ] && ! grep -qE '^shardforge: progress +[0-9]+%: [0-9]+/[0-9]+ tensors, .* ETA ' "$work/log"; then
  echo "FAIL: no plain progress line in the log"; cat "$work/log"; exit 1
fi
"$SHARDFORGE_BIN" report "$work/run.h5" >"$work/summary" || { echo "FAIL: shardforge report failed"; exit 1; }
cat "$work/summary"
n=$($py -c "import h5py,sys; print(h5py.File(sys.argv[1])['tensors/name'].shape[0])" "$work/run.h5")
grep -q "^tensors: $n in " "$work/summary" || { echo "FAIL: summary does not count $n tensors"; exit 1; }
grep -q "^NaN values: 6 in 2 tensor(s)" "$work/summary" || { echo "FAIL: summary NaN line wrong"; exit 1; }
"$SHARDFORGE_BIN" report "$work/progress.jsonl" >/dev/null 2>&1
[ $? -eq 3 ] || { echo "FAIL: report of a non-HDF5 file must exit 3"; exit 1; }
echo "PASS: run report and progress at -np $SF_NP (--write ${SF_WRITE:-direct})"
