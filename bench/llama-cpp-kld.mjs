// llama-perplexity --kl-divergence, computed on llama.cpp's own logits (the prebuilt CPU build shipped by
// the npm package node-llama-cpp): for the base and the model, chunks of ctx tokens with BOS over each
// chunk's first token, logits of positions ctx/2 … ctx−2; the base row stored as llama-perplexity's uint16
// codes over [max(min, max − 16), max], KL summed over base log-probabilities above −16, base NLL and top
// token read from the codes. Used by the interop test of `tcodec eval --like-llama-cpp` and by BENCHMARKS.md.
//
//   node bench/llama-cpp-kld.mjs --modules DIR --base base.gguf --model m.gguf --tokens ids.csv [--ctx 256] [--chunks N] [--kv-f32]
//
// Prints one JSON object: {chunks, scored, ppl, basePpl, klMean, top1}.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const a = { ctx: 256, chunks: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === "--modules") a.modules = v();
    else if (k === "--base") a.base = v();
    else if (k === "--model") a.model = v();
    else if (k === "--tokens") a.tokens = v();
    else if (k === "--ctx") a.ctx = Number(v());
    else if (k === "--chunks") a.chunks = Number(v());
    else if (k === "--kv-f32") a.kvF32 = true;
    else throw new Error(`unknown argument ${k}`);
}
const require = createRequire(join(a.modules, "package.json"));
const { getLlama } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const tokens = readFileSync(a.tokens, "utf8").trim().split(",").map(Number);
const ctx = a.ctx, first = ctx >> 1, rows = ctx - 1 - first;
let chunks = Math.floor(tokens.length / ctx);
if (a.chunks > 0) chunks = Math.min(chunks, a.chunks);
const f = Math.fround;

// Logits of positions first … ctx−2 of every chunk, as Float32Array rows of the vocabulary.
async function chunkLogits(path, onRow) {
    const model = await llama.loadModel({ modelPath: path });
    const kv = a.kvF32 ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false } : {};
    const context = await model.createContext({ contextSize: ctx, batchSize: ctx, threads: 1, ...kv });
    const seq = context.getSequence();
    const bos = model.tokens.bos;
    for (let c = 0; c < chunks; c++) {
        const chunk = tokens.slice(c * ctx, (c + 1) * ctx);
        if (bos != null) chunk[0] = bos;
        await seq.clearHistory();
        const input = chunk.slice(0, ctx - 1).map((t, i) => i >= first ? [t, { generateNext: { logits: true } }] : t);
        const out = await seq.controlledEvaluate(input);
        for (let r = 0; r < rows; r++) {
            const m = out[first + r].next.logits;
            const row = new Float32Array(m.size);
            for (const [id, x] of m) row[id] = x;
            onRow(c, r, row, chunk[first + r + 1]);
        }
    }
    await context.dispose();
    await model.dispose();
}

// Base: llama-perplexity's log_softmax(…, uint16_t * log_prob, …) codes per row.
const base = [];
await chunkLogits(a.base, (c, r, logits) => {
    let max = logits[0], min = logits[0];
    for (const x of logits) { if (x > max) max = x; if (x < min) min = x; }
    min = Math.max(min, f(max - 16));
    let sum = 0;
    for (const x of logits) sum += Math.exp(f(x - max));
    const lse = f(Math.log(sum));
    const minLogProb = f(f(min - max) - lse);
    const scale = f(f(max - min) / 65535);
    const q = new Uint16Array(logits.length);
    if (scale) {
        const inv = f(1 / scale);
        for (let i = 0; i < logits.length; i++) q[i] = logits[i] > min ? Math.round(f(inv * f(logits[i] - min))) : 0;
    }
    base.push({ scale, minLogProb, q });
});

let n = 0, nll = 0, nllBase = 0, kld = 0, same = 0;
await chunkLogits(a.model, (c, r, logits, target) => {
    const b = base[c * rows + r];
    let max = logits[0], imax = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > max) { max = logits[i]; imax = i; }
    let sum = 0;
    for (const x of logits) sum += Math.exp(f(x - max));
    const lse = f(Math.log(sum));
    nll += f(f(max + lse) - logits[target]);
    nllBase += -f(f(b.scale * b.q[target]) + b.minLogProb);
    const top = f(max + lse);
    let s = 0, imaxBase = -1, pMax = 0;
    for (let i = 0; i < logits.length; i++) {
        const p = f(f(b.scale * b.q[i]) + b.minLogProb);
        if (i === 0 || p > pMax) { pMax = p; imaxBase = i; }
        if (p > -16) s += Math.exp(p) * (p - logits[i] + top);
    }
    kld += s;
    if (imax === imaxBase) same++;
    n++;
});
console.log(JSON.stringify({ chunks, scored: n, ppl: Math.exp(nll / n), basePpl: Math.exp(nllBase / n), klMean: kld / n, top1: same / n }));
await llama.dispose();
