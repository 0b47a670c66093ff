// The official JavaScript client (@huggingface/hub) against the test Hub's CAS (server.mjs --xet), both ways:
// 1. the JS client uploads the fixture folder over Xet (its default): the CAS accepts its xorbs (LZ4 and
//    byte-grouped LZ4 chunks included) and shards, the tree equals the expected one, every file served back is
//    byte-identical; this is what makes the test CAS a faithful stand-in for our client's tests;
// 2. our `shardforge push --transfer xet` uploads another folder, and the JS client's downloadFile returns every
//    file byte-identical. Exit 0 = all checks passed.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startHub, makeFixture, expectedTree, treeOf, check, checkEq, sortedJson, sha256hex, failureCount, HUB_TEST_ARGS, watchdog } from "./lib.mjs";
watchdog(100);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const hub = await import(pathToFileURL(createRequire(path.join(ROOT, "tests/conformance/package.json")).resolve("@huggingface/hub")).href);
const BIN = process.env.SHARDFORGE_BIN;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "sf-hub-official-xet-"));
const server = await startHub(path.join(work, "data"), [...HUB_TEST_ARGS, "--xet"]);
const accessToken = "hf_official_xet_token";
const creds = { hubUrl: server.url, accessToken };
try {
    // 1. JS -> CAS
    const folder = path.join(work, "js");
    const files = makeFixture(folder, "js");
    // Float weights with smooth values: their bytes grouped by position mod 4 compress better (BG4, scheme 2).
    const f32 = new Float32Array(512 * 1024).map((_, i) => 1 + Math.sin(i / 5000) / 8);
    files.push({ path: "weights.f32.bin", data: Buffer.from(f32.buffer), lfs: true });
    fs.writeFileSync(path.join(folder, "weights.f32.bin"), files.at(-1).data);
    const repo = { type: "model", name: "testuser/js-xet" };
    await hub.createRepo({ repo, ...creds });
    await hub.uploadFiles({ repo, ...creds, files: files.map((f) => ({ path: f.path, content: pathToFileURL(path.join(folder, f.path)) })) });
    const s = await server.stats();
    const nLfs = files.filter((f) => f.lfs).length;
    checkEq([s.xet.files, s.xet.rejected, (s.requests.put ?? 0) + (s.requests.part ?? 0)], [nLfs, {}, 0],
        "JS uploadFiles over Xet: the CAS rebuilt every LFS file from its xorbs and shards, nothing refused, no LFS PUT");
    check(s.xet.shards >= 1 && s.xet.xorbs >= 1, `... ${s.xet.xorbs} xorb(s), ${s.xet.shards} shard(s)`);
    check(["0", "1", "2"].every((k) => (s.xet.chunkSchemes[k] ?? 0) > 0),
        `... its chunks came stored, LZ4 and byte-grouped LZ4 (schemes ${JSON.stringify(s.xet.chunkSchemes)}): every decode path ran`);
    const tree = [];
    for await (const e of hub.listFiles({ repo, recursive: true, ...creds })) tree.push(e);
    const got = treeOf(tree);
    delete got[".gitattributes"];
    checkEq(sortedJson(got), sortedJson(expectedTree(files)), "... the tree equals the expected one");
    let same = 0;
    for (const f of files) {
        const r = await fetch(`${server.url}/testuser/js-xet/resolve/main/${f.path}`, { headers: { Authorization: `Bearer ${accessToken}` } });
        if (sha256hex(Buffer.from(await r.arrayBuffer())) === sha256hex(f.data)) same++;
    }
    checkEq(same, files.length, "... every file served back is byte-identical");

    // 2. shardforge -> CAS -> JS download
    if (!BIN) { check(false, "SHARDFORGE_BIN is not set"); }
    else {
        const ours = path.join(work, "ours");
        const ofiles = makeFixture(ours, "ours");
        await server.resetStats();
        const p = spawnSync(BIN, ["push", ours, "--repo", "testuser/ours-xet", "--no-card", "--transfer", "xet"],
            { env: { ...process.env, HF_TOKEN: accessToken, HF_ENDPOINT: server.url, HF_HOME: path.join(work, "hfhome"),
                     OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" }, encoding: "utf8" });
        checkEq(p.status, 0, `shardforge push --transfer xet exits 0${p.status ? `: ${p.stderr}` : ""}`);
        const s2 = await server.stats();
        checkEq([s2.xet.files, s2.xet.rejected], [ofiles.filter((f) => f.lfs).length, {}], "... the CAS rebuilt every LFS file, nothing refused");
        let ok = 0;
        for (const f of ofiles) {
            const blob = await hub.downloadFile({ repo: { type: "model", name: "testuser/ours-xet" }, path: f.path, ...creds });
            if (blob && sha256hex(Buffer.from(await blob.arrayBuffer())) === sha256hex(f.data)) ok++;
        }
        checkEq(ok, ofiles.length, "... the JS client's downloadFile returns every file byte-identical");
        // downloadFile goes through Xet when the resolve answer names a Xet hash: the test CAS's reconstruction
        // (v2) and xorb range answers satisfy the official client, with no plain resolve bytes for those files.
        const s3 = await server.stats();
        const lfsPaths = ofiles.filter((f) => f.lfs).map((f) => `testuser/ours-xet/${f.path}`);
        checkEq([Object.keys(s3.xet.fileInfos).sort(), s3.xet.reconstructions >= lfsPaths.length, s3.xet.xorbGets > 0,
                 lfsPaths.map((p) => s3.bytesServed.files[p] ?? 0)],
            [[...lfsPaths].sort(), true, true, lfsPaths.map(() => 0)],
            "... through the CAS's reconstruction and xorb ranges for every LFS file, no plain resolve bytes");
    }
} catch (e) {
    check(false, `unexpected error: ${e.stack}`);
} finally {
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
}
console.log(failureCount() ? `${failureCount()} check(s) failed` : "all checks passed");
process.exit(failureCount() ? 1 : 0);
