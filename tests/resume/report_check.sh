#!/usr/bin/env bash
# resume.report.npN (docs/engine.md "Resume, progress and run report"): an export with --report and --progress-json on N
# ranks; the HDF5 report (written collectively; by rank 0 alone with SF_WRITE=gather) is read with Debian's h5py and
# checked against the output files themselves (see report_check.py), `shardforge report` summarizes it, and the progress
# JSON lines parse with matching totals.
# Self-test (SF_SELFTEST_WRONG=1): the summary is expected to count 7 NaN values (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
py=/usr/bin/python3
check "/usr/bin/python3 has h5py and numpy (python3-h5py, installed by jobs/install-deps.sh)" $py -c 'import h5py, numpy'
work=$(mktemp -d)
on_exit "rm -rf '$work'"
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
try env SHARDFORGE_FAULT=slow_rank:0:ms=10 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" export \
     --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q8_0 --dtype f32 \
     --max-shard-size 2MB --out "$out" --report "$work/run.h5" \
     --progress-json "$work/progress.jsonl" --write "${SF_WRITE:-direct}" --progress-interval 0.05 \
     >"$work/log" 2>&1
check "the export with --report and --progress-json succeeds (exit $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$work/log"
check "report_check.py: the HDF5 report matches the output files and the progress lines" \
  $py "$(dirname "$0")/report_check.py" "$work/run.h5" "$out" "$work/demo/base" "$work/progress.jsonl" "$SF_NP"
# Batch-log progress lines (stderr is not a terminal here); gather mode prints none during the work.
if [ "${SF_WRITE:-direct}" = direct ]; then
  check "the log has plain progress lines" \
    grep -qE '^shardforge: progress +[0-9]+%: [0-9]+/[0-9]+ tensors, .* ETA ' "$work/log"
fi
try "$SHARDFORGE_BIN" report "$work/run.h5" >"$work/summary"
check "shardforge report summarizes the HDF5 file (exit $RC)" [ "$RC" -eq 0 ]
cat "$work/summary"
n=$($py -c "import h5py,sys; print(h5py.File(sys.argv[1])['tensors/name'].shape[0])" "$work/run.h5")
check "the summary counts the $n tensors" grep -q "^tensors: $n in " "$work/summary"
check "the summary counts the NaN values" grep -q "^NaN values: $(sf_expect 6 7) in 2 tensor(s)" "$work/summary"
try "$SHARDFORGE_BIN" report "$work/progress.jsonl" >/dev/null 2>&1
check "report of a non-HDF5 file exits 3 (got $RC)" [ "$RC" -eq 3 ]
# A bnb-nf4 export's report names the 4-bit type of its packed weights (and the dtype of the tensors it copies).
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" \
    --format bnb-nf4 --out "$work/bnb" --report "$work/bnb.h5" --write "${SF_WRITE:-direct}" >"$work/bnb.log" 2>&1
check "a bnb-nf4 export with --report succeeds (exit $RC)" [ "$RC" -eq 0 ]
types=$($py -c "import h5py,sys,collections; t=h5py.File(sys.argv[1])['tensors']; print(' '.join(sorted(set(x.decode() for x, n in zip(t['type'][:], t['name'][:]) if n.decode().endswith('proj.weight')))))" "$work/bnb.h5")
check "the report types the packed projections NF4 (got '$types')" [ "$types" = NF4 ]
finish
