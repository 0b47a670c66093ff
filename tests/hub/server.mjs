#!/usr/bin/env node
// Loopback test Hub: the Hugging Face Hub upload/download protocol (as huggingface_hub's _commit_api.py and lfs.py
// speak it) served on 127.0.0.1 for tests of our client and of the official clients. Node standard library
// only.
//
//   node tests/hub/server.mjs --data DIR [--port 0] [--faults SPEC] [--chunk-size N] [--multipart-threshold N]
//        [--lfs-threshold N] [--max-file-size N] [--lfs-redirect] [--xet] [--parent-pid PID] [--verbose]
//
// --xet: the Hub answers LFS batch calls that offer "xet" with the Xet transfer, and serves a CAS under /cas
// (docs/xet.md "Upload"): write tokens, xorb and shard uploads checked as the real CAS checks them (hashes recomputed
// with @huggingface/blake3-jit and @huggingface/xetchunk-wasm from tests/conformance/node_modules), and a
// registered shard's files become stored LFS objects (by sha256), so commits, trees and downloads work unchanged.
//
// First stdout line: "listening http://127.0.0.1:PORT". Serves until SIGTERM/SIGINT. State (repos, commits,
// objects) lives under --data and survives a restart. See tests/hub/README.md for the endpoint list, the
// token rules, the fault spec and the /__stats counters.
import { execFileSync } from "node:child_process";
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

// ---------------------------------------------------------------------------------------------- options
const MiB = 1024 * 1024;
const opt = {
    data: null, port: 0, faults: "", chunkSize: 1 * MiB, multipartThreshold: 2 * MiB, lfsThreshold: 10 * MiB,
    maxRegular: 10 * MiB, maxFileSize: 50 * 1024 * MiB, lfsRedirect: false, verbose: false, urlTtl: 3600, xet: false,
};
{
    const a = process.argv.slice(2);
    const num = (s, flag) => {
        if (!/^\d+$/.test(s ?? "")) usage(`${flag} needs a non-negative integer`);
        return Number(s);
    };
    for (let i = 0; i < a.length; i++) {
        const f = a[i];
        if (f === "--data") opt.data = a[++i];
        else if (f === "--port") opt.port = num(a[++i], f);
        else if (f === "--faults") opt.faults = a[++i] ?? "";
        else if (f === "--chunk-size") opt.chunkSize = num(a[++i], f);
        else if (f === "--multipart-threshold") opt.multipartThreshold = num(a[++i], f);
        else if (f === "--lfs-threshold") opt.lfsThreshold = num(a[++i], f);
        else if (f === "--max-file-size") opt.maxFileSize = num(a[++i], f);
        else if (f === "--url-ttl") opt.urlTtl = num(a[++i], f);
        else if (f === "--lfs-redirect") opt.lfsRedirect = true;
        else if (f === "--xet") opt.xet = true;
        else if (f === "--verbose") opt.verbose = true;
        else if (f === "--parent-pid") opt.parentPid = num(a[++i], f);
        else usage(`unknown argument ${f}`);
    }
    if (!opt.data) usage("--data DIR is required");
    if (opt.chunkSize < 1) usage("--chunk-size must be > 0");
}
function usage(msg) {
    process.stderr.write(`server.mjs: ${msg}\nusage: node server.mjs --data DIR [--port 0] [--faults SPEC] ` +
        `[--chunk-size N] [--multipart-threshold N] [--lfs-threshold N] [--max-file-size N] [--lfs-redirect]\n`);
    process.exit(2);
}

const DATA = path.resolve(opt.data);
for (const d of ["objects", "uploads", "tmp", "repos", "xorbs", "xet-files", "xet-sha"]) fs.mkdirSync(path.join(DATA, d), { recursive: true });
const SECRET = crypto.randomBytes(32);     // signs the storage URLs handed out by the batch endpoint

