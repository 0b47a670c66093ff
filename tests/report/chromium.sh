#!/usr/bin/env bash
# report.chromium.npN (docs/engine.md "Resume, progress and run report"): the HTML page of an N-rank export's run
# report rendered in headless Chromium (Debian's chromium): --dump-dom proves the page parsed into the expected
# elements and its inline script ran (html_check.py --dom: one lane per rank, one bar per unit, the script's own
# counts), and --screenshot at 1400x1000 shows the timeline's bars (html_check.py --png). The screenshot and the page
# are kept as test artifacts in $SF_ARTIFACT_DIR (default: the build tree's Testing/artifacts).
# No chromium: exit 77 (ctest SKIP; tests/run.sh fails any skip outside the gpu label, and CI installs chromium).
# Self-test (SF_SELFTEST_WRONG=1): the rendered DOM is checked against the report of another run (one rank).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
browser=${SF_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ] || [ ! -x "$browser" ]; then
  echo "SKIP: chromium is not installed${browser:+ ($browser)} (Debian package chromium; jobs/install-deps.sh --test installs it)"
  exit 77
fi
py=/usr/bin/python3
check "/usr/bin/python3 has h5py (python3-h5py, installed by jobs/install-deps.sh)" $py -c 'import h5py'
work=$(mktemp -d)
on_exit "rm -rf '$work'"
artifacts=${SF_ARTIFACT_DIR:-${SHARDFORGE_BUILD_DIR:?}/Testing/artifacts}
mkdir -p "$artifacts"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$work/demo/base" --adapter "$work/demo/adapter" \
    --format safetensors,gguf:q4_k_m --max-shard-size 2MB --threads 2 --out "$work/out" --report "$work/run.h5" \
    >"$work/log" 2>&1
check "the export with --report on $SF_NP rank(s) succeeds (exit $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$work/log"
try "$SHARDFORGE_BIN" report "$work/run.h5" --html "$work/report.html" >/dev/null
check "shardforge report --html exits 0 (got $RC)" [ "$RC" -eq 0 ]
# Root needs --no-sandbox; a private profile keeps runs apart; nothing is fetched (the page is self-contained).
chrome() {
  timeout 120 "$browser" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage --no-first-run \
    --user-data-dir="$work/profile" "$@" "file://$work/report.html"
}
try chrome --dump-dom >"$work/dom.html" 2>"$work/chrome.log"
check "chromium --dump-dom of the page exits 0 (got $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || tail -5 "$work/chrome.log"
h5=$work/run.h5
if sf_wrong; then  # the same DOM checked against a one-rank run's report must fail
  try "$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --out "$work/other" \
      --report "$work/other.h5" >/dev/null 2>&1
  h5=$work/other.h5
fi
check "html_check.py: Chromium rendered one lane per rank and one bar per unit, and the page's script ran" \
  $py "$SHARDFORGE_SOURCE_DIR/tests/report/html_check.py" "$h5" "$work/report.html" --dom "$work/dom.html"
try chrome --screenshot="$work/report.png" --window-size=1400,1000 >/dev/null 2>>"$work/chrome.log"
check "chromium --screenshot exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "html_check.py: the screenshot is 1400x1000 and shows the timeline's bars" \
  $py "$SHARDFORGE_SOURCE_DIR/tests/report/html_check.py" "$h5" "$work/report.html" --png "$work/report.png" 1400x1000
check "the screenshot and the page are kept in $artifacts" \
  cp "$work/report.png" "$work/report.html" "$work/dom.html" "$artifacts/"
echo "artifact: $artifacts/report.png (page: $artifacts/report.html)"
finish
