#!/bin/bash
# Xet downloads (docs/xet.md "Download"): the official JS client uploads a folder through the test Hub's CAS
# (server.mjs --xet; its xorbs hold stored, LZ4 and byte-grouped LZ4 chunks, shared between files and within a
# file), then `shardforge download` fetches it through the reconstruction API: byte-identical, no plain resolve
# bytes for the Xet files, xorb ranges without the Hub token; --include; faults on the token, reconstruction and
# xorb range calls; --transfer lfs (plain resolve); resume after a failed run fetches only the missing terms.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
start_hub --xet --lfs-threshold 4096
U=$WORK/up
mkdir -p "$U/sub/dir"
$PY - "$U" <<'PYEOF'
import math, os, random, struct, sys
d = sys.argv[1]
r = random.Random(5)
R1, R2, R3 = r.randbytes(1 << 20), r.randbytes(1 << 20), r.randbytes(700_001)
open(os.path.join(d, "empty.bin"), "wb").close()
open(os.path.join(d, "small.bin"), "wb").write(r.randbytes(5000))
# A few MB whose content repeats: its terms reuse chunks of its own xorb (R1 three times).
open(os.path.join(d, "rep.bin"), "wb").write(R1 + R2 + R1 + R3 + R1)
# Shares R2 with rep.bin (stored once in the session), then compressible text (LZ4 chunks).
open(os.path.join(d, "shared.bin"), "wb").write(R2 + b"".join(b"line %d of a repetitive text\n" % (i % 300) for i in range(40000)))
# Smooth floats: byte-grouped LZ4 chunks.
open(os.path.join(d, "sub", "dir", "weights.safetensors"), "wb").write(b"".join(struct.pack("<f", 1 + math.sin(i / 5000) / 8) for i in range(400_000)))
open(os.path.join(d, "config.json"), "w").write('{"model_type": "llama"}\n')
PYEOF
try node "$SRC/tests/hub/official_upload.mjs" "$HUB" testuser/xd "$U" >"$WORK/up.log" 2>&1
check "the official JS client uploads the folder over Xet" [ "$RC $(hstat 's["xet"]["files"] >= 4, s["xet"]["rejected"], s["requests"].get("put", 0)')" = "0 True {} 0" ]
check "... its chunks are stored, LZ4 and byte-grouped LZ4" [ "$(hstat 'sorted(s["xet"]["chunkSchemes"])')" = "['0', '1', '2']" ]
XET_FILES="small.bin rep.bin shared.bin sub/dir/weights.safetensors"
# empty.bin: the JS client commits an empty file as a regular one (no Xet hash), fetched through plain resolve.

# same_files SNAP FILE...: each FILE of the snapshot is byte-identical to the uploaded one (self-test: one more
# file is expected than was fetched).
same_files() {
    local snap=$1 f; shift
    if sf_wrong; then set -- "$@" not-uploaded.bin; fi
    for f in "$@"; do cmp -s "$snap/$f" "$U/$f" || { echo "differs: $f"; return 1; }; done
}
# plain_bytes FILE...: bytes the test Hub served for them through plain resolve GETs.
plain_bytes() { hstat "sum(s['bytesServed']['files'].get('testuser/xd/' + f, 0) for f in '$*'.split())"; }

export HF_HOME=$WORK/h1
reset_stats
try "$BIN" download testuser/xd --include '*' >"$WORK/d1.out" 2>"$WORK/d1.err"
SNAP=$(cat "$WORK/d1.out")
check "download --include '*' exits 0 and prints the snapshot" [ "$RC" = 0 -a -d "$SNAP" ]
check "every file is byte-identical to the uploaded one" same_files "$SNAP" $XET_FILES empty.bin config.json
check "the Xet files came through reconstructions and xorb ranges, not one byte through plain resolve" \
  [ "$(hstat 's["xet"]["reconstructions"], s["xet"]["xorbGets"] > 0, len(s["xet"]["fileInfos"])') $(plain_bytes $XET_FILES)" = "4 True 4 0" ]
