#!/bin/bash
# Inputs by repo id (--base/--adapter ORG/NAME[@REV]) from the test Hub:
#  - SF_NP ranks with --download: the base becomes a sparse snapshot (headers only) and each rank fetches the byte
#    ranges of the tensors its share of the plan reads: the ranks' shares are disjoint, no rank fetches the whole
#    base, a cut transfer resumes where it stopped, a rerun fetches nothing; the output equals the local export;
#  - one rank with --download: the HF cache layout (blobs/, snapshots/<commit>/ symlinks, refs/main), a cut
#    download resumed with Range; then, with the Hub unreachable, the repo ids resolve offline from that cache;
#  - `shardforge download` stages base and adapter; the export with HF_HUB_OFFLINE=1 reads them from the cache and
#    refuses --download and --push-to-hub (exit 2).
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
NP=${SF_NP:-2}
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
start_hub --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 256 --intermediate 512 --layers 2 --vocab 1000 --shards 2 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
"$BIN" push "$WORK/d/base" --repo testuser/base --no-card >"$WORK/p1.log" 2>&1 || { cat "$WORK/p1.log"; exit 1; }
"$BIN" push "$WORK/d/adapter" --repo testuser/adapter --no-card >"$WORK/p2.log" 2>&1 || { cat "$WORK/p2.log"; exit 1; }
# Reference: the same export from the local directories.
"$BIN" export --base "$WORK/d/base" --adapter "$WORK/d/adapter" --out "$WORK/ref" --format gguf:q8_0 \
    >/dev/null 2>&1 || { echo "reference export failed"; exit 1; }
