// node official_upload.mjs HUB_URL REPO DIR: the official @huggingface/hub client creates REPO and uploads every
// file under DIR (recursively, paths relative to DIR) in one commit with uploadFiles, over Xet (its default) when
// the Hub offers it. Token from $HF_TOKEN. Exit 1 if the client is missing (it is installed with the npm peers:
// jobs/install-deps.sh --test) or the upload fails.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const [hubUrl, name, dir] = process.argv.slice(2);
if (!dir) {
    console.error("usage: node official_upload.mjs HUB_URL REPO DIR");
    process.exit(2);
}
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let hub;
try {
    const req = createRequire(path.join(ROOT, "tests/conformance/package.json"));
    hub = await import(pathToFileURL(req.resolve("@huggingface/hub")).href);
} catch (e) {
    console.log(`FAIL: @huggingface/hub is not installed in tests/conformance/node_modules (jobs/install-deps.sh --test): ${e.message}`);
    process.exit(1);
}
const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((p) => fs.statSync(path.join(dir, p)).isFile()).sort();
const creds = { hubUrl, accessToken: process.env.HF_TOKEN };
const repo = { type: "model", name };
await hub.createRepo({ repo, ...creds }).catch((e) => { if (!/already exists|409/i.test(String(e.message))) throw e; });
await hub.uploadFiles({ repo, ...creds, files: files.map((p) => ({ path: p, content: pathToFileURL(path.join(dir, p)) })) });
console.log(files.join("\n"));
