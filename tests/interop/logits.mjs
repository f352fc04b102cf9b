// usage: node logits.mjs MODEL.gguf '[id, id, ...]'
// llama.cpp's raw logits (every vocabulary entry) after each of the given
// tokens, teacher-forced in one batch. The KV cache is F32 and flash attention
// off, so the numbers are comparable with slmkit's F32 cache.
// Prints {"n_vocab": V, "logits": [[V floats] per input token]} as JSON.
import {loadModel} from "./llama.mjs";

const [modelPath, idsArg] = process.argv.slice(2);
const ids = JSON.parse(idsArg);
const model = await loadModel(modelPath);
const ctx = await model.createContext({contextSize: 256, threads: 1, flashAttention: false,
                                       experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const input = ids.map((t) => [t, {generateNext: {logits: true}}]);
const res = await seq.controlledEvaluate(input);
const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
const logits = res.map((r) => {
    const row = new Array(nVocab).fill(null);
    for (const [tok, v] of r.next.logits) row[tok] = v;
    return row;
});
// large output to a pipe: exit only once it is flushed
process.stdout.write(JSON.stringify({n_vocab: nVocab, logits}) + "\n", () => process.exit(0));
