// Shared helpers of the Hub tests: start/stop the loopback test Hub, build the fixture folder, compute the
// expected tree independently of the server (git blob oids and sha256 with node's crypto).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

// Starts tests/hub/server.mjs on a random port; resolves once it printed its "listening" line.
export function startHub(dataDir, extraArgs = []) {
    return new Promise((resolve, reject) => {
        const proc = spawn(process.execPath, [path.join(HERE, "server.mjs"), "--data", dataDir, "--port", "0",
            "--parent-pid", String(process.pid), ...extraArgs],
            { stdio: ["ignore", "pipe", "inherit"] });
        let buf = "";
        const onData = (d) => {
            buf += d.toString();
            const m = /^listening (http:\/\/127\.0\.0\.1:\d+)\n/.exec(buf);
            if (m) {
                proc.stdout.off("data", onData);
                proc.stdout.resume();
                resolve({
                    url: m[1], proc,
                    stats: async () => (await fetch(`${m[1]}/__stats`)).json(),
                    resetStats: async () => fetch(`${m[1]}/__stats/reset`, { method: "POST" }),
                    faults: async (spec) => (await fetch(`${m[1]}/__faults`, { method: "POST", body: spec })).json(),
                    config: async (cfg) => (await fetch(`${m[1]}/__config`, { method: "POST", body: JSON.stringify(cfg) })).json(),
                    stop: () => new Promise((ok) => { proc.once("exit", ok); proc.kill("SIGTERM"); }),
                });
            }
        };
        proc.stdout.on("data", onData);
        proc.once("exit", (code) => reject(new Error(`test Hub exited early with code ${code}`)));
    });
}

// Deterministic pseudo-random bytes (sha256 in counter mode), so the fixture is the same on every run.
export function prng(seed, n) {
    const out = Buffer.alloc(n);
    for (let i = 0, blk = 0; i < n; blk++) {
        const h = crypto.createHash("sha256").update(`${seed}:${blk}`).digest();
        i += h.copy(out, i, 0, Math.min(32, n - i));
    }
    return out;
}
function textBlob(seed, n) {
    const words = ["alpha", "beta", "gamma", "delta", "tensor", "shard", "merge", "adapter", "quant", "hub"];
    const r = prng(seed, n);
    let s = "";
    for (let i = 0; s.length < n; i++) s += words[r[i % n] % words.length] + (i % 12 === 11 ? "\n" : " ");
    return Buffer.from(s.slice(0, n));
}

// The fixture: what the test Hub must classify as LFS is stated here, from the Hub's rules (extension pattern,
// size >= --lfs-threshold (256 KiB in the tests), NUL in the first 512 bytes), not from the server's code.
export const HUB_TEST_ARGS = ["--chunk-size", String(1 << 20), "--multipart-threshold", String(2 << 20), "--lfs-threshold", String(256 << 10)];
export function makeFixture(dir, seed = "") {
    const files = [
        { path: "config.json", data: Buffer.from(JSON.stringify({ architectures: ["LlamaForCausalLM"], hidden_size: 64 }, null, 2)), lfs: false },
        { path: "README.md", data: Buffer.from("---\nlicense: apache-2.0\nbase_model: testorg/base\nbase_model_relation: quantized\n" +
            "tags:\n- gguf\n- llama-cpp\n---\n# Test model\n\nUploaded by the Hub conformance test.\n"), lfs: false },
        { path: "empty.txt", data: Buffer.alloc(0), lfs: false },
        { path: "tokenizer.json", data: textBlob(seed + "tok", 50_000), lfs: false },
        { path: "model-00001-of-00002.safetensors", data: prng(seed + "shard1", 3.5 * (1 << 20)), lfs: true, multipart: true },
        { path: "model-00002-of-00002.safetensors", data: prng(seed + "shard2", 700_000), lfs: true },
        { path: "model-Q4_K_M.gguf", data: prng(seed + "gguf", 1_200_000), lfs: true },
        { path: "weights.dat", data: Buffer.concat([Buffer.from([0, 1, 2, 0]), prng(seed + "dat", 300_000)]), lfs: true },
        { path: "data/log.txt", data: textBlob(seed + "log", 300_000), lfs: true },
        { path: "sub/dir/notes.txt", data: Buffer.from("nested file\n"), lfs: false },
    ];
    for (const f of files) {
        fs.mkdirSync(path.join(dir, path.dirname(f.path)), { recursive: true });
        fs.writeFileSync(path.join(dir, f.path), f.data);
    }
    return files;
}

export const sha256hex = (b) => crypto.createHash("sha256").update(b).digest("hex");
export const gitBlobOid = (b) => crypto.createHash("sha1").update(Buffer.concat([Buffer.from(`blob ${b.length}\0`), b])).digest("hex");
const pointer = (oid, size) => Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`);

// Expected file entries of the Hub tree API: {path: {size, oid, lfs?: {oid, size}}}.
export function expectedTree(files) {
    const t = {};
    for (const f of files) {
        if (f.lfs) {
            const oid = sha256hex(f.data);
            t[f.path] = { size: f.data.length, oid: gitBlobOid(pointer(oid, f.data.length)), lfs: { oid, size: f.data.length } };
        } else {
            t[f.path] = { size: f.data.length, oid: gitBlobOid(f.data) };
        }
    }
    return t;
}
// Normalises tree API entries (files only) to the same shape.
export function treeOf(entries) {
    const t = {};
    for (const e of entries) {
        if (e.type !== "file") continue;
        t[e.path] = { size: e.size, oid: e.oid, ...(e.lfs ? { lfs: { oid: e.lfs.oid, size: e.lfs.size } } : {}) };
    }
    return t;
}

let failures = 0;
const T0 = Date.now();
const stamp = () => (process.env.SF_HUB_TIMES ? `[${((Date.now() - T0) / 1000).toFixed(1)}s] ` : "");
export function check(cond, what) {
    what = stamp() + what;
    if (cond) console.log(`ok   ${what}`);
    else { failures++; console.log(`FAIL ${what}`); }
}
export function checkEq(got, want, what) {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    check(g === w, g === w ? what : `${what}\n     got  ${g}\n     want ${w}`);
}
export function sortedJson(o) {
    if (Array.isArray(o)) return o.map(sortedJson);
    if (o && typeof o === "object") return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortedJson(o[k])]));
    return o;
}
export const failureCount = () => failures;

// A hung client (say, a library that never settles a promise after a protocol error) fails with a clear line
// before ctest's timeout; the servers follow via --parent-pid.
export function watchdog(seconds) {
    setTimeout(() => { console.log(`FAIL no result after ${seconds} s: a client or the server hung`); process.exit(1); }, seconds * 1000).unref();
}
