#!/usr/bin/env bash
# batch.slurm_templates: the sbatch templates in slurm/ parse (bash -n) and, executed without Slurm (a fake `srun`
# that drops its options and runs the task once, a fake `scontrol` that logs its arguments, a fake `sbatch` that
# queues jobs for slurm/chain.sh's stage / convert / publish chain, run in dependency order), run the intended
# command. requeue.sbatch is driven through its contract with a stub shardforge: SIGUSR1 to the batch shell reaches
# the step, exit 75 -> `scontrol requeue JOBID` and exit 0; every attempt passes --resume; SIGTERM -> exit 75 without
# requeue (Slurm requeues preempted jobs itself); a failure keeps its exit code; success exits 0.
# Self-test (SF_SELFTEST_WRONG=1): at least 400 templates are expected.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
S=$SHARDFORGE_SOURCE_DIR/slurm
work=$(mktemp -d)
pids=()
on_exit 'for p in "${pids[@]}"; do kill "$p"; done'
on_exit "rm -rf '$work'"

n=0
for f in "$S"/*.sbatch; do check "bash -n $(basename "$f")" bash -n "$f"; n=$((n + 1)); done
check "at least $(sf_expect 4 400) templates (found $n)" [ "$n" -ge "$(sf_expect 4 400)" ]
check "requeue.sbatch has --signal=B:USR1@120" grep -q -- '^#SBATCH --signal=B:USR1@120' "$S/requeue.sbatch"
check "requeue.sbatch has --requeue" grep -q -- '^#SBATCH --requeue' "$S/requeue.sbatch"
check "export-gpu.sbatch has --gpus-per-task" grep -q -- '^#SBATCH --gpus-per-task=' "$S/export-gpu.sbatch"

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
echo "  HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-unset}" >> "$SF_FAKE_LOG"
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
for t in single-node multi-node; do
  export SF_FAKE_LOG=$work/$t.log
  try bash "$S/$t.sbatch" /m/base /m/adapter /m/out "safetensors,gguf:q4_k_m" > "$work/$t.out" 2>&1
  check "$t.sbatch exits 0 (got $RC)" [ "$RC" -eq 0 ]
  check "$t: an srun --cpu-bind=cores line" grep -q '^srun --cpu-bind=cores' "$SF_FAKE_LOG"
  cat "$SF_FAKE_LOG"
  check "$t: the intended shardforge command" \
    grep -qx 'shardforge export --base /m/base --adapter /m/adapter --out /m/out --format safetensors,gguf:q4_k_m' "$SF_FAKE_LOG"
done
# The GPU template: one rank per GPU, every rank computing on its device.
export SF_FAKE_LOG=$work/gpu.log
try env MAX_GPU_MEMORY=2G bash "$S/export-gpu.sbatch" /m/base /m/adapter /m/out "safetensors,gguf:q4_k_m" >"$work/gpu.out" 2>&1
check "export-gpu.sbatch exits 0 (got $RC)" [ "$RC" -eq 0 ]
cat "$SF_FAKE_LOG"
check "export-gpu: the export on the GPU with the given device memory bound" grep -qx \
  'shardforge export --base /m/base --adapter /m/adapter --out /m/out --format safetensors,gguf:q4_k_m --device cuda --max-gpu-memory 2G' \
  "$SF_FAKE_LOG"

# requeue.sbatch, attempt 1: the time-limit warning.
run_requeue() {  # mode signal expected_rc
  export SF_FAKE_LOG=$work/requeue-$1-$2.log STUB_MODE=$1
  rm -f "$SF_FAKE_LOG" "$SF_FAKE_LOG.started"
  bash "$S/requeue.sbatch" /m/base /m/adapter /m/out q8 > "$SF_FAKE_LOG.out" 2>&1 &
  local shell=$!; pids+=("$shell")
  if [ "$2" != none ]; then
    for _ in $(seq 100); do [ -f "$SF_FAKE_LOG.started" ] && break; sleep 0.1; done
    check "requeue $1/$2: the step started" [ -f "$SF_FAKE_LOG.started" ]
    kill "-$2" "$shell"
  fi
  try wait "$shell"
  cat "$SF_FAKE_LOG" "$SF_FAKE_LOG.out"
  check "requeue $1/$2: exit $3 (got $RC)" [ "$RC" -eq "$3" ]
  check "requeue $1/$2: shardforge ran with --resume" grep -q -- '--resume' "$SF_FAKE_LOG"
}
no_scontrol() { ! grep -q scontrol "$SF_FAKE_LOG"; }

# Stage / convert / publish (slurm/chain.sh): a fake `sbatch --parsable` queues each job (id, options, script and
# arguments) and prints its id; the queue is then run in order, a job only if its afterok dependency succeeded.
cat > "$work/bin/sbatch" <<'SH'
#!/usr/bin/env bash
n=$(( $(cat "$SF_QUEUE" 2>/dev/null | wc -l) + 100 ))
opts=()
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do opts+=("$1"); shift; done
printf '%s\t%s\t%s\n' "$n" "${opts[*]}" "$*" >> "$SF_QUEUE"
echo "$n;cluster1"
SH
chmod +x "$work/bin/sbatch"
run_queue() {  # run_queue FAILING_ID: runs the queued jobs in order (FAILING_ID's shardforge fails); sets ran[]
  local id opts cmd dep mode
  ran=()
  while IFS=$'\t' read -r id opts cmd; do
    dep=$(sed -n 's/.*--dependency=afterok:\([0-9]*\).*/\1/p' <<<"$opts")
    if [ -n "$dep" ] && [ -z "${ran[$dep]:-}" ]; then continue; fi
    mode=ok; [ "$id" != "$1" ] || mode=fail
    # shellcheck disable=SC2086
    if STUB_MODE=$mode bash $cmd >>"$work/chain.out" 2>&1; then ran[$id]=1; fi
  done <"$SF_QUEUE"
}
declare -A ran=()
export SF_QUEUE=$work/queue SF_FAKE_LOG=$work/chain.log
try bash "$S/chain.sh" org/base org/adapter /m/out "safetensors,gguf:q4_k_m" org/merged >"$work/chain.out" 2>&1
check "chain.sh exits 0 (got $RC)" [ "$RC" -eq 0 ]
cat "$SF_QUEUE" "$work/chain.out"
check "chain.sh prints the three job ids" grep -qx 'stage 100, convert 101, publish 102' "$work/chain.out"
check "three jobs queued" [ "$(wc -l <"$SF_QUEUE")" -eq 3 ]
job() { sed -n "$1p" "$SF_QUEUE" | cut -f"$2"; }
check "stage: transfer partition, no dependency" [ "$(job 1 2)" = "--parsable --partition=transfer" ]
check "convert: compute partition, after the stage job succeeded" \
  [ "$(job 2 2)" = "--parsable --partition=compute --dependency=afterok:100" ]
