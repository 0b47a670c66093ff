// Conformance: @huggingface/gguf (an independent GGUF parser) reads the files shardforge writes.
//   node gguf_parse.mjs DIR      (DIR holds the output of gguf_sample_writer, incl. expectations.json)
// Checks per file: every key present with the intended type/subType and value; llama.cpp's required types for known
// keys (llama.cpp's src/llama-model-loader.cpp, tools/gguf-split/gguf-split.cpp) as a table of its own; tensor names,
// ne, ggml types; offsets recomputed here from ne and block sizes (running sum of sizes padded to 32) and the data
// offset aligned to 32; and the split set through ggufAllShards.
import { gguf, ggufAllShards, GGUFValueType } from "@huggingface/gguf";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node gguf_parse.mjs DIR");
  process.exit(2);
}
const expect = JSON.parse(readFileSync(path.join(dir, "expectations.json"), "utf8"));

// llama.cpp's src/llama-model-loader.cpp, tools/gguf-split/gguf-split.cpp: types llama.cpp insists on (independent of
// the C++ side).
const SPEC_TYPES = {
  "general.architecture": "STRING", "general.type": "STRING", "general.name": "STRING",
  "general.file_type": "UINT32", "general.quantization_version": "UINT32",
  "llama.context_length": "UINT32", "llama.embedding_length": "UINT32", "llama.block_count": "UINT32",
  "llama.feed_forward_length": "UINT32", "llama.attention.head_count": "UINT32",
  "llama.rope.dimension_count": "UINT32", "llama.vocab_size": "UINT32",
  "llama.attention.layer_norm_rms_epsilon": "FLOAT32", "llama.rope.freq_base": "FLOAT32",
  "llama.attention.causal": "BOOL",
  "tokenizer.ggml.model": "STRING", "tokenizer.ggml.pre": "STRING", "tokenizer.chat_template": "STRING",
  "tokenizer.ggml.bos_token_id": "UINT32", "tokenizer.ggml.eos_token_id": "UINT32",
  "tokenizer.ggml.add_bos_token": "BOOL", "tokenizer.ggml.add_eos_token": "BOOL",
  "split.no": "UINT16", "split.count": "UINT16", "split.tensors.count": "INT32",
};
const SPEC_ARRAYS = {
  "tokenizer.ggml.tokens": "STRING", "tokenizer.ggml.token_type": "INT32", "tokenizer.ggml.scores": "FLOAT32",
  "tokenizer.ggml.merges": "STRING",
};
// ggml type id -> [block elements, block bytes] (llama.cpp's ggml/include/ggml.h), only the ones the samples use.
const BLOCKS = { 0: [1, 4], 1: [1, 2], 8: [32, 34], 12: [256, 144], 14: [256, 210], 30: [1, 2] };
const pad = (x, n) => ((x + n - 1n) / n) * n;

function sameValue(got, want, type, key) {
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), `${key}: expected an array`);
    assert.equal(got.length, want.length, `${key}: array length`);
    want.forEach((w, i) => sameValue(got[i], w, type, `${key}[${i}]`));
  } else if (typeof got === "bigint") {
    assert.equal(got, BigInt(want), `${key}: value`);
  } else {
    assert.equal(got, want, `${key}: value`);
  }
}

let checks = 0;
for (const f of expect.files) {
  const file = path.join(dir, f.file);
  const out = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const md = out.typedMetadata;
  assert.equal(out.littleEndian, true, `${f.file}: little endian`);
  assert.equal(md.version.value, 3, `${f.file}: version`);
  assert.equal(md.kv_count.value, BigInt(Object.keys(f.kv).length), `${f.file}: kv_count`);
  for (const [key, e] of Object.entries(f.kv)) {
    const got = md[key];
    assert.ok(got, `${f.file}: key ${key} missing`);
    assert.equal(GGUFValueType[got.type], e.type, `${f.file}: ${key} type`);
    if (e.subType) assert.equal(GGUFValueType[got.subType], e.subType, `${f.file}: ${key} subType`);
    if (SPEC_TYPES[key]) assert.equal(GGUFValueType[got.type], SPEC_TYPES[key], `${f.file}: ${key} spec type`);
    if (SPEC_ARRAYS[key]) {
      assert.equal(GGUFValueType[got.type], "ARRAY", `${f.file}: ${key} spec type`);
      assert.equal(GGUFValueType[got.subType], SPEC_ARRAYS[key], `${f.file}: ${key} spec element type`);
    }
    sameValue(got.value, e.value, e.type, `${f.file}: ${key}`);
    checks++;
  }
  assert.equal(out.tensorInfos.length, f.tensors.length, `${f.file}: tensor count`);
  assert.equal(out.tensorDataOffset % 32n, 0n, `${f.file}: data offset aligned`);
  let offset = 0n;
  f.tensors.forEach((t, i) => {
    const ti = out.tensorInfos[i];
    assert.equal(ti.name, t.name, `${f.file}: tensor ${i} name`);
    // The C writer's n_dims is ggml_n_dims: trailing 1s dropped, at least one dimension (llama.cpp's
    // ggml/src/gguf.cpp).
    const ne = [...t.ne];
    while (ne.length > 1 && ne[ne.length - 1] === 1) ne.pop();
    assert.deepEqual(ti.shape.map(Number), ne, `${f.file}: ${t.name} ne`);
    assert.equal(ti.n_dims, ne.length, `${f.file}: ${t.name} n_dims`);
    assert.equal(Number(ti.dtype), t.type, `${f.file}: ${t.name} type`);
    assert.equal(ti.offset, offset, `${f.file}: ${t.name} offset`);
    const [be, bb] = BLOCKS[t.type];
    let nbytes = (BigInt(t.ne[0]) / BigInt(be)) * BigInt(bb);
    for (const d of t.ne.slice(1)) nbytes *= BigInt(d);
    offset += pad(nbytes, 32n);
    checks++;
  });
  // The writer pads after the last tensor too: the file ends exactly at the padded end of the data.
  assert.equal(BigInt(statSync(file).size), out.tensorDataOffset + offset, `${f.file}: file size`);
}

const all = await ggufAllShards(path.join(dir, expect.split_first), { allowLocalFile: true });
assert.equal(all.shards.length, expect.split_count, "split: shard count");
const names = all.shards.flatMap((s) => s.tensorInfos.map((t) => t.name));
assert.equal(names.length, expect.split_total_tensors, "split: total tensors");
assert.equal(new Set(names).size, names.length, "split: unique tensor names");
all.shards.forEach((s, i) => {
  assert.equal(Number(s.metadata["split.no"]), i, `split: shard ${i} split.no`);
  assert.equal(Number(s.metadata["split.count"]), expect.split_count, `split: shard ${i} split.count`);
  assert.equal(Number(s.metadata["split.tensors.count"]), expect.split_total_tensors, `split: shard ${i} total`);
  // only shard 0 carries the model metadata
  assert.equal(s.metadata["general.architecture"] !== undefined, i === 0, `split: shard ${i} metadata`);
});
console.log(`gguf_parse: ${expect.files.length} files, ${checks} checks passed`);
