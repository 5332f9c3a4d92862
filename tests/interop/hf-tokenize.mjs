// Tokenizes strings with Hugging Face's own JavaScript tokenizers (@huggingface/tokenizers) for the
// comparison tests in tests/TensorCodec.Tests/Tokenizers/HfTokenizersInteropTests.cs.
//   node hf-tokenize.mjs --modules DIR --tokenizer tokenizer.json [--config tokenizer_config.json] --cases cases.json
// cases.json is a JSON array of strings; prints one JSON line {"ids":[[...],...],"ids_with_special":[[...] or null,...]}
// (null for strings over 10,000 characters).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const modules = opt("--modules"), tokenizerPath = opt("--tokenizer"), casesPath = opt("--cases"), configPath = opt("--config");
if (!modules || !tokenizerPath || !casesPath) {
    console.error("usage: node hf-tokenize.mjs --modules DIR --tokenizer tokenizer.json [--config F] --cases cases.json");
    process.exit(2);
}
const pkg = join(modules, "node_modules", "@huggingface", "tokenizers", "dist", "tokenizers.mjs");
const { Tokenizer } = await import(pathToFileURL(pkg).href);
const json = JSON.parse(readFileSync(tokenizerPath, "utf8"));
const config = configPath ? JSON.parse(readFileSync(configPath, "utf8")) : {};
const tokenizer = new Tokenizer(json, config);
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const ids = [], withSpecial = [];
for (const text of cases) {
    ids.push(tokenizer.encode(text, { add_special_tokens: false }).ids);
    // The long texts (Shakespeare) are compared without specials only: encoding twice doubles a slow run.
    withSpecial.push(text.length <= 10000 ? tokenizer.encode(text, { add_special_tokens: true }).ids : null);
}
const line = JSON.stringify({ ids, ids_with_special: withSpecial }) + "\n";
// A long line through a pipe: exit only once it is written.
process.stdout.write(line, () => process.exit(0));
