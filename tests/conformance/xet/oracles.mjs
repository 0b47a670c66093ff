// The two Xet oracles of docs/xet.md "How it is tested", loaded from tests/conformance/node_modules:
//  - @huggingface/xetchunk-wasm 0.2.0 (what @huggingface/hub 2.17.5 chunks and hashes with; minimum-chunk test 8128);
//  - the xet-core Wasm build vendored, test-only, in @huggingface/hub's src/vendor/xet-chunk (xet-core, i.e. what
//    huggingface_hub's hf_xet runs; minimum-chunk test 8192). Not in the package's exports: loaded by path, the
//    base64 module text decoded here and checked against the SHA-256 the vendoring script recorded.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const CONF = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const req = createRequire(path.join(CONF, "package.json"));

export async function loadXetchunk() {
    const entry = req.resolve("@huggingface/xetchunk-wasm");
    const version = JSON.parse(fs.readFileSync(path.join(entry.slice(0, entry.lastIndexOf("/dist/")), "package.json"), "utf8")).version;
    return { version, ...(await import(pathToFileURL(entry).href)) };
}

export async function loadXetCore() {
    const hubPkg = path.join(CONF, "node_modules/@huggingface/hub");
    const dir = path.join(hubPkg, "src/vendor/xet-chunk");
    const text = fs.readFileSync(path.join(dir, "chunker_wasm_bg.wasm.base64.ts"), "utf8");
    const b64 = text.slice(text.indexOf("`") + 1, text.lastIndexOf("`")).replace(/\s+/g, "");
    const bytes = Buffer.from(b64, "base64");
    const want = /XET_CORE_WASM_SHA256 = "([0-9a-f]{64})"/.exec(text)?.[1];
    const got = crypto.createHash("sha256").update(bytes).digest("hex");
    if (want !== got) throw new Error(`xet-core wasm: sha256 ${got}, the vendored file says ${want}`);
    const commit = /XET_CORE_COMMIT = "([0-9a-f]+)"/.exec(text)?.[1];
    const m = await import(pathToFileURL(path.join(dir, "chunker_wasm_bg.js")).href);
    m.initSync({ module: bytes });
    const hubVersion = JSON.parse(fs.readFileSync(path.join(hubPkg, "package.json"), "utf8")).version;
    return { commit, hubVersion, ...m };
}