// ---------------------------------------------------------------------------------------------- helpers
const sha256hex = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
const sha1hex = (buf) => crypto.createHash("sha1").update(buf).digest("hex");
const gitBlobOid = (buf) => sha1hex(Buffer.concat([Buffer.from(`blob ${buf.length}\0`), buf]));
const lfsPointer = (oid, size) => Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`);
const sign = (s) => crypto.createHmac("sha256", SECRET).update(s).digest("hex").slice(0, 32);
const objPath = (oid) => path.join(DATA, "objects", oid);
const isOid = (s) => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);
let requestCounter = 0;

class HubError extends Error {
    constructor(status, message, code, extraHeaders, body) {
        super(message);
        this.status = status; this.code = code; this.extraHeaders = extraHeaders ?? {}; this.body = body;
    }
}
const err = (status, message, code, extra, body) => new HubError(status, message, code, extra, body);

function writeJsonAtomic(file, value) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(value));
    fs.renameSync(tmp, file);
}

// Default LFS patterns of a fresh repo's .gitattributes (the Hub's usual list, plus GGUF).
const DEFAULT_LFS_PATTERNS = ["*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5",
    "*.joblib", "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet",
    "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar",
    "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*"];
const gitattributesText = (patterns) => patterns.map((p) => `${p} filter=lfs diff=lfs merge=lfs -text\n`).join("");

function globToRegExp(glob) {
    let re = "";
    for (let i = 0; i < glob.length; i++) {
        const c = glob[i];
        if (c === "*" && glob[i + 1] === "*") { re += ".*"; i++; if (glob[i + 1] === "/") i++; }
        else if (c === "*") re += "[^/]*";
        else if (c === "?") re += "[^/]";
        else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${re}$`);
}
// gitattributes matching: a pattern without '/' matches the base name, one with '/' the whole path.
function lfsPatternMatches(patterns, p) {
    const base = p.split("/").pop();
    return patterns.some((g) => (g.includes("/") ? globToRegExp(g.replace(/^\//, "")).test(p) : globToRegExp(g).test(base)));
}
function lfsPatternsOf(text) {
    return (text ?? "").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#") && /\bfilter=lfs\b/.test(l))
        .map((l) => l.split(/\s+/)[0]);
}

// ---------------------------------------------------------------------------------------------- state
// repos: key "type/ns/name" -> {type, ns, name, private, createdAt, branches{name: oid}, prCount,
//        commits{oid: {parent, files{path: {sha256, size, lfs, blobOid}}, title, description, date, tree}}}
const repos = new Map();
const repoFile = (r) => path.join(DATA, "repos", r.type, r.ns, `${r.name}.json`);
const saveRepo = (r) => writeJsonAtomic(repoFile(r), r);
for (const type of fs.readdirSync(path.join(DATA, "repos"))) {
    for (const ns of fs.readdirSync(path.join(DATA, "repos", type))) {
        for (const f of fs.readdirSync(path.join(DATA, "repos", type, ns))) {
            if (!f.endsWith(".json")) continue;
            const r = JSON.parse(fs.readFileSync(path.join(DATA, "repos", type, ns, f), "utf8"));
            repos.set(`${r.type}/${r.ns}/${r.name}`, r);
        }
    }
}

const stats = newStats();
function newStats() {
    return {
        requests: {}, responses: {}, faultsInjected: 0, commits: { total: 0, byRepo: {} },
        bytesReceived: { total: 0, objects: {}, parts: {} },
        bytesServed: { total: 0, files: {} },
        objectsStored: 0, retryGapsMs: {}, storageRequestsWithAuthorization: 0, storageUserAgents: {}, storageConnections: 0,
        storagePeakInFlight: 0,
        xet: { tokens: 0, xorbs: 0, xorbBytes: 0, shards: 0, files: 0, dedupQueries: 0, rejected: {}, chunkSchemes: {},
               readTokens: 0, fileInfos: {}, reconstructions: 0, rangedReconstructions: 0, xorbGets: 0, xorbBytesServed: 0,
               xorbGetsWithAuthorization: 0 },
    };
}
const bump = (obj, key, n = 1) => { obj[key] = (obj[key] ?? 0) + n; };
function countReceived(oid, part, n) {
    stats.bytesReceived.total += n;
    bump(stats.bytesReceived.objects, oid, n);
    if (part) bump(stats.bytesReceived.parts, `${oid}/${part}`, n);
}
function countServed(key, n) { stats.bytesServed.total += n; bump(stats.bytesServed.files, key, n); }

// ---------------------------------------------------------------------------------------------- faults
// SPEC: comma-separated rules ENDPOINT=ACTION[xCOUNT][/PARAM][+SKIP]; ACTION is an HTTP status (500, 429, 503,
// 403 ...), "drop" (connection cut mid-body), "slow" (PARAM ms delay), "throttle" (request or response body moved
// at PARAM bytes/s) or "lost" (handled, then the connection is cut instead of answering). 429/503 send Retry-After:
// PARAM seconds.
// SKIP lets that many matching requests through first. ENDPOINT "*" matches every endpoint.
let faults = [];
const faultPending = {};   // endpoint -> {rule, t} of the last injected failure, until the next request there
function parseFaults(spec) {
    const rules = [];
    for (const raw of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
        const m = /^([\w*-]+)=(\d{3}|drop|slow|throttle|lost)(?:x(\d+))?(?:\/(\d+))?(?:\+(\d+))?$/.exec(raw);
        if (!m) throw new Error(`bad fault rule "${raw}" (want ENDPOINT=ACTION[xCOUNT][/PARAM][+SKIP])`);
        rules.push({ endpoint: m[1], action: m[2], count: m[3] ? Number(m[3]) : 1,
            param: m[4] !== undefined ? Number(m[4]) : undefined, skip: m[5] ? Number(m[5]) : 0, rule: raw });
    }
    return rules;
}
try { faults = parseFaults(opt.faults); } catch (e) { usage(e.message); }
function takeFault(endpoint) {
    for (const f of faults) {
        if (f.count <= 0 || (f.endpoint !== "*" && f.endpoint !== endpoint)) continue;
        if (f.skip > 0) { f.skip--; continue; }
        f.count--;
        stats.faultsInjected++;
        return f;
    }
    return null;
}

// ---------------------------------------------------------------------------------------------- auth
// Tokens: any "hf_..." is valid and belongs to user "testuser" (member of org "testorg"), except
// "hf_invalid..." (401, to test the error path past the official client's hf_ prefix check) and
// "hf_read..." (read-only: 403 on writes). Namespace "someone-else" is never writable.
function auth(req, { required, write } = {}) {
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m) {
        if (required || write) throw err(401, "Invalid credentials in Authorization header", undefined);
        return null;
    }
    const tok = m[1];
    if (!tok.startsWith("hf_") || tok.startsWith("hf_invalid")) throw err(401, "Invalid credentials in Authorization header");
    const user = { name: "testuser", orgs: ["testorg"], role: tok.startsWith("hf_read") ? "read" : "write" };
    if (write && user.role !== "write") throw err(403, "You don't have the rights to write with this token (read-only)");
    return user;
}
function checkWritable(user, ns) {
    if (ns === "someone-else") throw err(403, `You don't have the rights to create or write to ${ns}`);
}

// ---------------------------------------------------------------------------------------------- git-ish model
function treeOid(files) {
    // Nested git tree hashes; returns {oid, dirs{path: oid}}.
    const dirs = {};
    const build = (prefix, entries) => {
        const children = new Map();  // name -> {file} | {dir: [[rest, entry]]}
        for (const [rest, e] of entries) {
            const i = rest.indexOf("/");
            if (i < 0) children.set(rest, { file: e });
            else {
                const name = rest.slice(0, i);
                if (!children.has(name)) children.set(name, { dir: [] });
                children.get(name).dir.push([rest.slice(i + 1), e]);
            }
        }
        const items = [];
        for (const [name, c] of children) {
            if (c.file) items.push({ key: name, mode: "100644", name, oid: c.file.blobOid });
            else {
                const sub = build(prefix ? `${prefix}/${name}` : name, c.dir);
                items.push({ key: `${name}/`, mode: "40000", name, oid: sub });
            }
        }
        items.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
        const body = Buffer.concat(items.map((it) => Buffer.concat([Buffer.from(`${it.mode} ${it.name}\0`), Buffer.from(it.oid, "hex")])));
        const oid = sha1hex(Buffer.concat([Buffer.from(`tree ${body.length}\0`), body]));
        dirs[prefix] = oid;
        return oid;
    };
    const oid = build("", Object.entries(files));
    return { oid, dirs };
}
function makeCommit(repo, parent, files, title, description) {
    const { oid: tree } = treeOid(files);
    const date = new Date();
    const ts = Math.floor(date.getTime() / 1000);
    const text = `tree ${tree}\n${parent ? `parent ${parent}\n` : ""}author testuser <testuser@users.noreply.localhost> ${ts} +0000\n` +
        `committer testuser <testuser@users.noreply.localhost> ${ts} +0000\n\n${title}\n${description ? `\n${description}\n` : ""}`;
    let oid = sha1hex(Buffer.concat([Buffer.from(`commit ${Buffer.byteLength(text)}\0`), Buffer.from(text)]));
    while (repo.commits[oid]) oid = sha1hex(Buffer.from(oid + "x"));  // identical commit in the same second
    repo.commits[oid] = { parent: parent ?? null, files, title, description: description ?? "", date: date.toISOString(), tree };
    return oid;
}
function storeBlob(buf) {
    const oid = sha256hex(buf);
    if (!fs.existsSync(objPath(oid))) {
        const tmp = path.join(DATA, "tmp", `${oid}.${crypto.randomUUID()}`);
        fs.writeFileSync(tmp, buf);
        fs.renameSync(tmp, objPath(oid));
        stats.objectsStored++;
    }
    return oid;
}
function regularEntry(buf) {
    return { sha256: storeBlob(buf), size: buf.length, lfs: false, blobOid: gitBlobOid(buf) };
}
function lfsEntry(oid, size) {
    return { sha256: oid, size, lfs: true, blobOid: gitBlobOid(lfsPointer(oid, size)) };
}

const repoKey = (type, ns, name) => `${type}/${ns}/${name}`;
const repoPrefix = (type) => (type === "model" ? "" : `${type}s/`);
function repoUrl(base, r) { return `${base}/${repoPrefix(r.type)}${r.ns}/${r.name}`; }
function getRepo(type, ns, name, user) {
    const r = repos.get(repoKey(type, ns, name));
    if (!r || (r.private && !user)) {
        throw err(r ? 401 : 404, "Repository not found", "RepoNotFound");
    }
    return r;
}
function resolveRev(r, rev) {
    if (r.branches[rev]) return r.branches[rev];
    if (/^[0-9a-f]{40}$/.test(rev) && r.commits[rev]) return rev;
    if (/^[0-9a-f]{7,39}$/.test(rev)) {
        const hits = Object.keys(r.commits).filter((c) => c.startsWith(rev));
        if (hits.length === 1) return hits[0];
    }
    throw err(404, `Invalid rev id: ${rev}`, "RevisionNotFound");
}

// ---------------------------------------------------------------------------------------------- HTTP plumbing
function send(res, status, body, headers = {}) {
    if (res.lost) { bump(stats.responses, `${res.endpoint ?? "unknown"} lost`); res.socket?.destroy(); return; }
    const isBuf = Buffer.isBuffer(body);
    const payload = body === undefined ? Buffer.alloc(0) : isBuf ? body : Buffer.from(JSON.stringify(body));
    const h = { ...headers };
    if (!isBuf && body !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json; charset=utf-8";
    h["Content-Length"] = payload.length;
    res.writeHead(status, h);
    res.end(res.req.method === "HEAD" ? undefined : payload);
    bump(stats.responses, `${res.endpoint ?? "unknown"} ${status}`);
}
function sendError(res, e) {
    const h = { "X-Error-Message": e.message, ...e.extraHeaders };
    if (e.code) h["X-Error-Code"] = e.code;
    send(res, e.status, e.body ?? { error: e.message }, h);
}
function readBody(req, limit = 1024 * MiB) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let n = 0;
        req.on("data", (c) => {
            n += c.length;
            if (n > limit) { reject(err(413, "Payload too large")); req.destroy(); return; }
            chunks.push(c);
        });
        req.on("end", () => resolve(Buffer.concat(chunks)));
        req.on("error", reject);
    });
}
async function readJson(req) {
    const b = await readBody(req, 64 * MiB);
    try { return JSON.parse(b.toString("utf8") || "{}"); } catch { throw err(400, "Invalid JSON body"); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------- routing
function route(req, url) {
    const segs = url.pathname.split("/").slice(1).map((s) => { try { return decodeURIComponent(s); } catch { return s; } });
    const m = req.method;
    if (segs[0] === "__stats") return { ep: "__stats", fn: m === "POST" && segs[1] === "reset" ? statsReset : statsGet };
    if (segs[0] === "__faults") return { ep: "__faults", fn: faultsEndpoint };
    if (segs[0] === "__config") return { ep: "__config", fn: configEndpoint };
    if (segs[0] === "__abort" && m === "POST") return { ep: "__abort", fn: abortInFlight };
    if (segs[0] === "__lfs") {
        if (segs[1] === "put" && m === "PUT") return { ep: "put", fn: putObject, a: { oid: segs[2] } };
        if (segs[1] === "part" && m === "PUT") return { ep: "part", fn: putPart, a: { oid: segs[2], part: segs[3] } };
        if (segs[1] === "complete" && m === "POST") return { ep: "complete", fn: completeMultipart, a: { oid: segs[2] } };
        if (segs[1] === "cdn" && (m === "GET" || m === "HEAD")) return { ep: "cdn", fn: cdnGet, a: { oid: segs[2] } };
        return null;
    }
    if (segs[0] === "cas" && opt.xet) {
        if (m === "POST" && segs[1] === "v1" && segs[2] === "xorbs" && segs[3] === "default" && segs.length === 5)
            return { ep: "cas-xorb", fn: casXorb, a: { hash: segs[4] } };
        if (m === "POST" && segs[1] === "v1" && segs[2] === "shards" && segs.length === 3) return { ep: "cas-shard", fn: casShard };
        if (m === "GET" && segs[1] === "v1" && segs[2] === "chunks" && segs.length === 5) return { ep: "cas-chunk", fn: casChunk };
        if (m === "GET" && (segs[1] === "v1" || segs[1] === "v2") && segs[2] === "reconstructions" && segs.length === 4)
            return { ep: "cas-reconstruction", fn: casReconstruction, a: { hash: segs[3], v2: segs[1] === "v2" } };
        if (m === "GET" && segs[1] === "xorb" && segs[2] === "default" && segs.length === 4) return { ep: "cas-xorb-get", fn: casXorbGet, a: { hash: segs[3] } };
        return null;
    }
    if (segs[0] === "api") {
        if (segs[1] === "whoami-v2" && m === "GET") return { ep: "whoami", fn: whoami };
        if (segs[1] === "repos" && segs[2] === "create" && m === "POST") return { ep: "create-repo", fn: createRepo };
        if (segs[1] === "repos" && segs[2] === "delete" && m === "DELETE") return { ep: "delete-repo", fn: deleteRepo };
        if (segs[1] === "validate-yaml" && m === "POST") return { ep: "validate-yaml", fn: validateYaml };
        const tm = /^(model|dataset|space)s$/.exec(segs[1] ?? "");
        if (!tm || segs.length < 4) return null;
        const a = { type: tm[1], ns: segs[2], name: segs[3] };
        const op = segs[4];
        const rest = segs.slice(5);
        if (op === undefined && m === "GET") return { ep: "info", fn: repoInfo, a: { ...a, rev: "main" } };
        if (op === "revision" && m === "GET") return { ep: "revision", fn: repoInfo, a: { ...a, rev: rest.join("/") } };
        if (op === "preupload" && m === "POST") return { ep: "preupload", fn: preupload, a: { ...a, rev: rest.join("/") } };
        if (op === "commit" && m === "POST") return { ep: "commit", fn: commit, a: { ...a, rev: rest.join("/") } };
        if (op === "tree" && m === "GET") {
            const [rev, sub] = splitRev(rest);
            return { ep: "tree", fn: tree, a: { ...a, rev, sub } };
        }
        if (op === "paths-info" && m === "POST") return { ep: "paths-info", fn: pathsInfo, a: { ...a, rev: rest.join("/") } };
        if (op === "branch" && (m === "POST" || m === "DELETE")) return { ep: "branch", fn: branch, a: { ...a, branch: rest.join("/") } };
        if (op === "refs" && m === "GET") return { ep: "refs", fn: listRefs, a };
        if (op === "xet-write-token" && m === "GET" && opt.xet) return { ep: "xet-token", fn: xetToken, a: { ...a, rev: rest.join("/") } };
        if (op === "xet-read-token" && m === "GET" && opt.xet) return { ep: "xet-read-token", fn: xetReadToken, a: { ...a, rev: rest.join("/") } };
        return null;
    }
    // /{prefix}{ns}/{name}.git/info/lfs/objects/{batch|verify} and /{prefix}{ns}/{name}/resolve/{rev}/{path}
    let type = "model", s = segs;
    if (s[0] === "datasets" || s[0] === "spaces") { type = s[0].slice(0, -1); s = s.slice(1); }
    if (s.length >= 6 && s[1].endsWith(".git") && s[2] === "info" && s[3] === "lfs" && s[4] === "objects" && m === "POST") {
        const a = { type, ns: s[0], name: s[1].slice(0, -4) };
        if (s[5] === "batch") return { ep: "batch", fn: lfsBatch, a };
        if (s[5] === "verify") return { ep: "verify", fn: lfsVerify, a };
        return null;
    }
    if (s.length >= 4 && (s[2] === "resolve" || s[2] === "raw") && (m === "GET" || m === "HEAD")) {
        const [rev, sub] = splitRev(s.slice(3));
        return { ep: "resolve", fn: resolve, a: { type, ns: s[0], name: s[1], rev, sub, raw: s[2] === "raw" } };
    }
    return null;
}
// "refs/pr/1" may arrive encoded in one segment or as three raw segments.
function splitRev(rest) {
    if (rest[0] === "refs" && (rest[1] === "pr" || rest[1] === "heads" || rest[1] === "convert") && rest.length >= 3) {
        return [rest.slice(0, 3).join("/"), rest.slice(3).join("/")];
    }
    return [rest[0] ?? "main", rest.slice(1).join("/")];
}

const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    const base = `http://${req.headers.host ?? `127.0.0.1:${server.address().port}`}`;
    const rid = `req-${++requestCounter}`;
    res.setHeader("X-Request-Id", rid);
    const r = route(req, url);
    res.endpoint = r?.ep ?? "unknown";
    bump(stats.requests, res.endpoint);
    if (!res.endpoint.startsWith("__")) { inFlight++; res.on("close", () => inFlight--); }
    if (opt.verbose) process.stderr.write(`${req.method} ${url.pathname} -> ${res.endpoint}\n`);
    try {
        if (!r) throw err(404, `No route for ${req.method} ${url.pathname}`);
        if (r.ep === "put" || r.ep === "part") {
            storageInFlight.add(req);
            stats.storagePeakInFlight = Math.max(stats.storagePeakInFlight, storageInFlight.size);
            res.on("close", () => storageInFlight.delete(req));
        }
        if (r.ep === "put" || r.ep === "part" || r.ep === "complete") {
            // Storage URLs are pre-signed: clients must not send the Hub token there (huggingface_hub's lfs.py).
            if (req.headers.authorization) stats.storageRequestsWithAuthorization++;
            // Who sent the bytes: per User-Agent (a client can name its rank there) and distinct connections.
            bump(stats.storageUserAgents, req.headers["user-agent"] ?? "(none)");
            if (!req.socket.sfCounted) { req.socket.sfCounted = true; stats.storageConnections++; }
            if (r.ep !== "complete" && req.headers["content-length"] === undefined) {
                throw err(411, "A Content-Length is required (storage refuses chunked uploads)", "MissingContentLength");
            }
        }
        // How long the client waited before asking again after a fault (to check Retry-After/backoff): per
        // endpoint, and per object/part for the storage endpoints (other objects go on in parallel).
        const gapKey = r.a?.oid ? `${r.ep}:${r.a.oid}/${r.a.part ?? ""}` : r.ep;
        if (faultPending[gapKey]) {
            const { rule, t } = faultPending[gapKey];
            stats.retryGapsMs[rule] = [...(stats.retryGapsMs[rule] ?? []), Date.now() - t];
            delete faultPending[gapKey];
        }
        const fault = r.ep.startsWith("__") ? null : takeFault(r.ep);
        if (fault && fault.action !== "slow" && fault.action !== "throttle") faultPending[gapKey] = { rule: fault.rule, t: Date.now() };
        if (fault) {
            if (fault.action === "throttle") res.throttle = req.sfThrottle = Math.max(1, fault.param ?? 65536);
            else if (fault.action === "slow") {
                await sleep(fault.param ?? 1000);
                if (req.socket.destroyed) return;      // the client went away meanwhile
            }
            else if (fault.action === "drop") return dropConnection(req, res, r);
            else if (fault.action === "lost") res.lost = true;   // handled normally, then the answer is lost
            else return injectStatus(req, res, r, fault);
        }
        await r.fn(req, res, { ...r.a, url, base });
    } catch (e) {
        if (e instanceof HubError) {
            if (!req.complete) { req.resume(); await new Promise((ok) => { req.on("end", ok); req.on("close", ok); }); }
            if (!res.headersSent) sendError(res, e);
        } else {
            process.stderr.write(`server.mjs: internal error on ${req.method} ${url.pathname}: ${e.stack}\n`);
            if (!res.headersSent) sendError(res, err(500, "Internal error"));
            else res.destroy();
        }
    }
});
server.on("clientError", (e, socket) => socket.destroy());   // malformed requests, resets: not our concern
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 5_000;

// Fault answers. The request body is read completely first (and counted), as a real server would.
async function drainCounting(req, r) {
    const oid = r.a?.oid;
    for await (const c of req) if (oid && (r.ep === "put" || r.ep === "part")) countReceived(oid, r.ep === "part" ? r.a.part : null, c.length);
}
async function injectStatus(req, res, r, fault) {
    await drainCounting(req, r);
    const status = Number(fault.action);
    const headers = { "X-Error-Message": `injected fault ${fault.rule}` };
    if (status === 429 || status === 503) {
        const t = fault.param ?? 1;
        headers["Retry-After"] = String(t);
        if (status === 429) {
            headers["RateLimit"] = `"api";r=0;t=${t}`;
            headers["RateLimit-Policy"] = `"fixed window";"api";q=1000;w=300`;
        }
    }
    const msg = status === 429 ? "You have exceeded our hourly quotas for action: commit. We invite you to retry later."
        : `Injected fault (${fault.rule})`;
    send(res, status, { error: msg }, headers);
}
// Upload endpoints: cut the connection after half of the declared body. Download endpoints: send the headers and
// half of the body, then cut. Others: cut before answering.
async function dropConnection(req, res, r) {
    if (r.ep === "put" || r.ep === "part") {
        const len = Number(req.headers["content-length"] ?? 0);
        let got = 0;
        await new Promise((done) => {
            req.on("data", (c) => {
                got += c.length;
                countReceived(r.a.oid, r.ep === "part" ? r.a.part : null, c.length);
                if (got * 2 >= len) { req.socket.destroy(); done(); }
            });
            req.on("end", () => { req.socket.destroy(); done(); });
            req.on("close", done);
        });
        return;
    }
    if (r.ep === "resolve" || r.ep === "cdn" || r.ep === "cas-xorb-get") {
        res.dropHalf = true;
        const url = new URL(req.url, "http://localhost");
        return r.fn(req, res, { ...r.a, url, base: `http://${req.headers.host}` });
    }
    req.resume();
    req.on("end", () => req.socket.destroy());
}

// ---------------------------------------------------------------------------------------------- test hooks
// POST /__abort cuts every storage upload still being received: after a test killed a client, what was still in
// flight is lost as it would be on a real network (on loopback the kernel would otherwise deliver it all).
const storageInFlight = new Set();
function abortInFlight(req, res) {
    const n = storageInFlight.size;
    for (const r of storageInFlight) r.socket.destroy();
    send(res, 200, { aborted: n });
}
let inFlight = 0;   // requests being handled now (test hooks excluded): tests wait for 0 after killing a client
function statsGet(req, res) { send(res, 200, { ...stats, inFlight }); }
function statsReset(req, res) { Object.assign(stats, newStats()); send(res, 200, { ok: true }); }
async function faultsEndpoint(req, res) {
    if (req.method === "DELETE") faults = [];
    else if (req.method === "POST") {
        const b = (await readBody(req)).toString("utf8").trim();
        let spec = b;
        if (b.startsWith("{")) spec = JSON.parse(b).spec ?? "";
        try { faults.push(...parseFaults(spec)); } catch (e) { throw err(400, e.message); }
    }
    send(res, 200, { faults: faults.filter((f) => f.count > 0) });
}
async function configEndpoint(req, res) {
    if (req.method === "POST") {
        const j = await readJson(req);
        for (const k of ["chunkSize", "multipartThreshold", "lfsThreshold", "maxFileSize", "lfsRedirect"]) {
            if (k in j) opt[k] = j[k];
        }
    }
    const { data, ...shown } = opt;
    send(res, 200, shown);
}

// ---------------------------------------------------------------------------------------------- API endpoints
function whoami(req, res) {
    const u = auth(req, { required: true });
    send(res, 200, {
        type: "user", id: "000000000000000000000001", name: u.name, fullname: "Test User", email: "testuser@localhost",
        emailVerified: true, isPro: false, canPay: false, avatarUrl: "", periodEnd: null, billingMode: "prepaid",
        orgs: u.orgs.map((o, i) => ({ type: "org", id: `00000000000000000000010${i}`, name: o, fullname: o, email: null,
            canPay: false, avatarUrl: "", periodEnd: null, roleInOrg: "write" })),
        auth: { type: "access_token", accessToken: { displayName: "test", role: u.role, createdAt: "2026-01-01T00:00:00.000Z" } },
    });
}

async function createRepo(req, res, { base }) {
    const u = auth(req, { write: true });
    const j = await readJson(req);
    const type = j.type ?? "model";
    if (!["model", "dataset", "space"].includes(type)) throw err(400, `Invalid repo type ${type}`);
    if (typeof j.name !== "string" || !/^[\w.-]{1,96}$/.test(j.name)) throw err(400, "Invalid repo name");
    const ns = j.organization ?? u.name;
    checkWritable(u, ns);
    const key = repoKey(type, ns, j.name);
    const r0 = { type, ns, name: j.name };
    if (repos.has(key)) {
        throw err(409, `You already created this ${type} repo`, undefined, {}, { error: `You already created this ${type} repo`, url: repoUrl(base, r0) });
    }
    const priv = j.visibility ? j.visibility !== "public" : !!j.private;
    const r = { ...r0, private: priv, createdAt: new Date().toISOString(), branches: {}, prCount: 0, commits: {} };
    const files = { ".gitattributes": regularEntry(Buffer.from(gitattributesText(DEFAULT_LFS_PATTERNS))) };
    for (const f of j.files ?? []) files[f.path] = regularEntry(Buffer.from(f.content ?? "", f.encoding === "base64" ? "base64" : "utf8"));
    r.branches.main = makeCommit(r, null, files, "initial commit", "");
    repos.set(key, r);
    saveRepo(r);
    send(res, 200, { url: repoUrl(base, r), name: `${ns}/${j.name}`, id: `${ns}/${j.name}` });
}

async function deleteRepo(req, res) {
    const u = auth(req, { write: true });
    const j = await readJson(req);
    const ns = j.organization ?? u.name;
    const key = repoKey(j.type ?? "model", ns, j.name);
    const r = repos.get(key);
    if (!r) throw err(404, "Repository not found", "RepoNotFound");
    checkWritable(u, ns);
    repos.delete(key);
    fs.rmSync(repoFile(r), { force: true });
    send(res, 200, {});
}

// Front matter check: closed block, and every line a key, list item, continuation, comment or blank.
async function validateYaml(req, res) {
    const j = await readJson(req);
    const text = String(j.content ?? "").replace(/\r\n/g, "\n");
    const errors = [];
    if (text.startsWith("---\n")) {
        const end = text.indexOf("\n---", 3);
        if (end < 0) errors.push({ message: "YAML front matter is not closed by a '---' line" });
        else {
            const lines = text.slice(4, end + 1).split("\n");
            lines.forEach((l, i) => {
                if (!l.trim() || /^\s*#/.test(l) || /^\s+\S/.test(l) || /^- /.test(l)) return;
                if (!/^[A-Za-z_][\w.-]*:(\s|$)/.test(l)) errors.push({ message: `line ${i + 2}: not a "key: value" YAML line` });
            });
            const rel = /^base_model_relation:\s*(\S+)/m.exec(text.slice(0, end));
            if (rel && !["adapter", "merge", "quantized", "finetune"].includes(rel[1].replace(/["']/g, ""))) {
                errors.push({ message: `"base_model_relation" must be one of adapter, merge, quantized, finetune` });
            }
        }
    }
    if (errors.length) send(res, 400, { errors, warnings: [] });
    else send(res, 200, { errors: [], warnings: [] });
}

async function preupload(req, res, { type, ns, name, rev, url }) {
    const u = auth(req, { write: true });
    const r = getRepo(type, ns, name, u);
    checkWritable(u, ns);
    const head = r.commits[resolveRev(r, rev)];
    const j = await readJson(req);
    if (!Array.isArray(j.files)) throw err(400, "files must be an array");
    if (j.files.length > 1000) throw err(413, "Too many files in one preupload call (max 1000)");
    const patterns = [...lfsPatternsOf(j.gitAttributes), ...lfsPatternsOf(fileText(head.files[".gitattributes"]))];
    const ignore = (j.gitIgnore ?? fileText(head.files[".gitignore"]) ?? "").split("\n").map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#")).map(globToRegExp);
    const files = j.files.map((f) => {
        if (typeof f.path !== "string" || !Number.isInteger(f.size)) throw err(400, "each file needs path and size");
        const sample = Buffer.from(f.sample ?? "", "base64");
        const lfs = f.size > 0 && (lfsPatternMatches(patterns, f.path) || f.size >= opt.lfsThreshold || sample.includes(0));
        const existing = head.files[f.path];
        const base = f.path.split("/").pop();
        return { path: f.path, uploadMode: lfs ? "lfs" : "regular", shouldIgnore: ignore.some((re) => re.test(f.path) || re.test(base)),
            oid: existing ? (existing.lfs ? existing.sha256 : existing.blobOid) : null };
    });
    send(res, 200, { files, commitOid: r.branches[rev] ?? null });
}
function fileText(e) {
    if (!e || e.lfs) return undefined;
    try { return fs.readFileSync(objPath(e.sha256), "utf8"); } catch { return undefined; }
}

function signedQuery(kind, oid, fields) {
    const exp = Math.floor(Date.now() / 1000) + opt.urlTtl;
    const q = new URLSearchParams({ ...fields, exp: String(exp) });
    q.set("sig", sign(`${kind}:${oid}:${q.toString()}`));
    return q.toString();
}
function checkSigned(kind, oid, url) {
    const q = new URLSearchParams(url.searchParams);
    const sig = q.get("sig");
    q.delete("sig");
    if (!sig || sig !== sign(`${kind}:${oid}:${q.toString()}`)) throw err(403, "Signature does not match", "SignatureDoesNotMatch");
    if (Number(q.get("exp")) < Date.now() / 1000) throw err(403, "Request has expired", "AccessDenied");
    return Object.fromEntries(q);
}

async function lfsBatch(req, res, { type, ns, name, base }) {
    const j = await readJson(req);
    const op = j.operation;
    const u = auth(req, { write: op === "upload" });
    getRepo(type, ns, name, u);
    if (op === "upload") checkWritable(u, ns);
    if (op !== "upload" && op !== "download") throw err(400, "operation must be upload or download");
    if (!Array.isArray(j.objects)) throw err(400, "objects must be an array");
    if (j.objects.length > 1000) throw err(413, "Too many objects in one batch call (max 1000)");
    const transfers = Array.isArray(j.transfers) ? j.transfers : ["basic"];
    const multipartOffered = transfers.includes("multipart");
    if (opt.xet && op === "upload" && transfers.includes("xet")) return xetBatch(res, j, { type, ns, name, base });
    const objects = j.objects.map((o) => {
        if (!isOid(o.oid) || !Number.isInteger(o.size) || o.size < 0) {
            return { oid: String(o.oid), size: Number.isInteger(o.size) ? o.size : 0, error: { code: 422, message: "Invalid oid or size" } };
        }
        const out = { oid: o.oid, size: o.size, authenticated: true };
        const stored = fs.existsSync(objPath(o.oid)) ? fs.statSync(objPath(o.oid)).size : -1;
        if (op === "download") {
            if (stored < 0) return { ...out, error: { code: 404, message: "Object does not exist" } };
            out.actions = { download: { href: `${base}/__lfs/cdn/${o.oid}?${signedQuery("cdn", o.oid, {})}`, header: {}, expires_in: opt.urlTtl } };
            return out;
        }
        if (o.size > opt.maxFileSize) {
            return { ...out, error: { code: 422, message: `Object size ${o.size} exceeds the maximum file size of ${opt.maxFileSize} bytes` } };
        }
        if (stored === o.size) return out;          // already stored: no actions at all
        const verify = { href: `${base}/${repoPrefix(type)}${ns}/${name}.git/info/lfs/objects/verify`, header: {} };
        if (multipartOffered && o.size > opt.multipartThreshold) {
            const chunk = opt.chunkSize;
            const nparts = Math.ceil(o.size / chunk);
            const header = { chunk_size: String(chunk) };
            for (let p = 1; p <= nparts; p++) {
                header[String(p).padStart(5, "0")] =
                    `${base}/__lfs/part/${o.oid}/${p}?${signedQuery("part", o.oid, { part: String(p), size: String(o.size), chunk: String(chunk) })}`;
            }
            out.actions = { upload: { href: `${base}/__lfs/complete/${o.oid}?${signedQuery("complete", o.oid, { size: String(o.size), chunk: String(chunk) })}`,
                header, expires_in: opt.urlTtl }, verify };
        } else {
            out.actions = { upload: { href: `${base}/__lfs/put/${o.oid}?${signedQuery("put", o.oid, { size: String(o.size) })}`, header: {},
                expires_in: opt.urlTtl }, verify };
        }
        return out;
    });
    const anyMultipart = objects.some((o) => o.actions?.upload?.header?.chunk_size);
    send(res, 200, { transfer: anyMultipart ? "multipart" : "basic", objects, hash_algo: "sha256" },
        { "Content-Type": "application/vnd.git-lfs+json" });
}

// ---------------------------------------------------------------------------------------------- Xet CAS (--xet)
// docs/xet.md "Upload". Hashes are recomputed with the official JS implementations (loaded on first use), never
// with the client's code: chunk = keyed BLAKE3 (the data key), xorb = merkle aggregation, file hash, verification.
const XET_DATA_KEY = Buffer.from("6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229", "hex");
const SHARD_TAG = Buffer.from("48465265706f4d657461446174610055696745" + "6a7b815783a5bdd95ccdd14aa9", "hex");
const xetTokens = new Set();   // CAS access tokens handed out by the token endpoint and the batch answer
const chunkIndex = new Map();  // chunk hash (xet-hex) -> {xorb, index}: what global dedup queries find
const DEDUP_KEY = crypto.randomBytes(32);   // the HMAC key of this server's dedup answers
let xetLib = null;
async function xetOracles() {
    if (xetLib) return xetLib;
    const nm = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../conformance/node_modules/@huggingface");
    const blake3 = await import(path.join(nm, "blake3-jit/dist/esm/index.js"));
    const xc = await import(path.join(nm, "xetchunk-wasm/dist/esm/index.js"));
    xetLib = { blake3, xc };
    return xetLib;
}
function mintXetToken(base) {
    const accessToken = `xet_${crypto.randomBytes(16).toString("hex")}`;
    xetTokens.add(accessToken);
    stats.xet.tokens++;
    return { accessToken, casUrl: `${base}/cas`, exp: Math.floor(Date.now() / 1000) + opt.urlTtl };
}
function casAuth(req) {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!m || !xetTokens.has(m[1])) throw err(401, "Invalid or expired Xet token");
}
function xetReject(why, status = 400) {
    bump(stats.xet.rejected, why.split(":")[0]);
    return err(status, why);
}
function xetBatch(res, j, { type, ns, name, base }) {
    const t = mintXetToken(base);
    const header = { "X-Xet-Cas-Url": t.casUrl, "X-Xet-Access-Token": t.accessToken,
        "X-Xet-Token-Expiration": String(t.exp), "X-Xet-Session-Id": crypto.randomUUID() };
    const objects = j.objects.map((o) => {
        if (!isOid(o.oid) || !Number.isInteger(o.size) || o.size < 0) {
            return { oid: String(o.oid), size: Number.isInteger(o.size) ? o.size : 0, error: { code: 422, message: "Invalid oid or size" } };
        }
        if (o.size > opt.maxFileSize) return { oid: o.oid, size: o.size, error: { code: 422, message: `Object size ${o.size} exceeds the maximum file size` } };
        const stored = fs.existsSync(objPath(o.oid)) ? fs.statSync(objPath(o.oid)).size : -1;
        if (stored === o.size) return { oid: o.oid, size: o.size };
        return { oid: o.oid, size: o.size,
            actions: { upload: { href: `${base}/api/${type}s/${ns}/${name}/xet-write-token/main`, header } } };
    });
    send(res, 200, { transfer: "xet", objects, hash_algo: "sha256" }, { "Content-Type": "application/vnd.git-lfs+json" });
}
function xetToken(req, res, { type, ns, name, base }) {
    const u = auth(req, { write: true });
    getRepo(type, ns, name, u);
    checkWritable(u, ns);
    send(res, 200, mintXetToken(base));
}
// Global dedup: for a known chunk, a shard with an empty file section and the CAS-info block of the xorb holding it,
// its chunks listed as HMAC(chunk hash, key); the key and its expiry in the 200-byte footer (docs/xet.md
// "Deduplication"; the JS client's parser reads xorb_info_offset, file_lookup_offset as the scan limit, the key).
async function casChunk(req, res) {
    casAuth(req);
    stats.xet.dedupQueries++;
    const hit = chunkIndex.get(path.basename(new URL(req.url, "http://x").pathname));
    if (!hit) return send(res, 404, { error: "chunk not found" });
    stats.xet.dedupHits = (stats.xet.dedupHits ?? 0) + 1;
    const { blake3, xc } = await xetOracles();
    const body = fs.readFileSync(path.join(DATA, "xorbs", hit.xorb));
    const chunks = parseXorb(body);
    const key = new Uint8Array(DEDUP_KEY);
    const rec = (n) => Buffer.alloc(48 * n);
    const head = rec(1);
    SHARD_TAG.copy(head, 0);
    head.writeBigUInt64LE(2n, 32);
    head.writeBigUInt64LE(200n, 40);
    const bookend = rec(1);
    bookend.fill(0xff, 0, 32);
    const block = rec(1 + chunks.length);
    Buffer.from(xc.hexToBytes(hit.xorb)).copy(block, 0);
    block.writeUInt32LE(chunks.length, 36);
    block.writeUInt32LE(chunks.reduce((s, c) => s + c.length, 0), 40);
    block.writeUInt32LE(body.length, 44);
    let start = 0;
    chunks.forEach((c, i) => {
        const h = blake3.createKeyed(XET_DATA_KEY).update(c).finalize();
        Buffer.from(xc.hmac(h, key)).copy(block, 48 * (1 + i));
        block.writeUInt32LE(start, 48 * (1 + i) + 32);
        block.writeUInt32LE(c.length, 48 * (1 + i) + 36);
        start += c.length;
    });
    const casOffset = 48 + 48;
    const footerOffset = casOffset + block.length + 48;
    const footer = Buffer.alloc(200);
    footer.writeBigUInt64LE(1n, 0);
    footer.writeBigUInt64LE(48n, 8);
    footer.writeBigUInt64LE(BigInt(casOffset), 16);
    footer.writeBigUInt64LE(BigInt(footerOffset), 24);   // file_lookup_offset: where a parser stops scanning
    DEDUP_KEY.copy(footer, 72);
    footer.writeBigUInt64LE(BigInt(Math.floor(Date.now() / 1000)), 104);
    footer.writeBigUInt64LE(BigInt(Math.floor(Date.now() / 1000) + 3600), 112);
    footer.writeBigUInt64LE(BigInt(footerOffset), 192);
    send(res, 200, Buffer.concat([head, bookend, block, bookend, footer]), { "Content-Type": "application/octet-stream" });
}
// Chunk payloads: scheme 1 = an LZ4 frame, 2 = an LZ4 frame of the bytes grouped by position mod 4 (BG4). LZ4
// frames are decoded by Debian's lz4 tool (package lz4), not by code of ours.
function lz4Frame(payload) {
    try { return execFileSync("lz4", ["-d", "-c"], { input: payload, maxBuffer: 256 * MiB }); }
    catch (e) { throw xetReject(`xorb: LZ4 frame does not decode (${String(e.message).split("\n")[0]})`); }
}
function bg4Regroup(g, n) {
    const out = Buffer.alloc(n), q = Math.floor(n / 4), r = n % 4;
    let at = 0;
    for (let k = 0; k < 4; k++) {
        const len = q + (k < r ? 1 : 0);
        for (let i = 0; i < len; i++) out[4 * i + k] = g[at + i];
        at += len;
    }
    return out;
}
// A xorb body: records of an 8-byte header (version 0, u24 payload size, scheme, u24 chunk size) + payload.
function parseXorb(buf) {
    const chunks = [];
    for (let at = 0; at < buf.length;) {
        if (at + 8 > buf.length) throw xetReject("xorb: truncated chunk header");
        if (buf[at] !== 0) throw xetReject(`xorb: chunk version ${buf[at]}`);
        const csize = buf.readUIntLE(at + 1, 3), scheme = buf[at + 4], usize = buf.readUIntLE(at + 5, 3);
        if (scheme > 2) throw xetReject(`xorb: unknown compression scheme ${scheme}`);
        if (scheme === 0 && csize !== usize) throw xetReject("xorb: uncompressed chunk with payload size != chunk size");
        if (at + 8 + csize > buf.length) throw xetReject("xorb: truncated chunk payload");
        const payload = buf.subarray(at + 8, at + 8 + csize);
        const chunk = scheme === 0 ? payload : scheme === 1 ? lz4Frame(payload) : bg4Regroup(lz4Frame(payload), usize);
        if (chunk.length !== usize) throw xetReject(`xorb: chunk decodes to ${chunk.length} bytes, header says ${usize}`);
        bump(stats.xet.chunkSchemes, String(scheme));
        chunks.push(chunk);
        at += 8 + csize;
    }
    if (chunks.length === 0) throw xetReject("xorb: empty");
    return chunks;
}
async function casXorb(req, res, { hash }) {
    casAuth(req);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw xetReject("xorb: malformed hash in the path");
    const body = await readBody(req, 64 * MiB + 1);
    countReceived(`xorb:${hash}`, null, body.length);
    if (body.length > 64 * MiB) throw xetReject("xorb: larger than 64 MiB");
    const { blake3, xc } = await xetOracles();
    const chunks = parseXorb(body);
    const nodes = chunks.map((c) => ({ hash: blake3.createKeyed(XET_DATA_KEY).update(c).finalize(), length: c.length }));
    const got = xc.hashToHex(xc.xorbHash(nodes));
    if (got !== hash) throw xetReject(`xorb: body hashes to ${got}, path says ${hash}`);
    const file = path.join(DATA, "xorbs", hash);
    const inserted = !fs.existsSync(file);
    nodes.forEach((n, i) => { const h = xc.hashToHex(n.hash); if (!chunkIndex.has(h)) chunkIndex.set(h, { xorb: hash, index: i }); });
    if (inserted) {
        const tmp = path.join(DATA, "tmp", `xorb.${crypto.randomUUID()}`);
        fs.writeFileSync(tmp, body);
        fs.renameSync(tmp, file);
        stats.xet.xorbs++;
        stats.xet.xorbBytes += body.length;
    }
    send(res, 200, { was_inserted: inserted });
}
// A shard: header, file-info section, bookend, CAS-info section, bookend, optional 200-byte footer.
async function casShard(req, res) {
    casAuth(req);
    const b = await readBody(req, 64 * MiB);
    countReceived("shard", null, b.length);
    const { blake3, xc } = await xetOracles();
    if (b.length < 48 || !b.subarray(0, 32).equals(SHARD_TAG)) throw xetReject("shard: bad header tag");
    if (b.readBigUInt64LE(32) !== 2n) throw xetReject("shard: version is not 2");
    const footer = Number(b.readBigUInt64LE(40));
    if (footer !== 0 && footer !== 200) throw xetReject(`shard: footer size ${footer}`);
    const end = b.length - footer;
    const isBookend = (at) => b.subarray(at, at + 32).every((x) => x === 0xff);
    const hex = (at) => xc.hashToHex(new Uint8Array(b.subarray(at, at + 32)));
    let at = 48;
    const files = [];
    while (true) {
        if (at + 48 > end) throw xetReject("shard: file section without bookend");
        if (isBookend(at)) { at += 48; break; }
        const f = { hash: hex(at), flags: b.readUInt32LE(at + 32), n: b.readUInt32LE(at + 36), terms: [] };
        at += 48;
        for (let i = 0; i < f.n; i++, at += 48) {
            f.terms.push({ xorb: hex(at), bytes: b.readUInt32LE(at + 36), start: b.readUInt32LE(at + 40), end: b.readUInt32LE(at + 44) });
        }
        if (f.flags & 0x80000000) for (let i = 0; i < f.n; i++, at += 48) f.terms[i].verification = hex(at);
        else throw xetReject("shard: no verification entries");
        if (f.flags & 0x40000000) { f.sha256 = hex(at); at += 48; }
        else throw xetReject("shard: no metadata extension (sha256) for a repo upload");
        if (at > end) throw xetReject("shard: truncated file section");
        files.push(f);
    }
    while (true) {
        if (at + 48 > end) throw xetReject("shard: CAS section without bookend");
        if (isBookend(at)) { at += 48; break; }
        const x = hex(at), n = b.readUInt32LE(at + 36);
        if (!fs.existsSync(path.join(DATA, "xorbs", x))) throw xetReject(`shard: CAS info for xorb ${x} that was not uploaded`);
        at += 48 * (1 + n);
    }
    if (at !== end) throw xetReject("shard: bytes after the CAS section");
    const xorbCache = new Map();
    const xorbChunks = (h) => {
        if (!xorbCache.has(h)) {
            const p = path.join(DATA, "xorbs", h);
            if (!fs.existsSync(p)) throw xetReject(`shard: term references xorb ${h} that was not uploaded`);
            xorbCache.set(h, parseXorb(fs.readFileSync(p)));
        }
        return xorbCache.get(h);
    };
    for (const f of files) {
        const parts = [], nodes = [];
        for (const t of f.terms) {
            const cs = xorbChunks(t.xorb);
            if (t.start >= t.end || t.end > cs.length) throw xetReject(`shard: term range ${t.start}..${t.end} outside xorb ${t.xorb}`);
            const sel = cs.slice(t.start, t.end);
            const hashes = sel.map((c) => blake3.createKeyed(XET_DATA_KEY).update(c).finalize());
            if (sel.reduce((s, c) => s + c.length, 0) !== t.bytes) throw xetReject("shard: term byte count differs from its chunks");
            if (xc.hashToHex(xc.verificationHash(hashes)) !== t.verification) throw xetReject("shard: verification hash mismatch");
            sel.forEach((c, i) => { parts.push(c); nodes.push({ hash: hashes[i], length: c.length }); });
        }
        const fh = nodes.length === 0 ? "0".repeat(64) : xc.hashToHex(xc.fileHash(nodes));
        if (fh !== f.hash) throw xetReject(`shard: file reconstruction does not produce this hash (${fh} != ${f.hash})`);
        const data = Buffer.concat(parts);
        if (sha256hex(data) !== f.sha256) throw xetReject("shard: sha256 of the reconstructed file differs from the metadata extension");
        storeBlob(data);
        // What downloads reconstruct the file from (the resolve answer's X-Xet-Hash, the reconstruction terms).
        writeJsonAtomic(path.join(DATA, "xet-files", `${f.hash}.json`),
            { hash: f.hash, size: data.length, terms: f.terms.map((t) => ({ xorb: t.xorb, start: t.start, end: t.end, bytes: t.bytes })) });
        fs.writeFileSync(path.join(DATA, "xet-sha", f.sha256), f.hash);
        stats.xet.files++;
    }
    stats.xet.shards++;
    send(res, 200, { result: 1 });
}

// ---------------------------------------------------------------------------------------------- Xet downloads
// docs/xet.md "Download": a Xet-stored file's resolve answer carries X-Xet-Hash and Link (xet-auth,
// xet-reconstruction-info); the read token; the reconstruction (v1: terms + fetch_info with url/url_range; v2:
// terms + xorbs with url/ranges, one range per entry so clients fetch single ranges) for the whole file or the
// terms overlapping a Range; xorb bytes from signed URLs that cover exactly the ranges they were issued for.
function xetFileOfSha(sha256) {
    if (!opt.xet) return null;
    try { return JSON.parse(fs.readFileSync(path.join(DATA, "xet-files", `${fs.readFileSync(path.join(DATA, "xet-sha", sha256), "utf8")}.json`), "utf8")); }
    catch { return null; }
}
function xetReadToken(req, res, { type, ns, name, base }) {
    getRepo(type, ns, name, auth(req));
    stats.xet.readTokens++;
    send(res, 200, mintXetToken(base));
}
const xorbOffsetCache = new Map();
// Byte offset of every chunk record of a stored xorb, and its length at the end.
function xorbRecordOffsets(hash) {
    if (xorbOffsetCache.has(hash)) return xorbOffsetCache.get(hash);
    const buf = fs.readFileSync(path.join(DATA, "xorbs", hash));
    const offs = [];
    for (let at = 0; at < buf.length; at += 8 + buf.readUIntLE(at + 1, 3)) offs.push(at);
    offs.push(buf.length);
    xorbOffsetCache.set(hash, offs);
    return offs;
}
function casReconstruction(req, res, { hash, v2, base }) {
    casAuth(req);
    let f;
    try { f = JSON.parse(fs.readFileSync(path.join(DATA, "xet-files", `${hash}.json`), "utf8")); }
    catch { throw err(404, `no file with Xet hash ${hash}`); }
    stats.xet.reconstructions++;
    let a = 0, b = f.size - 1;
    if (req.headers.range) {
        const range = parseRange(req.headers.range, f.size);
        if (!range) throw err(416, `range ${req.headers.range} outside the file's ${f.size} bytes`);
        [a, b] = range;
        stats.xet.rangedReconstructions++;
    }
    const terms = [];
    let at = 0, offset = 0;
    for (const t of f.terms) {
        const end = at + t.bytes;
        if (end > a && at <= b) {
            if (terms.length === 0) offset = a - at;
            terms.push(t);
        }
        at = end;
    }
    const entries = new Map();   // one fetch entry per distinct (xorb, chunk range)
    for (const t of terms) {
        const key = `${t.xorb}/${t.start}/${t.end}`;
        if (entries.has(key)) continue;
        const offs = xorbRecordOffsets(t.xorb);
        const bytes = { start: offs[t.start], end: offs[t.end] - 1 };
        const q = new URLSearchParams({ "X-Xet-Signed-Range": `bytes=${bytes.start}-${bytes.end}` });
        q.set("sig", sign(`xorb:${t.xorb}:${q.toString()}`));
        entries.set(key, { xorb: t.xorb, chunks: { start: t.start, end: t.end }, bytes, url: `${base}/cas/xorb/default/${t.xorb}?${q}` });
    }
    const out = { offset_into_first_range: offset,
        terms: terms.map((t) => ({ hash: t.xorb, unpacked_length: t.bytes, range: { start: t.start, end: t.end } })) };
    const group = {};
    for (const e of entries.values()) {
        group[e.xorb] ??= [];
        group[e.xorb].push(v2 ? { url: e.url, ranges: [{ chunks: e.chunks, bytes: e.bytes }] }
            : { range: e.chunks, url: e.url, url_range: e.bytes });
    }
    if (v2) out.xorbs = group; else out.fetch_info = group;
    send(res, 200, out);
}
function casXorbGet(req, res, { hash, url }) {
    const q = new URLSearchParams(url.searchParams);
    const sig = q.get("sig");
    q.delete("sig");
    if (!sig || sig !== sign(`xorb:${hash}:${q.toString()}`)) throw err(403, "Signature does not match", "SignatureDoesNotMatch");
    if (req.headers.authorization) stats.xet.xorbGetsWithAuthorization++;
    const signed = q.get("X-Xet-Signed-Range");
    if (!req.headers.range || req.headers.range !== signed)
        throw err(403, `Range '${req.headers.range ?? ""}' is not the signed range '${signed}'`, "AccessDenied");
    const file = path.join(DATA, "xorbs", hash);
    if (!fs.existsSync(file)) throw err(404, "NoSuchKey");
    const size = fs.statSync(file).size;
    const range = parseRange(req.headers.range, size);
    if (!range) throw err(416, "range outside the xorb");
    const [a, b] = range;
    const len = b - a + 1;
    res.writeHead(206, { "Content-Type": "application/octet-stream", "Content-Range": `bytes ${a}-${b}/${size}`, "Content-Length": len });
    bump(stats.responses, `${res.endpoint} 206`);
    stats.xet.xorbGets++;
    const limit = res.dropHalf ? Math.floor(len / 2) : len;
    const buf = Buffer.alloc(limit);
    const fd = fs.openSync(file, "r");
    try { fs.readSync(fd, buf, 0, limit, a); } finally { fs.closeSync(fd); }
    stats.xet.xorbBytesServed += limit;
    if (res.dropHalf) { res.write(buf); return setTimeout(() => res.socket?.destroy(), 20); }
    res.end(buf);
}

// Streams the body into a temp file while hashing; resolves {tmp, n, sha256, md5}.
function receiveToFile(req, oid, part) {
    return new Promise((resolve, reject) => {
        const tmp = path.join(DATA, "tmp", `${oid}.${part ?? "put"}.${crypto.randomUUID()}`);
        const out = fs.createWriteStream(tmp);
        const h256 = crypto.createHash("sha256"), md5 = crypto.createHash("md5");
        let n = 0, failed = false;
        const fail = (e) => { if (failed) return; failed = true; out.destroy(); fs.rm(tmp, { force: true }, () => {}); reject(e); };
        const rate = req.sfThrottle;
        req.on("data", (c) => {
            n += c.length; countReceived(oid, part, c.length); h256.update(c); md5.update(c);
            const drained = out.write(c);
            const resumeWhenDrained = () => (out.writableNeedDrain ? out.once("drain", () => req.resume()) : req.resume());
            if (rate) { req.pause(); setTimeout(resumeWhenDrained, (c.length / rate) * 1000); }
            else if (!drained) { req.pause(); resumeWhenDrained(); }
        });
        req.on("end", () => out.end(() => { if (!failed) resolve({ tmp, n, sha256: h256.digest("hex"), md5: md5.digest("hex") }); }));
        req.on("aborted", () => fail(err(400, "client aborted")));
        req.on("close", () => { if (!req.complete) fail(err(400, "client aborted")); });
        if (req.destroyed && !req.complete) fail(err(400, "client aborted"));
        req.on("error", fail);
        out.on("error", fail);
    });
}

async function putObject(req, res, { oid, url }) {
    const q = checkSigned("put", oid, url);
    const size = Number(q.size);
    const got = await receiveToFile(req, oid, null);
    if (got.n !== size || got.sha256 !== oid) {
        fs.rmSync(got.tmp, { force: true });
        throw err(400, `Uploaded content does not match: got ${got.n} bytes with sha256 ${got.sha256}, expected ${size} bytes with sha256 ${oid}`, "BadDigest");
    }
    if (!fs.existsSync(objPath(oid))) { fs.renameSync(got.tmp, objPath(oid)); stats.objectsStored++; }
    else fs.rmSync(got.tmp, { force: true });
    send(res, 200, Buffer.alloc(0), { ETag: `"${got.md5}"` });
}

// Parts are kept under uploads/<oid>/ until completion (one upload session per object; a re-PUT replaces a part).
async function putPart(req, res, { oid, part, url }) {
    const q = checkSigned("part", oid, url);
    const n = Number(part), size = Number(q.size), chunk = Number(q.chunk);
    const nparts = Math.ceil(size / chunk);
    if (!(n >= 1 && n <= nparts) || Number(q.part) !== n) throw err(400, "Invalid part number");
    const expected = n < nparts ? chunk : size - (nparts - 1) * chunk;
    const got = await receiveToFile(req, oid, String(n));
    if (got.n !== expected) {
        fs.rmSync(got.tmp, { force: true });
        throw err(400, `Part ${n} has ${got.n} bytes, expected ${expected}`, "IncompleteBody");
    }
    const dir = path.join(DATA, "uploads", oid);
    fs.mkdirSync(dir, { recursive: true });
    fs.renameSync(got.tmp, path.join(dir, `${n}`));
    fs.writeFileSync(path.join(dir, `${n}.etag`), got.md5);
    send(res, 200, Buffer.alloc(0), { ETag: `"${got.md5}"` });
}

async function completeMultipart(req, res, { oid, url }) {
    const q = checkSigned("complete", oid, url);
    const size = Number(q.size), chunk = Number(q.chunk);
    const nparts = Math.ceil(size / chunk);
    const j = await readJson(req);
    if (fs.existsSync(objPath(oid)) && fs.statSync(objPath(oid)).size === size) return send(res, 200, { oid, size });
    if (j.oid !== oid) throw err(400, "oid in body does not match the URL");
    if (!Array.isArray(j.parts) || j.parts.length !== nparts) throw err(400, `Expected ${nparts} parts, got ${j.parts?.length}`, "InvalidPart");
    const dir = path.join(DATA, "uploads", oid);
    const sorted = [...j.parts].sort((a, b) => a.partNumber - b.partNumber);
    sorted.forEach((p, i) => {
        if (p.partNumber !== i + 1) throw err(400, "Part numbers must be 1..N", "InvalidPartOrder");
        let etag;
        try { etag = fs.readFileSync(path.join(dir, `${i + 1}.etag`), "utf8"); } catch { throw err(400, `Part ${i + 1} was not uploaded`, "InvalidPart"); }
        if (String(p.etag ?? "").replace(/"/g, "") !== etag) throw err(400, `ETag of part ${i + 1} does not match`, "InvalidPart");
    });
    const tmp = path.join(DATA, "tmp", `${oid}.complete.${crypto.randomUUID()}`);
    const fd = fs.openSync(tmp, "w");
    const h = crypto.createHash("sha256");
    let n = 0;
    for (let i = 1; i <= nparts; i++) {
        const buf = fs.readFileSync(path.join(dir, `${i}`));
        h.update(buf); fs.writeSync(fd, buf); n += buf.length;
    }
    fs.closeSync(fd);
    const digest = h.digest("hex");
    if (n !== size || digest !== oid) {
        fs.rmSync(tmp, { force: true });
        throw err(400, `Assembled object does not match: ${n} bytes, sha256 ${digest}`, "BadDigest");
    }
    if (!fs.existsSync(objPath(oid))) { fs.renameSync(tmp, objPath(oid)); stats.objectsStored++; } else fs.rmSync(tmp, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
    send(res, 200, { oid, size });
}

async function lfsVerify(req, res, { type, ns, name }) {
    const u = auth(req, { required: true });
    getRepo(type, ns, name, u);
    const j = await readJson(req);
    if (!isOid(j.oid)) throw err(422, "Invalid oid");
    const p = objPath(j.oid);
    if (!fs.existsSync(p)) throw err(404, `Object ${j.oid} not found`);
    const size = fs.statSync(p).size;
    if (Number.isInteger(j.size) && size !== j.size) throw err(422, `Object ${j.oid} has size ${size}, not ${j.size}`);
    send(res, 200, { oid: j.oid, size });
}

async function commit(req, res, { type, ns, name, rev, url, base }) {
    const u = auth(req, { write: true });
    const r = getRepo(type, ns, name, u);
    checkWritable(u, ns);
    const createPr = ["1", "true"].includes(url.searchParams.get("create_pr") ?? "");
    const body = (await readBody(req)).toString("utf8");
    let lines;
    try { lines = body.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)); } catch { throw err(400, "Malformed NDJSON body"); }
    if (!lines.length || lines[0].key !== "header") throw err(400, "The first NDJSON line must be the header");
    const hdr = lines[0].value ?? {};
    if (typeof hdr.summary !== "string" || !hdr.summary.trim()) throw err(400, "The commit summary must not be empty");
    const headOid = resolveRev(r, rev);
    if (!r.branches[rev]) throw err(400, `Invalid rev id: ${rev} is not a branch`, "RevisionNotFound");
    const parent = hdr.parentCommit ?? undefined;
    if (parent !== undefined && parent !== null) {
        if (typeof parent !== "string" || !r.commits[parent]) throw err(400, `Invalid parentCommit ${parent}`);
        if (!createPr && parent !== headOid) {
            throw err(412, "The branch was updated since you opened this page. Please refresh and try again.");
        }
    }
    const start = createPr && parent ? parent : headOid;
    const files = { ...r.commits[start].files };
    const lfsPaths = [];
    for (const { key, value: v } of lines.slice(1)) {
        if (!v || typeof v.path !== "string" || !v.path || v.path.startsWith("/") || v.path.split("/").includes("..")) {
            throw err(400, `Invalid path in ${key} line`);
        }
        if (key === "file") {
            const buf = Buffer.from(v.content ?? "", v.encoding === "base64" ? "base64" : "utf8");
            if (buf.length > opt.maxRegular) {
                throw err(400, "Your push was rejected because it contains files larger than 10 MiB. Please use https://git-lfs.github.com/ to store large files.");
            }
            if (buf.length > MiB && buf.subarray(0, 8000).includes(0)) {
                throw err(400, "Your push was rejected because it contains binary files. Please use https://git-lfs.github.com/ to store binary files.");
            }
            files[v.path] = regularEntry(buf);
        } else if (key === "lfsFile") {
            if (!isOid(v.oid) || (v.algo && v.algo !== "sha256")) throw err(400, `Invalid LFS oid for ${v.path}`);
            const p = objPath(v.oid);
            if (!fs.existsSync(p)) throw err(400, `LFS file ${v.path} (oid ${v.oid}) was not uploaded`);
            const size = fs.statSync(p).size;
            if (v.size !== undefined && v.size !== size) throw err(400, `LFS file ${v.path}: size ${v.size} does not match the stored ${size}`);
            files[v.path] = lfsEntry(v.oid, size);
            lfsPaths.push(v.path);
        } else if (key === "deletedFile") {
            if (!files[v.path]) throw err(404, `File ${v.path} does not exist`, "EntryNotFound");
            delete files[v.path];
        } else if (key === "deletedFolder") {
            const pre = v.path.replace(/\/?$/, "/");
            for (const p of Object.keys(files)) if (p.startsWith(pre)) delete files[p];
        } else {
            throw err(400, `Unknown NDJSON line key ${key}`);
        }
    }
    // Like the Hub: paths committed as LFS that no .gitattributes pattern covers get their own line.
    const ga = fileText(files[".gitattributes"]) ?? "";
    // Appended in path order, so the file does not depend on the order of the client's NDJSON lines.
    const missing = [...new Set(lfsPaths)].sort().filter((p) => !lfsPatternMatches(lfsPatternsOf(ga), p));
    if (missing.length) {
        const text = (ga && !ga.endsWith("\n") ? `${ga}\n` : ga) + missing.map((p) => `${p.replace(/ /g, "[[:space:]]")} filter=lfs diff=lfs merge=lfs -text\n`).join("");
        files[".gitattributes"] = regularEntry(Buffer.from(text));
    }
    const oid = makeCommit(r, start, files, hdr.summary, hdr.description);
    const out = { success: true, commitOid: oid, commitUrl: `${repoUrl(base, r)}/commit/${oid}`, hookOutput: "" };
    if (createPr) {
        const n = ++r.prCount;
        r.branches[`refs/pr/${n}`] = oid;
        out.pullRequestUrl = `${repoUrl(base, r)}/discussions/${n}`;
    } else {
        r.branches[rev] = oid;
    }
    saveRepo(r);
    stats.commits.total++;
    bump(stats.commits.byRepo, `${r.ns}/${r.name}`);
    send(res, 200, out);
}

function entryJson(p, e) {
    const out = { type: "file", oid: e.blobOid, size: e.size, path: p };
    if (e.lfs) out.lfs = { oid: e.sha256, size: e.size, pointerSize: lfsPointer(e.sha256, e.size).length };
    const xf = e.lfs ? xetFileOfSha(e.sha256) : null;
    if (xf) out.xetHash = xf.hash;   // as the Hub lists Xet-stored files (api-index-tree.ts)
    return out;
}
function listEntries(c, sub, recursive) {
    const { dirs } = treeOid(c.files);
    const prefix = sub ? `${sub.replace(/\/$/, "")}/` : "";
    if (sub && !dirs[sub.replace(/\/$/, "")] && !c.files[sub]) throw err(404, `${sub} does not exist on this revision`, "EntryNotFound");
    if (sub && c.files[sub]) return [entryJson(sub, c.files[sub])];
    const out = [];
    for (const d of Object.keys(dirs)) {
        if (!d || !d.startsWith(prefix)) continue;
        const rest = d.slice(prefix.length);
        if (recursive || !rest.includes("/")) out.push({ type: "directory", oid: dirs[d], size: 0, path: d });
    }
    for (const [p, e] of Object.entries(c.files)) {
        if (!p.startsWith(prefix)) continue;
        if (recursive || !p.slice(prefix.length).includes("/")) out.push(entryJson(p, e));
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
function tree(req, res, { type, ns, name, rev, sub, url }) {
    const u = auth(req);
    const r = getRepo(type, ns, name, u);
    const c = r.commits[resolveRev(r, rev)];
    send(res, 200, listEntries(c, sub, url.searchParams.get("recursive") === "true" || url.searchParams.get("recursive") === "1"));
}
async function pathsInfo(req, res, { type, ns, name, rev }) {
    const u = auth(req);
    const r = getRepo(type, ns, name, u);
    const c = r.commits[resolveRev(r, rev)];
    const raw = (await readBody(req, 16 * MiB)).toString("utf8");
    let paths;
    if (raw.trim().startsWith("{")) paths = JSON.parse(raw).paths ?? [];
    else paths = new URLSearchParams(raw).getAll("paths");
    if (paths.length > 1000) throw err(413, "Too many paths (max 1000)");
    const { dirs } = treeOid(c.files);
    const out = [];
    for (const p of [].concat(paths)) {
        if (c.files[p]) out.push(entryJson(p, c.files[p]));
        else if (dirs[p]) out.push({ type: "directory", oid: dirs[p], size: 0, path: p });
    }
    send(res, 200, out);
}
function repoInfo(req, res, { type, ns, name, rev }) {
    const u = auth(req);
    const r = getRepo(type, ns, name, u);
    const sha = resolveRev(r, rev || "main");
    const c = r.commits[sha];
    send(res, 200, {
        _id: sha1hex(Buffer.from(repoKey(type, ns, name))).slice(0, 24), id: `${ns}/${name}`, modelId: `${ns}/${name}`, author: ns,
        sha, private: r.private, disabled: false, gated: false, lastModified: c.date, createdAt: r.createdAt, tags: [],
        downloads: 0, likes: 0, xetEnabled: opt.xet,
        siblings: Object.entries(c.files).sort().map(([p, e]) => ({ rfilename: p, size: e.size, blobId: e.blobOid,
            ...(e.lfs ? { lfs: { sha256: e.sha256, size: e.size, pointerSize: lfsPointer(e.sha256, e.size).length } } : {}) })),
        usedStorage: Object.values(c.files).reduce((a, e) => a + e.size, 0),
    });
}
async function branch(req, res, { type, ns, name, branch: b }) {
    const u = auth(req, { write: true });
    const r = getRepo(type, ns, name, u);
    checkWritable(u, ns);
    if (!b || b.startsWith("refs/")) throw err(400, `Invalid branch name ${b}`);
    if (req.method === "DELETE") {
        if (!r.branches[b] || b === "main") throw err(b === "main" ? 403 : 404, `Cannot delete branch ${b}`, "RevisionNotFound");
        delete r.branches[b];
    } else {
        const j = await readJson(req);
        if (r.branches[b] && !j.overwrite) throw err(409, `Reference already exists: refs/heads/${b}`);
        if (j.emptyBranch) r.branches[b] = makeCommit(r, null, {}, "empty branch", "");
        else r.branches[b] = resolveRev(r, j.startingPoint ?? "main");
    }
    saveRepo(r);
    send(res, 200, {});
}
function listRefs(req, res, { type, ns, name }) {
    const r = getRepo(type, ns, name, auth(req));
    const refs = Object.entries(r.branches);
    send(res, 200, {
        branches: refs.filter(([b]) => !b.startsWith("refs/")).map(([b, oid]) => ({ name: b, ref: `refs/heads/${b}`, targetCommit: oid })),
        converts: [], tags: [],
        pullRequests: refs.filter(([b]) => b.startsWith("refs/pr/")).map(([b, oid]) => ({ name: b.split("/").pop(), ref: b, targetCommit: oid })),
    });
}

// ---------------------------------------------------------------------------------------------- downloads
// Range: "bytes=a-b", "bytes=a-", "bytes=-n" (first range only). Returns [start, endInclusive] or null.
function parseRange(h, size) {
    const m = /^bytes=(\d*)-(\d*)/.exec(h ?? "");
    if (!m || (m[1] === "" && m[2] === "")) return undefined;
    let a, b;
    if (m[1] === "") { a = Math.max(0, size - Number(m[2])); b = size - 1; }
    else { a = Number(m[1]); b = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1); }
    if (a > b || a >= size) return null;
    return [a, b];
}
function serveObject(req, res, sha256, size, headers, statKey) {
    const range = parseRange(req.headers.range, size);
    const h = { ...headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" };
    if (range === null && size === 0) {
        // An empty file: answer 200 and still state the total size (the JS client's size probe sends
        // "Range: bytes=0-0" and reads the size from Content-Range), rather than a 416 the clients cannot use.
        res.writeHead(200, { ...h, "Content-Range": "bytes */0", "Content-Length": 0 });
        bump(stats.responses, `${res.endpoint} 200`);
        return res.end();
    }
    if (range === null) {
        res.writeHead(416, { ...h, "Content-Range": `bytes */${size}`, "Content-Length": 0 });
        return res.end();
    }
    const [a, b] = range ?? [0, size - 1];
    const len = size === 0 ? 0 : b - a + 1;
    h["Content-Length"] = len;
    if (range) h["Content-Range"] = `bytes ${a}-${b}/${size}`;
    res.writeHead(range ? 206 : 200, h);
    bump(stats.responses, `${res.endpoint} ${range ? 206 : 200}`);
    if (req.method === "HEAD" || len === 0) return res.end();
    const limit = res.dropHalf ? Math.floor(len / 2) : len;
    if (limit === 0) return res.socket?.destroy();   // a cut 1-byte body: headers only, then the cut
    const stream = fs.createReadStream(objPath(sha256), { start: a, end: a + limit - 1 });
    stream.on("error", (e) => { process.stderr.write(`server.mjs: reading ${sha256}: ${e.message}\n`); res.destroy(); });
    stream.on("data", (c) => countServed(statKey, c.length));
    stream.on("end", () => { if (res.dropHalf) res.socket?.destroy(); });
    if (!res.throttle) return stream.pipe(res, { end: !res.dropHalf });
    stream.on("data", (c) => {
        res.write(c);
        stream.pause();
        setTimeout(() => stream.resume(), (c.length / res.throttle) * 1000);
    });
    stream.on("end", () => { if (!res.dropHalf) res.end(); });
    res.on("close", () => stream.destroy());
}
function resolve(req, res, { type, ns, name, rev, sub, base, raw }) {
    const u = auth(req);
    const r = getRepo(type, ns, name, u);
    const sha = resolveRev(r, rev);
    const e = r.commits[sha].files[sub];
    if (!e) throw err(404, "Entry not found", "EntryNotFound");
    const statKey = `${ns}/${name}/${sub}`;
    const headers = { "X-Repo-Commit": sha };
    if (e.lfs && raw) {
        const ptr = lfsPointer(e.sha256, e.size);
        return send(res, 200, ptr, { ...headers, ETag: `"${e.blobOid}"`, "Content-Type": "text/plain; charset=utf-8" });
    }
    if (e.lfs) {
        headers["X-Linked-Etag"] = `"${e.sha256}"`;
        headers["X-Linked-Size"] = String(e.size);
        const xf = xetFileOfSha(e.sha256);
        if (xf) {
            // Stored in Xet: the hash and where to get a token and the reconstruction. Clients that ask for the
            // file info get only that; the others still get the bytes.
            headers["X-Xet-Hash"] = xf.hash;
            headers.Link = `<${base}/api/${type}s/${ns}/${name}/xet-read-token/${sha}>; rel="xet-auth", ` +
                `<${base}/cas/v1/reconstructions/${xf.hash}>; rel="xet-reconstruction-info"`;
            if ((req.headers.accept ?? "").includes("application/vnd.xet-fileinfo+json")) {
                bump(stats.xet.fileInfos, statKey);
                return send(res, 200, { hash: xf.hash, size: e.size, etag: e.sha256 },
                    { ...headers, ETag: `"${e.sha256}"`, "Content-Type": "application/vnd.xet-fileinfo+json" });
            }
        }
        if (opt.lfsRedirect && !res.dropHalf) {
            const q = signedQuery("cdn", e.sha256, { key: statKey });
            return send(res, 302, Buffer.alloc(0), { ...headers, ETag: `"${e.sha256}"`, Location: `${base}/__lfs/cdn/${e.sha256}?${q}` });
        }
    }
    serveObject(req, res, e.sha256, e.size, { ...headers, ETag: `"${e.lfs ? e.sha256 : e.blobOid}"` }, statKey);
}
function cdnGet(req, res, { oid, url }) {
    const q = checkSigned("cdn", oid, url);
    if (!fs.existsSync(objPath(oid))) throw err(404, "NoSuchKey");
    serveObject(req, res, oid, fs.statSync(objPath(oid)).size, { ETag: `"${oid}"` }, q.key ?? `cdn/${oid}`);
}

// ---------------------------------------------------------------------------------------------- start
server.listen(opt.port, "127.0.0.1", () => {
    process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => { server.close(); server.closeAllConnections?.(); process.exit(0); };
// --parent-pid: exit when the test that started us is gone (a test killed by a ctest timeout leaves no server).
if (opt.parentPid) {
    setInterval(() => { try { process.kill(opt.parentPid, 0); } catch { stop(); } }, 500).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
