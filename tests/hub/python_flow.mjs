// The request shapes of the Python client (huggingface_hub's _commit_api.py and lfs.py),
// replayed with plain fetch against the test Hub, for the checklist items the JS client never exercises: `private` on
// create, validate-yaml, preupload `gitIgnore` -> `shouldIgnore` on every file and the remote `oid`, batch with
// hash_algo "sha256" and "xet" offered (must stay on LFS), sequential multipart parts + completion + verify, NDJSON
// with a trailing newline, `lfsFile` without `size`, `deletedFolder`, `%2F`-encoded revisions, the revision endpoint,
// storage rules (no chunked PUTs, bad digests refused, expired/forged URLs 403). huggingface_hub is not a Debian
// package, so the Python client itself is not run here. Exit 0 = pass, 1 = fail.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import { startHub, prng, check, checkEq, sha256hex, gitBlobOid, failureCount, HUB_TEST_ARGS, watchdog } from "./lib.mjs";
watchdog(50);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "sf-hub-py-"));
const server = await startHub(path.join(work, "data"), HUB_TEST_ARGS);
const U = server.url;
const AUTH = { Authorization: "Bearer hf_python_flow" };
const J = (o) => JSON.stringify(o);
async function call(method, url, body, headers = {}) {
    const r = await fetch(url.startsWith("http") ? url : U + url, { method, body, headers: { ...AUTH, ...headers } });
    const text = await r.text();
    let json; try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, headers: r.headers, json, text };
}
const b64 = (b) => Buffer.from(b).toString("base64");

