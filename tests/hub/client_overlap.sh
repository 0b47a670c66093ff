#!/bin/bash
# export --push-to-hub with the upload overlapping the export, against the loopback test Hub:
#  (a) the sha256 of every tensor file is computed while it is written: one rank (any thread count) and gather
#      mode hash everything from memory (0 bytes read back); direct mode on 2 ranks hashes each byte exactly once;
#  (b) a completed file is uploaded while the export is provably unfinished (a test fault holds rank 1's last
#      work unit until the Hub has stored an object: without the overlap the run would wait 60 s and fail here);
#  (c) the repo tree equals sha256sum of the files and equals a plain export + `shardforge push` of the same output;
#  (d) exactly one commit;
#  (e) injected Hub faults (500s, 429 Retry-After, a part cut mid-body) still complete intact, and a run killed
#      after an object was stored resumes (--resume) without re-sending that object;
#  (f) kill -9 during the commit and at the lock's removal after it: --resume completes with one commit.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
NP=${SF_NP:-2}
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
start_hub --chunk-size 262144 --multipart-threshold 524288 --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 256 --intermediate 512 --layers 2 --vocab 1000 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
BASE=(--base "$WORK/d/base" --adapter "$WORK/d/adapter" --max-shard-size 1MB --base-model org/demo-base)
ARGS=("${BASE[@]}" --format safetensors,gguf:q8_0)

# hashed_figures LOG -> "from_memory read_back files"
hashed_figures() {
    sed -n 's/.*computed during the export: \([0-9]*\) bytes hashed from memory, \([0-9]*\) bytes read back.*/\1 \2/p' "$1" | tail -1
}
tensor_bytes() { (cd "$1" && stat -c %s *.safetensors *.gguf | awk '{s+=$1} END {print s}'); }

# (b), (d): direct mode on $NP ranks, rank 1's last unit held until the Hub has stored an object.
reset_stats
HOLD=$WORK/hold.go
SHARDFORGE_FAULT=hold_last_item:1 SHARDFORGE_FAULT_HOLD_FILE=$HOLD \
    setsid $MPIRUN -np "$NP" "$BIN" export "${ARGS[@]}" --out "$WORK/out" --push-to-hub testuser/overlap \
    >"$WORK/overlap.log" 2>&1 &
EXP=$!
stored=0
for _ in $(seq 1 300); do
    stored=$(hstat 's["objectsStored"]' 2>/dev/null || echo 0)
    [ "${stored:-0}" -ge 1 ] && break
    sleep 0.1
done
running=no; kill -0 $EXP 2>/dev/null && running=yes
partials=$( (ls "$WORK/out" 2>/dev/null || :) | grep -c '\.partial$' || :)   # a count, asserted below
commits_then=$(hstat 's["commits"]["total"]')
touch "$HOLD"
try wait $EXP
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/overlap.log"
check "an object was stored on the Hub while the export was still running (stored=$stored, running=$running, $partials partial files, $commits_then commits)" \
    [ "${stored:-0}" -ge 1 -a "$running" = yes -a "$partials" -ge 1 -a "$commits_then" = 0 ]
check "direct on $NP ranks, held: exits 0" [ "$rc" -eq 0 ]
check "exactly one commit" [ "$(hstat 's["commits"]["total"]')" = 1 ]
read -r mem back <<<"$(hashed_figures "$WORK/overlap.log")"
total=$(tensor_bytes "$WORK/out")
check "direct: each tensor-file byte hashed once ($mem from memory + $back read back = $total)" \
    [ $(( ${mem:-0} + ${back:-0} )) = "$total" ]
check "direct: the repo tree matches sha256sum of the files" tree_matches testuser/overlap "$WORK/out"
check "every LFS object went up from the ranks' upload threads (the final push sent none)" \
    grep -q "hub: pushed .* 0 object(s) uploaded" "$WORK/overlap.log"

# (a) one rank, several threads: every byte from memory.
try "$BIN" export "${ARGS[@]}" --out "$WORK/one" --threads 3 --push-to-hub testuser/one >"$WORK/one.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/one.log"
check "1 rank, 3 threads: export --push-to-hub exits 0" [ "$rc" -eq 0 ]
read -r mem back <<<"$(hashed_figures "$WORK/one.log")"
check "1 rank: all $total tensor-file bytes hashed from memory (${mem:-?}), none read back (${back:-?})" \
    [ "${mem:-0}" = "$total" -a "${back:-1}" = 0 ]
check "1 rank: the repo tree matches sha256sum of the files" tree_matches testuser/one "$WORK/one"

# (a) gather mode on $NP ranks: every byte passes through rank 0's memory.
try $MPIRUN -np "$NP" "$BIN" export "${ARGS[@]}" --out "$WORK/gather" --write gather --push-to-hub testuser/gather \
    >"$WORK/gather.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/gather.log"
