// Independent reference tokenization for the TOKENIZATION acceptance test: tokenizes strings with Hugging Face's
// own JS tokenizer (@huggingface/tokenizers, a pure-JS port of the Rust `tokenizers` crate: no network, loads a
// local tokenizer.json + tokenizer_config.json) and prints the token ids, to compare with what llama.cpp
// (node-llama-cpp) produces from the GGUF that shardforge wrote for the same model directory.
//
// usage: node tokenize_ref.mjs <model_dir> [--no-special] <text>...      (or texts as a JSON array on stdin)
// output: one JSON object per line: {"text": "...", "ids": [...], "tokens": [...]}
//   --no-special   encode without the post-processor's BOS/EOS (add_special_tokens=false)
// Needs @huggingface/tokenizers (npm, zero dependencies) next to this file or on NODE_PATH.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const { Tokenizer } = await import("@huggingface/tokenizers").catch((e) => {
    console.error(`tokenize_ref: cannot load @huggingface/tokenizers (npm install @huggingface/tokenizers): ${e.message}`);
    process.exit(2);
});

const args = process.argv.slice(2);
if (args.length < 1) {
    console.error("usage: node tokenize_ref.mjs <model_dir> [--no-special] <text>...");
    process.exit(2);
}
const dir = args.shift();
let addSpecial = true;
if (args[0] === "--no-special") {
    addSpecial = false;
    args.shift();
}
let texts = args;
if (texts.length === 0) texts = JSON.parse(readFileSync(0, "utf8"));

const readJson = (name) => {
    const p = join(dir, name);
    return existsSync(p) ? JSON.parse(readFileSync(p, "utf8")) : {};
};
const tokenizerJson = readJson("tokenizer.json");
if (!tokenizerJson.model) {
    console.error(`tokenize_ref: ${join(dir, "tokenizer.json")}: missing or has no model`);
    process.exit(3);
}
const tokenizer = new Tokenizer(tokenizerJson, readJson("tokenizer_config.json"));

for (const text of texts) {
    const enc = tokenizer.encode(text, { add_special_tokens: addSpecial });
    console.log(JSON.stringify({ text, ids: enc.ids, tokens: enc.tokens }));
}
