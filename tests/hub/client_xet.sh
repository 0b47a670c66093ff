#!/bin/bash
# Our client's Xet upload (docs/xet.md "Upload") against the test Hub's CAS (server.mjs --xet, which recomputes
# every hash with the official JS implementations and rebuilds each file from the xorbs before storing it):
# --transfer xet/auto/lfs, the tree and the bytes served back, a rerun that sends nothing, faults on the CAS calls,
# two ranks each sending their share, and the errors when the Hub does not pick Xet.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
start_hub --xet --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 128 --intermediate 256 --layers 2 --vocab 500 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
D=$WORK/d/base
# A larger incompressible file too: several chunks, more than one term.
/usr/bin/python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(7).randbytes(3 * 1024 * 1024 + 17))' >"$D/extra.bin"
n_lfs=$(find "$D" -type f \( -name '*.safetensors' -o -name '*.bin' \) | wc -l)
run() { "$BIN" push "$@" >>"$WORK/all.log" 2>&1; }
# folder NAME SEED...: a new folder with the demo's files and one fresh random MiB per seed (the test Hub stores
# objects by content for every repo: fresh bytes make each scenario upload something).
folder() {
    local dir=$WORK/$1 s; shift
    cp -r "$D" "$dir"
    for s in "$@"; do
        /usr/bin/python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(1 << 20))' "$s" >"$dir/fresh$s.bin"
    done
    echo "$dir"
}

try run "$D" --repo testuser/x --no-card --transfer xet
check "push --transfer xet exits 0" [ "$RC" -eq 0 ]
check "the repo tree equals the folder" tree_matches testuser/x "$D"
check "the CAS registered one shard with every LFS file ($n_lfs), from xorbs it verified" \
  [ "$(hstat 's["xet"]["shards"], s["xet"]["files"], s["xet"]["xorbs"] > 0, s["xet"]["rejected"]')" = "1 $n_lfs True {}" ]
check "no byte went over the LFS storage path" [ "$(hstat 's["requests"].get("put", 0) + s["requests"].get("part", 0)')" = 0 ]
curl -sf -H "Authorization: Bearer $TOKEN" "$HUB/testuser/x/resolve/main/extra.bin" -o "$WORK/extra.back"
check "a file served back equals the local one" cmp "$WORK/extra.back" "$D/extra.bin"
check "the Hub token appears in no log line" no_token "$WORK/all.log"

reset_stats
try run "$D" --repo testuser/x --no-card --transfer xet
check "rerun exits 0, sends no byte and makes no commit" \
  [ "$RC $(hstat 's["bytesReceived"]["total"] + s["commits"]["total"] + s["xet"]["shards"]')" = "0 0" ]

# Global dedup: a file whose second half changed sends about half of its bytes (its first chunk is found in the
# CAS, whose answer lists the old xorb's chunks).
mkdir -p "$WORK/dd"
/usr/bin/python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(21).randbytes(4 << 20))' >"$WORK/dd/w.bin"
try run "$WORK/dd" --repo testuser/dd --no-card --transfer xet
check "dedup: first push of a 4 MiB file exits 0" [ "$RC" -eq 0 ]
/usr/bin/python3 - "$WORK/dd/w.bin" <<'PYEOF'
import random, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2:] = random.Random(22).randbytes(len(b) - len(b) // 2)
open(p, "wb").write(b)
PYEOF
reset_stats
try "$BIN" push "$WORK/dd" --repo testuser/dd --no-card --transfer xet >"$WORK/dd.log" 2>&1
check "dedup: the push of the half-changed file exits 0, the CAS found its first chunk, and less than 60 % of its bytes were sent" \
  [ "$RC $(hstat 's["xet"].get("dedupHits", 0), s["bytesReceived"]["total"] < 0.6 * (4 << 20), s["xet"]["rejected"]')" = "0 1 True {}" ]
check "dedup: the run summary reports the deduplicated bytes" grep -q " [12] MB deduplicated by Xet" "$WORK/dd.log"
check "dedup: the repo tree equals the folder" tree_matches testuser/dd "$WORK/dd"
curl -sf -H "Authorization: Bearer $TOKEN" "$HUB/testuser/dd/resolve/main/w.bin" -o "$WORK/dd.back"
check "dedup: the file served back equals the changed one" cmp "$WORK/dd.back" "$WORK/dd/w.bin"

# auto (the default) follows the Hub's answer: Xet here.
/usr/bin/python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(8).randbytes(1024 * 1024))' >"$D/extra2.bin"
reset_stats
try run "$D" --repo testuser/x --no-card
check "default (auto) exits 0 and uploads the new file over Xet" \
  [ "$RC $(hstat 's["xet"]["files"], s["requests"].get("put", 0)')" = "0 1 0" ]
