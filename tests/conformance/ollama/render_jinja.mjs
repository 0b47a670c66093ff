// Renders a Hugging Face chat template with @huggingface/jinja (the Jinja engine transformers.js uses),
// add_generation_prompt=true, as transformers' apply_chat_template would.
// CLI: node render_jinja.mjs TEMPLATE.jinja BOS EOS < conversations.json  -> JSON array of strings
import { Template } from "@huggingface/jinja";
import { readFileSync } from "node:fs";

export function renderJinja(source, bos, eos, messages) {
  const t = new Template(source.replace(/\n$/, ""));   // fixture files end with a newline
  return t.render({ messages, bos_token: bos, eos_token: eos, add_generation_prompt: true });
}

if (process.argv[1] && process.argv[1].endsWith("render_jinja.mjs")) {
  const [file, bos, eos] = process.argv.slice(2);
  const convs = JSON.parse(readFileSync(0, "utf8"));
  const src = readFileSync(file, "utf8");
  console.log(JSON.stringify(convs.map((m) => renderJinja(src, bos, eos, m))));
}