shards_bytes=$(cat "$WORK"/d/base/*.safetensors | wc -c)

if [ "$NP" -ge 2 ]; then
    reset_stats
    faults "resolve=dropx1+12"   # one of the ranged transfers is cut after half of its body
    try $MPIRUN -np "$NP" "$BIN" export --base testuser/base --adapter testuser/adapter --download --out "$WORK/sp" \
        --format gguf:q8_0 >"$WORK/sp.log" 2>&1
    rc=$RC
    [ $rc -eq 0 ] || tail -20 "$WORK/sp.log"
    check "$NP ranks, --download: exits 0" [ "$rc" -eq 0 ]
    check "$NP ranks, --download: the output equals the export from local directories" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/sp/base.Q8_0.gguf"
    served=$(hstat 'sum(v for k,v in s["bytesServed"]["files"].items() if k.endswith(".safetensors"))')
    check "safetensors bytes served ($served) <= the shards' size ($shards_bytes) + the cut transfer's half: each tensor fetched once" \
        [ "$served" -le $((shards_bytes + shards_bytes / 2)) ]
    check "the cut ranged transfer was resumed (faults hit: $(hstat 's["faultsInjected"]'))" [ "$(hstat 's["faultsInjected"]')" -eq 1 ]
    mx=$(sed -n 's/.*largest share \([0-9]*\) kB.*/\1/p' "$WORK/sp.log")
    tot=$(sed -n 's/.*ranks fetched \([0-9]*\) kB.*/\1/p' "$WORK/sp.log")
    # Self-test: the largest share is expected to be under half of what it is.
    check "no rank fetched the whole base (largest share $mx kB of $tot kB)" \
        [ -n "$mx" -a -n "$tot" -a "${mx:-0}" -lt "$(sf_expect "${tot:-0}" $((${mx:-0} / 2)))" ]
    sparse=$(ls -d "$HF_HOME"/hub/models--testuser--base/shardforge-sparse/*)
    alloc=$(du -k -c "$sparse"/*.safetensors | tail -1 | cut -f1)
    reset_stats
    try $MPIRUN -np "$NP" "$BIN" export --base testuser/base --adapter testuser/adapter --download --out "$WORK/sp2" \
        --format gguf:q8_0 >"$WORK/sp2.log" 2>&1
    check "rerun exits 0" [ "$RC" -eq 0 ]
    check "rerun: nothing fetched again ($(hstat 's["bytesServed"]["total"]') bytes served)" [ "$(hstat 's["bytesServed"]["total"]')" = 0 ]
    check "rerun: same output" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/sp2/base.Q8_0.gguf"
    rm -rf "$HF_HOME"
fi

reset_stats
faults "resolve=dropx1"   # the first download is cut after half of its body
try "$BIN" export --base testuser/base@main --adapter testuser/adapter --download --out "$WORK/dl" \
    --format gguf:q8_0 >"$WORK/dl.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/dl.log"
check "1 rank, --download of base and adapter by repo id: exits 0" [ "$rc" -eq 0 ]
check "the output equals the export from local directories" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/dl/base.Q8_0.gguf"
check "the cut download resumed with a Range request (206)" [ "$(hstat 's["responses"].get("resolve 206",0)')" -ge 1 ]
served=$(hstat 's["bytesServed"]["total"]')
total=$(cat "$WORK"/d/base/* "$WORK"/d/adapter/* | wc -c)
check "bytes served ($served) < 1.25 x the repo files ($total): resumed, not restarted" [ "$served" -lt $((total * 5 / 4)) ]
shard=$(cd "$WORK/d/base" && ls *.safetensors | sed -n 1p)
snap=$(ls -d "$HF_HOME"/hub/models--testuser--base/snapshots/*)
check "HF cache layout: refs/main names the snapshot" [ "$(cat "$HF_HOME/hub/models--testuser--base/refs/main")" = "$(basename "$snap")" ]
check "HF cache layout: snapshot files are symlinks into blobs/" [ -L "$snap/$shard" ]
check "the cached shard is byte-identical to the pushed one" cmp -s "$snap/$shard" "$WORK/d/base/$shard"
check "no .incomplete file left" [ -z "$(find "$HF_HOME" -name '*.incomplete')" ]

# Offline: the Hub is unreachable, the cache resolves the repo ids.
HF_ENDPOINT=http://127.0.0.1:9 try $MPIRUN -np "$NP" "$BIN" export --base testuser/base --adapter testuser/adapter:1.0 \
    --out "$WORK/off" --format gguf:q8_0 >"$WORK/off.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -5 "$WORK/off.log"
check "offline resolution from the HF cache (Hub unreachable, $NP ranks) exits 0" [ "$rc" -eq 0 ]
check "offline output equals the reference" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/off/base.Q8_0.gguf"
HF_ENDPOINT=http://127.0.0.1:9 try "$BIN" export --base testuser/not-cached --out "$WORK/nc" --format gguf:q8_0 >"$WORK/nc.log" 2>&1
rc=$RC
check "a repo id missing from the cache: bad input (exit 3)" [ "$rc" -eq 3 ]
check "... with a message naming the cache and --download" grep -q "not in the Hugging Face cache.*--download" "$WORK/nc.log"
try "$BIN" export --base testuser/not-there --download --out "$WORK/nt" --format gguf:q8_0 >"$WORK/nt.log" 2>&1
rc=$RC
check "--download of a repo the Hub does not have: network error (exit 6)" [ "$rc" -eq 6 ]

# Stage / convert / publish (docs/slurm.md): `shardforge download` on a node that reaches the Hub, the export with
# HF_HUB_OFFLINE=1 (and no Hub at all) from the cache, Hub options refused there.
rm -rf "$HF_HOME"
reset_stats
try "$BIN" download testuser/base >"$WORK/stage.out" 2>"$WORK/stage.log"
check "download ORG/NAME: exits 0 (got $RC)" [ "$RC" -eq 0 ]
try "$BIN" download testuser/adapter --adapter >>"$WORK/stage.out" 2>>"$WORK/stage.log"
check "download ORG/NAME --adapter: exits 0 (got $RC)" [ "$RC" -eq 0 ]
staged=$(ls -d "$HF_HOME"/hub/models--testuser--base/snapshots/*)
check "download prints the snapshot directory and nothing else ($(head -c 300 "$WORK/stage.out"))" \
    [ "$(sed -n 1p "$WORK/stage.out")" = "$staged" -a "$(wc -l <"$WORK/stage.out")" -eq 2 ]
check "download fetched the shards ($(hstat 's["bytesServed"]["total"]') bytes served)" \
    [ "$(hstat 's["bytesServed"]["total"]')" -ge "$shards_bytes" ]
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:9 try $MPIRUN -np "$NP" -x HF_HUB_OFFLINE -x HF_ENDPOINT "$BIN" export \
    --base testuser/base --adapter testuser/adapter --out "$WORK/conv" --format gguf:q8_0 >"$WORK/conv.log" 2>&1
check "HF_HUB_OFFLINE=1, $NP ranks: the export from the staged cache exits 0 (got $RC)" [ "$RC" -eq 0 ]
check "... and equals the reference" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/conv/base.Q8_0.gguf"
for opt in --download "--push-to-hub testuser/out"; do
    HF_HUB_OFFLINE=1 try "$BIN" export --base testuser/base --out "$WORK/off-$RANDOM" --format gguf:q8_0 $opt \
        >"$WORK/offopt.log" 2>&1
    check "HF_HUB_OFFLINE=1 with $opt: usage error (exit $(sf_expect 2 0), got $RC)" [ "$RC" -eq "$(sf_expect 2 0)" ]
    check "... naming HF_HUB_OFFLINE" grep -q "HF_HUB_OFFLINE" "$WORK/offopt.log"
done
HF_HUB_OFFLINE=1 try "$BIN" download testuser/base >/dev/null 2>"$WORK/offdl.log"
check "HF_HUB_OFFLINE=1 download: usage error (exit 2, got $RC)" [ "$RC" -eq 2 ]
try "$BIN" download not-a-repo-id >/dev/null 2>"$WORK/baddl.log"
check "download of a bad repo id: usage error (exit 2, got $RC)" [ "$RC" -eq 2 ]
check "the token is not in any log" no_token "$WORK"/*.log
finish
