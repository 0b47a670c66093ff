// node compare.mjs xetchunk|xet-core OURS.json: recomputes, with the official implementation named, everything
// tests/conformance/xet/xet_hash printed for its files, and compares: chunk boundaries and chunk hashes, file hashes,
// each xorb's hash (over the oracle's chunks at the offsets our xorb lists), each term (its xorb chunks are the
// file's next chunks, its byte count and its verification hash). Prints the first ten mismatches of each kind;
// exit 0 = all equal, 1 = a mismatch or a missing oracle.
import fs from "node:fs";
import { loadXetchunk, loadXetCore } from "./oracles.mjs";

const [which, oursPath] = process.argv.slice(2);
const ours = JSON.parse(fs.readFileSync(oursPath, "utf8"));
let failures = 0;
const shown = new Map();
function fail(kind, msg) {
    failures++;
    const n = (shown.get(kind) ?? 0) + 1;
    shown.set(kind, n);
    if (n <= 10) console.log(`MISMATCH ${kind}: ${msg}`);
}

// oracle: (bytes) -> [{hash, length}] with xet-hex hashes; fileHash, xorbHash, verification over such lists.
let oracle;
if (which === "xetchunk") {
    const x = await loadXetchunk();
    if (ours.min_test !== 8128) throw new Error(`xetchunk-wasm ${x.version} is compared with --min-test 8128, got ${ours.min_test}`);
    const raw = (cs) => cs.map((c) => ({ hash: x.hexToBytes(c.hash), length: c.length }));
    oracle = {
        name: `@huggingface/xetchunk-wasm ${x.version}`,
        chunks: (data) => x.getChunks(data).map((c) => ({ hash: x.hashToHex(c.hash), length: c.length })),
        fileHash: (cs) => x.hashToHex(x.fileHash(raw(cs))),
        xorbHash: (cs) => x.hashToHex(x.xorbHash(raw(cs))),
        verification: (cs) => x.hashToHex(x.verificationHash(cs.map((c) => x.hexToBytes(c.hash)))),
    };
} else if (which === "xet-core") {
    const x = await loadXetCore();
    if (ours.min_test !== 8192) throw new Error(`xet-core is compared with --min-test 8192, got ${ours.min_test}`);
    const plain = (cs) => cs.map((c) => ({ hash: c.hash, length: c.length }));
    oracle = {
        name: `xet-core ${x.commit.slice(0, 12)} (Wasm vendored in @huggingface/hub ${x.hubVersion})`,
        chunks: (data) => {
            const ch = new x.Chunker(65536);
            const out = [];
            // Fed in uneven pieces: the oracle's own streaming must not matter either.
            for (let at = 0, step = 1 << 20; at < data.length; at += step, step = step === 1 << 20 ? 77777 : 1 << 20)
                out.push(...ch.add_data(data.subarray(at, Math.min(data.length, at + step))));
            out.push(...ch.finish());
            ch.free();
            return out.map((c) => ({ hash: c.hash, length: c.length }));
        },
        fileHash: (cs) => x.compute_file_hash(plain(cs)),
        xorbHash: (cs) => x.compute_xorb_hash(plain(cs)),
        verification: (cs) => x.compute_verification_hash(cs.map((c) => c.hash)),
    };
} else {
    throw new Error(`unknown oracle ${which}`);
}

const fileChunks = [];    // per file: the oracle's chunks
const offsetIndex = [];   // per file: chunk start offset -> chunk index
for (const [i, f] of ours.files.entries()) {
    const data = new Uint8Array(fs.readFileSync(f.path));
    const cs = oracle.chunks(data);
    fileChunks.push(cs);
    const m = new Map();
    let at = 0;
    cs.forEach((c, k) => { m.set(at, k); at += c.length; });
    offsetIndex.push(m);
    if (data.length !== f.size) fail("size", `file ${i} ${f.path}: ours ${f.size}, on disk ${data.length}`);
    if (cs.length !== f.chunks.length) fail("chunk count", `file ${i} ${f.path}: ours ${f.chunks.length}, oracle ${cs.length}`);
    let ourEnd = 0, theirEnd = 0;
    for (let k = 0; k < Math.max(cs.length, f.chunks.length); k++) {
        const [h, len] = f.chunks[k] ?? ["-", 0];
        const o = cs[k] ?? { hash: "-", length: 0 };
        ourEnd += len; theirEnd += o.length;
        if (ourEnd !== theirEnd) fail("chunk boundary", `file ${i} chunk ${k}: ours ends at ${ourEnd}, oracle at ${theirEnd}`);
        else if (h !== o.hash) fail("chunk hash", `file ${i} chunk ${k}: ours ${h}, oracle ${o.hash}`);
    }
    const fh = cs.length === 0 ? "0".repeat(64) : oracle.fileHash(cs);
    if (fh !== f.xet_hash) fail("file hash", `file ${i} ${f.path}: ours ${f.xet_hash}, oracle ${fh}`);
}

// Xorbs: our chunk sources mapped to the oracle's chunks; the oracle hashes that list.
const xorbChunks = ours.xorbs.map((x, j) => x.sources.map(([file, offset]) => {
    const k = offsetIndex[file]?.get(offset);
    if (k === undefined) { fail("xorb source", `xorb ${j}: no oracle chunk starts at file ${file} offset ${offset}`); return { hash: "f".repeat(64), length: 0 }; }
    return fileChunks[file][k];
}));
ours.xorbs.forEach((x, j) => {
    const h = oracle.xorbHash(xorbChunks[j]);
    if (h !== x.hash) fail("xorb hash", `xorb ${j}: ours ${x.hash}, oracle ${h}`);
    const records = xorbChunks[j].reduce((s, c) => s + 8 + c.length, 0);
    if (records !== x.serialized_bytes) fail("xorb size", `xorb ${j}: ours ${x.serialized_bytes}, records ${records}`);
});

// Terms: consecutive, covering each file with its own chunks; verification hash per term.
for (const [i, f] of ours.files.entries()) {
    let k = 0;
    for (const [ti, t] of f.terms.entries()) {
        const cs = xorbChunks[t.xorb]?.slice(t.start, t.end) ?? [];
        if (cs.length !== t.end - t.start || cs.length === 0) { fail("term", `file ${i} term ${ti}: bad range ${t.start}..${t.end} of xorb ${t.xorb}`); continue; }
        cs.forEach((c, n) => { if (c.hash !== fileChunks[i][k + n]?.hash) fail("term", `file ${i} term ${ti}: chunk ${n} is not file chunk ${k + n}`); });
        const bytes = cs.reduce((s, c) => s + c.length, 0);
        if (bytes !== t.bytes) fail("term bytes", `file ${i} term ${ti}: ours ${t.bytes}, chunks ${bytes}`);
        const v = oracle.verification(cs);
        if (v !== t.verification) fail("verification hash", `file ${i} term ${ti}: ours ${t.verification}, oracle ${v}`);
        k += cs.length;
    }
    if (k !== fileChunks[i].length) fail("term", `file ${i}: terms cover ${k} of ${fileChunks[i].length} chunks`);
}

const nChunks = fileChunks.reduce((s, c) => s + c.length, 0);
const nTerms = ours.files.reduce((s, f) => s + f.terms.length, 0);
console.log(`${oracle.name}: ${ours.files.length} files, ${nChunks} chunks, ${ours.xorbs.length} xorbs, ${nTerms} terms, ` +
    `${failures} mismatches`);
process.exit(failures === 0 ? 0 : 1);
