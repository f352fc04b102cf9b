#!/usr/bin/env node
// tests/interop/hf_tokenize.mjs — Hugging Face's tokenizer (@huggingface/tokenizers, the JS
// implementation of tokenizer.json) as an oracle for tests/test_tokenizer.c.
//
//   node hf_tokenize.mjs TOKENIZER_DIR STRINGS.json [--special]
//       TOKENIZER_DIR holds tokenizer.json (+ tokenizer_config.json); STRINGS.json a JSON array of
//       strings. Prints a JSON array of id arrays, without the post-processor's BOS/EOS
//       (add_special_tokens = false).
//       Without --special, added tokens flagged "special" are not matched in the text (they are
//       ordinary text, as transformers' split_special_tokens=True and llama.cpp's parse_special =
//       false do); with --special they are.
// Exit code 3 when the package is missing.
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

async function load() {
    const here = path.dirname(fileURLToPath(import.meta.url));
    for (const base of [path.join(here, "node_modules"), here]) {
        try {
            const req = createRequire(path.join(base, "noop.js"));
            return await import(pathToFileURL(req.resolve("@huggingface/tokenizers")).href);
        } catch {
            // next
        }
    }
    process.stderr.write("@huggingface/tokenizers not installed (make deps)\n");
    process.exit(3);
}

const args = process.argv.slice(2);
const special = args.includes("--special");
const rest = args.filter((a) => a !== "--special");
if (rest.length !== 2) {
    process.stderr.write("usage: hf_tokenize.mjs TOKENIZER_DIR STRINGS.json [--special]\n");
    process.exit(2);
}
const [dir, file] = rest;
const mod = await load();
const Tokenizer = mod.Tokenizer || (mod.default && mod.default.Tokenizer);
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
let tc = {};
try {
    tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
} catch {
    // optional
}
if (!special) {
    tj.added_tokens = (tj.added_tokens || []).filter((t) => !t.special);
    if (tc.added_tokens_decoder) {
        for (const k of Object.keys(tc.added_tokens_decoder))
            if (tc.added_tokens_decoder[k].special) delete tc.added_tokens_decoder[k];
    }
}
const tok = new Tokenizer(tj, tc);
const strings = JSON.parse(fs.readFileSync(file, "utf8"));
const out = strings.map((s) => Array.from(tok.encode(s, {add_special_tokens: false}).ids));
process.stdout.write(JSON.stringify(out) + "\n");
