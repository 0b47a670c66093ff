# !/usr/bin/env bash safety.symlinks.npN (docs/testing.md "Reliability"): symlinked inputs are read, never written
# through; the writer never writes through a symlink sitting at an output path in --out, neither at the final name (it
# renames its *.partial over it, replacing the link) nor at the *.partial name itself, and writes nothing outside --out.
set -uo pipefail
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$SHARDFORGE_BIN" demo "$work/demo" >/dev/null
base=$work/demo/base adapter=$work/demo/adapter

# Inputs as symlinks: a shard and the adapter weights live elsewhere (read-only), linked into the model dirs.
mkdir "$work/store"
mv "$base/model-00001-of-00002.safetensors" "$work/store/shard1.safetensors"
ln -s "$work/store/shard1.safetensors" "$base/model-00001-of-00002.safetensors"
mv "$adapter/adapter_model.safetensors" "$work/store/adapter.safetensors"
ln -s "$work/store/adapter.safetensors" "$adapter/adapter_model.safetensors"
chmod a-w "$work/store/shard1.safetensors" "$work/store/adapter.safetensors"
store_sum=$(cd "$work/store" && sha256sum *)

# The output dir holds symlinks at a final name and at a partial name, pointing at victim files outside --out.
out=$work/out
mkdir "$out" "$work/victims"
for v in final index partial copy; do echo "victim $v, must stay unchanged" >"$work/victims/$v"; done
victim_sum=$(cd "$work/victims" && sha256sum *)
ln -s "$work/victims/final" "$out/base.Q8_0.gguf"
ln -s "$work/victims/index" "$out/model.safetensors.index.json"
ln -s "$work/victims/partial" "$out/config.json.partial"
ln -s "$work/victims/copy" "$out/tokenizer.json.partial"
before=$(find "$work" -path "$out" -prune -o -type f ! -name log -print | sort | xargs sha256sum)

$SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$base" --adapter "$adapter" --out "$out" \
  --format safetensors,gguf:q8_0 --max-shard-size 2MB --overwrite >"$work/log" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "export with symlinked inputs / symlinks in --out failed ($rc): $(tail -3 "$work/log")"
[ "$(cd "$work/victims" && sha256sum *)" = "$victim_sum" ] ||
  fail "a symlink target outside --out was modified: $(cd "$work/victims" && head -c 80 final index partial copy | tr '\n' ' ')"
[ "$(cd "$work/store" && sha256sum *)" = "$store_sum" ] || fail "a symlinked input was modified"
after=$(find "$work" -path "$out" -prune -o -type f ! -name log -print | sort | xargs sha256sum)
[ "$before" = "$after" ] || fail "files outside --out changed: $(diff <(echo "$before") <(echo "$after") | head -5)"
if [ $rc -eq 0 ]; then
  [ -f "$out/base.Q8_0.gguf" ] && [ ! -L "$out/base.Q8_0.gguf" ] ||
    fail "final output is not a regular file replacing the symlink"
  [ -f "$out/config.json" ] && [ ! -L "$out/config.json" ] || fail "config.json missing or a symlink"
  left=$(find "$out" -name '*.partial' | head -3)
  [ -z "$left" ] || fail "partials left: $left"
  # Bytes equal an export from plain (non-symlinked) copies of the inputs.
  cp -rL "$work/demo" "$work/plain"
  "$SHARDFORGE_BIN" export --base "$work/plain/base" --adapter "$work/plain/adapter" --out "$work/ref" \
    --format safetensors,gguf:q8_0 --max-shard-size 2MB --name base >/dev/null 2>&1 || fail "reference export failed"
  (cd "$work/ref" && find . -type f | sort | xargs sha256sum) >"$work/ref.sum"
  (cd "$out" && sha256sum -c --quiet "$work/ref.sum") >/dev/null 2>&1 || fail "outputs differ from plain-input export"
fi
[ $fails -eq 0 ] || exit 1
echo "PASS: symlinks read, never written through (-np $SF_NP)"
