#!/usr/bin/env bash
# Layering rules (docs/README.md "Source layout"): <mpi.h> only in the MPI communicator, <nccl.h> only in the NCCL one,
# numeric kernels include no file/MPI/plan headers, modules never include "upward" (quant/formats -> plan/exec,
# hub -> exec), and no public header includes nlohmann/json.hpp.
set -u
src=${SHARDFORGE_SOURCE_DIR:?}
fail=0
bad() { echo "FAIL: $*"; fail=1; }
while IFS= read -r f; do
  case "$f" in */src/exec/mpi_comm.cpp) ;; *) bad "$f includes <mpi.h>";; esac
done < <(grep -rl '#include <mpi.h>' "$src/src" "$src/include")
while IFS= read -r f; do
  case "$f" in */src/exec/cuda/*) ;; *) bad "$f includes <nccl.h>";; esac
done < <(grep -rl '#include <nccl.h>' "$src/src" "$src/include")
# A module's public headers: formats has one per format, included by formats.hpp.
headers_of() {
  case $1 in
    formats) for h in formats safetensors gguf bitsandbytes imatrix encode; do echo "$src/include/shardforge/$h.hpp"; done;;
    *) echo "$src/include/shardforge/$1.hpp";;
  esac
}
for m in core quant formats model lora; do
  for up in plan exec cli hub ollama; do
    hits=$(grep -rl "#include <shardforge/$up.hpp>" "$src/src/$m" $(headers_of "$m") 2>/dev/null)
    [ -n "$hits" ] && bad "module $m includes $up.hpp: $hits"
  done
done
# hub runs its collectives over core's Comm (include/shardforge/comm.hpp): it never includes exec or the CLI.
for up in exec cli; do
  hits=$(grep -rl "#include <shardforge/$up.hpp>" "$src/src/hub" "$src/include/shardforge/hub.hpp" 2>/dev/null)
  [ -n "$hits" ] && bad "module hub includes $up.hpp: $hits"
done
# Public headers show the library, not its dependencies: nlohmann/json_fwd.hpp is enough for a declaration, the
# .cpp files that use the type include nlohmann/json.hpp themselves.
hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]nlohmann/json\.hpp[>"]' "$src/include" 2>/dev/null)
[ -n "$hits" ] && bad "public headers include nlohmann/json.hpp (use nlohmann/json_fwd.hpp): $hits"
hits=$(grep -rlE '#include <(fstream|cstdio|filesystem|mpi\.h|thread)>' "$src/src/quant/kernels" 2>/dev/null)
[ -n "$hits" ] && bad "kernels include I/O or threading headers: $hits"
[ $fail = 0 ] && echo "layering: ok"
exit $fail
