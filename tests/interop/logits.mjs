// usage: node logits.mjs MODEL.gguf '[id, id, ...]' [OUT.f32]
// llama.cpp's raw logits (every vocabulary entry) after each of the given
// tokens, teacher-forced in one batch. The KV cache is F32 and flash attention
// off, so the numbers are comparable with slmkit's F32 cache.
// Prints {"n_vocab": V, "logits": [[V floats] per input token]} as JSON; with OUT.f32
// the logits go to that file instead, as little-endian float32 [tokens][V], and the
// JSON holds {"n_vocab": V, "n_tokens": N} (large vocabularies).
import {writeFileSync} from "node:fs";
import {loadModel} from "./llama.mjs";

const [modelPath, idsArg, outPath] = process.argv.slice(2);
const ids = JSON.parse(idsArg);
const model = await loadModel(modelPath);
const ctx = await model.createContext({contextSize: 256, threads: 1, flashAttention: false,
                                       experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const input = ids.map((t) => [t, {generateNext: {logits: true}}]);
const res = await seq.controlledEvaluate(input);
const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
if (outPath) {
    const buf = new Float32Array(res.length * nVocab).fill(NaN);
    res.forEach((r, i) => { for (const [tok, v] of r.next.logits) buf[i * nVocab + tok] = v; });
    writeFileSync(outPath, Buffer.from(buf.buffer));
    process.stdout.write(JSON.stringify({n_vocab: nVocab, n_tokens: res.length}) + "\n", () => process.exit(0));
} else {
    const logits = res.map((r) => {
        const row = new Array(nVocab).fill(null);
        for (const [tok, v] of r.next.logits) row[tok] = v;
        return row;
    });
    // large output to a pipe: exit only once it is flushed
    process.stdout.write(JSON.stringify({n_vocab: nVocab, logits}) + "\n", () => process.exit(0));
}
