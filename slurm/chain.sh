#!/bin/bash
# Stage / convert / publish as three Slurm jobs, each starting only after the previous one succeeded
# (--dependency=afterok): download on a transfer partition, export on compute nodes without network, push on a
# transfer partition. Nothing relies on file locks in the shared HF cache (downloads finish with atomic renames).
#   slurm/chain.sh ORG/BASE ORG/ADAPTER OUT "safetensors,gguf:q4_k_m" ORG/NAME
# Partitions: SF_TRANSFER_PARTITION (default transfer) and SF_COMPUTE_PARTITION (default compute); SBATCH (default
# sbatch) for extra options or a wrapper. Prints the three job ids.
set -euo pipefail
BASE=$1 ADAPTER=$2 OUT=$3 FORMATS=$4 REPO=$5
here=$(cd "$(dirname "$0")" && pwd)
transfer=${SF_TRANSFER_PARTITION:-transfer} compute=${SF_COMPUTE_PARTITION:-compute}
sb=${SBATCH:-sbatch}
stage=$($sb --parsable --partition="$transfer" "$here/stage.sbatch" "$BASE" "$ADAPTER")
stage=${stage%%;*}   # --parsable prints "jobid[;cluster]"
convert=$($sb --parsable --partition="$compute" --dependency=afterok:"$stage" "$here/convert.sbatch" \
          "$BASE" "$ADAPTER" "$OUT" "$FORMATS")
convert=${convert%%;*}
publish=$($sb --parsable --partition="$transfer" --dependency=afterok:"$convert" "$here/publish.sbatch" "$OUT" "$REPO")
publish=${publish%%;*}
echo "stage $stage, convert $convert, publish $publish"
