#!/usr/bin/env node
// llama.cpp (node-llama-cpp 3.22.1, CPU, prebuilt) as the consumer-side oracle for our GGUF files.
//
//   node llama_eval.mjs MODEL.gguf --tokens 1,2,3 [--lora ADAPTER.gguf [--scale 1]] [--kv f32|f16] [--out F]
//       Evaluates the tokens and prints the raw logits of the last position over the whole vocabulary and their
//       log-softmax: {"model", "tokens", "n_vocab", "logits": [...], "logprobs": [...]} (same keys as
//       tests/reference/forward.py, whose rows are lists: compare logits[0] there with logits here).
//   node llama_eval.mjs MODEL.gguf --tokenize "text" [--special] [--no-bos]
//       Prints llama.cpp's token ids: {"text", "ids", "tokens"}. --special parses special tokens in the text
//       (llama.cpp parse_special); BOS is added when the GGUF says add_bos (tokenizer.ggml.add_bos_token, forced
//       for pre "llama-bpe"), unless --no-bos.
//   node llama_eval.mjs MODEL.gguf [MODEL2.gguf ...] --tokens "1,2,3;4,5" ...
//       Batch form (one process, one load per model): several models and/or several ';'-separated token lists
//       print one JSON line per (model, token list), models outer. A --lora (and --scale) given after a model
//       applies to that model only: `A.gguf --lora L.gguf B.gguf` evaluates A with L and B alone.
//   node llama_eval.mjs MODEL.gguf --tokenize-file TEXTS.json [--special] [--no-bos]
//       Batch tokenization: a JSON list of strings in, one JSON line per string out.
//   node llama_eval.mjs MODEL.gguf --info
//       Prints what llama.cpp reports about the file (vocabulary type, special tokens, train context).
//
// Exit status: 0 ok, 2 usage, 1 when llama.cpp refuses the file (the message is printed on stderr).
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readFileSync, writeFileSync } from "node:fs";

function usage(msg) {
    process.stderr.write(`llama_eval.mjs: ${msg}\n` +
        "usage: node llama_eval.mjs MODEL.gguf (--tokens IDS [--lora F.gguf] [--scale S] | --tokenize TEXT " +
        "[--special] [--no-bos] | --info) [--out FILE] [--context N] [--kv f32|f16] [--threads N (1)]\n");
    process.exit(2);
}

