#!/usr/bin/env bash
# compare.sh [--build DIR] [--no-build] [--reps N] [--smoke] [--table FILE] [--keep]
# One benchmark command: shardforge against every reference, on the same generated inputs, in one run, as one table
# of ratios (reference time / our time, or our throughput / the reference's: > 1 means shardforge is faster).
#   - copy speed: merge + bf16 safetensors export (1 rank, default threads) vs `cp -r` of the base;
#   - per core: Q4_K_M export from the bf16 checkpoint, LoRA merged (1 rank, --threads 1) vs llama-quantize
#     (libllama's llama_model_quantize through tests/conformance/quantize/lq_quantize, 1 thread, the quantize call
#     alone plus a sync) from the merged F32 GGUF (our gguf:f32, byte-identical to convert_hf_to_gguf.py's, see
#     tests/conformance/converter); our Q4_K_M must be byte-identical to llama-quantize's (compare_gguf.py);
#   - end to end: merge + Q4_K_M on 2 ranks x 1 thread vs the Python chain (tests/bench/numpy_merge.py ->
#     convert_hf_to_gguf.py --outtype f16 of the bundled llama.cpp release -> llama-quantize Q4_K_M, 2 threads);
#   - quantizer kernels per type, 1 thread: build/tests/quant_bench (ours vs ggml_quantize_chunk of libggml-base,
#     which it first checks byte for byte), best of N repetitions;
#   - scaling: Q4_K_M export --threads 2 vs --threads 1 (1 rank), 2 ranks vs 1 rank (mpirun, 1 thread each).
# The 2-thread/2-rank outputs must equal the 1-thread output byte for byte. Times are wall clock, best of N (default
# 3), each timed command followed by a sync inside its timing, page cache warm for every side. The model: a
# ~97 M-parameter Llama (8 layers, hidden 1024, MLP 2816, vocab 3072; 194 MB bf16) and a r=16 LoRA on all 7 linears.
# --build DIR: an existing build (incrementally rebuilt: shardforge, lq_quantize, quant_bench); default
#   $SHARDFORGE_BUILD_DIR, else a Release build of its own in <source>/build-bench. --no-build: use DIR as it is.
# --smoke: the demo-sized model, 1 repetition, short kernel timings: checks that every row is measured and the
#   outputs agree (ctest bench.compare.smoke). --table FILE: also write the table there. --keep: keep the work dir.
# Not in CI as a benchmark: the full run takes minutes. Needs the npm peers of tests/conformance (libllama and the
# llama.cpp git bundle of node-llama-cpp), Debian's python3 with numpy and torch, mpirun.
SHARDFORGE_SOURCE_DIR=${SHARDFORGE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SHARDFORGE_SOURCE_DIR/tests/lib/harness.sh"
. "$SHARDFORGE_SOURCE_DIR/tests/bench/lib.sh"
SRC=$SHARDFORGE_SOURCE_DIR
PY=/usr/bin/python3
CMP=$SRC/tests/conformance/quantize/compare_gguf.py
CONV=$SRC/tests/conformance/converter
BUNDLE=$SRC/tests/conformance/node_modules/node-llama-cpp/llama/gitRelease.bundle
build=${SHARDFORGE_BUILD_DIR:-}
cmdline="tests/bench/compare.sh${*:+ $*}"
do_build=1 reps=3 smoke=0 table_out="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift ;;
        --no-build) do_build=0 ;;
        --reps) reps=$2; shift ;;
        --smoke) smoke=1 ;;
        --table) table_out=$2; shift ;;
        --keep) keep=1 ;;
        *) echo "usage: compare.sh [--build DIR] [--no-build] [--reps N] [--smoke] [--table FILE] [--keep]" >&2; exit 2 ;;
    esac
    shift
done
[ $smoke = 0 ] || reps=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --bind-to none)
W=$(mktemp -d /tmp/sf-compare-XXXXXX)
[ $keep = 1 ] || on_exit "rm -rf '$W'"
export BENCH_LOG=$W/cmd.log BENCH_TMP=$W

