#!/usr/bin/env bash
# fault.output_lock.npN: one writer per output directory and verification before the renames (docs/engine.md,
# "One writer per output directory", "Crash consistency through finalisation").
#  - While a run is provably unfinished (SHARDFORGE_FAULT=hold_last_item holds its last unit), a second run into the
#    same --out — plain, with --overwrite, with --resume — exits 2 with one error line naming the holder (host, pid,
#    Slurm job/step), and touches nothing: the holder's partials and journal are the same files afterwards, and its
#    bytes equal a clean run's. The heartbeat advances while it runs (a short stale timeout does not let a second
#    run in); the lock is gone after success and after a failure.
#  - A stale lock is taken over and the log says so: same host with the pid gone; another host with a heartbeat
#    older than SHARDFORGE_LOCK_STALE_S (refused with the default timeout).
#  - A partial changed between the write and the rename (SHARDFORGE_FAULT=corrupt_partial) is exit 7 with one error
#    line naming the partial, nothing final-named; --resume then recomputes and ends byte-identical.
# Self-test (SF_SELFTEST_WRONG=1): the second run is expected to exit 0.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
py=/usr/bin/python3
work=$(mktemp -d)
on_exit "touch '$work/go'; wait"
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m
      --max-shard-size 2MB --progress-interval 0)
last=$((SF_NP - 1))
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
same_as_ref() { diff -q <(sums "$1") "$work/ref.sum" >/dev/null; }
run() {  # run OUT [extra args]: a foreground export; sets rc, err (the distinct error lines)
  try timeout 300 $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT -x SHARDFORGE_LOCK_STALE_S "$SHARDFORGE_BIN" "${args[@]}" \
    --out "$@" >"$work/stdout" 2>"$work/stderr"
  rc=$RC
  err=$( (grep '^shardforge: error:' "$work/stderr" || :) | sort -u)
}
n_lines() { printf '%s\n' "$1" | grep -c . || :; }
field() { $py -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
finals_in() { find "$1" -maxdepth 1 -type f ! -name '*.partial' ! -name '.shardforge.lock*' | sed -n 1,3p; }
export SHARDFORGE_FAULT= SHARDFORGE_LOCK_STALE_S=
run "$work/ref"
[ $rc -eq 0 ] || { echo "FAIL: reference export failed ($rc): $err"; exit 1; }
sums "$work/ref" >"$work/ref.sum"
check "a finished run leaves no lock file" [ ! -e "$work/ref/.shardforge.lock" ]

# --- a second run while the first is running ----------------------------------------------------------------------
out="$work/held"
SHARDFORGE_FAULT=hold_last_item:$last SHARDFORGE_FAULT_HOLD_FILE="$work/go" SHARDFORGE_LOCK_STALE_S=1.5 \
  SLURM_JOB_ID=4242 SLURM_STEP_ID=7 \
  $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT -x SHARDFORGE_FAULT_HOLD_FILE -x SHARDFORGE_LOCK_STALE_S \
  -x SLURM_JOB_ID -x SLURM_STEP_ID "$SHARDFORGE_BIN" "${args[@]}" --out "$out" >"$work/held.log" 2>&1 &
mp=$!
for ((t = 0; t < 600; t++)); do [ -e "$out/.shardforge-resume/journal.rank0" ] && break; sleep 0.05; done
check "the held run journaled units and is still running" kill -0 $mp
check "the lock file names host, pid and the Slurm job and step" $py - "$out/.shardforge.lock" <<'PY'
import json, socket, sys
j = json.load(open(sys.argv[1]))
ok = j["host"] == socket.gethostname() and j["pid"] > 0 and j["slurm_job_id"] == "4242" and j["slurm_step_id"] == "7"
print(j); sys.exit(0 if ok else 1)
PY
pid=$(field "$out/.shardforge.lock" pid)
hb1=$(field "$out/.shardforge.lock" heartbeat_unix)
# The holder's files by inode (an --overwrite would unlink and recreate them); its journals grow meanwhile.
snapshot() { (cd "$out" && find . -type f ! -name '.shardforge.lock*' ! -name 'journal.rank*' -printf '%p %i\n' | sort); }
snapshot >"$work/before"
want=$(sf_expect 2 0)
for extra in "" --overwrite --resume; do
  what="second run${extra:+ with $extra}"
  SHARDFORGE_LOCK_STALE_S=1.5 run "$out" $extra
  check "$what while the first runs: exit $want (got $rc: $err)" [ $rc -eq "$want" ]
  check "$what: one error line" [ "$(n_lines "$err")" -eq 1 ]
  check "$what: the error names the holder ($err)" \
    grep -q "another run is writing this output directory (host $(hostname), pid $pid, Slurm job 4242 step 7" <<<"$err"
  check "$what: the holder's partials and journal are untouched (same inodes and sizes)" \
    diff -q <(snapshot) "$work/before"
done
hb2=$(field "$out/.shardforge.lock" heartbeat_unix)
check "the heartbeat advanced while the first run was held ($hb1 -> $hb2)" $py -c "import sys; sys.exit(0 if $hb2 > $hb1 else 1)"
touch "$work/go"
try wait $mp; rc=$RC
check "the held run then exits 0 (got $rc: $(grep error "$work/held.log" | head -2))" [ $rc -eq 0 ]
check "the held run's bytes equal a clean run's" same_as_ref "$out"
check "the held run removed its lock" [ ! -e "$out/.shardforge.lock" ]

# --- stale locks ----------------------------------------------------------------------------------------------------
lock() {  # lock OUT HOST PID AGE_S: a lock file left by a run that is gone (or not)
  mkdir -p "$1"
  $py -c "import json,sys,time; json.dump({'host':sys.argv[2],'pid':int(sys.argv[3]),'slurm_job_id':'99','slurm_step_id':'',
'started_unix':time.time()-100,'heartbeat_unix':time.time()-float(sys.argv[4]),'token':'x'}, open(sys.argv[1]+'/.shardforge.lock','w'))" "$@"
}
sleep 0.01 & dead=$!; wait $dead   # a pid that is gone
out="$work/stale-pid"
lock "$out" "$(hostname)" "$dead" 0
run "$out"
check "same host, pid gone: the lock is taken over, exit 0 (got $rc: $err)" [ $rc -eq 0 ]
check "same host, pid gone: the log says so" \
  grep -q "taking over the lock on .* from a run that is gone (host $(hostname), pid $dead" "$work/stdout" "$work/stderr"
