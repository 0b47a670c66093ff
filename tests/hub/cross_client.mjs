// Our client (`shardforge push DIR --repo ORG/NAME`) against the loopback test Hub, cross-checked with the official
// @huggingface/hub client: the same folder uploaded by both gives identical repo trees (paths, sizes, git oids,
// LFS sha256); uploads with injected faults (500s, 429 + Retry-After, a connection dropped mid-part, slow answers)
// complete intact; an upload killed half-way and rerun does not re-send the objects the Hub already has; the
// token never shows in our output, error paths included. Exit 0 = pass, 1 = fail (a missing peer or subcommand included).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startHub, makeFixture, expectedTree, treeOf, check, checkEq, sortedJson, sha256hex, failureCount, HUB_TEST_ARGS, watchdog } from "./lib.mjs";
watchdog(100);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.SHARDFORGE_BIN;
// SF_HUB_PUSH (test-harness development only): a command prefix replacing "$SHARDFORGE_BIN push".
const PUSH = process.env.SF_HUB_PUSH ? process.env.SF_HUB_PUSH.split(" ") : [BIN, "push"];
if (!process.env.SF_HUB_PUSH) {
    if (!BIN) { console.log("FAIL: SHARDFORGE_BIN is not set"); process.exit(1); }
    // `push DIR --repo ORG/NAME` is part of the CLI: a help text without it is a regression, not a reason to skip.
    const help = spawnSync(BIN, ["push", "--help"], { encoding: "utf8" });
    if (help.status !== 0 || !/--repo\b/.test(help.stdout + help.stderr)) {
        console.log("FAIL: `shardforge push --help` does not list --repo (exit " + help.status + ")");
        process.exit(1);
    }
}
let hub;
try {
    hub = await import(pathToFileURL(createRequire(path.join(ROOT, "tests/conformance/package.json")).resolve("@huggingface/hub")).href);
} catch (e) {
    console.log(`FAIL: @huggingface/hub is not installed in tests/conformance/node_modules (jobs/install-deps.sh --test): ${e.message}`);
    process.exit(1);
}

const TOKEN = "hf_crosscheck_SECRET_4711";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "sf-hub-cross-"));
const servers = [];
const allOutput = [];   // every stdout/stderr byte our client printed, checked for the token at the end

