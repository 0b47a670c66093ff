// node official_snapshot.mjs HUB_URL REPO CACHE_DIR: the official @huggingface/hub client downloads REPO's main
// snapshot into CACHE_DIR (the HF cache layout: models--ns--name/{blobs,snapshots/<commit>,refs/main}) with
// snapshotDownload, and prints the snapshot directory. Token from $HF_TOKEN. Exit 1 if the client is missing (it
// is installed with the npm peers: jobs/install-deps.sh --test).
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const [hubUrl, name, cacheDir] = process.argv.slice(2);
if (!cacheDir) {
    console.error("usage: node official_snapshot.mjs HUB_URL REPO CACHE_DIR");
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
console.debug = () => {};   // the library's "Downloading x to y" lines
const snap = await hub.snapshotDownload({ repo: { type: "model", name }, cacheDir, hubUrl,
                                          accessToken: process.env.HF_TOKEN });
console.log(snap);