# ---- build
if [ -z "$build" ]; then
    build=$SRC/build-bench
    [ -f "$build/CMakeCache.txt" ] || [ $do_build = 0 ] ||
        check "configure a Release build in $build" cmake -S "$SRC" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
            $(command -v ccache >/dev/null && echo -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
              -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
[ $do_build = 0 ] || check "build shardforge, lq_quantize and quant_bench in $build" \
    cmake --build "$build" --target shardforge lq_quantize quant_bench
BIN=$build/shardforge LQ=$build/tests/lq_quantize QB=$build/tests/quant_bench
for b in "$BIN" "$LQ" "$QB"; do check "$b exists" [ -x "$b" ]; done
check "Debian python3 with numpy and torch (the Python chain)" "$PY" -c "import numpy, torch"
check "llama.cpp's converter: clone of node-llama-cpp's git bundle" \
    git -c advice.detachedHead=false clone -q "$BUNDLE" "$W/llama.cpp"

# ---- inputs
machine_start=$(machine)
if [ $smoke = 1 ]; then
    demo_args=(--lora-rank 16 --lora-alpha 32)
else
    demo_args=(--layers 8 --hidden 1024 --intermediate 2816 --heads 16 --kv-heads 4 --vocab 3072 --shards 2
               --lora-rank 16 --lora-alpha 32)
fi
check "shardforge demo ${demo_args[*]}" "$BIN" demo "$W/m" "${demo_args[@]}"
B=$W/m/base A=$W/m/adapter
in_bytes=$(find "$B" -name '*.safetensors' -printf '%s\n' | awk '{ s += $1 } END { print s }')
n_params=$("$PY" -c "
import sys; sys.path.insert(0, '$SRC/tests/reference'); import st_io, glob
print(sum(a.size for p in glob.glob('$B/*.safetensors') for _, a in st_io.read(p).values()))")
# The merged F32 GGUF llama-quantize starts from, and our Q4_K_M from the same export as the reference bytes.
check "export gguf:f32,gguf:q4_k_m (the merged F32 GGUF for llama-quantize)" \
    "$BIN" export --base "$B" --adapter "$A" --out "$W/f32" --name m --format gguf:f32,gguf:q4_k_m
warm "$B" "$A" "$W/f32"

# ---- copy speed: cp -r of the base vs merge + bf16 safetensors export
best_of "$reps" "rm -rf '$W/cp'" cp -r "$B" "$W/cp"
cp_s=$BEST cp_cpu=$BEST_CPU
best_of "$reps" "rm -rf '$W/st'" "$BIN" export --base "$B" --adapter "$A" --out "$W/st" --format safetensors
st_s=$BEST st_cpu=$BEST_CPU
check "the safetensors export wrote bf16 tensors" grep -qaF '"dtype":"BF16"' "$(ls "$W"/st/*.safetensors | head -n 1)"

# ---- per core: Q4_K_M export, 1 rank x 1 thread, vs llama_model_quantize 1 thread (the call alone + a sync)
q4() {  # q4 OUT THREADS [NP]: merge + Q4_K_M export; NP given: under mpirun
    local out=$1 th=$2
    if [ -n "${3:-}" ]; then
        "${MPIRUN[@]}" -np "$3" "$BIN" export --base "$B" --adapter "$A" --out "$out" --name m --format gguf:q4_k_m --threads "$th"
    else
        "$BIN" export --base "$B" --adapter "$A" --out "$out" --name m --format gguf:q4_k_m --threads "$th"
    fi
}
best_of "$reps" "rm -rf '$W/t1'" q4 "$W/t1" 1
t1_s=$BEST t1_cpu=$BEST_CPU
lq_s="" lq_cpu=""
for ((i = 0; i < reps; ++i)); do
    rm -f "$W/lq.gguf"
    sync
    "$LQ" "$W/f32/m.F32.gguf" "$W/lq.gguf" Q4_K_M --threads 1 --time >"$W/lq.out"
    t0=$(now)
    sync
    s=$(awk -v q="$(awk '/^lq_quantize: /{ print $3 }' "$W/lq.out")" -v s="$(since "$t0")" 'BEGIN { printf "%.4f", q + s }')
    if [ -z "$lq_s" ] || [ "$(min "$lq_s" "$s")" != "$lq_s" ]; then
        lq_s=$s lq_cpu=$(awk '/^lq_quantize: /{ printf "%.2f", $4 }' "$W/lq.out")
    fi
done
ref=$(sf_expect "$W/lq.gguf" "$W/f32/m.F32.gguf")
check "our Q4_K_M (1 thread) is byte-identical to llama_model_quantize's from the merged F32 GGUF" \
    "$PY" "$CMP" "$W/t1/m.Q4_K_M.gguf" "$ref" --label "ours vs llama-quantize Q4_K_M"
check "the Q4_K_M of the timed export equals the one written beside gguf:f32" \
    cmp "$W/t1/m.Q4_K_M.gguf" "$W/f32/m.Q4_K_M.gguf"

# ---- thread and rank scaling (1 rank x 2 threads; mpirun 1 and 2 ranks x 1 thread)
best_of "$reps" "rm -rf '$W/t2'" q4 "$W/t2" 2
t2_s=$BEST t2_cpu=$BEST_CPU
best_of "$reps" "rm -rf '$W/r1'" q4 "$W/r1" 1 1
r1_s=$BEST r1_cpu=$BEST_CPU
best_of "$reps" "rm -rf '$W/r2'" q4 "$W/r2" 1 2
r2_s=$BEST r2_cpu=$BEST_CPU
for o in t2 r1 r2; do
    check "the Q4_K_M of $o equals the 1-thread one byte for byte" cmp "$W/$o/m.Q4_K_M.gguf" "$W/t1/m.Q4_K_M.gguf"
done

# ---- end to end: the Python chain with 2 threads vs 2 ranks x 1 thread (r2 above)
chain() {
    rm -rf "$W/chain"
    "$PY" "$SRC/tests/bench/numpy_merge.py" "$B" "$A" "$W/chain/merged"
    PYTHONPATH="$CONV/stub:$W/llama.cpp/gguf-py" PYTHONDONTWRITEBYTECODE=1 \
        SF_STUB_FINGERPRINT_VOCAB=$W/llama.cpp/models/ggml-vocab-llama-bpe.gguf \
        "$PY" "$CONV/stub/run_converter.py" "$W/llama.cpp/convert_hf_to_gguf.py" "$W/chain/merged" \
        --outtype f16 --outfile "$W/chain/f16.gguf"
    "$LQ" "$W/chain/f16.gguf" "$W/chain/q4.gguf" Q4_K_M --threads 2
}
best_of "$reps" "rm -rf '$W/chain'" chain
chain_s=$BEST chain_cpu=$BEST_CPU
check "the Python chain wrote its Q4_K_M GGUF" [ -s "$W/chain/q4.gguf" ]

# ---- quantizer kernels, 1 thread: quant_bench (byte identity with ggml first, then ours and ggml per type)
min_time=0.2
[ $smoke = 0 ] || min_time=0.001
check "quant_bench: byte-identical to ggml, then timed (best of $reps)" "$QB" \
    --benchmark_filter='^quantize/(Q[0-9]|IQ4|TQ|MXFP4)|^quantize_imatrix/IQ[123]' --benchmark_min_time=$min_time \
    --benchmark_repetitions="$reps" --benchmark_format=json --benchmark_out="$W/qb.json" >/dev/null 2>"$W/qb.err"
# qb.txt: TYPE<tab>ours M/s<tab>ggml M/s, the best repetition of each side, in the order of want_types
want_types="Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS TQ1_0 TQ2_0 MXFP4"
want_types="$want_types IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M"
"$PY" - "$W/qb.json" $want_types >"$W/qb.txt" <<'EOF'
import json, sys
best = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type", "iteration") != "iteration" or "error_occurred" in b:
        continue
    kind, t, side = b["run_name"].split("/")
    best[(t, kind, side)] = max(best.get((t, kind, side), 0.0), b["items_per_second"])
for t in sys.argv[2:]:
    for kind in ("quantize", "quantize_imatrix"):
        if (t, kind, "ours") in best and (t, kind, "ggml") in best:
            label = t + (" with imatrix" if kind == "quantize_imatrix" else "")
            print(f"{label}\t{best[(t, kind, 'ours')] / 1e6:.2f}\t{best[(t, kind, 'ggml')] / 1e6:.2f}")
EOF
missing=""
for t in $want_types; do grep -qE "^$t( with imatrix)?$(printf '\t')" "$W/qb.txt" || missing="$missing $t"; done
check "quant_bench measured every type (missing:${missing:- none})" [ -z "$missing" ]

# ---- the table
T=$W/table.txt
{
    echo "shardforge vs references: $(date -u '+%Y-%m-%d %H:%M UTC'), best of $reps, commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "command: $cmdline"
    echo "machine: $machine_start"
    echo "         (at the end: load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "model: shardforge demo ${demo_args[*]}: $n_params parameters, $in_bytes bytes of bf16 safetensors"
    echo "ratio = reference wall time / our wall time (kernels: our throughput / ggml's, per CPU second); > 1: shardforge"
    echo "is faster. cpu = user + system seconds of the processes (not the kernel's writeback), cpu_ratio = ref_cpu /"
    echo "ours_cpu (threads, ranks: the parallel run's CPU overhead). On a loaded machine the wall ratios move with the"
    echo "load (most where one side computes and the other copies); the CPU seconds much less"
    printf '%-62s %8s %8s %6s %8s %8s %9s\n' row ours ref ratio ours_cpu ref_cpu cpu_ratio
    row() {
        printf '%-62s %8s %8s %6s %8s %8s %9s\n' "$1" "$2" "$3" "$4" "${5:-}" "${6:-}" \
            "$([ -z "${5:-}" ] || awk -v a="$6" -v b="$5" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" |
            sed 's/ *$//'
    }
    row "copy: merge -> bf16 safetensors (1 rank) vs cp -r, s" "$st_s" "$cp_s" "$(ratio "$cp_s" "$st_s")" "$st_cpu" "$cp_cpu"
    row "per core: Q4_K_M export 1 thread vs llama-quantize 1 thread, s" "$t1_s" "$lq_s" "$(ratio "$lq_s" "$t1_s")" \
        "$t1_cpu" "$lq_cpu"
    row "end to end: 2 ranks merge+Q4_K_M vs numpy->convert->quantize, s" "$r2_s" "$chain_s" \
        "$(ratio "$chain_s" "$r2_s")" "$r2_cpu" "$chain_cpu"
    row "threads: Q4_K_M export 2 threads vs 1 thread (1 rank), s" "$t2_s" "$t1_s" "$(ratio "$t1_s" "$t2_s")" \
        "$t2_cpu" "$t1_cpu"
    row "ranks: Q4_K_M export 2 ranks vs 1 rank (mpirun, 1 thread), s" "$r2_s" "$r1_s" "$(ratio "$r1_s" "$r2_s")" \
        "$r2_cpu" "$r1_cpu"
    row "  rank efficiency (ratio / 2)" "" "" "$(ratio "$r1_s" "$(awk -v s="$r2_s" 'BEGIN { print 2 * s }')")"
    while IFS=$'\t' read -r t o g; do
        row "kernel $t, 1 thread, M weights/s" "$o" "$g" "$(ratio "$o" "$g")"
    done <"$W/qb.txt"
} >"$T"
cat "$T"
[ -z "$table_out" ] || cp "$T" "$table_out"
n_rows=$(grep -cE '^(copy|per core|end to end|threads|ranks|kernel)[: ]' "$T" || :)
check "the table has the 5 run rows and 22 kernel rows, 7 of them with an imatrix (got $n_rows)" \
    [ "$n_rows" -eq 27 ]
check "every ratio is a positive number" \
    awk '/^kernel / { if (!($NF + 0 > 0)) exit 1 } /^(copy|per core|end to end|threads|ranks):/ { if (!($(NF - 2) + 0 > 0)) exit 1 }' "$T"
finish
