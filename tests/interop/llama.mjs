// Shared loader for the llama.cpp oracle (node-llama-cpp, prebuilt CPU binaries, offline).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

export async function loadModel(modelPath) {
    const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true,
                                  logLevel: LlamaLogLevel.error, progressLogs: false});
    return await llama.loadModel({modelPath});
}
