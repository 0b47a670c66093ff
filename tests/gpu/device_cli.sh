#!/usr/bin/env bash
# gpu.device_cli: `shardforge --version` names the GPU backend the build has (CUDA/NCCL when configured
# with CUDA, "not built" otherwise); without a visible GPU `--device cuda` fails before any work with one clear
# error line and exit 4, while `--device auto` falls back to the CPU and writes the CPU's bytes. With a GPU, the
# quantized GGUF of --device cuda must equal --device cpu byte for byte (no adapter: no GEMM involved).
# Self-test (SF_SELFTEST_WRONG=1): --version is expected to name the other backend.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}" "${SF_HAVE_CUDA:?}"
work=$(mktemp -d)
on_exit "rm -rf '$work'"

ver=$("$SHARDFORGE_BIN" --version)
echo "$ver"
if [ "$(sf_expect "$SF_HAVE_CUDA" $((1 - SF_HAVE_CUDA)))" = 1 ]; then
  check "--version lists the CUDA backend" grep -q 'GPU backend: CUDA [0-9]' <<<"$ver"
else
  check "--version of a CPU-only build says so" grep -q 'GPU backend: not built' <<<"$ver"
fi

"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --format gguf:q4_k_m,gguf:iq4_xs)
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cpu --out "$work/cpu" >/dev/null 2>&1
check "--device cpu export exits 0" [ "$RC" -eq 0 ]
gpu_visible=0
if [ "$SF_HAVE_CUDA" = 1 ] && command -v nvidia-smi >/dev/null && grep -q GPU <<<"$(nvidia-smi -L 2>/dev/null || :)"; then
  gpu_visible=1
fi
same_as_cpu() {  # same_as_cpu DIR: every GGUF of the --device cpu run is byte-identical in DIR
  local f ok=0
  for f in "$work/cpu"/*.gguf; do
    cmp -s "$f" "$1/$(basename "$f")" || { echo "differs: $(basename "$f")"; ok=1; }
  done
  return $ok
}
if [ $gpu_visible = 0 ]; then
  try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cuda --out "$work/cuda" >"$work/out" 2>"$work/err"
  check "--device cuda without a GPU: exit 4 (got $RC)" [ "$RC" = 4 ]
  cat "$work/err"
  check "... one '--device cuda:' error line" [ "$(grep -c '^shardforge: error: --device cuda: ' "$work/err" || :)" = 1 ]
  check "... no output file written" [ -z "$(find "$work/cuda" -name '*.gguf' 2>/dev/null || :)" ]
fi
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device auto --out "$work/auto" >/dev/null 2>"$work/err"
cat "$work/err"
check "--device auto exits 0" [ "$RC" -eq 0 ]
check "--device auto writes the bytes of --device cpu" same_as_cpu "$work/auto"
if [ $gpu_visible = 1 ]; then
  try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cuda --out "$work/cuda" >/dev/null 2>"$work/err"
  cat "$work/err"
  check "--device cuda with a GPU exits 0" [ "$RC" -eq 0 ]
  check "--device cuda writes the bytes of --device cpu" same_as_cpu "$work/cuda"
fi
try "$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --device tpu --out "$work/x" >/dev/null 2>&1
check "--device tpu is a usage error (exit 2, got $RC)" [ "$RC" = 2 ]
echo "gpu.device_cli (GPU visible: $gpu_visible)"
finish
