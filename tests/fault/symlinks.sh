#!/usr/bin/env bash
# safety.symlinks.npN: symlinked inputs are read, never written through; the writer never writes through a symlink
# sitting at an output path in --out, neither at the final name (it renames its *.partial over it, replacing the
# link) nor at the *.partial name itself, and writes nothing outside --out.
# Self-test (SF_SELFTEST_WRONG=1): the victim files are expected to have changed.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
: "${SHARDFORGE_BIN:?}" "${SF_NP:?}" "${SF_MPIRUN:?}"
work=$(mktemp -d)
on_exit "chmod -R u+w '$work'; rm -rf '$work'"
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

try $SF_MPIRUN -np "$SF_NP" "$SHARDFORGE_BIN" export --base "$base" --adapter "$adapter" --out "$out" \
  --format safetensors,gguf:q8_0 --max-shard-size 2MB --overwrite >"$work/log" 2>&1
rc=$RC
check "export with symlinked inputs / symlinks in --out exits 0 (got $rc: $(tail -3 "$work/log"))" [ $rc -eq 0 ]
sf_wrong && victim_sum="$victim_sum changed"
check "no symlink target outside --out was modified" [ "$(cd "$work/victims" && sha256sum *)" = "$victim_sum" ]
check "no symlinked input was modified" [ "$(cd "$work/store" && sha256sum *)" = "$store_sum" ]
after=$(find "$work" -path "$out" -prune -o -type f ! -name log -print | sort | xargs sha256sum)
check "no file outside --out changed" [ "$before" = "$after" ]
regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
check "the final output is a regular file replacing the symlink" regular "$out/base.Q8_0.gguf"
check "config.json is a regular file" regular "$out/config.json"
check "no partial left" [ -z "$(find "$out" -name '*.partial')" ]
# Bytes equal an export from plain (non-symlinked) copies of the inputs.
cp -rL "$work/demo" "$work/plain"
"$SHARDFORGE_BIN" export --base "$work/plain/base" --adapter "$work/plain/adapter" --out "$work/ref" \
  --format safetensors,gguf:q8_0 --max-shard-size 2MB --name base >/dev/null 2>&1
(cd "$work/ref" && find . -type f | sort | xargs sha256sum) >"$work/ref.sum"
check "the outputs equal an export of plain copies of the inputs" sh -c "cd '$out' && sha256sum -c --quiet '$work/ref.sum' >/dev/null 2>&1"
finish
