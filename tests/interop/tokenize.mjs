#!/usr/bin/env node
// tests/interop/tokenize.mjs — llama.cpp (through node-llama-cpp) as the
// tokenizer oracle for tests/test_tokenizer.c.
//
//   node tokenize.mjs MODEL.gguf TEXTFILE [--special]
//       prints the JSON array of ids llama.cpp gives for the file's text
//       (llama_tokenize with add_special = false: no BOS is added;
//       --special: parse_special = true).
//   node tokenize.mjs MODEL.gguf --json STRINGS.json [--special]
//       STRINGS.json holds a JSON array of strings; prints an array of id arrays.
//   node tokenize.mjs MODEL.gguf --eog N_VOCAB
//       prints the JSON array of every id below N_VOCAB that llama.cpp treats as
//       end of generation (model.isEogToken).
//   node tokenize.mjs MODEL.gguf --detok IDS.json [--special]
//       IDS.json holds a JSON array of id arrays; prints the JSON array of
//       llama.cpp's detokenized strings (model.detokenize(ids, special)).
//
// node-llama-cpp is resolved from $NODE_PATH, then from tests/interop/node_modules
// (`make check-node`), then from the usual lookup. Exit code 3 when it is missing.
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

async function loadNodeLlamaCpp() {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const bases = [...(process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean),
                   path.join(here, "node_modules"), here];
    for (const base of bases) {
        try {
            const req = createRequire(path.join(base, "noop.js"));
            const entry = req.resolve("node-llama-cpp");
            return await import(pathToFileURL(entry).href);
        } catch {
            // try the next place
        }
    }
    try {
        return await import("node-llama-cpp");
    } catch {
        process.stderr.write("node-llama-cpp not installed (set NODE_PATH or run `make check-node`)\n");
        process.exit(3);
    }
}

const args = process.argv.slice(2);
const special = args.includes("--special");
const rest = args.filter((a) => a !== "--special");
if (rest.length < 3) {
    process.stderr.write("usage: tokenize.mjs MODEL.gguf (TEXTFILE | --json STRINGS.json | --detok IDS.json | --eog N_VOCAB) [--special]\n");
    process.exit(2);
}
const [modelPath, mode, file] = rest;

const {getLlama} = await loadNodeLlamaCpp();
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, logLevel: "error"});
const model = await llama.loadModel({modelPath, vocabOnly: true});

let out;
if (mode === "--eog") {
    out = [];
    const n = Number(file);
    for (let i = 0; i < n; i++) if (model.isEogToken(i)) out.push(i);
} else if (mode === "--json") {
    const strings = JSON.parse(fs.readFileSync(file, "utf8"));
    out = strings.map((s) => Array.from(model.tokenize(s, special)));
} else if (mode === "--detok") {
    const seqs = JSON.parse(fs.readFileSync(file, "utf8"));
    out = seqs.map((ids) => model.detokenize(ids, special));
} else {
    const text = fs.readFileSync(mode, "utf8");
    out = Array.from(model.tokenize(text, special));
}
process.stdout.write(JSON.stringify(out) + "\n");
await model.dispose();
await llama.dispose();