check "gather on $NP ranks exits 0" [ "$rc" -eq 0 ]
read -r mem back <<<"$(hashed_figures "$WORK/gather.log")"
check "gather: all $total bytes hashed from memory (${mem:-?}), none read back (${back:-?})" \
    [ "${mem:-0}" = "$total" -a "${back:-1}" = 0 ]
check "gather: the repo tree matches sha256sum of the files" tree_matches testuser/gather "$WORK/gather"

# (c) the same as a plain export + `shardforge push`: identical trees (the model card names its repo: aside).
try $MPIRUN -np "$NP" "$BIN" export "${ARGS[@]}" --out "$WORK/plain" >"$WORK/plain.log" 2>&1
check "plain export exits 0" [ "$RC" -eq 0 ]
try "$BIN" push "$WORK/plain" --repo testuser/plain --base-model org/demo-base >>"$WORK/plain.log" 2>&1
check "plain push exits 0" [ "$RC" -eq 0 ]
same_trees() {
    api "/api/models/testuser/overlap/tree/main?recursive=true" >"$WORK/t1.json" &&
        api "/api/models/testuser/plain/tree/main?recursive=true" >"$WORK/t2.json" &&
        $PY - "$WORK/t1.json" "$WORK/t2.json" <<'PYEOF'
import json, sys
def load(f):
    return sorted((e["path"], e["size"], e.get("lfs", {}).get("oid"), e["oid"] if "lfs" not in e else None)
                  for e in json.load(open(f)) if e["type"] == "file" and e["path"] != "README.md")
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b: print("trees differ:", a, b)
sys.exit(0 if a == b and len(a) > 3 else 1)
PYEOF
}
check "the overlapped push and export-then-push give identical trees (paths, sizes, sha256/oids)" same_trees

# (e) faults during the overlapped uploads.
reset_stats
faults "part=500x2,batch=429x1/1,part=dropx1+3,preupload=500x1"
# (other types than above: objects new to the Hub)
try $MPIRUN -np "$NP" "$BIN" export "${BASE[@]}" --dtype f32 --format safetensors,gguf:q4_k_m --out "$WORK/faulty" \
    --push-to-hub testuser/faulty >"$WORK/faulty.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/faulty.log"
check "with injected faults ($(hstat 's["faultsInjected"]') hit) the export + push completes" [ "$rc" -eq 0 ]
check "with faults: one commit" [ "$(hstat 's["commits"]["total"]')" = 1 ]
check "with faults: the tree matches sha256sum" tree_matches testuser/faulty "$WORK/faulty"
curl -sf -X DELETE "$HUB/__faults" >/dev/null

# (e) killed after an object was stored, then --resume: that object is not sent again.
reset_stats
rm -f "$HOLD"
ls "$WORK/hubdata/objects" >"$WORK/stored0.txt"
KARGS=(--dtype f16 --format safetensors,gguf:q6_k)
SHARDFORGE_FAULT=hold_last_item:1 SHARDFORGE_FAULT_HOLD_FILE=$HOLD \
    setsid $MPIRUN -np "$NP" "$BIN" export "${BASE[@]}" "${KARGS[@]}" --out "$WORK/killed" --push-to-hub testuser/killed \
    >"$WORK/killed1.log" 2>&1 &
EXP=$!
for _ in $(seq 1 300); do
    [ "$(hstat 's["objectsStored"]' 2>/dev/null || echo 0)" -ge 1 ] && break
    sleep 0.1
done
# The ranks are mpirun's children in process groups of their own: killed with it (orphaned ranks would go on
# writing; the output lock then refuses the --resume below, naming them).
ranks=($(pgrep -P $EXP || :))
check "the run was still running when an object had been stored (killed then)" kill -KILL -- -$EXP
try kill -KILL "${ranks[@]}" 2>/dev/null
try wait $EXP
for p in "${ranks[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
curl -sf -X POST "$HUB/__abort" >/dev/null
stats >"$WORK/killed1.json"
ls "$WORK/hubdata/objects" >"$WORK/stored1.txt"   # objects complete on the Hub before the rerun
first=$($PY -c "import json; s=json.load(open('$WORK/killed1.json')); print(s['objectsStored'])")
$PY -c "import json; s=json.load(open('$WORK/killed1.json')); print(s['commits']['total'])" >"$WORK/c1"
try $MPIRUN -np "$NP" "$BIN" export "${BASE[@]}" "${KARGS[@]}" --out "$WORK/killed" --resume --push-to-hub testuser/killed \
    >"$WORK/killed2.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/killed2.log"
