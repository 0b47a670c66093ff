#!/usr/bin/env bash
# batch.job.npN: `shardforge run JOB.toml` with 3 adapters x 2 formats (plus a stacked, weighted variant) on N ranks
#  - reads every base tensor exactly once: the run's count of bytes read from the input files equals the sum of the
#    base tensors' sizes taken from the safetensors headers (by an independent python reader), not 4x that;
#  - writes exactly the bytes of separate `shardforge export` runs (one per variant and format, 1 rank);
#  - no *.partial files are left.
# Self-test (SF_SELFTEST_WRONG=1): the separate export of r8 runs without the variant's weight 0.5, so the byte
# comparison must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
PY=/usr/bin/python3
work=$(mktemp -d)
on_exit "rm -rf '$work'"
for r in 4 8 16; do "$SHARDFORGE_BIN" demo "$work/d$r" --lora-rank $r --lora-alpha $((3 * r)) >/dev/null; done
# The demo base does not depend on the LoRA settings: one base, three adapters.
for f in "$work"/d4/base/*.safetensors; do
  check "the demo bases of rank 4 and 16 have the same $(basename "$f")" cmp -s "$f" "$work/d16/base/$(basename "$f")"
done
mkdir -p "$work/jobs"
cat > "$work/jobs/job.toml" <<TOML
base = "../d4/base"
out = "../batch"
formats = ["safetensors", "gguf:q4_k_m"]
threads = 2

[[variant]]
name = "r4"
adapter = "../d4/adapter"

[[variant]]
name = "r8"
adapter = "../d8/adapter"
weight = 0.5

[[variant]]
name = "r16"
adapter = "$work/d16/adapter"

[[variant]]
name = "stacked"
adapters = ["../d4/adapter", { path = "../d8/adapter", weight = 0.25 }]
formats = ["safetensors"]
dtype = "f16"
TOML
try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" run "$work/jobs/job.toml" >"$work/run.log" 2>&1
check "the batch job runs on $SF_NP rank(s) (exit $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$work/run.log"
read_bytes=$(sed -n 's/.*(input files \([0-9]*\) bytes.*/\1/p' "$work/run.log")
tensor_bytes=$($PY - "$work/d4/base" <<'PY'
import json, os, struct, sys
total = 0
for f in sorted(os.listdir(sys.argv[1])):
    if f.endswith(".safetensors"):
        with open(os.path.join(sys.argv[1], f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            h = json.loads(fh.read(n))
        total += sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items() if k != "__metadata__")
print(total)
PY
)
check "the base is read exactly once (read ${read_bytes:-?} bytes, its tensors hold $tensor_bytes)" \
  [ "${read_bytes:-0}" -eq "$tensor_bytes" ]

# The same outputs from separate exports (one per variant and format).
sep() {  # name format out-subdir adapter-args... [-- extra args]
  local name=$1 fmt=$2 sub=$3; shift 3
  "$SHARDFORGE_BIN" export --base "$work/d4/base" "$@" --format "$fmt" --name "$name" --out "$work/sep/$sub" \
    --threads 1 --overwrite >/dev/null
}
sep r4 safetensors r4 --adapter "$work/d4/adapter"
sep r4 gguf:q4_k_m r4 --adapter "$work/d4/adapter"
sep r8 safetensors r8 --adapter "$(sf_expect "$work/d8/adapter:0.5" "$work/d8/adapter")"
sep r8 gguf:q4_k_m r8 --adapter "$work/d8/adapter:0.5"
sep r16 safetensors r16 --adapter "$work/d16/adapter"
sep r16 gguf:q4_k_m r16 --adapter "$work/d16/adapter"
sep stacked safetensors stacked --adapter "$work/d4/adapter" --adapter "$work/d8/adapter:0.25" --dtype f16
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
sums "$work/sep" >"$work/sep.sum"
sums "$work/batch" >"$work/batch.sum"
n=$(grep -c -e '\.gguf$' -e 'model.safetensors$' "$work/sep.sum" || :)
check "7 model files from the separate runs (got $n)" [ "$n" -eq 7 ]
check "the batch outputs are byte-identical to the separate exports" diff "$work/sep.sum" "$work/batch.sum"
# The variants really differ (the sweep is not one model written several times).
model_sum() { awk -v f="./$1/model.safetensors" '$2 == f {print $1}' "$work/batch.sum"; }
check "variants r4 and r8 write different models" [ "$(model_sum r4)" != "$(model_sum r8)" ]
check "no partial files are left" [ -z "$(find "$work/batch" -name '*.partial')" ]
finish
