#!/usr/bin/env bash
# batch.slurm_templates: the sbatch templates in slurm/ parse (bash -n) and, executed without Slurm (a fake `srun`
# that drops its options and runs the task once, a fake `scontrol` that logs its arguments), run the intended
# command. requeue.sbatch is driven through its contract with a stub shardforge: SIGUSR1 to the batch shell reaches
# the step, exit 75 -> `scontrol requeue JOBID` and exit 0; every attempt passes --resume; SIGTERM -> exit 75 without
# requeue (Slurm requeues preempted jobs itself); a failure keeps its exit code; success exits 0.
set -euo pipefail
: "${SHARDFORGE_SOURCE_DIR:?}"
S=$SHARDFORGE_SOURCE_DIR/slurm
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

n=0
for f in "$S"/*.sbatch; do bash -n "$f" || fail "bash -n $f"; n=$((n + 1)); done
[ "$n" -ge 4 ] || fail "expected at least 4 templates, found $n"
grep -q -- '^#SBATCH --signal=B:USR1@120' "$S/requeue.sbatch" || fail "requeue.sbatch lacks --signal=B:USR1@120"
grep -q -- '^#SBATCH --requeue' "$S/requeue.sbatch" || fail "requeue.sbatch lacks --requeue"
grep -q -- '^#SBATCH --gpus-per-task=' "$S/gpu.sbatch" || fail "gpu.sbatch lacks --gpus-per-task"

mkdir -p "$work/bin"
cat > "$work/bin/srun" <<'SH'
#!/usr/bin/env bash
echo "srun $*" >> "$SF_FAKE_LOG"
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done   # templates use --opt=value forms only
exec "$@"
SH
cat > "$work/bin/scontrol" <<'SH'
#!/usr/bin/env bash
echo "scontrol $*" >> "$SF_FAKE_LOG"
SH
# Stub shardforge: logs its arguments; STUB_MODE=wait waits for a signal (USR1/TERM -> exit 75), ok -> 0, fail -> 5.
cat > "$work/bin/stub-shardforge" <<'SH'
#!/usr/bin/env bash
echo "shardforge $*" >> "$SF_FAKE_LOG"
case ${STUB_MODE:-ok} in
  ok) exit 0 ;;
  fail) exit 5 ;;
  wait) trap 'echo "stub: got USR1" >> "$SF_FAKE_LOG"; exit 75' USR1
        trap 'echo "stub: got TERM" >> "$SF_FAKE_LOG"; exit 75' TERM
        touch "$SF_FAKE_LOG.started"
        for _ in $(seq 300); do sleep 0.1; done; exit 9 ;;
esac
SH
chmod +x "$work/bin/"*
export PATH="$work/bin:$PATH" SHARDFORGE_BIN=stub-shardforge SLURM_JOB_ID=4242

# Plain templates: one srun line each, the export command with the given arguments.
for t in single-node multi-node gpu; do
  export SF_FAKE_LOG=$work/$t.log
  bash "$S/$t.sbatch" /m/base /m/adapter /m/out "safetensors,gguf:q4_k_m" > "$work/$t.out" 2>&1 || fail "$t.sbatch exited $?"
  grep -q '^srun --cpu-bind=cores' "$SF_FAKE_LOG" || fail "$t: no srun --cpu-bind=cores line"
  grep -qx 'shardforge export --base /m/base --adapter /m/adapter --out /m/out --format safetensors,gguf:q4_k_m' \
    "$SF_FAKE_LOG" || { cat "$SF_FAKE_LOG"; fail "$t: unexpected shardforge command"; }
done
grep -q -- '--gpus-per-task=1' "$work/gpu.log" || fail "gpu: srun without --gpus-per-task"

# requeue.sbatch, attempt 1: the time-limit warning.
run_requeue() {  # mode signal expected_rc
  export SF_FAKE_LOG=$work/requeue-$1-$2.log STUB_MODE=$1
  rm -f "$SF_FAKE_LOG" "$SF_FAKE_LOG.started"
  bash "$S/requeue.sbatch" /m/base /m/adapter /m/out q8 > "$SF_FAKE_LOG.out" 2>&1 &
  local shell=$!; pids+=("$shell")
  if [ "$2" != none ]; then
    for _ in $(seq 100); do [ -f "$SF_FAKE_LOG.started" ] && break; sleep 0.1; done
    [ -f "$SF_FAKE_LOG.started" ] || fail "requeue $1/$2: the step never started"
    kill "-$2" "$shell"
  fi
  local rc=0; wait "$shell" || rc=$?
  [ "$rc" -eq "$3" ] || { cat "$SF_FAKE_LOG" "$SF_FAKE_LOG.out"; fail "requeue $1/$2: exit $rc, expected $3"; }
  grep -q -- '--resume' "$SF_FAKE_LOG" || fail "requeue $1/$2: shardforge ran without --resume"
}
run_requeue wait USR1 0
grep -q 'stub: got USR1' "$SF_FAKE_LOG" || fail "SIGUSR1 did not reach the step"
grep -qx 'scontrol requeue 4242' "$SF_FAKE_LOG" || { cat "$SF_FAKE_LOG"; fail "exit 75 after SIGUSR1 did not requeue"; }
run_requeue wait TERM 75
grep -q 'stub: got TERM' "$SF_FAKE_LOG" || fail "SIGTERM did not reach the step"
! grep -q scontrol "$SF_FAKE_LOG" || fail "SIGTERM (preemption) must not requeue from the script"
run_requeue ok none 0
! grep -q scontrol "$SF_FAKE_LOG" || fail "a finished run requeued"
run_requeue fail none 5
! grep -q scontrol "$SF_FAKE_LOG" || fail "a failed run requeued"
echo "PASS: $n templates parse; single/multi/gpu run their export; requeue: USR1 -> requeue, TERM -> 75, ok -> 0, failure -> 5"
