// Acceptance test for the Ollama TEMPLATEs we generate (ollama's docs/template.mdx): for every fixture chat template,
// the Go TEMPLATE rendered like Ollama renders it (render.go) must equal, byte for byte, what the model's own Jinja
// template renders with @huggingface/jinja (add_generation_prompt=true), minus the leading BOS token that Ollama's
// tokenizer adds itself. Also checks family detection, the default SYSTEM, and that the stop list holds the template's
// end-of-turn token.
// usage: node check_templates.mjs <ollama_modelfile_dump> <render (built from render.go)>
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderJinja } from "./render_jinja.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const [dumpExe, renderExe] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync(join(here, "templates.json"), "utf8"));

const sys = { role: "system", content: "You are a terse pirate. Answer in one line." };
const u1 = { role: "user", content: "What is 2+2?" };
const a1 = { role: "assistant", content: "Arr, 4." };
const u2 = { role: "user", content: 'Is a < b && "c" > \'d\'? {{ not a template }}' };
const a2 = { role: "assistant", content: "Aye,\nmultiple lines\n\ttoo." };
const u3 = { role: "user", content: "Thanks! Say bye." };
const withSystem = [
  [sys, u1],
  [sys, u1, a1, u2],
  [sys, u1, a1, u2, a2, u3],
];
const withoutSystem = [[u1], [u1, a1, u2], [u1, a1, u2, a2, u3]];

let failures = 0, checks = 0;
const fail = (name, msg) => { failures++; console.log(`FAIL ${name}: ${msg}`); };
const show = (s) => JSON.stringify(s);

for (const c of manifest.cases) {
  const name = c.file;
  const src = readFileSync(join(here, "templates", c.file), "utf8");
  const dump = JSON.parse(execFileSync(dumpExe, [join(here, "templates", c.file), c.bos, c.eos, c.eot], { encoding: "utf8" }));
  checks++;
  if (dump.family !== c.family) { fail(name, `family ${dump.family}, expected ${c.family}`); continue; }
  checks++;
  if (dump.system !== c.default_system) fail(name, `SYSTEM ${show(dump.system)}, expected ${show(c.default_system)}`);
  if (c.family === "unknown") {
    checks++;
    if (dump.template !== "" || dump.stop.length !== 0 || !dump.warnings.some((w) => w.includes("unknown chat template")) ||
        /TEMPLATE/.test(dump.text.replace(/^#.*$/gm, "")))
      fail(name, "unknown family must give a warning and a Modelfile without TEMPLATE/stop");
    console.log(`ok   ${name}: unknown family, warning: ${dump.warnings[0]}`);
    continue;
  }

  // Stop list: the text the Jinja template writes right after an assistant reply must start with a stop string,
  // and every stop string must be one of the template's markers or its special tokens.
  const eot = c.eot || c.eos;
  checks++;
  if (!dump.stop.includes(eot)) fail(name, `stop ${show(dump.stop)} lacks the end-of-turn token ${eot}`);
  const probe = renderJinja(src, c.bos, c.eos, [u1, { role: "assistant", content: "REPLY" }, u2]);
  const after = probe.slice(probe.indexOf("REPLY") + 5);
  checks++;
  if (!dump.stop.some((s) => after.startsWith(s))) fail(name, `after a reply the template writes ${show(after.slice(0, 20))}, no stop string matches`);
  for (const s of dump.stop) {
    checks++;
    if (!src.includes(s) && s !== c.eos && s !== c.eot) fail(name, `stop ${show(s)} appears nowhere in the template`);
  }

  // The Modelfile text carries the same TEMPLATE / stop / SYSTEM (Modelfile """ quoting, ollama's docs/modelfile.mdx).
  const tm = /^TEMPLATE """([\s\S]*?)"""$/m.exec(dump.text);
  const stops = [...dump.text.matchAll(/^PARAMETER stop "(.*)"$/gm)].map((x) => x[1]);
  const sm = /^SYSTEM """([\s\S]*?)"""$/m.exec(dump.text);
  checks++;
  if (!tm || tm[1] !== dump.template || show(stops) !== show(dump.stop) || (sm ? sm[1] : "") !== dump.system)
    fail(name, `Modelfile text does not carry the template/stop/system:\n${dump.text}`);

  const convs = c.system ? [...withSystem, ...withoutSystem] : withoutSystem;
  const goOut = JSON.parse(execFileSync(renderExe, [], {
    input: JSON.stringify({ template: dump.template, system: dump.system, conversations: convs }), encoding: "utf8" }));
  convs.forEach((msgs, i) => {
    let want = renderJinja(src, c.bos, c.eos, msgs);
    if (c.bos && want.startsWith(c.bos)) want = want.slice(c.bos.length);   // Ollama's tokenizer adds BOS
    const got = goOut[i];
    checks++;
    if (got !== want) {
      let k = 0;
      while (k < got.length && got[k] === want[k]) k++;
      fail(name, `conversation ${i} (${msgs.map((m) => m.role).join(",")}) differs at char ${k}\n  go:    ${show(got)}\n  jinja: ${show(want)}`);
    }
  });
  console.log(`ok   ${name}: family ${dump.family}, stop ${show(dump.stop)}, ${convs.length} conversations compared`);
}
console.log(`${checks} checks, ${failures} failures`);
process.exit(failures ? 1 : 0);
