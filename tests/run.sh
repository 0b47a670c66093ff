#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test through ctest.
#   tests/run.sh            full suite (unit, mpi, conformance)
#   tests/run.sh -L unit    extra arguments go to ctest
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/jobs/install-deps.sh" --test
build=${SHARDFORGE_BUILD_DIR:-$root/build}
jobs=$(nproc)
werror=OFF; [ "${CI:-}" = "true" ] && werror=ON
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDFORGE_WERROR=$werror >/dev/null
cmake --build "$build" -j "$jobs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 900 "$@"
