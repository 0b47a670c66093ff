// Every GGUF file shardforge exported into DIR is parsed by @huggingface/gguf (an independent parser): llama.cpp's key
// types (llama.cpp's src/llama-model-loader.cpp, tools/gguf-split/gguf-split.cpp, convert_lora_to_gguf.py), a padded
// running offset per tensor, the file ending at the padded data end, and split sets read whole by ggufAllShards.   node
// parse_exports.mjs DIR
import { gguf, ggufAllShards, GGUFValueType } from "@huggingface/gguf";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";

const SPEC = {
  "general.architecture": "STRING", "general.type": "STRING", "general.name": "STRING",
  "general.file_type": "UINT32", "general.quantization_version": "UINT32",
  "tokenizer.ggml.model": "STRING", "tokenizer.ggml.pre": "STRING", "tokenizer.chat_template": "STRING",
  "tokenizer.ggml.bos_token_id": "UINT32", "tokenizer.ggml.eos_token_id": "UINT32",
  "tokenizer.ggml.add_bos_token": "BOOL", "tokenizer.ggml.add_eos_token": "BOOL",
  "split.no": "UINT16", "split.count": "UINT16", "split.tensors.count": "INT32", "adapter.type": "STRING",
  "adapter.lora.alpha": "FLOAT32",
};
const ARCH_U32 = ["context_length", "embedding_length", "block_count", "feed_forward_length",
  "attention.head_count", "attention.head_count_kv", "rope.dimension_count", "vocab_size", "expert_count",
  "expert_used_count"];
const ARCH_F32 = ["attention.layer_norm_rms_epsilon", "rope.freq_base"];
// ggml type id -> [block elements, block bytes] (llama.cpp's ggml/include/ggml.h)
const BLOCKS = { 0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34],
  10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 16: [256, 66], 17: [256, 74],
  18: [256, 98], 19: [256, 50], 20: [32, 18], 21: [256, 110], 22: [256, 82], 23: [256, 136], 29: [256, 56],
  30: [1, 2], 34: [256, 54], 35: [256, 66], 39: [32, 17] };
const pad = (x) => ((x + 31n) / 32n) * 32n;

const dir = process.argv[2];
const files = readdirSync(dir).filter((f) => f.endsWith(".gguf")).sort();
assert.ok(files.length > 0, "no GGUF files");
let checks = 0;
for (const f of files) {
  const file = path.join(dir, f);
  const out = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const md = out.typedMetadata;
  assert.equal(md.version.value, 3, `${f}: version`);
  const arch = md["general.architecture"]?.value;
  for (const [key, v] of Object.entries(md)) {
    if (["version", "tensor_count", "kv_count"].includes(key)) continue;
    const type = GGUFValueType[v.type];
    if (SPEC[key]) assert.equal(type, SPEC[key], `${f}: ${key} has type ${type}, spec says ${SPEC[key]}`);
    if (arch && ARCH_U32.some((k) => key === `${arch}.${k}`)) assert.equal(type, "UINT32", `${f}: ${key}`);
    if (arch && ARCH_F32.some((k) => key === `${arch}.${k}`)) assert.equal(type, "FLOAT32", `${f}: ${key}`);
    checks++;
  }
  assert.equal(Number(md.tensor_count.value), out.tensorInfos.length, `${f}: tensor count`);
  let offset = 0n;
  for (const t of out.tensorInfos) {
    assert.equal(t.offset, offset, `${f}: ${t.name} offset`);
    const [be, bb] = BLOCKS[Number(t.dtype)] ?? assert.fail(`${f}: ${t.name} unknown type ${t.dtype}`);
    assert.equal(Number(t.shape[0]) % be, 0, `${f}: ${t.name} row not a whole number of blocks`);
    let n = (BigInt(t.shape[0]) / BigInt(be)) * BigInt(bb);
    for (const d of t.shape.slice(1)) n *= BigInt(d);
    offset += pad(n);
    checks++;
  }
  assert.equal(BigInt(statSync(file).size), out.tensorDataOffset + offset, `${f}: file size`);
  if (/-00001-of-\d{5}\.gguf$/.test(f)) {
    const all = await ggufAllShards(file, { allowLocalFile: true });
    const names = all.shards.flatMap((s) => s.tensorInfos.map((t) => t.name));
    assert.equal(new Set(names).size, names.length, `${f}: duplicate names across shards`);
    assert.equal(names.length, Number(all.shards[0].metadata["split.tensors.count"]), `${f}: split total`);
    checks++;
  }
}
console.log(`parse_exports: ${files.length} files, ${checks} checks passed`);