check "publish: transfer partition, after the convert job succeeded" \
  [ "$(job 3 2)" = "--parsable --partition=transfer --dependency=afterok:101" ]
run_queue none
cat "$SF_FAKE_LOG"
check "every job of the chain ran and succeeded" [ "${#ran[@]}" -eq 3 ]
check "stage: downloads the base, then the adapter, with the Hub reachable" diff - <(grep -v '^srun ' "$SF_FAKE_LOG" | sed -n 1,4p) <<'EOT'
shardforge download org/base
  HF_HUB_OFFLINE=unset
shardforge download org/adapter --adapter
  HF_HUB_OFFLINE=unset
EOT
check "convert: the export reads the repo ids with HF_HUB_OFFLINE=1" diff - <(grep -v '^srun ' "$SF_FAKE_LOG" | sed -n 5,6p) <<'EOT'
shardforge export --base org/base --adapter org/adapter --out /m/out --format safetensors,gguf:q4_k_m
  HF_HUB_OFFLINE=1
EOT
check "publish: pushes the output with the Hub reachable" diff - <(grep -v '^srun ' "$SF_FAKE_LOG" | sed -n 7,8p) <<'EOT'
shardforge push /m/out --repo org/merged
  HF_HUB_OFFLINE=unset
EOT
# A failed export stops the chain: publish never runs.
rm -f "$SF_QUEUE" "$SF_FAKE_LOG"
try bash "$S/chain.sh" org/base org/adapter /m/out q8 org/merged >/dev/null 2>&1
run_queue 101
check "a failed convert job: the stage ran, publish never runs" \
  [ "$(grep -c '^shardforge download' "$SF_FAKE_LOG" || :)" -eq 2 -a "$(grep -c '^shardforge push' "$SF_FAKE_LOG" || :)" -eq 0 ]
run_requeue wait USR1 0
check "SIGUSR1 reached the step" grep -q 'stub: got USR1' "$SF_FAKE_LOG"
check "exit 75 after SIGUSR1 requeued the job" grep -qx 'scontrol requeue 4242' "$SF_FAKE_LOG"
run_requeue wait TERM 75
check "SIGTERM reached the step" grep -q 'stub: got TERM' "$SF_FAKE_LOG"
check "SIGTERM (preemption) does not requeue from the script" no_scontrol
run_requeue ok none 0
check "a finished run does not requeue" no_scontrol
run_requeue fail none 5
check "a failed run does not requeue" no_scontrol
finish
