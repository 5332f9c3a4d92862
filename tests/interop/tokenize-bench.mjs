// llama.cpp's tokenizer speed (node-llama-cpp's model.tokenize) for the BENCHMARKS.md tokenizer lines:
//   node tokenize-bench.mjs --modules DIR --model VOCAB.gguf --text FILE [--runs N]
// Loads the GGUF vocabulary only, tokenizes the whole text as one string (no specials parsed) N times after a
// warm-up and prints one JSON line with the token count and the median, min and max wall time in ms.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const modules = opt("--modules"), modelPath = opt("--model"), textPath = opt("--text"), runs = Number(opt("--runs") ?? 5);
if (!modules || !modelPath || !textPath) {
    console.error("usage: node tokenize-bench.mjs --modules DIR --model VOCAB.gguf --text FILE [--runs N]");
    process.exit(2);
}
const require = createRequire(join(modules, "package.json"));
const { getLlama } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, vocabOnly: true });
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
