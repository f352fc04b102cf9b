/* tools/convert.c — `slm convert`: HF checkpoint (safetensors) -> GGUF. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

static const char *const outtypes[] = {"f32", "f16", "bf16", "q8_0", NULL};
static const uint32_t outtype_ids[] = {SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16, SLM_TYPE_Q8_0};

typedef struct convert_args {
    const char *out;
    int outtype, threads, json;
} convert_args;

static const slm_opt convert_opts[] = {
    OPT_PATH('o', "output", convert_args, out, "FILE", "output GGUF (required)"),
    OPT_ENUM(0, "outtype", convert_args, outtype, "T", outtypes, "type of the 2-D weights: f32, f16 (default), bf16, q8_0"),
    OPT_INCLUDE_AS(cli_threads_table, convert_args, threads, "conversion threads (default: physical cores)"),
    OPT_INCLUDE_AS(cli_json_table, convert_args, json, "print a JSON summary on stdout"),
    OPT_END(),
};

const slm_cmd_doc doc_convert = {
    .usage = "slm convert MODEL_DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0] [-t N] [--json]",
    .description =
        "Convert a Hugging Face checkpoint directory (config.json, tokenizer.json,\n"
        "model.safetensors or a sharded model.safetensors.index.json; F32, F16 or BF16\n"
        "weights) into a GGUF v3 file that llama.cpp loads: llama.cpp's tensor names\n"
        "and metadata keys, the Llama Q/K row permutation, GPT-2 Conv1D transposes,\n"
        "Llama 3's rope_freqs, Gemma 3's (1 + w) norms, Phi-3's fused projections,\n"
        "norms and 1-D tensors kept in F32, the tokenizer inside the file.\n"
        "Architectures: LlamaForCausalLM (rope_scaling llama3 too), MistralForCausalLM,\n"
        "Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM (text), Phi3ForCausalLM,\n"
        "GPT2LMHeadModel. A config key that changes the math and is not carried (another\n"
        "rope_scaling type, mlp_bias, partial_rotary_factor != 1, ...) is refused by name\n"
        "(docs/formats.md), as is a vocabulary size that differs from the embedding rows.\n"
        "\n"
        "The output is written to a temporary file beside OUT, synced, then renamed:\n"
        "a failure never leaves a partial OUT. Memory stays at a few buffers, not the model.\n",
    .opts = convert_opts,
    .exit_codes = "0 ok, 2 usage, 3 bad input, 4 I/O error, 6 internal error",
    .examples = "slm convert ./SmolLM-135M -o smol-f16.gguf\n"
                "slm convert ./SmolLM-135M -o smol-q8.gguf --outtype q8_0 --json",
};

static void progress(uint64_t done, uint64_t total, void *ctx)
{
    cli_progress *p = ctx;
    p->total = total ? total : 1;
    cli_progress_update(p, done);
}

int cmd_convert(int argc, char **argv)
{
    convert_args a = {.outtype = 1, .threads = cli_default_threads()};
    int ai = slm_opt_parse("convert", convert_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai != argc - 1)
        return cli_usage("convert", ai >= argc ? "missing MODEL_DIR" : "expected one MODEL_DIR, got extra '%s'",
                         ai < argc ? argv[ai + 1] : "");
    if (!a.out)
        return cli_usage("convert", "missing -o OUT.gguf");
    const char *dir = argv[ai], *out = a.out, *outtype = outtypes[a.outtype];
    int threads = a.threads, json = a.json;
    uint32_t type = outtype_ids[a.outtype];
    if (slm_pl_outtype(outtype) == UINT32_MAX)
        return cli_usage("convert", "unknown --outtype '%s' (f32, f16, bf16, q8_0)", outtype);

    double t0 = cli_now();
    slm_err err = {0};
    slm_pl_convert_info info;
    cli_progress bar;
    cli_progress_start(&bar, "convert", 1);
    int rc = slm_pl_convert(dir, out, type, threads, progress, &bar, &info, &err);
    cli_progress_end(&bar);
    if (rc)
        return cli_fail_err("convert", &err);
    double secs = cli_now() - t0;

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", dir);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "architecture", info.arch);
        cJSON_AddStringToObject(o, "outtype", outtype);
        cJSON_AddNumberToObject(o, "tensors", (double)info.tensors);
        cJSON_AddNumberToObject(o, "parameters", (double)info.params);
        cJSON_AddNumberToObject(o, "bytes", (double)info.bytes);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "peak_rss_kb", (double)cli_peak_rss_kb());
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("%s: %s, %zu tensors, %.2fM parameters, %s -> %s (%llu bytes) in %.2f s\n", dir, info.arch,
               info.tensors, info.params / 1e6, outtype, out, (unsigned long long)info.bytes, secs);
    }
    return 0;
}
