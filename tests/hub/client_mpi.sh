#!/bin/bash
# Multi-rank export with --push-to-hub against the test Hub: the ranks upload the LFS files (and their multipart
# parts) in parallel, rank 0 makes ONE commit; the repo tree equals the output dir (sha256sum / git hash-object);
# the model card carries the Hub front matter; a file over the per-file limit is refused at planning time.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
NP=${SF_NP:-2}
MPIRUN=${SF_MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
start_hub --chunk-size 262144 --multipart-threshold 524288 --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 256 --intermediate 512 --layers 2 --vocab 1000 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }

# Planning-time refusal: nothing written, nothing sent.
reset_stats
SHARDFORGE_HUB_MAX_FILE_SIZE=1000000 try $MPIRUN -np "$NP" "$BIN" export --base "$WORK/d/base" --adapter "$WORK/d/adapter" \
    --out "$WORK/big" --format safetensors --push-to-hub testuser/too-big >"$WORK/big.log" 2>&1
rc=$RC
check "file over the per-file limit: usage error (exit 2) at planning time" [ "$rc" -eq 2 ]
check "the refusal names the file" grep -q "model.safetensors" "$WORK/big.log"
absent_or_empty() { [ ! -e "$1" ] || [ -z "$(ls -A "$1")" ]; }
check "the refusal wrote no output file" absent_or_empty "$WORK/big"
check "the refusal sent no request to the Hub" [ "$(hstat 'sum(v for k,v in s["requests"].items() if not k.startswith("__"))')" = 0 ]

reset_stats
try $MPIRUN -np "$NP" "$BIN" export --base "$WORK/d/base" --adapter "$WORK/d/adapter" --out "$WORK/out" \
    --format safetensors,gguf:q8_0,gguf:q4_k_m --max-shard-size 1MB --push-to-hub testuser/mpi \
    --base-model org/demo-base --commit-message "export from $NP ranks" >"$WORK/push.log" 2>&1
rc=$RC
[ $rc -eq 0 ] || tail -20 "$WORK/push.log"
check "export --push-to-hub on $NP ranks exits 0" [ "$rc" -eq 0 ]
check "exactly one commit" [ "$(hstat 's["commits"]["total"]')" = 1 ]
check "multipart parts were uploaded" [ "$(hstat 's["requests"].get("part",0)')" -ge 4 ]
nranks=$(hstat 'len([k for k in s["storageUserAgents"] if "rank/" in k])')
if [ "$NP" -ge 2 ]; then
    check "storage uploads came from $NP ranks (User-Agent rank tags: $(hstat 'sorted(s["storageUserAgents"])'))" [ "$nranks" -eq "$NP" ]
fi
check "no Authorization header sent to storage URLs" [ "$(hstat 's["storageRequestsWithAuthorization"]')" = 0 ]
check "the repo tree equals the output dir (paths, sizes, sha256, blob oids)" tree_matches testuser/mpi "$WORK/out"
card=$(curl -sf "$HUB/testuser/mpi/resolve/main/README.md" -H "Authorization: Bearer $TOKEN")
fm=$(printf '%s\n' "$card" | sed -n '2,/^---$/p')
for k in "base_model: org/demo-base" "library_name: transformers" "pipeline_tag: text-generation" "- gguf" "- llama-cpp"; do
    check "model card front matter has '$k'" grep -qxF -- "$k" <<<"$fm"
done
check "model card lists the Q4_K_M GGUF with its size" grep -q "GGUF Q4_K_M" <<<"$card"
check "the token is not in the logs or the output dir" no_token "$WORK/push.log" "$WORK/big.log" "$WORK/out"
finish
