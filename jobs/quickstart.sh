#!/usr/bin/env bash
# The README's first command: installs what is missing, builds shardforge, writes the built-in demo model and
# adapter, exports them with 2 MPI ranks (merged sharded safetensors + GGUF Q8_0 and Q4_K_M), and prints where
# the outputs are. Idempotent; run as root on a fresh Debian 12 machine (or with sudo available).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/jobs/install-deps.sh"
build=${SHARDFORGE_BUILD_DIR:-$root/build-quickstart}   # separate from the test build (tests OFF here)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHARDFORGE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target shardforge
bin="$build/shardforge"
work=${SHARDFORGE_QUICKSTART_DIR:-$root/quickstart}
rm -rf "$work/out"
"$bin" demo "$work/demo"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 2 --oversubscribe --bind-to none "$bin" export \
    --base "$work/demo/base" --adapter "$work/demo/adapter" --out "$work/out" \
    --format safetensors,gguf:q8_0,gguf:q4_k_m --max-shard-size 4MB
echo
echo "quickstart: outputs are in $work/out:"
ls -l "$work/out"
echo "Try: $bin inspect $work/out/base.Q4_K_M.gguf"