try {
    // create_repo(private=True), exist_ok path: 409 with url.
    const c = await call("POST", "/api/repos/create", J({ name: "py", organization: null, type: "model", private: true }), { "Content-Type": "application/json" });
    checkEq([c.status, c.json?.url], [200, `${U}/testuser/py`], "create_repo with organization null and private: true -> own namespace");
    const c2 = await call("POST", "/api/repos/create", J({ name: "py", organization: null, type: "model", private: true }));
    checkEq([c2.status, c2.json?.url], [409, `${U}/testuser/py`], "exist_ok: 409 carries url");
    const anon = await fetch(`${U}/api/models/testuser/py/revision/main`);
    check(anon.status === 401 || anon.status === 404, `private repo hidden from anonymous reads (${anon.status})`);

    // Files: README (validate-yaml), a config, an ignored file, a multipart LFS file.
    const readme = Buffer.from("---\nlicense: mit\nbase_model_relation: merge\n---\n# py\n");
    const config = Buffer.from('{"a": 1}\n');
    const big = prng("py-big", 2.5 * (1 << 20));
    const bigOid = sha256hex(big);
    const vy = await call("POST", "/api/validate-yaml", J({ content: readme.toString(), repoType: "model" }), { "Content-Type": "application/json" });
    checkEq([vy.status, vy.json], [200, { errors: [], warnings: [] }], "validate-yaml: 200 {errors: [], warnings: []}");
    const vyBad = await call("POST", "/api/validate-yaml", J({ content: "---\nbase_model_relation: cousin\n---\n", repoType: "model" }));
    check(vyBad.status === 400 && vyBad.json?.errors?.[0]?.message, "validate-yaml: a bad base_model_relation is 400 with errors[].message");

    const pre = await call("POST", "/api/models/testuser/py/preupload/main", J({ files: [
        { path: "README.md", size: readme.length, sample: b64(readme.subarray(0, 512)) },
        { path: "config.json", size: config.length, sample: b64(config) },
        { path: "logs/run.log", size: 10, sample: b64("0123456789") },
        { path: "model.safetensors", size: big.length, sample: b64(big.subarray(0, 512)) },
    ], gitIgnore: "logs/\n*.log\n" }), { "Content-Type": "application/json" });
    const modes = Object.fromEntries((pre.json?.files ?? []).map((f) => [f.path, [f.uploadMode, f.shouldIgnore, f.oid ?? null]]));
    checkEq(modes, { "README.md": ["regular", false, null], "config.json": ["regular", false, null], "logs/run.log": ["regular", true, null],
        "model.safetensors": ["lfs", false, null] }, "preupload: uploadMode, shouldIgnore always present (gitIgnore honoured), no remote oid yet");

    // LFS batch as Python sends it.
    const batch = await call("POST", "/testuser/py.git/info/lfs/objects/batch", J({ operation: "upload", transfers: ["basic", "multipart", "xet"],
        objects: [{ oid: bigOid, size: big.length }], hash_algo: "sha256", ref: { name: "main" } }),
        { Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json" });
    const obj = batch.json?.objects?.[0];
    const header = obj?.actions?.upload?.header ?? {};
    const partKeys = Object.keys(header).filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b));
    const chunk = Number(header.chunk_size);
    checkEq([batch.json?.transfer, partKeys.length, partKeys[0], typeof obj?.actions?.verify?.href], ["multipart", Math.ceil(big.length / chunk), "00001", "string"],
        "batch: multipart (not xet), ceil(size/chunk_size) zero-padded part URLs, a verify action");

    // A chunked PUT (no Content-Length) is refused like S3 does.
    const chunked = await new Promise((ok) => {
        const rq = http.request(header[partKeys[0]], { method: "PUT" }, (r) => { r.resume(); r.on("end", () => ok(r.statusCode)); });
        rq.write(big.subarray(0, 10)); rq.end();
    });
    checkEq(chunked, 411, "storage: a chunked PUT (no Content-Length) is refused with 411");
    const forged = await fetch(header[partKeys[0]].replace(/sig=[0-9a-f]+/, "sig=00"), { method: "PUT", body: big.subarray(0, chunk) });
    checkEq(forged.status, 403, "storage: a URL with a wrong signature is refused with 403");

    // Parts one after another (Python), ETags kept as returned, then the completion and verify.
    const etags = [];
    for (const [i, k] of partKeys.entries()) {
        const r = await fetch(header[k], { method: "PUT", body: big.subarray(i * chunk, (i + 1) * chunk) });
        etags.push(r.headers.get("etag"));
    }
    check(etags.every((e) => /^"[0-9a-f]{32}"$/.test(e ?? "")), "parts: each answers a quoted ETag");
    const badComplete = await fetch(obj.actions.upload.href, { method: "POST", body: J({ oid: bigOid, parts: etags.map((e, i) => ({ partNumber: i + 1, etag: i ? e : '"0"' })) }) });
    checkEq(badComplete.status, 400, "completion with a wrong ETag: 400");
    const verifyEarly = await call("POST", obj.actions.verify.href, J({ oid: bigOid, size: big.length }));
    checkEq(verifyEarly.status, 404, "verify before completion: 404");
    const comp = await fetch(obj.actions.upload.href, { method: "POST", headers: { "Content-Type": "application/vnd.git-lfs+json" },
        body: J({ oid: bigOid, parts: etags.map((e, i) => ({ partNumber: i + 1, etag: e })) }) });
    checkEq(comp.status, 200, "completion: 200");
    const compAgain = await fetch(obj.actions.upload.href, { method: "POST", body: J({ oid: bigOid, parts: [] }) });
    checkEq(compAgain.status, 200, "completion retried after success: 200 (idempotent)");
    const ver = await call("POST", obj.actions.verify.href, J({ oid: bigOid, size: big.length }));
    const verNoAuth = await fetch(obj.actions.verify.href, { method: "POST", body: J({ oid: bigOid, size: big.length }) });
    checkEq([ver.status, verNoAuth.status], [200, 401], "verify: 200 with the Hub token, 401 without");

    // A basic PUT with the wrong bytes is refused and nothing is stored.
    const small = prng("py-small", 1000);
    const b2 = await call("POST", "/testuser/py.git/info/lfs/objects/batch", J({ operation: "upload", transfers: ["basic"], objects: [{ oid: sha256hex(small), size: 1000 }] }));
    const put = b2.json.objects[0].actions.upload.href;
    const wrong = await fetch(put, { method: "PUT", body: prng("other", 1000) });
    const b3 = await call("POST", "/testuser/py.git/info/lfs/objects/batch", J({ operation: "upload", transfers: ["basic"], objects: [{ oid: sha256hex(small), size: 1000 }] }));
    check(wrong.status === 400 && b3.json.objects[0].actions, "basic PUT with bytes of another sha256: 400, object still missing");

    // Commit: NDJSON with a trailing newline, parentCommit = head, the ignored file left out.
    const head0 = (await call("GET", "/api/models/testuser/py/revision/main")).json;
    checkEq([typeof head0?.sha, head0?.xetEnabled], ["string", false], "revision endpoint: sha, xetEnabled false");
    const nd = (lines) => lines.map((l) => J(l) + "\n").join("");
    const cm = await call("POST", "/api/models/testuser/py/commit/main", nd([
        { key: "header", value: { summary: "py upload", description: "", parentCommit: head0.sha } },
        { key: "file", value: { path: "README.md", content: b64(readme), encoding: "base64" } },
        { key: "file", value: { path: "config.json", content: b64(config), encoding: "base64" } },
        { key: "lfsFile", value: { path: "model.safetensors", algo: "sha256", oid: bigOid, size: big.length } },
    ]), { "Content-Type": "application/x-ndjson" });
    checkEq([cm.status, cm.json?.commitUrl, /^[0-9a-f]{40}$/.test(cm.json?.commitOid ?? "")], [200, `${U}/testuser/py/commit/${cm.json?.commitOid}`, true], "commit: 200 with commitUrl and commitOid");
    const stale = await call("POST", "/api/models/testuser/py/commit/main", nd([{ key: "header", value: { summary: "stale", parentCommit: head0.sha } }]));
    checkEq(stale.status, 412, "commit with a stale parentCommit: 412");
    const missingObj = await call("POST", "/api/models/testuser/py/commit/main", nd([{ key: "header", value: { summary: "x" } },
        { key: "lfsFile", value: { path: "ghost.bin", algo: "sha256", oid: sha256hex(Buffer.from("never uploaded")), size: 14 } }]));
    checkEq(missingObj.status, 400, "commit naming an LFS object that was never uploaded: 400");
    const tooBig = await call("POST", "/api/models/testuser/py/commit/main", nd([{ key: "header", value: { summary: "x" } },
        { key: "file", value: { path: "big.txt", content: b64(Buffer.alloc(10 * (1 << 20) + 1, 97)), encoding: "base64" } }]));
    check(tooBig.status === 400 && /larger than 10 MiB/.test(tooBig.json?.error ?? ""), "a regular file over 10 MiB: 400 'larger than 10 MiB'");

    // Preupload now reports the remote oids (git blob sha1 for regular, sha256 for LFS): Python's no-op detection.
    const pre2 = await call("POST", "/api/models/testuser/py/preupload/main", J({ files: [
        { path: "config.json", size: config.length, sample: b64(config) }, { path: "model.safetensors", size: big.length, sample: b64(big.subarray(0, 512)) }] }));
    checkEq(pre2.json?.files?.map((f) => f.oid), [gitBlobOid(config), bigOid], "preupload: remote oid = git blob oid (regular) / sha256 (LFS)");

    // PR through an encoded revision, then a commit onto refs%2Fpr%2F1 with a copied lfsFile (no size) and a
    // deleted folder.
    const pr = await call("POST", "/api/models/testuser/py/commit/main?create_pr=1", nd([{ key: "header", value: { summary: "pr", description: "d" } },
        { key: "file", value: { path: "sub/a.txt", content: b64("a"), encoding: "base64" } }, { key: "file", value: { path: "sub/b.txt", content: b64("b"), encoding: "base64" } }]));
    checkEq(pr.json?.pullRequestUrl, `${U}/testuser/py/discussions/1`, "create_pr=1: pullRequestUrl");
    const onPr = await call("POST", `/api/models/testuser/py/commit/${encodeURIComponent("refs/pr/1")}`, nd([{ key: "header", value: { summary: "on pr" } },
        { key: "lfsFile", value: { path: "copy.safetensors", algo: "sha256", oid: bigOid } }, { key: "deletedFolder", value: { path: "sub/" } }]));
    checkEq(onPr.status, 200, "commit to refs%2Fpr%2F1: 200");
    const prTree = (await call("GET", `/api/models/testuser/py/tree/${encodeURIComponent("refs/pr/1")}?recursive=true`)).json ?? [];
    const paths = prTree.map((e) => e.path).sort();
    checkEq(paths, [".gitattributes", "README.md", "config.json", "copy.safetensors", "model.safetensors"], "refs/pr/1 tree: folder deleted, copy added");
    checkEq(prTree.find((e) => e.path === "copy.safetensors")?.lfs?.size, big.length, "lfsFile without size takes the stored object's size");
    const mainTree = (await call("GET", "/api/models/testuser/py/tree/main?recursive=true")).json.map((e) => e.path);
    check(!mainTree.includes("copy.safetensors"), "main is untouched by the PR commits");

    // paths-info as Python sends it (form-encoded).
    const pi = await call("POST", "/api/models/testuser/py/paths-info/main", "paths=config.json&paths=model.safetensors&paths=nope&expand=true",
        { "Content-Type": "application/x-www-form-urlencoded" });
    checkEq(pi.json?.map((e) => [e.path, e.size, e.lfs?.oid ?? null]), [["config.json", config.length, null], ["model.safetensors", big.length, bigOid]],
        "paths-info: existing paths with size and LFS oid");

    // hf_hub_download: HEAD on resolve without following redirects (an LFS file answers 302 to the storage URL with
    // X-Linked-Etag/X-Linked-Size/X-Repo-Commit), then a ranged GET of the Location (resuming a .incomplete file).
    await server.config({ lfsRedirect: true });
    const headR = await fetch(`${U}/testuser/py/resolve/main/model.safetensors`, { method: "HEAD", redirect: "manual", headers: AUTH });
    const mainSha = (await call("GET", "/api/models/testuser/py/revision/main")).json.sha;
    checkEq([headR.status, headR.headers.get("x-linked-etag"), headR.headers.get("x-linked-size"), headR.headers.get("x-repo-commit")],
        [302, `"${bigOid}"`, String(big.length), mainSha], "resolve HEAD of an LFS file: 302 with X-Linked-Etag, X-Linked-Size, X-Repo-Commit");
    const loc = headR.headers.get("location");
    const part = await fetch(loc, { headers: { Range: `bytes=${big.length - 1000}-` } });
    const partBuf = Buffer.from(await part.arrayBuffer());
    checkEq([part.status, part.headers.get("content-range"), partBuf.equals(big.subarray(big.length - 1000))],
        [206, `bytes ${big.length - 1000}-${big.length - 1}/${big.length}`, true], "storage URL: ranged GET (resume) returns 206 and the tail bytes");
    const regHead = await fetch(`${U}/testuser/py/resolve/main/config.json`, { method: "HEAD", redirect: "manual", headers: AUTH });
    checkEq([regHead.status, regHead.headers.get("etag"), regHead.headers.get("content-length")], [200, `"${gitBlobOid(config)}"`, String(config.length)],
        "resolve HEAD of a regular file: 200, ETag = git blob oid, Content-Length");
    const bad416 = await fetch(`${U}/testuser/py/resolve/main/config.json`, { headers: { ...AUTH, Range: `bytes=${config.length + 5}-` } });
    checkEq([bad416.status, bad416.headers.get("content-range")], [416, `bytes */${config.length}`], "Range past the end: 416 with bytes */size");
} catch (e) {
    console.log(`FAIL unexpected error: ${e.stack}`);
    check(false, "no unexpected error");
} finally {
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
}
console.log(failureCount() ? `${failureCount()} check(s) failed` : "all checks passed");
process.exit(failureCount() ? 1 : 0);