function parseArgs(argv) {
    const a = { special: false, noBos: false, scale: 1, info: false, context: 0, kv: "f32", threads: 1,
                loraOf: {}, scaleOf: {} };
    const rest = [];
    for (let i = 0; i < argv.length; ++i) {
        const k = argv[i];
        const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${k} needs a value`));
        if (k === "--tokens") a.seqs = val().split(";").map((seq) => seq.split(",").filter((s) => s.trim() !== "").map((s) => {
            const n = Number(s);
            if (!Number.isInteger(n) || n < 0) usage(`bad token id '${s}'`);
            return n;
        }));
        else if (k === "--tokenize") a.tokenize = val();
        else if (k === "--tokenize-file") a.tokenizeFile = val();
        else if (k === "--lora") { a.lora = val(); if (rest.length) a.loraOf[rest.length - 1] = a.lora; }
        else if (k === "--scale") { a.scale = Number(val()); if (rest.length) a.scaleOf[rest.length - 1] = a.scale; }
        else if (k === "--out") a.out = val();
        else if (k === "--context") a.context = Number(val());
        else if (k === "--kv") a.kv = val();
        else if (k === "--threads") a.threads = Number(val());
        else if (k === "--special") a.special = true;
        else if (k === "--no-bos") a.noBos = true;
        else if (k === "--info") a.info = true;
        else if (k.startsWith("--")) usage(`unknown option ${k}`);
        else rest.push(k);
    }
    if (rest.length < 1) usage("a MODEL.gguf is needed");
    if (rest.length > 1 && a.seqs === undefined) usage("several models only with --tokens");
    a.models = rest;
    a.model = rest[0];
    const modes = [a.seqs !== undefined, a.tokenize !== undefined, a.tokenizeFile !== undefined, a.info]
        .filter(Boolean).length;
    if (modes !== 1) usage("give exactly one of --tokens, --tokenize, --tokenize-file, --info");
    if (a.seqs !== undefined && a.seqs.some((q) => q.length === 0)) usage("--tokens has an empty list");
    if (!Number.isFinite(a.scale)) usage("bad --scale");
    if (!["f32", "f16"].includes(a.kv)) usage("--kv must be f32 or f16");
    return a;
}

const outLines = [];
function emit(a, obj) {
    outLines.push(JSON.stringify(obj) + "\n");
}
function flush(a) {
    const text = outLines.join("");
    if (a.out) writeFileSync(a.out, text);
    else process.stdout.write(text);
}

function logSoftmax(x) {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    return x.map((v) => v - lse);
}

async function main() {
    const a = parseArgs(process.argv.slice(2));
    // CPU only, never build from source (offline); warnings would pollute nothing (stderr) but keep it quiet.
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    if (a.seqs !== undefined) {
        for (const [i, path] of a.models.entries()) {
            const model = await llama.loadModel({ modelPath: path });
            // One model: --lora/--scale anywhere; several: those given after this model.
            const mine = a.models.length === 1 ? a
                : { ...a, lora: a.loraOf[i], scale: a.scaleOf[i] ?? 1 };
            for (const tokens of a.seqs) await evalLogits(mine, model, path, tokens);
            await model.dispose();
        }
        flush(a);
        return;
    }
    const model = await llama.loadModel({ modelPath: a.model });

    if (a.info) {
        const t = model.tokens;
        emit(a, {
            model: a.model,
            vocabularyType: model.vocabularyType,
            trainContextSize: model.trainContextSize,
            bos: t.bos, eos: t.eos, eot: t.eot,
            shouldPrependBosToken: t.shouldPrependBosToken,
        });
        flush(a);
        await model.dispose();
        return;
    }
    if (a.tokenize !== undefined || a.tokenizeFile !== undefined) {
        const texts = a.tokenizeFile !== undefined ? JSON.parse(readFileSync(a.tokenizeFile, "utf8")) : [a.tokenize];
        if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) usage("--tokenize-file: a JSON list of strings");
        for (const text of texts) {
            let ids = Array.from(model.tokenize(text, a.special));
            const bos = model.tokens.bos;
            // As llama_tokenize(add_special = true): BOS is prepended even when the text starts with one (llama.cpp
            // only warns about the double BOS; transformers does the same).
            if (!a.noBos && model.tokens.shouldPrependBosToken && bos != null) ids = [bos, ...ids];
            emit(a, {
                text,
                ids,
                tokens: ids.map((id) => model.detokenize([id], true)),
            });
        }
        flush(a);
        await model.dispose();
        return;
    }
}

async function evalLogits(a, model, path, tokens) {
    const ctxOpts = { contextSize: Math.max(a.context || 0, 2 ** Math.ceil(Math.log2(tokens.length + 8)), 64) };
    // An F32 KV cache and no flash attention, so that an F32 GGUF is compared with the reference at F32 precision
    // (llama.cpp's default F16 cache alone costs ~1e-3 relative). --kv f16 restores the default.
    ctxOpts.experimentalKvCacheKeyType = a.kv.toUpperCase();
    ctxOpts.experimentalKvCacheValueType = a.kv.toUpperCase();
    ctxOpts.flashAttention = false;
    // One thread by default: the models are tiny, and ggml's spinning worker threads slow to a crawl on a shared,
    // loaded machine (45 s instead of 3 s for four 2-layer MoE models under load 16 on 2 cores).
    ctxOpts.threads = a.threads;
    if (a.lora) ctxOpts.lora = { adapters: [{ filePath: a.lora, scale: a.scale }] };
    const ctx = await model.createContext(ctxOpts);
    const seq = ctx.getSequence();
    const last = tokens.length - 1;
    const res = await seq.controlledEvaluate(tokens.map((t, i) =>
        i === last ? [t, { generateNext: { logits: true } }] : t));
    const logitsMap = res[last]?.next?.logits;
    if (!logitsMap) throw new Error("llama.cpp returned no logits for the last position");
    let n = 0;
    for (const id of logitsMap.keys()) n = Math.max(n, id + 1);
    const logits = new Array(n).fill(null);
    for (const [id, v] of logitsMap) logits[id] = v;
    const missing = logits.findIndex((v) => v === null);
    if (missing >= 0) throw new Error(`logits map lacks token ${missing} (got ${logitsMap.size} of ${n})`);
    emit(a, {
        model: path,
        lora: a.lora ?? null,
        scale: a.lora ? a.scale : null,
        tokens,
        n_vocab: n,
        logits,
        logprobs: logSoftmax(logits),
    });
    await ctx.dispose();
}

main().catch((e) => {
    process.stderr.write(`llama_eval.mjs: ${e?.message ?? e}\n`);
    process.exit(1);
});
