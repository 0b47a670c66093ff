#!/usr/bin/env bash
# batch.quantized_bases.npN: `shardforge run JOB.toml` on quantized bases goes through the same unit pipeline as
# `export` (docs/engine.md): a bitsandbytes NF4 double-quant base and an FP8 block-scaled base (made by
# tests/reference/quant_ref.py from a small demo model), three variants each (a plain LoRA, the same as rsLoRA, the
# same as DoRA), every variant written as safetensors, gguf:q4_k_m and gguf-lora (not DoRA: llama.cpp has no DoRA
# adapter) plus a second variant per adapter written as bnb-nf4 (its file names clash with safetensors'). On N ranks:
#  - every file the batch writes is byte-identical to a separate 1-rank `export` of that variant, and the separate
#    exports write no file the batch lacks (but bnb_requant.tsv, export's re-quantization report);
#  - the three adapters give three different models (the variants are not one model written thrice);
#  - the base is read once: the run's count of input bytes read is at most the tensor bytes of the base files and
#    the two adapters gguf-lora converts (reading the base once per variant would be about 3x as much);
#  - no *.partial file is left.
# Self-test (batch.quantized_bases.selftest, SF_SELFTEST_WRONG=1): the separate export of the rsLoRA variant uses
# the plain adapter, so the byte comparison must fail (tests/lib/harness.sh).
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
PY=/usr/bin/python3
REF="$SHARDFORGE_SOURCE_DIR/tests/reference"
work=$(mktemp -d)
on_exit "rm -rf '$work'"

"$SHARDFORGE_BIN" demo "$work/demo" --layers 1 --hidden 256 --heads 8 --kv-heads 2 --intermediate 320 \
  --vocab 640 >/dev/null
ad="$work/adapters"
mkdir -p "$ad/rslora"
cp -r "$work/demo/adapter" "$ad/plain"
cp "$work/demo/adapter/"* "$ad/rslora/"
$PY -c 'import json, sys; p = sys.argv[1]; c = json.load(open(p)); c["use_rslora"] = True; json.dump(c, open(p, "w"))' \
  "$ad/rslora/adapter_config.json"
$PY "$SHARDFORGE_SOURCE_DIR/tests/mpi/make_dora.py" "$ad/plain" "$ad/dora"

# Bytes of the tensors in a model directory's safetensors files (read by python, not by shardforge).
tensor_bytes() {
  $PY - "$1" <<'PY'
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
}
sums() { (cd "$1" && find . -type f ! -name bnb_requant.tsv | sort | xargs sha256sum); }
read_once() { [ -n "$1" ] && [ "$1" -le "$2" ]; }
differs() { [ "$(awk -v f="$2" '$2 == f {print $1}' "$1")" != "$(awk -v f="$3" '$2 == f {print $1}' "$1")" ]; }

layouts=(nf4dq fp8block); sf_wrong && layouts=(nf4dq)
for layout in "${layouts[@]}"; do
  base="$work/q_$layout"
  $PY "$REF/quant_ref.py" make "$layout" "$work/demo/base" "$base"
  mkdir -p "$work/jobs"
  cat > "$work/jobs/$layout.toml" <<TOML
base = "../q_$layout"
out = "../batch_$layout"
formats = ["safetensors", "gguf:q4_k_m", "gguf-lora"]
threads = 2

[[variant]]
name = "plain"
adapter = "../adapters/plain"

[[variant]]
name = "rslora"
adapter = "../adapters/rslora"

[[variant]]
name = "dora"
adapter = "../adapters/dora"
formats = ["safetensors", "gguf:q4_k_m"]

[[variant]]
name = "plain-bnb"
adapter = "../adapters/plain"
formats = ["bnb-nf4"]

[[variant]]
name = "rslora-bnb"
adapter = "../adapters/rslora"
formats = ["bnb-nf4"]

[[variant]]
name = "dora-bnb"
adapter = "../adapters/dora"
formats = ["bnb-nf4"]
TOML
  log="$work/batch_$layout.log"
  rc=0; $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" run "$work/jobs/$layout.toml" >"$log" 2>&1 || rc=$?
  check "$layout: the batch job runs on $SF_NP rank(s) (exit $rc)" [ $rc -eq 0 ]
  [ $rc -eq 0 ] || { cat "$log"; continue; }

  # The same variants as separate exports (1 rank).
  sep="$work/sep_$layout"
  for v in plain rslora dora; do
    fmt=safetensors,gguf:q4_k_m,gguf-lora; [ $v = dora ] && fmt=safetensors,gguf:q4_k_m
    adapter="$ad/$v"; [ $v = rslora ] && adapter=$(sf_expect "$ad/rslora" "$ad/plain")
    for kind in "" -bnb; do
      [ "$kind" = -bnb ] && f=bnb-nf4 || f=$fmt
      rc=0; "$SHARDFORGE_BIN" export --base "$base" --adapter "$adapter" --format "$f" --name "$v$kind" \
        --out "$sep/$v$kind" --threads 1 >"$sep.$v$kind.log" 2>&1 || rc=$?
      check "$layout: separate export of $v$kind (exit $rc)" [ $rc -eq 0 ]
      [ $rc -eq 0 ] || cat "$sep.$v$kind.log"
    done
  done
  sums "$sep" >"$sep.sum"
  sums "$work/batch_$layout" >"$work/batch_$layout.sum"
  n=$(grep -c -e '\.gguf$' -e '\.safetensors$' "$sep.sum" || true)
  check "$layout: 11 model files from the separate exports (got $n)" [ "$n" -eq 11 ]
  check "$layout: every batch file is byte-identical to the separate exports'" diff "$sep.sum" "$work/batch_$layout.sum"
  check "$layout: plain and rsLoRA give different models" differs "$sep.sum" ./plain/model.safetensors ./rslora/model.safetensors
  check "$layout: plain and DoRA give different models" differs "$sep.sum" ./plain/model.safetensors ./dora/model.safetensors
  check "$layout: plain and rsLoRA give different bnb-nf4 models" \
    differs "$sep.sum" ./plain-bnb/model.safetensors ./rslora-bnb/model.safetensors
  read_bytes=$(sed -n 's/.*(input files \([0-9]*\) bytes.*/\1/p' "$log")
  # Input files: the base, and the two adapters the gguf-lora outputs convert (plain, rsLoRA).
  held=$(( $(tensor_bytes "$base") + $(tensor_bytes "$ad/plain") + $(tensor_bytes "$ad/rslora") ))
  check "$layout: the base is read once (${read_bytes:-?} input bytes read, base and adapters hold $held)" \
    read_once "$read_bytes" "$held"
  check "$layout: no partial files are left" [ -z "$(find "$work/batch_$layout" -name '*.partial')" ]
done
finish
