#!/usr/bin/env bash
# engine.moe_one_read.npN: several outputs of a MoE model from one read of its inputs, with the same bytes.
# For each ARCH, `shardforge demo --arch ARCH` with its LoRA:
#  - safetensors,gguf:q8_0,gguf:q4_k_m exported together on SF_NP ranks (2 threads, 64 KB row blocks: the stacked
#    expert tensors split, so the experts' own safetensors tensors are written in pieces) gives files byte-identical
#    to exporting each format alone on 1 rank; likewise bnb-nf4,gguf:q8_0 against bnb-nf4 alone (a bnb tensor is
#    quantized whole, inside the stacked item that reads its expert);
#  - for the families whose experts are per-expert 2-D tensors (ONE_READ), the planned reads of the combined export
#    (--dry-run) and the bytes the run really read from the base files (`shardforge run` of a one-variant job, its
#    `done` line) both equal the base's tensor bytes, counted from the safetensors headers.
# Self-test (SF_SELFTEST_WRONG=1): the combined export uses adapter weight 0.5: the first comparison must fail.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_MPIRUN:?}" "${SF_NP:?}"
ARCHS=${SF_ARCHS:-qwen3moe qwen2moe mixtral glm4moe deepseek2 qwen35moe gpt-oss}
ONE_READ=" qwen3moe qwen2moe mixtral glm4moe "
work=$(mktemp -d)
on_exit "rm -rf '$work'"
quiet() { "$@" >/dev/null 2>&1; }
sums() { (cd "$1" && find . -type f -name '*.gguf' -o -type f -name '*.safetensors' | sort | xargs sha256sum); }
tensor_bytes() {
  /usr/bin/python3 - "$1" <<'EOF'
import glob, json, os, struct, sys
size = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
    with open(f, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        size += sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in json.loads(fh.read(n)).items()
                    if k != "__metadata__")
print(size)
EOF
}
for arch in $ARCHS; do
  d=$work/$arch
  check "$arch: demo" quiet "$SHARDFORGE_BIN" demo "$d" --arch "$arch"
  ad=$d/adapter
  for f in safetensors gguf:q8_0 gguf:q4_k_m bnb-nf4; do
    check "$arch: $f alone" quiet "$SHARDFORGE_BIN" export --base "$d/base" --adapter "$ad" --format "$f" \
      --threads 1 --out "$d/alone.$f"
    sums "$d/alone.$f" >"$d/alone.$f.sum"
  done
  for formats in safetensors,gguf:q8_0,gguf:q4_k_m bnb-nf4,gguf:q8_0; do
    # gpt-oss: its fused experts have no bnb output (3-D, not Linear weights)
    [ "$arch" != gpt-oss ] || [ "$formats" != bnb-nf4,gguf:q8_0 ] || continue
    check "$arch: $formats together on $SF_NP rank(s), 64 KB row blocks" quiet $SF_MPIRUN -np "$SF_NP" \
      "$SHARDFORGE_BIN" export --base "$d/base" --adapter "$(sf_expect "$ad" "$ad:0.5")" --format "$formats" \
      --threads 2 --block-size 64KB --out "$d/together.$formats"
    sums "$d/together.$formats" | sort >"$d/together.sum"
    for f in ${formats//,/ }; do cat "$d/alone.$f.sum"; done | sort >"$d/alone.sum"
    check "$arch: $formats together: the files of each format exported alone ($(wc -l <"$d/alone.sum"))" \
      diff "$d/alone.sum" "$d/together.sum"
  done
  case $ONE_READ in *" $arch "*) ;; *) continue ;; esac
  bytes=$(tensor_bytes "$d/base")
  planned=$("$SHARDFORGE_BIN" export --base "$d/base" --adapter "$ad" --format safetensors,gguf:q8_0,gguf:q4_k_m \
            --out "$d/dry" --dry-run | sed -n 's/^  planned reads, all ranks: \([0-9]*\) bytes.*/\1/p')
  check "$arch: planned reads (${planned} B) equal the base's tensor bytes (${bytes} B)" [ "${planned:-0}" -eq "$bytes" ]
  printf 'base = "base"\nout = "job"\n[[variant]]\nname = "m"\nadapter = "adapter"\nformats = ["safetensors", "gguf:q8_0", "gguf:q4_k_m"]\n' \
    >"$d/job.toml"
  rm -rf "$d/job"
  line=$($SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" run "$d/job.toml" --threads 1 2>&1 | grep '^done:' || :)
  read_in=$(sed -n 's/.*(input files \([0-9]*\) bytes, base files hold.*/\1/p' <<<"$line")
  check "$arch: measured reads on $SF_NP rank(s) (${read_in} B) equal the base's tensor bytes (${bytes} B)" \
    [ "${read_in:-0}" -eq "$bytes" ]
done
finish
