// Loads GGUF files written by `tcodec quantize` into a real llama.cpp (the prebuilt CPU build
// shipped by the npm package node-llama-cpp) and checks that llama.cpp accepts them, tokenizes
// like our tokenizer, generates tokens, and (optionally) reproduces reference next-token
// distributions.
//
// node llama-interop.mjs --modules DIR --model a.gguf [--model b.gguf …]
//     [--text "To be, or not to be"] [--expect-ids 658,312,…] [--generate 8]
//     [--ref-tokens val.first128.tokens.csv --ref-logits val.first128.logits.f32
//      --positions 8,32,64,127 --kl-max a.gguf=1e-5 --kl-max b.gguf=1e-3]
//     [--prompt-ids 1 --expect-generated 461,461,401]   (token ids in, greedy ids must start so)
//     [--top1-tokens ids.csv --top1-positions 0,4,8,…]   (report llama.cpp's two most likely next
//      tokens and their probabilities after each prefix tokens[0..pos], for a caller to compare)
//     [--tokenize-cases cases.json]   (a JSON array of {text, ids}: llama.cpp's tokenize of each text, without BOS
//      and without parsing special tokens, must give ids)
//     [--kv-f32]   (F32 KV cache and no flash attention, for exact comparisons)
//     [--logprob-tokens ids.csv --logprob-positions 0,4,8,… --logprob-vocab N]   (report llama.cpp's full next-token
//      distribution after each prefix as natural-log probabilities, renormalised, for a caller to compare)
//
// DIR is the folder where `npm install node-llama-cpp @node-llama-cpp/linux-x64` ran.
// Prints one JSON object per model on stdout; exits 1 if any check fails.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, basename } from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
    const a = { models: [], klMax: new Map(), text: "To be, or not to be", generate: 8, positions: [8, 32, 64, 127] };
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i], v = () => argv[++i];
        if (k === "--modules") a.modules = v();
        else if (k === "--model") a.models.push(v());
        else if (k === "--text") a.text = v();
        else if (k === "--expect-ids") a.expectIds = v().split(",").map(Number);
        else if (k === "--tokenize-cases") a.tokenizeCases = v();
        else if (k === "--generate") a.generate = Number(v());
        else if (k === "--prompt-ids") a.promptIds = v().split(",").map(Number);
        else if (k === "--expect-generated") a.expectGenerated = v().split(",").map(Number);
        else if (k === "--ref-tokens") a.refTokens = v();
        else if (k === "--ref-logits") a.refLogits = v();
        else if (k === "--positions") a.positions = v().split(",").map(Number);
        else if (k === "--top1-tokens") a.top1Tokens = v();
        else if (k === "--top1-positions") a.top1Positions = v().split(",").map(Number);
        else if (k === "--logprob-tokens") a.logprobTokens = v();
        else if (k === "--kv-f32") a.kvF32 = true;
        else if (k === "--logprob-vocab") a.logprobVocab = Number(v());
        else if (k === "--logprob-positions") a.logprobPositions = v().split(",").map(Number);
        else if (k === "--kl-max") { const [m, x] = v().split("="); a.klMax.set(basename(m), Number(x)); }
        else throw new Error(`unknown argument ${k}`);
    }
    if (!a.modules || a.models.length === 0) throw new Error("need --modules DIR and at least one --model");
    return a;
}

const args = parseArgs(process.argv.slice(2));
const require = createRequire(join(args.modules, "package.json"));
const { getLlama } = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);

// Reference next-token distributions: row i of the logits is the distribution after token i.
let refTokens, refLogits, vocab;
if (args.refTokens && args.refLogits) {
    refTokens = readFileSync(args.refTokens, "utf8").trim().split(",").map(Number);
    const buf = readFileSync(args.refLogits);
    refLogits = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    vocab = refLogits.length / refTokens.length;
}

function softmax64(row) {
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    const p = new Float64Array(row.length);
    for (let i = 0; i < row.length; i++) { p[i] = Math.exp(row[i] - max); sum += p[i]; }
    for (let i = 0; i < row.length; i++) p[i] /= sum;
    return p;
}

// KL(reference ‖ llama.cpp). A token llama.cpp left out of its map counts as probability 0,
// which makes the divergence infinite: a truncated distribution must not pass silently.
// node-llama-cpp's map is float32 and does not sum to exactly 1 (off by ~1e-5), which alone
// would shift the divergence by that much, so it is renormalised first.
function kl(p, qMap) {
    let sum = 0;
    for (const q of qMap.values()) sum += q;
    let d = 0;
    for (let i = 0; i < p.length; i++) {
        if (p[i] === 0) continue;
        const q = (qMap.get(i) ?? 0) / sum;
        d += p[i] * Math.log(p[i] / q);
    }
    return { kl: d, qSum: sum };
}

