# Helpers of the client_*.sh tests (our Hub client against the loopback test Hub, tests/hub/server.mjs).
# Sourced; brings in tests/lib/harness.sh (check, try, on_exit, sf_wrong) and sets WORK (a temp dir removed on
# exit), HUB (its URL) after start_hub, TOKEN.
. "$SHARDFORGE_SOURCE_DIR/tests/lib/harness.sh"
SRC=${SHARDFORGE_SOURCE_DIR:?}
BIN=${SHARDFORGE_BIN:?}
PY=/usr/bin/python3
# node is installed by jobs/install-deps.sh, and tests/hub/tests.cmake registers these tests only when CMake
# found it: its absence here is an error, not a skip.
command -v node >/dev/null || { echo "FAIL: node is not installed (the test Hub is a node script)"; exit 1; }
WORK=$(mktemp -d /tmp/sf-hubc-XXXXXX)
HUB_PID=
cleanup() {
    if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null; wait "$HUB_PID" 2>/dev/null; fi
    if [ -n "${SF_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
on_exit cleanup
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HF_HOME=$WORK/hfhome HF_HUB_DISABLE_TELEMETRY=1 SHARDFORGE_HUB_BACKOFF_BASE_S=0.05
unset HF_TOKEN_PATH HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HUGGING_FACE_HUB_TOKEN
TOKEN=hf_clienttest_SECRET_9917
export HF_TOKEN=$TOKEN

# start_hub [server args...]: fresh data dir, random port.
start_hub() {
    mkfifo "$WORK/hub.fifo"
    node "$SRC/tests/hub/server.mjs" --data "$WORK/hubdata" --port 0 "$@" >"$WORK/hub.fifo" 2>"$WORK/hub.err" &
    HUB_PID=$!
    exec 9<"$WORK/hub.fifo"
    read -r line <&9
    HUB=${line#listening }
    case $HUB in http://127.0.0.1:*) ;; *) echo "test Hub did not start: $line $(cat "$WORK/hub.err")"; exit 1 ;; esac
    cat <&9 >/dev/null &   # keep draining its stdout
    export HF_ENDPOINT=$HUB
}
stats() { curl -sf "$HUB/__stats"; }
reset_stats() { curl -sf -X POST "$HUB/__stats/reset" >/dev/null; }
faults() { curl -sf -X POST "$HUB/__faults" --data-binary "$1" >/dev/null; }
# jq-like: hstat 'expr over s' (python expression on the parsed stats as s)
hstat() { stats | $PY -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$HUB$1"; }

# tree_matches REPO DIR: the repo tree at main equals DIR's files (paths, sizes; sha256 of LFS files via sha256sum,
# git blob oid of regular files via git hash-object), .gitattributes aside. Self-test: DIR is expected to hold one
# more file than it does.
tree_matches() {
    api "/api/models/$1/tree/main?recursive=true" >"$WORK/tree.json" || return 1
    { (cd "$2" && find . -type f ! -path './.cache/*' ! -name '*.partial' | sed 's|^\./||')
      if sf_wrong; then echo selftest-missing-file; fi; } | sort >"$WORK/local.txt" || return 1
    $PY - "$WORK/tree.json" "$2" "$WORK/local.txt" <<'PYEOF'
import json, subprocess, sys, os
tree = {e["path"]: e for e in json.load(open(sys.argv[1])) if e["type"] == "file" and e["path"] != ".gitattributes"}
local = open(sys.argv[3]).read().split()
ok = sorted(tree) == sorted(local)
if not ok: print("paths differ:", sorted(tree), sorted(local))
for p in local:
    e = tree.get(p)
    if e is None: continue
    f = os.path.join(sys.argv[2], p)
    size = os.path.getsize(f)
    if e["size"] != size: ok = False; print("size", p)
    if "lfs" in e:
        sha = subprocess.run(["sha256sum", f], capture_output=True, text=True).stdout.split()[0]
        if e["lfs"]["oid"] != sha: ok = False; print("sha256", p)
    else:
        oid = subprocess.run(["git", "hash-object", f], capture_output=True, text=True).stdout.strip()
        if e["oid"] != oid: ok = False; print("blob oid", p)
sys.exit(0 if ok else 1)
PYEOF
}
# no_token FILE...: the token appears in none of the files.
no_token() { ! grep -rl -- "$TOKEN" "$@" >/dev/null 2>&1; }