function pushEnv(server, token) {
    const env = { ...process.env, HF_ENDPOINT: server.url, HF_HOME: path.join(work, `hfhome-${servers.indexOf(server)}`), HF_HUB_DISABLE_TELEMETRY: "1" };
    delete env.HF_TOKEN_PATH;
    if (token) env.HF_TOKEN = token; else delete env.HF_TOKEN;
    return env;
}
// Runs our push; resolves {code, out}. onSpawn gets the child (for the kill test).
function push(server, dir, repoId, { token = TOKEN, extra = [], onSpawn } = {}) {
    return new Promise((resolve) => {
        const child = spawn(PUSH[0], [...PUSH.slice(1), dir, "--repo", repoId, ...extra], { env: pushEnv(server, token), stdio: ["ignore", "pipe", "pipe"], detached: true });
        let out = "";
        child.stdout.on("data", (d) => { out += d; });
        child.stderr.on("data", (d) => { out += d; });
        onSpawn?.(child);
        child.on("close", (code, signal) => { allOutput.push(out); resolve({ code, signal, out }); });
    });
}
async function apiTree(server, repoId, rev = "main") {
    const r = await fetch(`${server.url}/api/models/${repoId}/tree/${rev}?recursive=true`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    return r.ok ? r.json() : [];
}
const normTree = (entries) => sortedJson(entries.map((e) => ({ type: e.type, path: e.path, size: e.size, oid: e.oid,
    lfs: e.lfs ? { oid: e.lfs.oid, size: e.lfs.size } : null })));
const tail = (s) => s.trim().split("\n").slice(-6).join("\n     ");

// The four phases run at the same time, each with its own test Hub (most of their time is backoff and throttling).
const dirA = path.join(work, "a");
const filesA = makeFixture(dirA, "");

// 1. Same folder through both clients: identical trees.
async function sameFolder(server) {
    await hub.createRepo({ repo: { type: "model", name: "testuser/by-js" }, hubUrl: server.url, accessToken: TOKEN });
    await hub.uploadFiles({ repo: { type: "model", name: "testuser/by-js" }, hubUrl: server.url, accessToken: TOKEN, commitTitle: "js",
        files: filesA.map((f) => ({ path: f.path, content: pathToFileURL(path.join(dirA, f.path)) })) });
    await server.resetStats();
    const r1 = await push(server, dirA, "testuser/by-sf");
    check(r1.code === 0, `shardforge push exits 0 (got ${r1.code})${r1.code ? `\n     ${tail(r1.out)}` : ""}`);
    const [tJs, tSf] = [await apiTree(server, "testuser/by-js"), await apiTree(server, "testuser/by-sf")];
    checkEq(normTree(tSf), normTree(tJs), "cross-check: our tree (paths, sizes, oids, LFS sha256) equals the official client's");
    const got = treeOf(tSf); delete got[".gitattributes"];
    checkEq(sortedJson(got), sortedJson(expectedTree(filesA)), "cross-check: and both match the expected tree computed from the files");
    const st1 = await server.stats();
    checkEq([st1.commits.total, st1.bytesReceived.total], [1, 0], "our push of objects the Hub already has (same oids in another repo): one commit, no bytes re-sent");
}

// 2. Fresh objects with faults: 500s, 429 Retry-After, a part cut mid-body, slow and failing answers.
async function withFaults(server) {
    const dirB = path.join(work, "b");
    const filesB = makeFixture(dirB, "faults-");
    await server.resetStats();
    const spec = "preupload=500x1,batch=429x1/1,part=500x2,part=dropx1+1,put=503x1/1,put=dropx1,complete=500x1,commit=slowx1/300";
    await server.faults(spec);
    const t0 = Date.now();
    const r2 = await push(server, dirB, "testuser/faults");
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    check(r2.code === 0, `push with faults [${spec}] exits 0 in ${secs} s${r2.code ? `\n     ${tail(r2.out)}` : ""}`);
    const st2 = await server.stats();
    checkEq(st2.faultsInjected, 9, "every injected fault was hit (9)");
    const gaps = st2.retryGapsMs;
    check(gaps["batch=429x1/1"]?.[0] >= 1000 && gaps["put=503x1/1"]?.[0] >= 1000,
        `Retry-After: 1 honoured (next batch after ${gaps["batch=429x1/1"]} ms, next PUT after ${gaps["put=503x1/1"]} ms)`);
    check(Object.values(gaps).flat().length === 8, `the client retried each of the 8 failures (ms before the retry: ${JSON.stringify(gaps)})`);
    const tB = treeOf(await apiTree(server, "testuser/faults")); delete tB[".gitattributes"];
    checkEq(sortedJson(tB), sortedJson(expectedTree(filesB)), "faults: the repo content is intact (expected tree)");
    const bigB = filesB.find((f) => f.multipart);
    const dl = await hub.downloadFile({ repo: { type: "model", name: "testuser/faults" }, path: bigB.path, hubUrl: server.url, accessToken: TOKEN });
    check(Buffer.from(await dl.arrayBuffer()).equals(bigB.data), "faults: the multipart file downloads byte-identical");
    checkEq(st2.commits.total, 1, "faults: exactly one commit");
    checkEq(st2.storageRequestsWithAuthorization, 0, "no Authorization header sent to the storage URLs (lfs.py)");
    check((st2.responses["verify 200"] ?? 0) >= filesB.filter((f) => f.lfs).length, `verify called for every uploaded object (${st2.responses["verify 200"] ?? 0})`);
}

// 3. Killed mid-upload, then rerun: objects the Hub completed are not sent again.
async function killAndResume(server) {
    const dirC = path.join(work, "c");
    const filesC = makeFixture(dirC, "resume-");
    await server.resetStats();
    // The multipart object and the first basic PUT go through at full speed, every later PUT is read at 64 KB/s:
    // kill the client once two objects are stored, then cut what it left in flight (POST /__abort: on loopback the
    // kernel would otherwise still deliver bodies a real network had not carried yet).
    await server.faults("put=throttlex50/65536+1");
    const r3 = await push(server, dirC, "testuser/resume", { onSpawn: (child) => {
        const poll = setInterval(async () => {
            const s = await server.stats();
            if ((s.responses["put 200"] ?? 0) + (s.responses["complete 200"] ?? 0) >= 2) {
                clearInterval(poll);
                try { process.kill(-child.pid, "SIGKILL"); } catch { child.kill("SIGKILL"); }
            }
        }, 50);
        child.on("close", () => clearInterval(poll));
    } });
    check(r3.code !== 0, `first push was killed (exit ${r3.code}, signal ${r3.signal})`);
    await fetch(`${server.url}/__faults`, { method: "DELETE" });
    await fetch(`${server.url}/__abort`, { method: "POST" });
    for (let i = 0; i < 200 && (await server.stats()).inFlight > 0; i++) await new Promise((ok) => setTimeout(ok, 50));
    // Which objects does the Hub have now? Ask the batch API (no actions = stored).
    const lfsC = filesC.filter((f) => f.lfs);
    const probe = await (await fetch(`${server.url}/testuser/resume.git/info/lfs/objects/batch`, { method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/vnd.git-lfs+json" },
        body: JSON.stringify({ operation: "upload", transfers: ["basic"], objects: lfsC.map((f) => ({ oid: sha256hex(f.data), size: f.data.length })) }) })).json();
    const stored = new Set((probe.objects ?? []).filter((o) => !o.actions && !o.error).map((o) => o.oid));
    const before = (await server.stats()).bytesReceived.total;
    check(stored.size > 0 && stored.size < lfsC.length, `kill happened mid-upload: ${stored.size} of ${lfsC.length} LFS objects stored, ${before} bytes received`);
    await server.resetStats();
    const r4 = await push(server, dirC, "testuser/resume");
    check(r4.code === 0, `rerun exits 0${r4.code ? `\n     ${tail(r4.out)}` : ""}`);
    const st4 = await server.stats();
    const resent = [...stored].map((oid) => st4.bytesReceived.objects[oid] ?? 0);
    checkEq(resent, [...stored].map(() => 0), "rerun: no byte of an already stored object is sent again");
    const missingBytes = lfsC.filter((f) => !stored.has(sha256hex(f.data))).reduce((a, f) => a + f.data.length, 0);
    check(st4.bytesReceived.total <= missingBytes, `rerun: received ${st4.bytesReceived.total} bytes <= the ${missingBytes} bytes of the missing objects`);
    const tC = treeOf(await apiTree(server, "testuser/resume")); delete tC[".gitattributes"];
    checkEq(sortedJson(tC), sortedJson(expectedTree(filesC)), "rerun: the repo content is complete and intact");
}

// 4. Error paths: bad token (401), read-only token (403), foreign namespace (403): exit 6 (network), clear message.
async function errorPaths(server) {
    const bad = await push(server, dirA, "testuser/by-sf", { token: "hf_invalid_SECRET_0815" });
    check(bad.code === 6 && /401|credential|token/i.test(bad.out), `invalid token: exit 6 and a clear message (${bad.code}: ${tail(bad.out).split("\n")[0]})`);
    check(!bad.out.includes("hf_invalid_SECRET_0815"), "invalid token: the token is not printed");
    const ro = await push(server, dirA, "testuser/ro", { token: "hf_read_SECRET_0816" });
    check(ro.code === 6 && !ro.out.includes("hf_read_SECRET_0816"), `read-only token: exit 6, token not printed (${ro.code})`);
    const foreign = await push(server, dirA, "someone-else/x");
    check(foreign.code === 6 && /403|permission|rights|forbidden/i.test(foreign.out), `foreign namespace: exit 6 with a 403 message (${foreign.code})`);
}

try {
    const hubs = await Promise.all([0, 1, 2, 3].map((i) => startHub(path.join(work, `data${i}`), HUB_TEST_ARGS)));
    servers.push(...hubs);
    await Promise.all([sameFolder, withFaults, killAndResume, errorPaths].map(async (phase, i) => {
        try { await phase(hubs[i]); } catch (e) { console.log(`FAIL unexpected error in ${phase.name}: ${e.stack}`); check(false, "no unexpected error"); }
    }));
    check(allOutput.length === 7 && allOutput.every((o) => !o.includes(TOKEN) && !o.includes("SECRET")),
        `the token never appears in our stdout/stderr (${allOutput.length} runs above)`);
} finally {
    await Promise.all(servers.map((s) => s.stop()));
    fs.rmSync(work, { recursive: true, force: true });
}
console.log(failureCount() ? `${failureCount()} check(s) failed` : "all checks passed");
process.exit(failureCount() ? 1 : 0);
