#!/bin/bash
# Hub options end to end against the test Hub, asserted in what the Hub received or stored:
#  - export --push-to-hub --private --license L --commit-message T --commit-description D: the repo is private
#    (anonymous reads refused), the model card's front matter says `license: L`, the commit has title T and
#    description D; the same export pushed without them: public, no license line, no description;
#  - push --hub-parallel N: at most N storage uploads in flight at once, and N reached (N = 1 and 3; every PUT is
#    held 400 ms by the Hub so that the uploads a client runs together overlap);
#  - a snapshot that the official client (@huggingface/hub snapshotDownload) put into an HF cache: export --base
#    ORG/NAME and ORG/NAME@COMMIT with HF_HUB_CACHE pointing there read it offline (nothing served, no --download)
#    and give the bytes of the export from the local directory; the same ids with an empty cache are refused.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
start_hub --lfs-threshold 100000
"$BIN" demo "$WORK/d" --hidden 128 --intermediate 256 --layers 1 --vocab 500 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
D=$WORK/d
exp() { "$BIN" export --base "$D/base" --adapter "$D/adapter" --format safetensors "$@"; }
# repo_fact NAME EXPR: EXPR over the Hub's stored repo r and its main head commit c (server.mjs keeps them in --data).
repo_fact() {
    $PY -c "import json,sys; r=json.load(open(sys.argv[1])); c=r['commits'][r['branches']['main']]; print($2)" \
        "$WORK/hubdata/repos/model/testuser/$1.json"
}
anon_status() { curl -s -o /dev/null -w '%{http_code}' "$HUB/api/models/testuser/$1"; }

# 1. --private, --license, --commit-message, --commit-description.
DESC='Merged with shardforge: "demo" adapter & base <r=8>; second sentence.'
try exp --out "$WORK/o1" --push-to-hub testuser/opts --private --license apache-2.0 --commit-message "opts title" \
    --commit-description "$DESC" >"$WORK/o1.log" 2>&1
check "export --push-to-hub --private --license --commit-description: exit 0" [ "$RC" -eq 0 ]
check "--private: the Hub stored the repo as private" [ "$(repo_fact opts 'r["private"]')" = True ]
check "--private: anonymous repo info is refused (401)" [ "$(anon_status opts)" = 401 ]
check "--private: the token holder reads it (private: true)" sh -c "curl -sf -H 'Authorization: Bearer $TOKEN' '$HUB/api/models/testuser/opts' | grep -q '\"private\":true'"
check "--license: the model card's front matter has 'license: apache-2.0'" sh -c "
    curl -sf -H 'Authorization: Bearer $TOKEN' '$HUB/testuser/opts/resolve/main/README.md' |
    sed -n '2,/^---$/p' | grep -qx 'license: apache-2.0'"
check "--commit-message: the head commit's title" [ "$(repo_fact opts 'c["title"]')" = "opts title" ]
check "--commit-description: the head commit's description, byte for byte" \
    [ "$(repo_fact opts 'c["description"]')" = "$(sf_expect "$DESC" "$DESC.")" ]
check "the repo tree equals the output folder" tree_matches testuser/opts "$WORK/o1"
# The same export without those options: each fact above changes (the checks can fail).
try exp --out "$WORK/o2" --push-to-hub testuser/plain >"$WORK/o2.log" 2>&1
check "export --push-to-hub without the options: exit 0" [ "$RC" -eq 0 ]
check "without --private: public (anonymous repo info 200)" [ "$(anon_status plain)" = 200 ]
check "without --license: no license line (the demo base's card has none)" sh -c "
    ! curl -sf '$HUB/testuser/plain/resolve/main/README.md' | grep -q '^license:'"
check "without --commit-description: empty description" [ -z "$(repo_fact plain 'c["description"]')" ]

# 2. --hub-parallel: six 150 kB LFS objects (distinct bytes per run: objects are stored once per content).
mkparts() {
    mkdir -p "$1"
    $PY -c "import os,random,sys; random.seed(int(sys.argv[2]))
for i in range(6): open(os.path.join(sys.argv[1], f'part{i}.bin'), 'wb').write(random.randbytes(150000))" "$1" "$2"
}
for n in 1 3; do
    mkparts "$WORK/par$n" "$n"
    reset_stats
    faults "put=slowx6/400"
    try "$BIN" push "$WORK/par$n" --repo "testuser/par$n" --no-card --hub-parallel "$n" >"$WORK/par$n.log" 2>&1
    check "push --hub-parallel $n: exit 0" [ "$RC" -eq 0 ]
    check "push --hub-parallel $n: 6 objects PUT" [ "$(hstat 's["requests"].get("put", 0)')" = 6 ]
    check "push --hub-parallel $n: at most and at least $n uploads in flight at once (peak $(hstat 's["storagePeakInFlight"]'))" \
        [ "$(hstat 's["storagePeakInFlight"]')" = "$n" ]
done

# 3. The official client's HF cache. The base goes up with our push, comes down with snapshotDownload.
"$BIN" push "$D/base" --repo testuser/snapbase --no-card >"$WORK/sb.log" 2>&1 || { cat "$WORK/sb.log"; exit 1; }
CACHE=$WORK/official-cache
try node "$SRC/tests/hub/official_snapshot.mjs" "$HUB" testuser/snapbase "$CACHE" >"$WORK/snap.out" 2>&1
[ "$RC" -eq 0 ] || cat "$WORK/snap.out"
check "the official client's snapshotDownload: exit 0" [ "$RC" -eq 0 ]
snap=$(tail -1 "$WORK/snap.out")
commit=$(cat "$CACHE/models--testuser--snapbase/refs/main")
check "its snapshot is snapshots/<refs/main> of the HF cache layout, files linked to blobs/" \
    sh -c '[ -n "$1" ] && [ "$2" = "$3/models--testuser--snapbase/snapshots/$1" ] && [ -L "$2/config.json" ]' _ "$commit" "$snap" "$CACHE"
exp --out "$WORK/ref" >/dev/null 2>&1 || { echo "reference export failed"; exit 1; }
for rev in "" "@$commit"; do
    reset_stats
    rm -rf "$WORK/c"
    HF_HUB_CACHE=$CACHE try "$BIN" export --base "testuser/snapbase$rev" --adapter "$D/adapter" \
        --format safetensors --out "$WORK/c" >"$WORK/c.log" 2>&1
    [ "$RC" -eq 0 ] || cat "$WORK/c.log"
    check "export --base testuser/snapbase$rev from the official client's cache (HF_HUB_CACHE): exit 0" [ "$RC" -eq 0 ]
    check "... read offline: no request reached the Hub" [ "$(hstat 'sum(v for k, v in s["requests"].items() if not k.startswith("__"))')" = 0 ]
    check "... the output equals the export from the local directory" \
        diff -r -q -x README.md "$WORK/ref" "$WORK/c"
done
mkdir -p "$WORK/empty-cache"
HF_HUB_CACHE=$WORK/empty-cache try "$BIN" export --base testuser/snapbase --adapter "$D/adapter" \
    --format safetensors --out "$WORK/e" >"$WORK/e.log" 2>&1
check "the same repo id with an empty HF_HUB_CACHE is refused (exit $RC: bad input; no output)" \
    sh -c '[ "$1" -eq 3 ] && [ ! -e "$2/model.safetensors" ]' _ "$RC" "$WORK/e"
check "the token is not in any output" no_token "$WORK"/*.log
finish
