#!/usr/bin/env bash
# conformance.xet: our Xet chunking, hashes and serialisation (src/hub/xet.hpp, driven by the xet_hash test binary)
# against the official implementations (docs/xet.md "How it is tested"):
#  1. one upload session of files from 0 B to 64 MiB (random, a GGUF and a safetensors shard from `shardforge demo`,
#     runs of zeros, blocks repeated within and across files): chunk boundaries, chunk hashes, file hashes, xorb
#     hashes and term verification hashes equal xet-core's (the Wasm vendored in @huggingface/hub) with the
#     specification's minimum-chunk constant 8192, and @huggingface/xetchunk-wasm 0.2.0's with the JS client's 8128;
#  2. each file uploaded alone by @huggingface/hub's uploadFile to a recording loopback CAS: our shard equals the
#     one the client sent byte for byte (its footer timestamp given to us), and so does every xorb, where the client
#     stored every chunk uncompressed (incompressible files); for compressible files, where its LZ4 output is its own,
#     the header and the file-info section (terms, verification hashes, SHA-256) are equal and so are the xorb hashes.
# Self-test (SF_SELFTEST_WRONG=1): our chunks computed with the JS constant must not pass as xet-core's.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${XET_HASH_BIN:?}" "${SHARDFORGE_BIN:?}"
here=$SHARDFORGE_SOURCE_DIR/tests/conformance/xet
conf=$SHARDFORGE_SOURCE_DIR/tests/conformance
check "node is installed" command -v node
check "@huggingface/hub is installed in tests/conformance" [ -d "$conf/node_modules/@huggingface/hub/src/vendor/xet-chunk" ]
check "@huggingface/xetchunk-wasm is installed in tests/conformance" [ -d "$conf/node_modules/@huggingface/xetchunk-wasm" ]
w=$(mktemp -d)
on_exit "rm -rf '$w'"

# Deterministic pseudo-random bytes: rand NAME SEED SIZE.
rand() { /usr/bin/python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' "$2" "$3" >"$w/$1"; }
: >"$w/empty"
rand one 1 1
rand k64 2 65536
rand m8 3 8388608
rand m64 4 $((64 * 1024 * 1024 + 12345))   # more than one xorb's 64 MiB of records
# Repeats: a 1 MiB block of m8 three times (in-file and cross-file dedup), then 1 MiB of fresh bytes.
head -c 1048576 "$w/m8" >"$w/blk"
rand fresh 5 1048576
cat "$w/blk" "$w/blk" "$w/blk" "$w/fresh" >"$w/dup"
head -c 3000000 /dev/zero >"$w/zeros"
"$SHARDFORGE_BIN" demo "$w/d" >/dev/null
"$SHARDFORGE_BIN" export --base "$w/d/base" --out "$w/o" --format gguf:q8_0 --name demo >/dev/null
gguf=$(ls "$w"/o/*.gguf | head -1)
st=$(ls "$w"/d/base/*.safetensors | head -1)
random_files=("$w/empty" "$w/one" "$w/k64" "$w/m8" "$w/dup" "$w/m64")
other_files=("$gguf" "$st" "$w/zeros")
all=("${random_files[@]}" "${other_files[@]}")
check "a GGUF and a safetensors shard were exported" test -s "$gguf" -a -s "$st"

# 1. One session, both oracles.
"$XET_HASH_BIN" --min-test 8192 "${all[@]}" >"$w/spec.json"
"$XET_HASH_BIN" --min-test 8128 "${all[@]}" >"$w/js.json"
if sf_wrong; then sed 's/"min_test":8128/"min_test":8192/' "$w/js.json" >"$w/spec.json"; fi
check "xet-core (Wasm in @huggingface/hub), MIN 8192: every file's chunks, chunk/file/xorb/verification hashes equal" \
  node "$here/compare.mjs" xet-core "$w/spec.json"
check "@huggingface/xetchunk-wasm 0.2.0, MIN 8128: every file's chunks, chunk/file/xorb/verification hashes equal" \
  node "$here/compare.mjs" xetchunk "$w/js.json"
for k in spec js; do
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][5]["chunks"])' "$w/$k.json" >"$w/$k.m64"
done
check "the two constants chunk the 64 MiB file differently (the test can tell them apart)" \
  sh -c '! cmp -s "$1" "$2"' _ "$w/spec.m64" "$w/js.m64"

# 2. The official client's uploads, file by file.
check "@huggingface/hub uploadFile uploads every file to the recording CAS" node "$here/js_upload.mjs" "$w/up" "${all[@]}"
u64_at() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
same_names() { diff <(ls "$1") <(ls "$2") >/dev/null; }
same_xorbs() { local x; for x in $(ls "$1"); do cmp -s "$1/$x" "$2/$x" || return 1; done; }
for i in "${!all[@]}"; do
  f=${all[$i]}
  name=${f#"$w"/}
  theirs=$w/up/$i
  ours=$w/ours/$i
  mkdir -p "$ours/xorbs"
  n=$(stat -c %s "$theirs/shard")
  ts=$(u64_at "$theirs/shard" $((n - 200 + 104)))
  "$XET_HASH_BIN" --min-test 8128 --xorb-dir "$ours/xorbs" --shard "$ours/shard" --footer-timestamp "$ts" "$f" >/dev/null
  check "$name: the client sent one shard with the 200-byte footer" test "$(u64_at "$theirs/shard" 40)" = 200 -a ! -e "$theirs/shard1"
  check "$name: our xorbs are the client's (same hashes)" same_names "$theirs/xorbs" "$ours/xorbs"
  if [ "$i" -lt "${#random_files[@]}" ]; then
    check "$name: our shard equals the client's byte for byte" cmp "$theirs/shard" "$ours/shard"
    check "$name: every xorb equals the client's byte for byte" same_xorbs "$theirs/xorbs" "$ours/xorbs"
  else
    cas=$(u64_at "$theirs/shard" $((n - 200 + 16)))
    check "$name: shard header and file-info section (${cas} bytes) equal the client's" \
      cmp -n "$cas" "$theirs/shard" "$ours/shard"
  fi
done
check "the 64 MiB file took two xorbs" [ "$(ls "$w/up/5/xorbs" | wc -l)" = 2 ]
finish