check "same host, pid gone: the bytes equal a clean run's" same_as_ref "$out"
out="$work/stale-host"
lock "$out" elsewhere.invalid 1 30
run "$out"
check "another host, heartbeat 30 s old, default timeout: exit 2 (got $rc)" [ $rc -eq 2 ]
check "another host: the error names it and its Slurm job ($err)" grep -q "host elsewhere.invalid, pid 1, Slurm job 99, heartbeat 3[0-9] s ago" <<<"$err"
check "another host: nothing was created beside the lock" [ "$(ls -A "$out")" = .shardforge.lock ]
SHARDFORGE_LOCK_STALE_S=5 run "$out" --resume
check "another host, heartbeat older than SHARDFORGE_LOCK_STALE_S: taken over, exit 0 (got $rc: $err)" [ $rc -eq 0 ]
check "--resume says it took the lock over" \
  grep -q "resume: taking over the lock on .* (host elsewhere.invalid" "$work/stdout" "$work/stderr"
check "after the takeover: the bytes equal a clean run's" same_as_ref "$out"

# --- a failed run releases the lock; a changed partial is refused before the renames -----------------------------
out="$work/eio"
SHARDFORGE_FAULT=eio_write:3 run "$out"
check "an I/O failure: exit 5 (got $rc)" [ $rc -eq 5 ]
check "an I/O failure releases the lock" [ ! -e "$out/.shardforge.lock" ]
for mode in direct gather; do
  out="$work/corrupt-$mode"
  SHARDFORGE_FAULT=corrupt_partial:rank=$([ $mode = gather ] && echo 0 || echo $last) run "$out" --write $mode
  check "$mode: a partial changed before the renames: exit 7 (got $rc: $err)" [ $rc -eq 7 ]
  check "$mode: one error line naming the partial ($err)" \
    [ "$(n_lines "$err")" -eq 1 -a "$(grep -c '\.partial: tensor .* no longer hash to what this run wrote' <<<"$err")" -eq 1 ]
  check "$mode: nothing final-named ($(finals_in "$out"))" [ -z "$(finals_in "$out")" ]
  check "$mode: the lock is released" [ ! -e "$out/.shardforge.lock" ]
  run "$out" --resume --write $mode
  check "$mode: --resume after exit 7 exits 0 (got $rc: $err)" [ $rc -eq 0 ]
  check "$mode: and ends byte-identical to a clean run" same_as_ref "$out"
done
echo "output lock and verification at -np $SF_NP"
finish