// llama.cpp's next-token distribution (id → probability) after prompt, from an empty history.
async function nextDistribution(sequence, prompt) {
    await sequence.clearHistory();
    for await (const step of sequence.evaluateWithMetadata(prompt, { probabilities: true }, { temperature: 0 }))
        return step.probabilities;
}

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
let failed = false;
for (const modelPath of args.models) {
    const report = { model: basename(modelPath), ok: true, problems: [] };
    const fail = (msg) => { report.ok = false; report.problems.push(msg); failed = true; };
    try {
        const model = await llama.loadModel({ modelPath });
        // One thread: the model is tiny, and on a busy 2-core CI box llama.cpp's default thread
        // count spends 10x longer spinning in its barriers than computing.
        // --kv-f32: llama.cpp's default F16 KV cache rounds keys and values to 11 bits, which alone
        // moves logits by ~1e-4 of their size; an exact comparison needs F32 and no flash attention.
        const kv = args.kvF32 ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false } : {};
        const context = await model.createContext({ contextSize: 256, threads: 1, ...kv });
        const sequence = context.getSequence();

        if (args.tokenizeCases) {
            const cases = JSON.parse(readFileSync(args.tokenizeCases, "utf8"));
            report.tokenizeCases = cases.length;
            for (const c of cases) {
                const got = Array.from(model.tokenize(c.text));
                if (got.join(",") !== c.ids.join(",")) fail(`tokenize(${JSON.stringify(c.text)}) = [${got}] but expected [${c.ids}]`);
            }
        }

        const ids = args.promptIds ?? Array.from(model.tokenize(args.text));
        report.tokens = ids;
        if (!args.promptIds && args.expectIds && ids.join(",") !== args.expectIds.join(","))
            fail(`tokenize(${JSON.stringify(args.text)}) = ${ids} but expected ${args.expectIds}`);

        // Greedy generation from the prompt: llama.cpp must evaluate the graph and produce tokens.
        const generated = [];
        for await (const step of sequence.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 })) {
            generated.push(step.token);
            if (generated.length >= args.generate) break;
        }
        report.generated = generated;
        report.generatedText = model.detokenize(generated);
        if (generated.length < args.generate) fail(`generated only ${generated.length} tokens`);
        if (args.expectGenerated && generated.slice(0, args.expectGenerated.length).join(",") !== args.expectGenerated.join(","))
            fail(`greedy ids ${generated} do not start with the reference ${args.expectGenerated}`);

        if (refLogits) {
            report.kl = {};
            let worst = 0;
            for (const pos of args.positions) {
                const probs = await nextDistribution(sequence, refTokens.slice(0, pos + 1));
                const p = softmax64(refLogits.subarray(pos * vocab, (pos + 1) * vocab));
                const { kl: d, qSum } = kl(p, probs);
                report.kl[pos] = d;
                report.qSumMin = Math.min(report.qSumMin ?? Infinity, qSum);
                report.qSumMax = Math.max(report.qSumMax ?? -Infinity, qSum);
                worst = Math.max(worst, d);
            }
            report.klMax = worst;
            const bound = args.klMax.get(report.model);
            if (bound !== undefined && !(worst <= bound)) fail(`KL ${worst} exceeds ${bound}`);
        }
        if (args.top1Tokens) {
            // top1[pos] = [id1, p1, id2, p2]: the caller decides what counts as a near-tie.
            const ids = readFileSync(args.top1Tokens, "utf8").trim().split(",").map(Number);
            report.top1 = {};
            for (const pos of args.top1Positions ?? ids.map((_, i) => i)) {
                const probs = await nextDistribution(sequence, ids.slice(0, pos + 1));
                const best = [...probs.entries()].sort((x, y) => y[1] - x[1]).slice(0, 2);
                report.top1[pos] = [best[0][0], best[0][1], best[1]?.[0] ?? -1, best[1]?.[1] ?? 0];
            }
        }
        if (args.logprobTokens) {
            // logprobs[pos][id] = ln p(id | tokens[0..pos]); a token missing from llama.cpp's map is null.
            const ids = readFileSync(args.logprobTokens, "utf8").trim().split(",").map(Number);
            report.logprobs = {};
            for (const pos of args.logprobPositions ?? ids.map((_, i) => i)) {
                const probs = await nextDistribution(sequence, ids.slice(0, pos + 1));
                let sum = 0;
                for (const q of probs.values()) sum += q;
                const row = new Array(args.logprobVocab ?? probs.size).fill(null);
                for (const [id, q] of probs.entries()) row[id] = Math.log(q / sum);
                report.logprobs[pos] = row;
            }
        }
        await context.dispose();
        await model.dispose();
    } catch (e) {
        fail(String(e?.stack ?? e));
    }
    console.log(JSON.stringify(report));
}
await llama.dispose();
// stdout to a pipe is written asynchronously: let it drain before exiting, or a long report line
// (full --logprob-tokens distributions) is cut at 64 KiB.
await new Promise((resolve) => process.stdout.write("", resolve));
process.exit(failed ? 1 : 0);