check "the regular file came through plain resolve" [ "$(plain_bytes config.json)" -gt 0 ]
check "no Authorization header on a signed xorb URL" [ "$(hstat 's["xet"]["xorbGetsWithAuthorization"]')" = 0 ]
check "the Hub token in no log line" no_token "$WORK/d1.out" "$WORK/d1.err"
check "snapshots link into blobs/ at every depth" \
  [ "$(readlink "$SNAP/sub/dir/weights.safetensors")" = "../../../../blobs/$(sha256sum "$U/sub/dir/weights.safetensors" | cut -c1-64)" ]
check "refs/main names the commit" [ "$(cat "$HF_HOME/hub/models--testuser--xd/refs/main")" = "$(basename "$SNAP")" ]
check "no partial or journal file is left" [ -z "$(find "$HF_HOME" -name '*.incomplete*')" ]
reset_stats
try "$BIN" download testuser/xd --include '*' >/dev/null 2>&1
check "a rerun fetches nothing" [ "$RC $(hstat 's["xet"]["xorbGets"] + s["xet"]["reconstructions"]')" = "0 0" ]

# --include: only the matched files (plus refs).
export HF_HOME=$WORK/h2
try "$BIN" download testuser/xd --include 'sub/' --include '*.json' >"$WORK/d2.out" 2>"$WORK/d2.err"
SNAP=$(cat "$WORK/d2.out")
check "--include 'sub/' --include '*.json' exits 0 with those two files only" \
  [ "$RC $(cd "$SNAP" && find . -type l | sort | tr '\n' ' ')" = "0 ./config.json ./sub/dir/weights.safetensors " ]
check "... both byte-identical" same_files "$SNAP" config.json sub/dir/weights.safetensors
check "... and only their blobs in the cache" [ "$(ls "$HF_HOME/hub/models--testuser--xd/blobs" | wc -l)" = 2 ]
try "$BIN" download testuser/xd --include 'nothing*' 2>"$WORK/d2b.err"
check "--include matching no file: exit 3" [ "$RC" = 3 ]

# Faults on every Xet download call: retried, the files intact.
export HF_HOME=$WORK/h3
reset_stats
faults "xet-read-token=503x1/0,cas-reconstruction=500x2,cas-xorb-get=429x2/0,cas-xorb-get=dropx2+1,cas-xorb-get=500x1+3"
try "$BIN" download testuser/xd --include '*.bin' --include 'sub/*' >"$WORK/d3.out" 2>"$WORK/d3.err"
check "faults (503 token, 500 reconstruction, 429/drop/500 xorb ranges): exit 0, every fault injected" \
  [ "$RC $(hstat 's["faultsInjected"]')" = "0 8" ]
check "... every file byte-identical" same_files "$(cat "$WORK/d3.out")" $XET_FILES empty.bin
# An expired signed xorb URL (403): the client asks the CAS for a fresh reconstruction and goes on.
export HF_HOME=$WORK/h3b
reset_stats
faults "cas-xorb-get=403x1"
try "$BIN" download testuser/xd --include 'small.bin' >"$WORK/d3b.out" 2>"$WORK/d3b.err"
check "a 403 on a xorb URL: a second reconstruction re-signs it, exit 0" \
  [ "$RC $(hstat 's["faultsInjected"], s["xet"]["reconstructions"], s["xet"]["xorbGets"]')" = "0 1 2 1" ]
check "... byte-identical" same_files "$(cat "$WORK/d3b.out")" small.bin

# --transfer lfs: plain resolve, no CAS call.
export HF_HOME=$WORK/h4
reset_stats
try "$BIN" download testuser/xd --include 'rep.bin' --transfer lfs >"$WORK/d4.out" 2>&1
check "--transfer lfs: exit 0 through plain resolve, no reconstruction" \
  [ "$RC $(hstat 's["xet"]["reconstructions"] + s["xet"]["xorbGets"]') $(plain_bytes rep.bin)" = "0 0 $(stat -c %s "$U/rep.bin")" ]
check "... byte-identical" same_files "$(tail -1 "$WORK/d4.out")" rep.bin

