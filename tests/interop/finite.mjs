// usage: node finite.mjs MODEL.gguf '[id, id, ...]'
// Loads MODEL in llama.cpp and evaluates the ids teacher-forced in one batch.
// Prints one JSON line: {"n_vocab": V, "arch": "...", "rows": [{"finite": bool,
// "top_p": p, "argmax": id}] per input token} — a load-and-run check that
// needs no full logits dump (the exact comparison is logits.mjs').
import {loadModel} from "./llama.mjs";

const [modelPath, idsArg] = process.argv.slice(2);
const ids = JSON.parse(idsArg);
const model = await loadModel(modelPath);
const ctx = await model.createContext({contextSize: 256, threads: 1, flashAttention: false,
                                       experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const res = await seq.controlledEvaluate(ids.map((t) => [t, {generateNext: {logits: true}}]));
const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
const rows = res.map((r) => {
    let finite = true, max = -Infinity, argmax = -1, n = 0;
    for (const [tok, v] of r.next.logits) {
        n++;
        if (!Number.isFinite(v)) finite = false;
        if (v > max) { max = v; argmax = tok; }
    }
    let sum = 0;
    for (const [, v] of r.next.logits) sum += Math.exp(v - max);
    return {finite: finite && n === nVocab, top_p: 1 / sum, argmax};
});
const arch = model.fileInfo.metadata?.general?.architecture ?? "";
process.stdout.write(JSON.stringify({n_vocab: nVocab, arch, rows}) + "\n", () => process.exit(0));
