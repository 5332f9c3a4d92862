// Side-by-side speed of llama.cpp (the prebuilt CPU build shipped by the npm package node-llama-cpp)
// on the same GGUF files, thread counts and tokens as `tcodec eval` / `tcodec logits --generate`
// (BENCHMARKS.md, "Engine speed"). Not part of CI.
//
//   node bench/llama-cpp-speed.mjs --modules DIR --model a.gguf --tokens ids.u16 [--threads 1]
//        [--ctx 256] [--chunks 2] [--generate 128] [--runs 3]
//
// eval: llama-perplexity's loop: per chunk of ctx tokens (BOS over its first), clear the KV cache and
// decode the chunk as one batch; tokens/s = chunks × ctx / time (as llama-perplexity counts).
// generation: llama-bench -p 0 -n N's measure: greedy tokens after BOS, tokens/s of N decoded tokens;
// one untimed warm-up run, then the median of --runs. Prints one JSON line.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, basename } from "node:path";
import { pathToFileURL } from "node:url";

const a = { threads: 1, ctx: 256, chunks: 2, generate: 128, runs: 3 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === "--modules") a.modules = v();
    else if (k === "--model") a.model = v();
    else if (k === "--tokens") a.tokens = v();
    else if (k === "--threads") a.threads = Number(v());
    else if (k === "--ctx") a.ctx = Number(v());
    else if (k === "--chunks") a.chunks = Number(v());
    else if (k === "--generate") a.generate = Number(v());
    else if (k === "--runs") a.runs = Number(v());
    else throw new Error(`unknown argument ${k}`);
}
const require = createRequire(join(a.modules, "package.json"));
const { getLlama } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: a.model });
const buf = readFileSync(a.tokens);
const all = Array.from(new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1));
const median = (x) => { const s = [...x].sort((p, q) => p - q); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const report = { model: basename(a.model), threads: a.threads, llamaCpp: llama.llamaCppRelease ?? null };

if (a.chunks > 0) {
    const context = await model.createContext({ contextSize: a.ctx, batchSize: a.ctx, threads: a.threads });
    const seq = context.getSequence();
    const bos = model.tokens.bos;
    async function evalOnce() {
        const t0 = process.hrtime.bigint();
        for (let c = 0; c < a.chunks; c++) {
            const chunk = all.slice(c * a.ctx, (c + 1) * a.ctx);
            if (bos != null) chunk[0] = bos;
            await seq.clearHistory();
            await seq.evaluateWithoutGeneratingNewTokens(chunk);
        }
        return Number(process.hrtime.bigint() - t0) / 1e9;
    }
    await evalOnce(); // warm-up
    const times = [];
    for (let r = 0; r < a.runs; r++) times.push(await evalOnce());
    report.evalTokensPerSecond = a.chunks * a.ctx / median(times);
    await context.dispose();
}
if (a.generate > 0) {
    const context = await model.createContext({ contextSize: a.generate + 8, threads: a.threads });
    const seq = context.getSequence();
    async function genOnce() {
        await seq.clearHistory();
        let n = 0, t0 = 0n;
        for await (const tok of seq.evaluate([model.tokens.bos ?? 1], { temperature: 0 })) {
            if (n === 0) t0 = process.hrtime.bigint(); // the first token comes from the prompt decode
            if (++n > a.generate) break;
        }
        // n − 1 decodes since the first token (fewer than asked if the model stopped at EOS).
        return (n - 1) / (Number(process.hrtime.bigint() - t0) / 1e9);
    }
    await genOnce(); // warm-up
    const rates = [];
    for (let r = 0; r < a.runs; r++) rates.push(await genOnce());
    report.generateTokensPerSecond = median(rates);
    await context.dispose();
}
console.log(JSON.stringify(report));
await model.dispose();
await llama.dispose();
