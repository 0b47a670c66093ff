#!/bin/bash
# Inputs by repo id: --base/--adapter ORG/NAME[@REV] fetched from the test Hub with --download into the HF cache
# layout (a download cut mid-body resumes with a Range request instead of starting over), then resolved offline
# from that cache with the Hub unreachable; outputs equal those of the same export from local directories.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
NP=${SF_NP:-1}
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
start_hub --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 256 --intermediate 512 --layers 2 --vocab 1000 --shards 2 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
"$BIN" push "$WORK/d/base" --repo testuser/base --no-card >"$WORK/p1.log" 2>&1 || { cat "$WORK/p1.log"; exit 1; }
"$BIN" push "$WORK/d/adapter" --repo testuser/adapter --no-card >"$WORK/p2.log" 2>&1 || { cat "$WORK/p2.log"; exit 1; }
# Reference: the same export from the local directories.
"$BIN" export --base "$WORK/d/base" --adapter "$WORK/d/adapter" --out "$WORK/ref" --format gguf:q8_0 \
    >/dev/null 2>&1 || { echo "reference export failed"; exit 1; }
shard=$(cd "$WORK/d/base" && ls *.safetensors | head -1)
size=$(stat -c %s "$WORK/d/base/$shard")

reset_stats
faults "resolve=dropx1"   # the first download is cut after half of its body
$MPIRUN -np "$NP" "$BIN" export --base testuser/base@main --adapter testuser/adapter --download --out "$WORK/dl" \
    --format gguf:q8_0 >"$WORK/dl.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -20 "$WORK/dl.log"
check "export --download of base and adapter by repo id exits 0" [ "$rc" -eq 0 ]
check "the output equals the export from local directories" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/dl/base.Q8_0.gguf"
check "the cut download resumed with a Range request (206)" [ "$(hstat 's["responses"].get("resolve 206",0)')" -ge 1 ]
served=$(hstat 's["bytesServed"]["total"]')
total=$(du -bL --apparent-size -c "$WORK"/d/base/* "$WORK"/d/adapter/* | tail -1 | cut -f1)
check "bytes served ($served) < 1.25 x the repo files ($total): resumed, not restarted" [ "$served" -lt $((total * 5 / 4)) ]
snap=$(ls -d "$HF_HOME"/hub/models--testuser--base/snapshots/*)
check "HF cache layout: refs/main names the snapshot" [ "$(cat "$HF_HOME/hub/models--testuser--base/refs/main")" = "$(basename "$snap")" ]
check "HF cache layout: snapshot files are symlinks into blobs/" [ -L "$snap/$shard" ] && [ "$(readlink -f "$snap/$shard" | xargs dirname | xargs basename)" = blobs ]
check "the cached shard is byte-identical to the pushed one" cmp -s "$snap/$shard" "$WORK/d/base/$shard"
check "no .incomplete file left" [ -z "$(find "$HF_HOME" -name '*.incomplete')" ]

# A rerun with --download fetches nothing (complete blobs are reused).
reset_stats
$MPIRUN -np "$NP" "$BIN" export --base testuser/base --adapter testuser/adapter --download --out "$WORK/dl2" \
    --format gguf:q8_0 >"$WORK/dl2.log" 2>&1
check "rerun with --download: 0 bytes served" [ "$rc" -eq 0 ] && [ "$(hstat 's["bytesServed"]["total"]')" = 0 ]

# Offline: the Hub is unreachable, the cache resolves the repo ids.
HF_ENDPOINT=http://127.0.0.1:9 $MPIRUN -np "$NP" "$BIN" export --base testuser/base --adapter testuser/adapter:1.0 \
    --out "$WORK/off" --format gguf:q8_0 >"$WORK/off.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -5 "$WORK/off.log"
check "offline resolution from the HF cache (Hub unreachable) exits 0" [ "$rc" -eq 0 ]
check "offline output equals the reference" cmp -s "$WORK/ref/base.Q8_0.gguf" "$WORK/off/base.Q8_0.gguf"
HF_ENDPOINT=http://127.0.0.1:9 "$BIN" export --base testuser/not-cached --out "$WORK/nc" --format gguf:q8_0 >"$WORK/nc.log" 2>&1
rc=$?
check "a repo id missing from the cache: bad input (exit 3)" [ "$rc" -eq 3 ]
check "... with a message naming the cache and --download" grep -q "not in the Hugging Face cache.*--download" "$WORK/nc.log"
"$BIN" export --base testuser/not-there --download --out "$WORK/nt" --format gguf:q8_0 >"$WORK/nt.log" 2>&1
rc=$?
check "--download of a repo the Hub does not have: network error (exit 6)" [ "$rc" -eq 6 ]
check "the token is not in any log" no_token "$WORK"/*.log
finish
