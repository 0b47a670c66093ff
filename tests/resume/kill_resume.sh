#!/usr/bin/env bash
# resume.kill.npN: an export is stopped at random points — kill -9 of one rank, kill -9 of every
# rank and mpirun — and `--resume` must finish with outputs byte-identical to an uninterrupted run; across the points
# the journal must actually be used (some resumed runs skip verified units). SIGTERM to the ranks (what Slurm sends)
# and SIGUSR1 to mpirun (forwarded; Slurm --signal=B:USR1@120) give exit 75 and a clean journal (every record valid,
# no torn tail); --resume refuses changed options and changed inputs (exit 2, clear message); the report of a
# resumed run checks out; --write gather runs interrupted by SIGUSR1 and by kill -9 resume identically.
# SF_KILL_POINTS (default 1 per kind) sets the number of random points; tests/fault/resume_kill_points.sh runs 20.
# Kill points inside the finalisation (verification, fsyncs, renames, text files, the journal's and the lock's
# removal): SF_FINISH_POINTS per kind (default 2; 24 in tests/fault/resume_kill_points.sh). The output lock of a
# killed run is taken over by --resume, which says so.
# Self-test (SF_SELFTEST_WRONG=1): the first resumed output is expected to differ from the uninterrupted run's.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
points=${SF_KILL_POINTS:-1}
py=/usr/bin/python3
work=$(mktemp -d)
on_exit "rm -rf '$work'"
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --adapter "$work/demo/adapter" --format safetensors,gguf:q4_k_m
      --max-shard-size 2MB --progress-interval 0)
# Every rank sleeps before each unit (test-only hook): the run lasts ~1-2 s whatever the machine, so random kill
# times land inside it.
slow=""
for ((r = 0; r < SF_NP; r++)); do slow+="${slow:+,}slow_rank:$r:ms=$((40 * SF_NP))"; done
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
start() {  # start OUT [extra args]: export in the background with the slow fault; sets mp
  SHARDFORGE_FAULT=$slow $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" --out "$1" "${@:2}" \
    >"$work/log" 2>&1 &
  mp=$!
}
wait_for() {  # wait_for FILE: until the run got that far (at most 30 s; a loaded CI machine starts mpirun slowly)
  for ((t = 0; t < 600; t++)); do [ -e "$1" ] && return 0; kill -0 "$mp" 2>/dev/null || return 1; sleep 0.05; done
  return 1
}
resume() {  # resume OUT [extra args]: sets rc, log in $work/rlog
  try timeout 300 $SF_MPIRUN -np "${RESUME_NP:-$SF_NP}" "$SHARDFORGE_BIN" "${args[@]}" --out "$1" --resume "${@:2}" \
    >"$work/rlog" 2>&1
  rc=$RC
}
errors() { (grep error "$1" || :) | sed -n 1,3p; }
same_as_ref() { if sf_wrong; then ! diff -q <(sums "$1") "$work/ref.sum"; else diff -q <(sums "$1") "$work/ref.sum"; fi >/dev/null; }
journal_clean() {  # every journal record of OUT is complete and its checksum right (layout: docs/engine.md "Resume")
  $py - "$1/.shardforge-resume" <<'PY'
import glob, hashlib, json, struct, sys
files = glob.glob(sys.argv[1] + "/journal.rank*")
n = 0
for f in files:
    b = open(f, "rb").read(); pos = 0
    while pos < len(b):
        assert b[pos:pos+4] == b"SFJ1", f"{f}: bad magic at {pos}"
        (ln,) = struct.unpack_from("<I", b, pos + 4)
        payload = b[pos+8:pos+8+ln]
        assert len(payload) == ln, f"{f}: torn record at {pos}"
        assert hashlib.sha256(payload).digest()[:8] == b[pos+8+ln:pos+16+ln], f"{f}: bad checksum at {pos}"
        json.loads(payload); pos += 16 + ln; n += 1
print(n)
PY
}

timeout 300 $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --out "$work/ref" >/dev/null 2>&1 ||
  { echo "FAIL: reference export failed"; exit 1; }
sums "$work/ref" >"$work/ref.sum"

resumed_total=0
check_resumed() {  # check_resumed LABEL OUT
  check "$1: --resume exits 0 (got $rc: $(errors "$work/rlog"))" [ $rc -eq 0 ]
  check "$1: the resumed output equals the uninterrupted run's" same_as_ref "$2"
  check "$1: no journal left after a successful resume" [ ! -e "$2/.shardforge-resume" ]
  check "$1: no output lock left" [ -z "$(find "$2" -maxdepth 1 -name '.shardforge.lock*')" ]
  local n; n=$(sed -n 's/.*resumed \([0-9]*\) verified work units.*/\1/p' "$work/rlog")
  resumed_total=$((resumed_total + ${n:-0}))
  echo "checked $1 (${n:-0} units resumed)"
}