check "killed run (after $first stored object(s), $(cat "$WORK/c1") commits) resumed with --resume: exit 0" [ "$rc" -eq 0 ]
stats >"$WORK/killed2.json"
check "objects stored before the kill were not sent again" $PY - "$WORK/killed1.json" "$WORK/killed2.json" \
    "$WORK/stored0.txt" "$WORK/stored1.txt" <<'PYEOF'
import json, sys
s1, s2 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
objs = lambda f: {l.strip() for l in open(f) if len(l.strip()) == 64}
stored = sorted(objs(sys.argv[4]) - objs(sys.argv[3]))
ok = len(stored) >= 1
for o in stored:
    a, b = s1["bytesReceived"]["objects"].get(o, 0), s2["bytesReceived"]["objects"].get(o, 0)
    if a != b: print("re-sent", o, a, b); ok = False
print("objects stored before the kill:", len(stored))
sys.exit(0 if ok else 1)
PYEOF
check "after the resume: one commit" [ "$(hstat 's["commits"]["total"]')" = 1 ]
check "after the resume: the tree matches sha256sum" tree_matches testuser/killed "$WORK/killed"

# (f) kill -9 inside the finalisation of --push-to-hub: during the commit (the Hub holds the request: commit=slow),
#     and after the commit at the output lock's removal (SHARDFORGE_FAULT=die_at:unlock on rank 0). Each time every
#     process is killed, then --resume --push-to-hub exits 0, the repo has one commit whose tree matches the files,
#     and the files equal a plain export's (docs/engine.md "Crash consistency through finalisation").
FARGS=(--dtype bf16 --format safetensors,gguf:q5_k_m)
try $MPIRUN -np "$NP" "$BIN" export "${BASE[@]}" "${FARGS[@]}" --out "$WORK/fref" >"$WORK/fref.log" 2>&1
check "(f) the plain reference export exits 0" [ "$RC" -eq 0 ]
same_as_fref() { (cd "$WORK/fref" && for f in *; do cmp -s "$f" "$1/$f" || { echo "differs: $f"; exit 1; }; done); }
for point in commit unlock; do
    reset_stats
    out="$WORK/fin-$point"
    fault=
    if [ $point = commit ]; then faults "commit=slowx1/20000"; else fault=die_at:unlock:rank=0; fi
    SHARDFORGE_FAULT=$fault setsid $MPIRUN -np "$NP" -x SHARDFORGE_FAULT "$BIN" export "${BASE[@]}" "${FARGS[@]}" \
        --out "$out" --push-to-hub "testuser/fin-$point" >"$WORK/fin-$point.log" 2>&1 &
    EXP=$!
    for _ in $(seq 1 600); do
        if [ $point = commit ]; then [ "$(hstat 's["requests"].get("commit", 0)')" -ge 1 ] && break
        else grep -q "dies at unlock" "$WORK/fin-$point.log" && break; fi
        kill -0 $EXP 2>/dev/null || break
        sleep 0.05
    done
    ranks=($(pgrep -P $EXP || :))
    check "(f) $point: the run reached that step and is killed there" kill -KILL -- -$EXP
    try kill -KILL "${ranks[@]}" 2>/dev/null
    try wait $EXP
    for p in "${ranks[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    for _ in $(seq 1 100); do [ "$(hstat 's["inFlight"]')" = 0 ] && break; sleep 0.05; done
    curl -sf -X DELETE "$HUB/__faults" >/dev/null
    commits_then=$(hstat 's["commits"]["total"]')
    try $MPIRUN -np "$NP" "$BIN" export "${BASE[@]}" "${FARGS[@]}" --out "$out" --resume --push-to-hub "testuser/fin-$point" \
        >"$WORK/fin-$point-2.log" 2>&1
    rc=$RC
    [ $rc -eq 0 ] || tail -20 "$WORK/fin-$point-2.log"
    check "(f) $point: killed with $commits_then commit(s) made; --resume --push-to-hub exits 0 (got $rc)" [ "$rc" -eq 0 ]
    check "(f) $point: one commit in all" [ "$(hstat 's["commits"]["total"]')" = 1 ]
    check "(f) $point: the tree matches sha256sum" tree_matches "testuser/fin-$point" "$out"
    check "(f) $point: the files equal a plain export's" same_as_fref "$out"
    check "(f) $point: no journal or lock left" [ -z "$(ls -A "$out" | grep '^\.shardforge' || :)" ]
    check "(f) $point: the export was not redone (the dead run's lock marked it complete)" \
        grep -q "resume: the run in .* had already completed" "$WORK/fin-$point-2.log"
done
check "the token is not in any log or output dir" no_token "$WORK"/*.log "$WORK/out" "$WORK/one" "$WORK/killed"
finish