# Resume: a run stopped by a non-retryable answer on its third xorb range leaves the partial file and its
# journal of finished terms; the rerun fetches only what the unfinished terms need (rep.bin's last term reuses
# the first range, so the saving shows in bytes and in requests once two ranges are done).
export HF_HOME=$WORK/h5
reset_stats
try "$BIN" download testuser/xd --include 'rep.bin' >/dev/null 2>&1
full=$(hstat 's["xet"]["xorbGets"]')
full_bytes=$(hstat 's["xet"]["xorbBytesServed"]')
check "rep.bin alone takes several xorb ranges ($full)" [ "$full" -ge 3 ]
export HF_HOME=$WORK/h6
faults "cas-xorb-get=404x1+2"
try "$BIN" download testuser/xd --include 'rep.bin' >/dev/null 2>"$WORK/d6.err"
check "a 404 on the third xorb range stops the download (exit 6) with the partial file and journal kept" \
  [ "$RC $(find "$HF_HOME" -name '*.incomplete*' -printf '%f\n' | sed 's/.*\.incomplete/x.incomplete/' | sort | tr '\n' ' ')" = "6 x.incomplete x.incomplete.xet " ]
cp -a "$HF_HOME" "$WORK/h6c"
reset_stats
try "$BIN" download testuser/xd --include 'rep.bin' >"$WORK/d6.out" 2>&1
check "the rerun completes, fetching fewer xorb ranges and bytes than a full download ($full, $full_bytes B)" \
  [ "$RC $(hstat "s['xet']['xorbGets'] < $full, s['xet']['xorbBytesServed'] < $full_bytes")" = "0 True True" ]
check "... byte-identical" same_files "$(tail -1 "$WORK/d6.out")" rep.bin
check "... and leaves no partial or journal file" [ -z "$(find "$HF_HOME" -name '*.incomplete*')" ]
# A journal whose first term lists a wrong chunk hash (same lengths): the file hash check refuses the result (exit
# 7) and drops the journal; the next run starts over and completes byte-identical.
export HF_HOME=$WORK/h6c
j=$(find "$HF_HOME" -name '*.incomplete.xet')
sed -i '2s/^\(0 \)[0-9a-f]\{64\}/\1'"$(printf '0%.0s' $(seq 64))"'/' "$j"
check "the journal's first term now lists a zero hash" grep -q "^0 $(printf '0%.0s' $(seq 64)) " "$j"
try "$BIN" download testuser/xd --include 'rep.bin' >/dev/null 2>"$WORK/d6c.err"
check "a wrong journal entry: exit 7 (the Xet file hash differs), journal removed" [ "$RC $(find "$HF_HOME" -name '*.incomplete.xet' | wc -l)" = "7 0" ]
try "$BIN" download testuser/xd --include 'rep.bin' >"$WORK/d6d.out" 2>&1
check "... the next run completes" [ "$RC" = 0 ]
check "... byte-identical" same_files "$(tail -1 "$WORK/d6d.out")" rep.bin

# Two ranks, export --download of a base stored in Xet (pushed by our client): the base becomes a sparse snapshot
# and each rank fetches the byte ranges of its tensors through ranged reconstructions; the output equals the
# export from the local directory, and no safetensors byte went through plain resolve.
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
"$BIN" demo "$WORK/demo" --hidden 128 --intermediate 256 --layers 2 --vocab 500 --shards 2 >/dev/null 2>&1
"$BIN" push "$WORK/demo/base" --repo testuser/base --no-card --transfer xet >"$WORK/xb.log" 2>&1
"$BIN" export --base "$WORK/demo/base" --out "$WORK/ref" --format gguf:q8_0 >/dev/null 2>&1
export HF_HOME=$WORK/h7
reset_stats
try $MPIRUN -np 2 "$BIN" export --base testuser/base --download --out "$WORK/sp" --format gguf:q8_0 >"$WORK/sp.log" 2>&1
check "2 ranks, export --download of a Xet-stored base: exits 0" [ "$RC" = 0 ]
check "... output equal to the export from the local directory" cmp "$WORK/ref/base.Q8_0.gguf" "$WORK/sp/base.Q8_0.gguf"
check "... the tensors came as ranged reconstructions, no safetensors byte through plain resolve" \
  [ "$(hstat 's["xet"]["rangedReconstructions"] > 2, sum(v for k, v in s["bytesServed"]["files"].items() if k.endswith(".safetensors"))')" = "True 0" ]
