// The official JavaScript client (@huggingface/hub from tests/conformance/node_modules) against the loopback
// test Hub: create a repo, upload the fixture folder (regular, basic-LFS and multipart-LFS files), list and
// download it back, and the tolerance cases of tests/hub/README.md (stale parentCommit -> 412, create_pr,
// branches, objects already stored, 401, faults). Exit 0 = all checks passed, 1 = a check failed or a peer is missing.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startHub, makeFixture, expectedTree, treeOf, check, checkEq, sortedJson, sha256hex, failureCount, HUB_TEST_ARGS, watchdog } from "./lib.mjs";
watchdog(50);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let hub;
try {
    const req = createRequire(path.join(ROOT, "tests/conformance/package.json"));
    hub = await import(pathToFileURL(req.resolve("@huggingface/hub")).href);
} catch (e) {
    console.log(`FAIL: @huggingface/hub is not installed in tests/conformance/node_modules (jobs/install-deps.sh --test): ${e.message}`);
    process.exit(1);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "sf-hub-official-"));
const folder = path.join(work, "folder");
const files = makeFixture(folder);
const server = await startHub(path.join(work, "data"), HUB_TEST_ARGS);
const hubUrl = server.url;
const accessToken = "hf_conformance_test_token";
const repo = { type: "model", name: "testuser/official-js" };
const creds = { hubUrl, accessToken };
const asFiles = (list) => list.map((f) => ({ path: f.path, content: pathToFileURL(path.join(folder, f.path)) }));
async function rejects(p) { try { await p; return null; } catch (e) { return e; } }
async function listTree(rev) {
    const out = [];
    for await (const e of hub.listFiles({ repo, recursive: true, revision: rev, ...creds })) out.push(e);
    return out;
}

