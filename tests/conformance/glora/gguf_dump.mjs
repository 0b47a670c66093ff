// Dumps what @huggingface/gguf (an independent parser) reads from a GGUF file, as one JSON object:
//   node gguf_dump.mjs FILE  ->  {"kv": {key: {"type": "STRING", "value": ...}}, "data_offset": N,
//                                 "tensors": [{"name", "ne": [...], "type": ggml id, "offset": absolute}]}
// Used by the gguf-lora test (check.py checks keys, types, names, shapes and the tensor bytes).
import { gguf, GGUFValueType } from "@huggingface/gguf";

const file = process.argv[2];
if (!file) {
  console.error("usage: node gguf_dump.mjs FILE");
  process.exit(2);
}
const out = await gguf(file, { allowLocalFile: true, typedMetadata: true });
const kv = {};
for (const [k, v] of Object.entries(out.typedMetadata)) {
  if (k === "version" || k === "tensor_count" || k === "kv_count") continue;
  const value = typeof v.value === "bigint" ? Number(v.value) : v.value;
  kv[k] = { type: GGUFValueType[v.type], value };
  if (v.subType !== undefined) kv[k].subType = GGUFValueType[v.subType];
}
const tensors = out.tensorInfos.map((t) => ({
  name: t.name,
  ne: t.shape.map((x) => Number(x)),
  type: t.dtype,
  offset: Number(out.tensorDataOffset + t.offset),
}));
process.stdout.write(JSON.stringify({ kv, data_offset: Number(out.tensorDataOffset), tensors }) + "\n");