for kind in one all; do
  for ((i = 0; i < points; i++)); do
    out="$work/kill-$kind-$i"
    # A random instant of the work phase: after the run created its resume state, 0-1.2 s into the ~1.5 s of work.
    delay=$($py -c "import random; print(round(random.uniform(0.0, 1.2), 2))")
    start "$out"
    check "kill -9 $kind: the run created its resume state" wait_for "$out/.shardforge-resume/state.json"
    sleep "$delay"
    ranks=($(pgrep -P "$mp" || :))
    if [ $kind = one ] && [ ${#ranks[@]} -gt 0 ]; then
      try kill -9 "${ranks[RANDOM % ${#ranks[@]}]}" 2>/dev/null
    else
      try kill -9 "$mp" "${ranks[@]}" 2>/dev/null
    fi
    try wait "$mp" 2>/dev/null
    for p in "${ranks[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    locked=no; [ -e "$out/.shardforge.lock" ] && locked=yes
    resume "$out"
    check_resumed "kill -9 $kind rank(s) at ${delay}s into the work" "$out"
    # Rank 0 killed with its lock held: --resume takes the lock of the dead run over and says so.
    [ $locked = no ] || check "kill -9 $kind: --resume took over the dead run's lock and said so" \
      grep -q "resume: taking over the lock on .* from a run that is gone" "$work/rlog"
  done
done
check "some resumed run skipped journaled units (the journal is used)" [ "$resumed_total" -gt 0 ]

# Kill points inside the finalisation: SHARDFORGE_FAULT=die_at:STEP makes a rank SIGKILL itself at that step
# (src/exec/fault.hpp; the steps: verification on every rank, then on rank 0 the phase record, each text/copied
# file's write, each fsync, each rename, the journal's removal file by file, the lock's removal). "one": that rank
# alone dies (mpirun ends the others); "all": every rank is killed with kill -9 the moment the first one dies.
# SF_FINISH_POINTS per kind (default 2; tests/fault/resume_kill_points.sh: 12) drawn from every step.
finish_points=${SF_FINISH_POINTS:-2}
n_files=$(wc -l <"$work/ref.sum")
once=(verify verified renamed unjournaled unlock)   # steps taken once, and the steps per file or journal
per=()
for ((i = 0; i < n_files; i++)); do per+=("write.$i" "fsync.$i" "rename.$i"); done
for ((i = 0; i <= SF_NP; i++)); do per+=("unjournal.$i"); done   # finish.json and journal.rank<R>
# Each kind draws alternately from the two lists (shuffled), so that a few points cover both.
draw() {
  $py - "$finish_points" "${#once[@]}" "${once[@]}" "${per[@]}" <<'PY'
import random, sys
k, n = int(sys.argv[1]), int(sys.argv[2])
a, b = sys.argv[3:3 + n], sys.argv[3 + n:]
random.shuffle(a); random.shuffle(b)
out = []
while len(out) < k and (a or b):
    for lst in (a, b):
        if lst and len(out) < k: out.append(lst.pop())
print(" ".join(out))
PY
}
finish_total=0
for kind in one all; do
  for step in $(draw); do
    out="$work/finish-$kind-$step"
    spec="die_at:$step"
    if [ $kind = one ]; then
      rank=0; [ $step = verify ] && rank=$((RANDOM % SF_NP))
      spec+=":rank=$rank"
    fi
    SHARDFORGE_FAULT=$spec $SF_MPIRUN -np "$SF_NP" -x SHARDFORGE_FAULT "$SHARDFORGE_BIN" "${args[@]}" --out "$out" \
      >"$work/log" 2>&1 &
    mp=$!
    for ((t = 0; t < 1200; t++)); do
      grep -q "dies at $step" "$work/log" && break
      kill -0 "$mp" 2>/dev/null || break
      sleep 0.025
    done
    ranks=($(pgrep -P "$mp" || :))
    [ $kind = one ] || try kill -9 "$mp" "${ranks[@]}" 2>/dev/null
    try wait "$mp" 2>/dev/null
    for p in "${ranks[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
    check "die_at:$step ($kind): the run was killed at that step" grep -q "dies at $step" "$work/log"
    resume "$out"
    check_resumed "kill -9 $kind rank(s) at finishing step $step" "$out"
    case $step in unjournal.*|unjournaled|unlock)  # after the renames: the dead run's lock records it complete
      check "die_at:$step ($kind): --resume reports the run already complete" \
        grep -q "resume: the run in .* had already completed" "$work/rlog";;
    esac
    finish_total=$((finish_total + 1))
  done
done

# SIGTERM to every rank (Slurm's preemption/walltime signal): exit 75, journal clean, partials kept.
out="$work/term"
start "$out"
check "SIGTERM: the run journaled something" wait_for "$out/.shardforge-resume/journal.rank0"
try kill -TERM $(pgrep -P "$mp" || :) 2>/dev/null
try wait "$mp"; rc=$RC
check "SIGTERM: exit 75 (got $rc: $(errors "$work/log"))" [ $rc -eq 75 ]
check "SIGTERM: the message gives the resume hint" grep -q "rerun the same command with --resume" "$work/log"
check "SIGTERM: the journal is clean" journal_clean "$out"
check "SIGTERM: no final-named file" [ -z "$(find "$out" -maxdepth 1 -type f ! -name '*.partial')" ]

# Refusals: changed options, then a changed input; the partials survive both.
resume "$out" --dtype f32
check "changed options: exit 2 (got $rc)" [ $rc -eq 2 ]
check "changed options: the message says so ($(cat "$work/rlog"))" grep -q "options or inputs differ" "$work/rlog"
adapter="$work/demo/adapter/adapter_model.safetensors"
touch -r "$adapter" "$work/mtime"
touch -d '2001-02-03 04:05:06' "$adapter"
resume "$out"
check "changed input: exit 2 (got $rc)" [ $rc -eq 2 ]
check "changed input: the message names the file ($(cat "$work/rlog"))" \
  grep -q "adapter_model.safetensors.*changed since the interrupted run" "$work/rlog"
touch -r "$work/mtime" "$adapter"
resume "$out" --report "$work/resumed.h5"
check_resumed "SIGTERM then --resume" "$out"
# The report of a resumed run covers every tensor (journaled ones marked resumed) with checksums of the final bytes.
check "the report after --resume covers every tensor with the final bytes' checksums" $py - "$work/resumed.h5" "$out" <<'PY'
import hashlib, os, sys, h5py
t = h5py.File(sys.argv[1])["tensors"]
bad = 0
for i in range(t["name"].shape[0]):
    with open(os.path.join(sys.argv[2], t["file"][i].decode()), "rb") as fh:
        fh.seek(int(t["offset"][i])); bad += hashlib.sha256(fh.read(int(t["nbytes"][i]))).digest() != bytes(t["sha256"][i])
n_res = int(t["resumed"][:].sum())
print(f"report after resume: {t['name'].shape[0]} rows, {n_res} resumed, {bad} checksum mismatches")
sys.exit(1 if bad or n_res == 0 else 0)
PY

# SIGUSR1 to mpirun (forwarded to the ranks), as sbatch --signal=B:USR1@120 with a forwarding trap does.
out="$work/usr1"
start "$out"
check "SIGUSR1: the run journaled something" wait_for "$out/.shardforge-resume/journal.rank0"
kill -USR1 "$mp"
try wait "$mp"; rc=$RC
check "SIGUSR1: exit 75 (got $rc)" [ $rc -eq 75 ]
check "SIGUSR1: the journal is clean" journal_clean "$out"
RESUME_NP=$((SF_NP + 1)) resume "$out"   # the plan does not depend on the rank count: neither does --resume
check_resumed "SIGUSR1 then --resume on $((SF_NP + 1)) ranks" "$out"

# --write gather: SIGUSR1 stops every rank (each on its own signal), exit 75; --resume finishes identically.
out="$work/gather"
start "$out" --write gather
check "gather: the run created its resume state" wait_for "$out/.shardforge-resume/state.json"
sleep 0.5
kill -USR1 "$mp"
try wait "$mp"; rc=$RC
check "gather SIGUSR1: exit 75 (got $rc)" [ $rc -eq 75 ]
resume "$out" --write gather
check_resumed "gather: SIGUSR1 then --resume" "$out"

# --write gather, kill -9 of everything: rank 0 journaled the other ranks' units as it wrote them.
out="$work/gather-kill"
start "$out" --write gather
check "gather kill -9: the run journaled something" wait_for "$out/.shardforge-resume/journal.rank0"
sleep 0.3
ranks=($(pgrep -P "$mp" || :))
try kill -9 "$mp" "${ranks[@]}" 2>/dev/null
try wait "$mp" 2>/dev/null
for p in "${ranks[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
resume "$out" --write gather
check_resumed "gather: kill -9 all ranks then --resume" "$out"

echo "resume at -np $SF_NP ($((2 * points)) kill points in the work, $finish_total in the finalisation, $resumed_total units resumed in total)"
finish
