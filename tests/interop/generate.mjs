// usage: node generate.mjs MODEL.gguf PROMPT N_TOKENS
// Greedy continuation by llama.cpp; prints {"tokens": [...], "text": "..."} as JSON.
import {loadModel} from "./llama.mjs";

const [modelPath, prompt, nArg] = process.argv.slice(2);
const n = parseInt(nArg ?? "32", 10);
const model = await loadModel(modelPath);
const ctx = await model.createContext({contextSize: 256, threads: 1});
const seq = ctx.getSequence();
const prompTokens = model.tokenize(prompt);
const input = model.tokens.bos != null && model.fileInfo.metadata?.tokenizer?.ggml?.add_bos_token !== false &&
              model.fileInfo.metadata?.general?.architecture !== "gpt2"
    ? [model.tokens.bos, ...prompTokens] : [...prompTokens];
const out = [];
for await (const t of seq.evaluate(input, {temperature: 0})) {
    if (model.isSpecialToken(t) && t === model.tokens.eos) break;
    out.push(t);
    if (out.length >= n) break;
}
console.log(JSON.stringify({prompt_tokens: Array.from(input), tokens: out, text: model.detokenize(out)}));
process.exit(0);