check "... the repo tree equals the folder" tree_matches testuser/x "$D"

# --transfer lfs: the LFS path even though the Hub speaks Xet.
L=$(folder l 11)
reset_stats
try run "$L" --repo testuser/l --no-card --transfer lfs
check "--transfer lfs exits 0 over LFS, without any CAS call" \
  [ "$RC $(hstat 's["xet"]["tokens"] + s["xet"]["shards"], s["requests"].get("put", 0) > 0')" = "0 0 True" ]
check "... the repo tree equals the folder" tree_matches testuser/l "$L"

# Faults on the CAS calls: retried, one commit, files intact.
F=$(folder f 12)
reset_stats
faults "cas-xorb=500x2,cas-shard=503/0"
try run "$F" --repo testuser/f --no-card --transfer xet
check "CAS faults (xorb 500 x2, shard 503): exit 0, all three injected, one commit" \
  [ "$RC $(hstat 's["faultsInjected"], s["commits"]["total"]')" = "0 3 1" ]
check "... the repo tree equals the folder" tree_matches testuser/f "$F"

# Two ranks: each sends its share of the files as its own xorbs and shard.
M=$(folder m 13 14 15 16)
find "$M" -name '*.safetensors' -delete   # only fresh LFS files: both ranks have bytes to send
reset_stats
try $MPIRUN -np 2 "$BIN" push "$M" --repo testuser/m --no-card --transfer xet >>"$WORK/all.log" 2>&1
check "two ranks: exit 0, two shards (one per rank), one commit" \
  [ "$RC $(hstat 's["xet"]["shards"], s["commits"]["total"]')" = "0 2 1" ]
check "... the repo tree equals the folder" tree_matches testuser/m "$M"

# export --push-to-hub on two ranks: each tensor file goes over Xet while the export goes on (OverlapPush).
reset_stats
try $MPIRUN -np 2 "$BIN" export --base "$D" --out "$WORK/ov" --format safetensors,gguf:q8_0 --push-to-hub testuser/ov --transfer xet >>"$WORK/all.log" 2>&1
check "export --push-to-hub --transfer xet on two ranks: exit 0, both tensor files rebuilt by the CAS, one commit" \
  [ "$RC $(hstat 's["xet"]["files"], s["xet"]["rejected"], s["commits"]["total"]')" = "0 2 {} 1" ]
check "... the repo tree equals the output folder" tree_matches testuser/ov "$WORK/ov"

# The test CAS's own checks can fail: a xorb whose body does not hash to its path, a request without a CAS token.
xtok=$(api /api/models/testuser/x/xet-write-token/main | $PY -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
printf '\0\3\0\0\0\3\0\0abc' >"$WORK/bad.xorb"
cas_code() { curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$WORK/bad.xorb" "$@"; }
check "the test CAS refuses a xorb whose bytes do not hash to its name (400) and a call without its token (401)" \
  [ "$(cas_code -H "Authorization: Bearer $xtok" "$HUB/cas/v1/xorbs/default/$(printf '%064d' 0)") $(cas_code "$HUB/cas/v1/xorbs/default/$(printf '%064d' 0)")" = "400 401" ]

# A Hub that does not pick Xet.
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || :; HUB_PID=
rm -f "$WORK/hub.fifo"
mv "$WORK/hubdata" "$WORK/hubdata.xet"
start_hub --lfs-threshold 262144
try "$BIN" push "$D" --repo testuser/n --no-card --transfer xet >"$WORK/nx.log" 2>&1
check "--transfer xet with a Hub that answers basic: exit 4 with a one-line error" \
  [ "$RC $(wc -l <"$WORK/nx.log") $(grep -c "answered the LFS batch.*not Xet" "$WORK/nx.log" || :)" = "4 1 1" ]
try run "$D" --repo testuser/n --no-card
check "auto with that Hub: exit 0 over LFS" [ "$RC $(hstat 's["requests"].get("put", 0) > 0')" = "0 True" ]
check "... the repo tree equals the folder" tree_matches testuser/n "$D"
finish
