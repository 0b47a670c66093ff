#!/usr/bin/env bash
# report.html.npN (docs/engine.md "Resume, progress and run report"): an export on N ranks x 2 threads with --report,
# then `shardforge report RUN.h5 --html PAGE`; html_check.py reads the HDF5 report with h5py and checks the page
# against it (one lane per rank, one bar per work unit in its rank's lane, stage rows, nothing external) and the
# new groups themselves (/units: no overlap on a thread; /stages: read and write bytes equal the run's).
# Self-test (SF_SELFTEST_WRONG=1): the page is checked against the report of another run (one rank, other units).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
py=/usr/bin/python3
check "/usr/bin/python3 has h5py (python3-h5py, installed by jobs/install-deps.sh)" $py -c 'import h5py'
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" \
    --format safetensors,gguf:q4_k_m --max-shard-size 2MB --threads 2 --out "$work/out" --report "$work/run.h5" \
    >"$work/log" 2>&1
check "the export with --report on $SF_NP rank(s) succeeds (exit $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$work/log"
try "$SHARDFORGE_BIN" report "$work/run.h5" --html "$work/page.html" >"$work/summary"
check "shardforge report --html exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "it still prints the summary" grep -q "^tensors: " "$work/summary"
check "no .partial is left next to the page" [ ! -e "$work/page.html.partial" ]
h5=$work/run.h5
if sf_wrong; then  # the same page checked against a one-rank run's report must fail
  try "$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --out "$work/other" \
      --report "$work/other.h5" >/dev/null 2>&1
  h5=$work/other.h5
fi
check "html_check.py: the page shows every rank's lane and every unit's bar, self-contained" \
  $py "$SHARDFORGE_SOURCE_DIR/tests/report/html_check.py" "$h5" "$work/page.html"
# A report of an older shardforge (no /units, no /stages: removed here with h5py) still renders, saying so.
cp "$work/run.h5" "$work/old.h5"
$py -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); del f['units']; del f['stages']" "$work/old.h5"
try "$SHARDFORGE_BIN" report "$work/old.h5" --html "$work/old.html" >/dev/null
check "a report without /units and /stages renders (exit $RC)" [ "$RC" -eq 0 ]
check "... its page says the timeline and stages are not recorded and draws no bar" \
  [ "$(grep -c -e 'no /units group' -e 'no /stages group' "$work/old.html")" -eq 2 -a \
    "$(grep -c '<rect class="bar"' "$work/old.html" || :)" -eq 0 ]
check "... and still shows the quantization heat map" grep -q '<td class="cell"' "$work/old.html"
# Gather mode: rank 0 writes the report alone, with every rank's units.
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" \
    --format gguf:q8_0 --threads 2 --write gather --out "$work/gathered" --report "$work/gather.h5" >"$work/log" 2>&1
check "a gather-mode export with --report succeeds (exit $RC)" [ "$RC" -eq 0 ]
try "$SHARDFORGE_BIN" report "$work/gather.h5" --html "$work/gather.html" >/dev/null
check "shardforge report --html of the gather-mode report exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "html_check.py: the gather-mode page shows every rank's lane and every unit's bar" \
  $py "$SHARDFORGE_SOURCE_DIR/tests/report/html_check.py" "$work/gather.h5" "$work/gather.html"
try "$SHARDFORGE_BIN" report "$work/run.h5" --html "$work/no/such/dir/page.html" >/dev/null 2>"$work/err"
check "a page that cannot be written exits 5 (I/O) (got $RC)" [ "$RC" -eq 5 ]
check "... with a one-line error naming the page" \
  [ "$(wc -l <"$work/err")" -eq 1 -a -n "$(grep -F "$work/no/such/dir/page.html" "$work/err")" ]
try "$SHARDFORGE_BIN" report "$work/log" --html "$work/bad.html" >/dev/null 2>&1
check "a non-report input exits 3 and writes no page (got $RC)" [ "$RC" -eq 3 -a ! -e "$work/bad.html" ]
# Reports whose datasets disagree with their counts (edited, or another version's layout): a one-line error, exit 3,
# never a read past a buffer. Each case edits a copy with h5py.
while IFS='|' read -r what edit; do
  cp "$work/run.h5" "$work/edited.h5"
  $py -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); $edit" "$work/edited.h5"
  try "$SHARDFORGE_BIN" report "$work/edited.h5" --html "$work/edited.html" >/dev/null 2>"$work/err"
  check "a report with $what exits 3 with one error line and no page (got $RC)" \
    [ "$RC" -eq 3 -a "$(wc -l <"$work/err")" -eq 1 -a ! -e "$work/edited.html" ]
done <<'EOF_EDITS'
more units than the attribute says|f.attrs['units'] = f.attrs['units'] - 1
a longer /stages/bytes|del f['stages/bytes']; f['stages/bytes'] = list(range(9))
no ranks|f.attrs['ranks'] = 0
a unit on a rank past the count|d = f['units/rank']; d[0] = 7
EOF_EDITS
finish
