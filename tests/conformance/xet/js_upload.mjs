// node js_upload.mjs OUTDIR FILE...: uploads each FILE alone with the official client (@huggingface/hub's
// uploadFile, Xet transfer, its default) to a recording loopback Hub + CAS in this process, and keeps the bytes the
// client sent: OUTDIR/<i>/xorbs/<xet-hex> (POST /v1/xorbs/default/<hash>) and OUTDIR/<i>/shard (POST /v1/shards).
// The recorder accepts everything (global dedup answers 404: nothing stored); it checks nothing itself. Exit 0 when
// every upload finished, 1 otherwise.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const CONF = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const hub = await import(pathToFileURL(createRequire(path.join(CONF, "package.json")).resolve("@huggingface/hub")).href);
const [outDir, ...files] = process.argv.slice(2);

let sink = null;   // the current upload's capture folder
const server = http.createServer(async (req, res) => {
    const body = [];
    for await (const b of req) body.push(b);
    const data = Buffer.concat(body);
    const url = new URL(req.url, "http://x");
    const json = (code, o) => { res.writeHead(code, { "content-type": "application/json" }); res.end(JSON.stringify(o)); };
    const base = `http://127.0.0.1:${server.address().port}`;
    const token = { accessToken: "xet-test-token", casUrl: `${base}/cas`, exp: Math.floor(Date.now() / 1000) + 3600 };
    let m;
    if (req.method === "POST" && /^\/api\/models\/[^/]+\/[^/]+\/preupload\//.test(url.pathname)) {
        const { files: fs_ } = JSON.parse(data.toString());
        return json(200, { files: fs_.map((f) => ({ path: f.path, uploadMode: "lfs", shouldIgnore: false })) });
    }
    if (req.method === "POST" && url.pathname.endsWith(".git/info/lfs/objects/batch")) {
        const { objects } = JSON.parse(data.toString());
        return json(200, { transfer: "xet", objects: objects.map((o) => ({ oid: o.oid, size: o.size,
            actions: { upload: { href: `${base}/api/models/t/r/xet-write-token/main`, header: {} } } })) });
    }
    if (req.method === "GET" && url.pathname.includes("/xet-write-token/")) return json(200, token);
    if (req.method === "GET" && url.pathname.startsWith("/cas/v1/chunks/")) { res.writeHead(404); return res.end(); }
    if (req.method === "POST" && (m = /^\/cas\/v1\/xorbs\/default\/([0-9a-f]{64})$/.exec(url.pathname))) {
        fs.writeFileSync(path.join(sink, "xorbs", m[1]), data);
        return json(200, { was_inserted: true });
    }
    if (req.method === "POST" && url.pathname === "/cas/v1/shards") {
        fs.writeFileSync(path.join(sink, `shard${fs.readdirSync(sink).filter((f) => f.startsWith("shard")).length || ""}`), data);
        return json(200, { result: 1 });
    }
    if (req.method === "POST" && /^\/api\/models\/[^/]+\/[^/]+\/commit\//.test(url.pathname))
        return json(200, { commitOid: "0".repeat(40), commitUrl: `${base}/t/r/commit/${"0".repeat(40)}` });
    console.log(`recorder: unexpected ${req.method} ${req.url}`);
    res.writeHead(404);
    res.end();
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const hubUrl = `http://127.0.0.1:${server.address().port}`;
let failed = 0;
for (const [i, f] of files.entries()) {
    sink = path.join(outDir, String(i));
    fs.mkdirSync(path.join(sink, "xorbs"), { recursive: true });
    try {
        await hub.uploadFile({ repo: { type: "model", name: "t/r" }, file: { path: path.basename(f), content: pathToFileURL(f) },
            hubUrl, accessToken: "hf_xet_conformance", useXet: true });
    } catch (e) {
        console.log(`upload of ${f} failed: ${e.message}`);
        failed++;
    }
}
server.close();
process.exit(failed ? 1 : 0);