try {
    // Authentication.
    const me = await hub.whoAmI(creds);
    checkEq([me.name, me.type, me.auth?.accessToken?.role], ["testuser", "user", "write"], "whoAmI: user, type and token role");
    const bad = await fetch(`${hubUrl}/api/whoami-v2`, { headers: { Authorization: "Bearer not-a-hub-token" } });
    checkEq([bad.status, bad.headers.get("x-error-message")], [401, "Invalid credentials in Authorization header"], "bad token: 401 with X-Error-Message");
    const e401 = await rejects(hub.whoAmI({ hubUrl, accessToken: "hf_invalid_token" }));
    check(e401?.statusCode === 401, `whoAmI with an invalid hf_ token throws a 401 HubApiError (${e401?.message})`);

    // Repo creation, twice.
    const created = await hub.createRepo({ repo, ...creds });
    checkEq([created.repoUrl, created.id], [`${hubUrl}/testuser/official-js`, "testuser/official-js"], "createRepo: url and id");
    const e409 = await rejects(hub.createRepo({ repo, ...creds }));
    check(e409?.statusCode === 409 && e409?.data?.url === created.repoUrl, "createRepo on an existing repo: 409 whose body carries url");

    // Upload the folder (useXet left at its default, true: the server must keep the client on LFS).
    await server.resetStats();
    const out = await hub.uploadFiles({ repo, files: asFiles(files), commitTitle: "Upload fixture", ...creds });
    check(/^[0-9a-f]{40}$/.test(out?.commit?.oid ?? ""), `uploadFiles: commit oid ${out?.commit?.oid}`);
    const st = await server.stats();
    const lfsFiles = files.filter((f) => f.lfs);
    const big = files.find((f) => f.multipart);
    const bigOid = sha256hex(big.data);
    const nparts = Math.ceil(big.data.length / (1 << 20));
    for (const f of lfsFiles) {
        const oid = sha256hex(f.data);
        checkEq(st.bytesReceived.objects[oid], f.data.length, `upload: ${f.path} received exactly once (${f.data.length} bytes)`);
    }
    checkEq(st.bytesReceived.total, lfsFiles.reduce((a, f) => a + f.data.length, 0), "upload: storage received only the LFS bytes");
    checkEq([st.requests.part, st.requests.complete, st.requests.put], [nparts, 1, lfsFiles.length - 1],
        `upload: ${nparts} part PUTs + 1 completion for the multipart file, one basic PUT per other LFS file`);
    for (let p = 1; p <= nparts; p++) {
        const want = Math.min(1 << 20, big.data.length - (p - 1) * (1 << 20));
        checkEq(st.bytesReceived.parts[`${bigOid}/${p}`], want, `multipart: part ${p} has ${want} bytes`);
    }
    checkEq([st.requests.preupload, st.requests.batch, st.requests.commit, st.commits.total], [1, 1, 1, 1], "upload: one preupload, one batch, one commit");
    checkEq(st.storageRequestsWithAuthorization, 0, "upload: no Authorization header sent to the storage URLs");

    // The tree listing: paths, sizes, git oids, LFS sha256 (expected values computed here, not by the server).
    const entries = await listTree("main");
    const want = expectedTree(files);
    const got = treeOf(entries);
    const gaEntry = got[".gitattributes"];
    delete got[".gitattributes"];
    checkEq(sortedJson(got), sortedJson(want), "listFiles: every file with its size, git blob oid and LFS sha256");
    check(gaEntry && gaEntry.size > 0, "listFiles: the repo has a .gitattributes");
    const dirs = entries.filter((e) => e.type === "directory").map((e) => e.path).sort();
    checkEq(dirs, ["data", "sub", "sub/dir"], "listFiles: directory entries");
    const top = [];
    for await (const e of hub.listFiles({ repo, ...creds })) top.push(e.path);
    checkEq(top.sort(), [".gitattributes", "README.md", "config.json", "data", "empty.txt", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model-Q4_K_M.gguf", "sub", "tokenizer.json", "weights.dat"], "listFiles non-recursive: top level only");
    const ga = await (await hub.downloadFile({ repo, path: ".gitattributes", ...creds })).text();
    check(/^data\/log\.txt filter=lfs/m.test(ga) && /^weights\.dat filter=lfs/m.test(ga),
        "commit: LFS paths without a matching pattern were added to .gitattributes");

    // Downloads: whole files, a byte range (only that range is served), a missing file.
    await server.resetStats();
    let allSame = true;
    for (const f of files) {
        const blob = await hub.downloadFile({ repo, path: f.path, ...creds });
        const buf = Buffer.from(await blob.arrayBuffer());
        if (!buf.equals(f.data)) { allSame = false; console.log(`     ${f.path}: downloaded ${buf.length} bytes differ`); }
    }
    check(allSame, "downloadFile: every file comes back byte-identical");
    await server.resetStats();
    const gguf = files.find((f) => f.path.endsWith(".gguf"));
    const blob = await hub.downloadFile({ repo, path: gguf.path, ...creds });
    const slice = Buffer.from(await blob.slice(1000, 5096).arrayBuffer());
    check(slice.equals(gguf.data.subarray(1000, 5096)), "downloadFile().slice(): Range download returns the right bytes");
    const served = (await server.stats()).bytesServed.files[`testuser/official-js/${gguf.path}`];
    check(served <= 4096 + 1, `Range download: only the range was served (${served} bytes incl. the 1-byte probe)`);
    const head = await fetch(`${hubUrl}/testuser/official-js/resolve/main/${gguf.path}`, { method: "HEAD", headers: { Authorization: `Bearer ${accessToken}` } });
    checkEq([head.headers.get("etag"), head.headers.get("x-repo-commit"), head.headers.get("content-length"), head.headers.get("x-linked-size")],
        [`"${sha256hex(gguf.data)}"`, out.commit.oid, String(gguf.data.length), String(gguf.data.length)],
        "resolve HEAD: ETag = sha256, X-Repo-Commit, Content-Length, X-Linked-Size");
    check(await hub.downloadFile({ repo, path: "does/not/exist.bin", ...creds }) === null, "downloadFile of a missing path: null (EntryNotFound)");
    // snapshotDownload writes the HF cache layout (models--ns--name/{blobs,snapshots/<sha>,refs/main}).
    const cacheDir = path.join(work, "hf-cache");
    const debug = console.debug;
    console.debug = () => {};   // the library's "Downloading x to y" lines
    const snap = await hub.snapshotDownload({ repo, cacheDir, ...creds }).finally(() => { console.debug = debug; });
    const refMain = fs.readFileSync(path.join(cacheDir, "models--testuser--official-js", "refs", "main"), "utf8");
    checkEq([path.basename(snap), refMain], [out.commit.oid, out.commit.oid], "snapshotDownload: snapshots/<commit> and refs/main = the commit");
    check(files.every((f) => fs.readFileSync(path.join(snap, f.path)).equals(f.data)), "snapshotDownload: every file in the snapshot is byte-identical");
    await server.config({ lfsRedirect: true });
    const viaCdn = Buffer.from(await (await hub.downloadFile({ repo, path: big.path, ...creds })).arrayBuffer());
    check(viaCdn.equals(big.data), "downloadFile through the 302 redirect to the storage URL (--lfs-redirect)");
    await server.config({ lfsRedirect: false });

    // Uploading the same files again: every object is already stored, nothing is re-sent.
    await server.resetStats();
    const again = await hub.uploadFiles({ repo, files: asFiles(files), commitTitle: "Upload again", ...creds });
    const st2 = await server.stats();
    checkEq([st2.bytesReceived.total, st2.requests.put ?? 0, st2.requests.part ?? 0], [0, 0, 0], "re-upload: stored objects come back without actions, no bytes re-sent");

    // parentCommit: a stale parent is refused with 412.
    const e412 = await rejects(hub.uploadFiles({ repo, files: [{ path: "late.txt", content: new Blob(["late"]) }], parentCommit: out.commit.oid, ...creds }));
    check(e412?.statusCode === 412, `commit with a stale parentCommit: 412 (${e412?.message?.split(".")[0]})`);
    const ok = await rejects(hub.uploadFiles({ repo, files: [{ path: "late.txt", content: new Blob(["late"]) }], parentCommit: again.commit.oid, ...creds }));
    check(ok === null, "commit with the current head as parentCommit succeeds");

    // Pull request: refs/pr/1 gets the file, main does not.
    const pr = await hub.uploadFiles({ repo, files: [{ path: "pr-only.txt", content: new Blob(["from a PR"]) }], isPullRequest: true, ...creds });
    checkEq(pr.pullRequestUrl, `${hubUrl}/testuser/official-js/discussions/1`, "create_pr: pullRequestUrl");
    const prTree = (await listTree("refs/pr/1")).map((e) => e.path);
    const mainTree = (await listTree("main")).map((e) => e.path);
    check(prTree.includes("pr-only.txt") && !mainTree.includes("pr-only.txt"), "create_pr: the file is on refs/pr/1 only");

    // Branches: committing to a missing branch fails, to a created one works.
    const eRev = await rejects(hub.uploadFiles({ repo, files: [{ path: "b.txt", content: new Blob(["b"]) }], branch: "dev", ...creds }));
    check(eRev?.statusCode === 404, "commit to a branch that does not exist: 404 RevisionNotFound");
    await hub.createBranch({ repo, branch: "dev", ...creds });
    await hub.uploadFiles({ repo, files: [{ path: "b.txt", content: new Blob(["b"]) }], branch: "dev", ...creds });
    const devTree = (await listTree("dev")).map((e) => e.path);
    check(devTree.includes("b.txt") && devTree.includes("config.json") && !(await listTree("main")).some((e) => e.path === "b.txt"),
        "branch dev: created from main, the commit lands on dev only");
    const fileOnDev = await hub.downloadFile({ repo, path: "b.txt", revision: "dev", ...creds });
    checkEq(await fileOnDev.text(), "b", "downloadFile at revision dev");

    // Deletion via commit.
    await hub.deleteFile({ repo, path: "late.txt", ...creds });
    check(!(await listTree("main")).some((e) => e.path === "late.txt"), "deleteFile: the path is gone from main");

    // Faults reach the client: an injected 500 on the batch endpoint fails the (non-retrying) JS client once,
    // a 429 carries Retry-After and RateLimit headers, and the next upload goes through.
    await server.faults("batch=500x1");
    const e500 = await rejects(hub.uploadFiles({ repo, files: [{ path: "x.bin", content: new Blob([Buffer.from([0, 1, 2])]) }], ...creds }));
    check(e500?.statusCode === 500, "fault batch=500x1: the JS client sees the 500");
    await server.faults("whoami=429x1/3");
    const r429 = await fetch(`${hubUrl}/api/whoami-v2`, { headers: { Authorization: `Bearer ${accessToken}` } });
    checkEq([r429.status, r429.headers.get("retry-after"), r429.headers.get("ratelimit")], [429, "3", `"api";r=0;t=3`], "fault whoami=429x1/3: Retry-After and RateLimit headers");
    await hub.uploadFiles({ repo, files: [{ path: "x.bin", content: new Blob([Buffer.from([0, 1, 2])]) }], ...creds });
    check((await listTree("main")).some((e) => e.path === "x.bin" && e.lfs), "after the faults: the upload succeeds (binary sample -> LFS)");

    // validate-yaml (what the Python client calls before committing a README.md).
    const vy = async (content) => (await fetch(`${hubUrl}/api/validate-yaml`, { method: "POST", body: JSON.stringify({ content, repoType: "model" }),
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${accessToken}` } })).status;
    checkEq([await vy(files.find((f) => f.path === "README.md").data.toString()), await vy("---\nlicense: mit\nno closing line\n")], [200, 400],
        "validate-yaml: good front matter 200, unclosed 400");

    // The state survives a server restart (--data).
    await server.stop();
    const server2 = await startHub(path.join(work, "data"), HUB_TEST_ARGS);
    const entries2 = [];
    for await (const e of hub.listFiles({ repo, recursive: true, hubUrl: server2.url, accessToken })) entries2.push(e);
    check(entries2.some((e) => e.path === "model-00001-of-00002.safetensors" && e.lfs?.oid === bigOid), "restart: repos and objects persist under --data");
    await server2.stop();
} catch (e) {
    console.log(`FAIL unexpected error: ${e.stack}`);
    check(false, "no unexpected error");
} finally {
    if (server.proc.exitCode === null) await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
}
console.log(failureCount() ? `${failureCount()} check(s) failed` : "all checks passed");
process.exit(failureCount() ? 1 : 0);
