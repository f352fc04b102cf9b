// usage: node perplexity.mjs TEXTFILE CTX CHUNKS MODEL.gguf [MODEL.gguf...]
// llama.cpp's perplexity of a text, computed with llama-perplexity's method through
// node-llama-cpp (llama.cpp's own tokenizer and kernels): the whole text tokenized
// once with BOS first (when the model adds BOS), n_tokens / CTX non-overlapping
// chunks (at most CHUNKS), each evaluated from an empty cache with its first token
// replaced by BOS, and positions CTX/2 .. CTX-2 scored on the next token.
// log p(next) = logit(next) - maxLogit - ln(sum exp(logit - maxLogit)): the logits
// filter returns logit(next) and the top logit, totalLogitWeight the sum.
// The KV cache is F32 with flash attention off (as slmkit's runtime), so differences
// come from the weights' kernels only.
// CHUNKS = 0: all. Prints one JSON line per model, in order:
// {"model": path, "ppl": x, "chunks": n, "scored": m, "tokens": t, "per_chunk": [...]}
// (per_chunk: the running PPL after each chunk, as llama-perplexity prints it).
// Several models share one process (llama.cpp's backend loads once).
import fs from "node:fs";
import {loadModel} from "./llama.mjs";

const [textPath, ctxArg, chunksArg, ...modelPaths] = process.argv.slice(2);
if (!textPath || !ctxArg || !chunksArg || modelPaths.length === 0) {
    process.stderr.write("usage: perplexity.mjs TEXTFILE CTX CHUNKS MODEL.gguf [MODEL.gguf...]\n");
    process.exit(2);
}
const nCtx = Number(ctxArg), maxChunks = Number(chunksArg);
const text = fs.readFileSync(textPath, "utf8");
let out = "";
for (const modelPath of modelPaths) {
    const model = await loadModel(modelPath);
    const bos = model.tokens.bos;
    const addBos = bos != null && model.fileInfo.metadata?.tokenizer?.ggml?.add_bos_token !== false;
    const tokens = [...(addBos ? [bos] : []), ...model.tokenize(text, false)];
    if (tokens.length < 2 * nCtx) {
        process.stderr.write(`${modelPath}: need at least ${2 * nCtx} tokens, the text has ${tokens.length}\n`);
        process.exit(3);
    }
    let nChunk = Math.floor(tokens.length / nCtx);
    if (maxChunks > 0) nChunk = Math.min(nChunk, maxChunks);

    const ctx = await model.createContext({contextSize: nCtx, batchSize: nCtx, threads: 2, flashAttention: false,
                                           experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
    const seq = ctx.getSequence();
    const first = nCtx / 2 | 0;
    let nll = 0, count = 0;
    const perChunk = [];
    for (let c = 0; c < nChunk; c++) {
        const chunk = tokens.slice(c * nCtx, (c + 1) * nCtx);
        if (addBos) chunk[0] = bos;
        await seq.clearHistory();
        const input = chunk.map((t, j) => {
            if (j < first || j >= nCtx - 1) return t;
            const next = chunk[j + 1];
            return [t, {generateNext: {logits: {filter: {tokens: [next], includeTop: 1}}, totalLogitWeight: true}}];
        });
        const res = await seq.controlledEvaluate(input);
        for (let j = first; j < nCtx - 1; j++) {
            const r = res[j].next;
            let maxLogit = -Infinity;
            for (const v of r.logits.values()) maxLogit = Math.max(maxLogit, v);
            nll -= r.logits.get(chunk[j + 1]) - maxLogit - Math.log(r.totalLogitWeight);
            count++;
        }
        perChunk.push(Math.exp(nll / count));
    }
    out += JSON.stringify({model: modelPath, ppl: Math.exp(nll / count), chunks: nChunk, scored: count,
                           tokens: tokens.length, per_chunk: perChunk}) + "\n";
    await ctx.dispose();
    await model.dispose();
}
process.stdout.write(out, () => process.exit(0));
