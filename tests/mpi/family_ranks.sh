#!/usr/bin/env bash
# mpi.family_ranks: rank invariance of the newer families' demos (issue acceptance: 1/2/3 ranks byte-identical).
# For each ARCH in FAMILIES, `shardforge demo --arch ARCH --shards 3` with its LoRA is exported to safetensors,
# gguf:f32, gguf:q8_0 and gguf:q4_k_m at -np 1 (1 thread), -np 2 and -np 3 (2 threads, a memory budget that splits
# tensors into row blocks); every file's sha256 must equal the 1-rank export's.
# Self-test (SF_SELFTEST_WRONG=1): the 1-rank reference uses adapter weight 0.5: the first comparison must fail.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_MPIRUN:?}"
FAMILIES=${SF_FAMILIES:-mistral3 ministral3 glm4moe gpt-oss gpt-oss-mxfp4}
work=$(mktemp -d)
on_exit "rm -rf '$work'"
quiet() { "$@" >/dev/null 2>&1; }
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
for arch in $FAMILIES; do
    d=$work/$arch
    # glm4moe: a stacked expert tensor splits into whole experts only; intermediate 256 (experts of 128) keeps one
    # expert's working set (4 LoRA'd experts stacked, merged, quantized) under the budget below; gpt-oss likewise
    demo_args=()
    case $arch in glm4moe|gpt-oss*) demo_args=(--intermediate 256);; esac
    # MXFP4 experts have no safetensors output; their GGUF blocks are repacked, also by row blocks of whole experts
    formats=safetensors,gguf:f32,gguf:q8_0,gguf:q4_k_m
    [ "$arch" != gpt-oss-mxfp4 ] || formats=gguf:f32,gguf:q8_0,gguf:q4_k_m,gguf:mxfp4_moe
    check "$arch: demo with 3 shards" quiet "$SHARDFORGE_BIN" demo "$d" --arch "$arch" --shards 3 "${demo_args[@]}"
    ad=$d/adapter
    check "$arch: -np 1 export" quiet $SF_MPIRUN -np 1 "$SHARDFORGE_BIN" export --base "$d/base" \
        --adapter "$(sf_expect "$ad" "$ad:0.5")" --format "$formats" --threads 1 --out "$d/np1"
    sums "$d/np1" >"$d/np1.sum"
    n=$(wc -l <"$d/np1.sum")
    check "$arch: at least 5 output files (got $n)" [ "$n" -ge 5 ]
    # A budget 3 MB above the fixed per-rank overhead the binary reports (it differs between builds): row blocks.
    overhead=$( ("$SHARDFORGE_BIN" export --base "$d/base" --format "$formats" --threads 2 --max-memory-per-rank 1MB \
                 --out "$d/dry" --dry-run 2>&1 || :) | sed -n 's/.*overhead of about \([0-9]*\) bytes.*/\1/p')
    budget=$(( ${overhead:-0} + 3000000 ))
    split=$("$SHARDFORGE_BIN" export --base "$d/base" --adapter "$ad" --format "$formats" --threads 2 \
            --max-memory-per-rank "$budget" --out "$d/dry" --dry-run | sed -n 's/.*work units: [0-9]* (\([0-9]*\) tensor(s) split.*/\1/p')
    check "$arch: >= 5 tensors split into row blocks under $budget bytes (got '${split}')" [ "${split:-0}" -ge 5 ]
    for np in 2 3; do
        check "$arch: -np $np export" quiet $SF_MPIRUN -np "$np" "$SHARDFORGE_BIN" export --base "$d/base" \
            --adapter "$ad" --format "$formats" --threads 2 --max-memory-per-rank "$budget" --out "$d/np$np"
        sums "$d/np$np" >"$d/np$np.sum"
        check "$arch: the outputs of -np $np equal those of -np 1" diff "$d/np1.sum" "$d/np$np.sum"
    done
done
finish
