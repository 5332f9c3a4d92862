// llama.cpp's tokenizer (node-llama-cpp's model.tokenize) on a GGUF's vocabulary alone (no tensors needed):
//   node llama-tokenize.mjs --modules DIR --model VOCAB.gguf --text FILE [--runs N]
//     speed, for BENCHMARKS.md: the whole text as one string (no specials parsed) N times after a warm-up;
//     prints one JSON line with the token count and the median, min and max wall time in ms.
//   node llama-tokenize.mjs --modules DIR --model VOCAB.gguf --cases cases.json
//     ids: cases.json is a JSON array of strings; prints one JSON line {"ids":[[...],...]}.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const modules = opt("--modules"), modelPath = opt("--model"), textPath = opt("--text"), casesPath = opt("--cases");
const runs = Number(opt("--runs") ?? 5);
if (!modules || !modelPath || !(textPath || casesPath)) {
    console.error("usage: node llama-tokenize.mjs --modules DIR --model VOCAB.gguf (--text FILE [--runs N] | --cases cases.json)");
    process.exit(2);
}
const require = createRequire(join(modules, "package.json"));
const { getLlama } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, vocabOnly: true });
if (casesPath) {
    const ids = JSON.parse(readFileSync(casesPath, "utf8")).map((t) => Array.from(model.tokenize(t)));
    process.stdout.write(JSON.stringify({ ids }) + "\n", () => process.exit(0));
    await new Promise(() => {}); // exit happens in the write callback
}
const text = readFileSync(textPath, "utf8");
const tokens = model.tokenize(text).length; // warm-up
const times = [];
for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    model.tokenize(text);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
const line = JSON.stringify({ chars: text.length, tokens, runs, median_ms: times[runs >> 1], min_ms: times[0], max_ms: times[runs - 1] }) + "\n";
process.stdout.write(line, () => process.exit(0));
