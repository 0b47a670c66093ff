#!/usr/bin/env bash
# gpu.device_cli: `shardforge --version` names the GPU backend the build has (CUDA/NCCL when configured
# with CUDA, "not built" otherwise); without a visible GPU `--device cuda` fails before any work with one clear
# error line and exit 4, while `--device auto` falls back to the CPU and writes the CPU's bytes. With a GPU, the
# quantized GGUF of --device cuda must equal --device cpu byte for byte (no adapter: no GEMM involved).
set -uo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}" "${SF_HAVE_CUDA:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

ver=$("$SHARDFORGE_BIN" --version)
echo "$ver"
if [ "$SF_HAVE_CUDA" = 1 ]; then
  echo "$ver" | grep -q 'GPU backend: CUDA [0-9]' || fail "--version does not list the CUDA backend"
else
  echo "$ver" | grep -q 'GPU backend: not built' || fail "--version of a CPU-only build must say so"
fi

"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
args=(export --base "$work/demo/base" --format gguf:q4_k_m,gguf:iq4_xs)
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cpu --out "$work/cpu" >/dev/null 2>&1 \
  || fail "--device cpu export failed"
gpu_visible=0
if [ "$SF_HAVE_CUDA" = 1 ] && command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then
  gpu_visible=1
fi
if [ $gpu_visible = 0 ]; then
  $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cuda --out "$work/cuda" >"$work/out" 2>"$work/err"
  rc=$?
  [ $rc = 4 ] || fail "--device cuda without a GPU: exit $rc, expected 4"
  n=$(grep -c '^shardforge: error: --device cuda: ' "$work/err")
  [ "$n" = 1 ] || { fail "expected one '--device cuda:' error line, got $n"; cat "$work/err"; }
  ls "$work/cuda"/*.gguf >/dev/null 2>&1 && fail "--device cuda without a GPU wrote output files"
  grep '^shardforge: error:' "$work/err"
fi
$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device auto --out "$work/auto" >/dev/null 2>"$work/err" \
  || { fail "--device auto failed"; cat "$work/err"; }
for f in "$work/cpu"/*.gguf; do
  cmp -s "$f" "$work/auto/$(basename "$f")" || fail "--device auto output $(basename "$f") differs from --device cpu"
done
if [ $gpu_visible = 1 ]; then
  $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" "${args[@]}" --device cuda --out "$work/cuda" >/dev/null 2>"$work/err" \
    || { fail "--device cuda failed with a GPU"; cat "$work/err"; }
  for f in "$work/cpu"/*.gguf; do
    cmp -s "$f" "$work/cuda/$(basename "$f")" || fail "--device cuda output $(basename "$f") differs from --device cpu"
  done
fi
"$SHARDFORGE_BIN" export --base "$work/demo/base" --format gguf:q8_0 --device tpu --out "$work/x" >/dev/null 2>&1
[ $? = 2 ] || fail "--device tpu must be a usage error (exit 2)"
[ $fails = 0 ] && echo "gpu.device_cli: ok (GPU visible: $gpu_visible)"
exit $fails
