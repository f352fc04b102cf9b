/* tools/convert.c — `slm convert`: HF checkpoint (safetensors) -> GGUF. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

const char help_convert[] =
    "usage: slm convert MODEL_DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0] [-t N] [--json]\n"
    "\n"
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
    "a failure never leaves a partial OUT. Memory stays at a few buffers, not the model.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE   output GGUF (required)\n"
    "      --outtype T     type of the 2-D weights: f32, f16 (default), bf16, q8_0\n"
    "  -t, --threads N     conversion threads (default: physical cores)\n"
    "      --json          print a JSON summary on stdout\n"
    "  -h, --help          this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input, 4 I/O error, 6 internal error\n";

static void progress(uint64_t done, uint64_t total, void *ctx)
{
    cli_progress *p = ctx;
    p->total = total ? total : 1;
    cli_progress_update(p, done);
}

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"outtype", required_argument, 0, 'T'},
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 'J'}, {0, 0, 0, 0}};
    const char *out = NULL, *outtype = "f16";
    int threads = cli_default_threads(), json = 0, c;
    long long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'T': outtype = optarg; break;
        case 't':
            if (cli_parse_int(optarg, 1, 256, &v))
                return cli_usage("convert", "-t needs a thread count from 1 to 256, got '%s'", optarg);
            threads = (int)v;
            break;
        case 'J': json = 1; break;
        case ':': return cli_usage("convert", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage("convert", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage("convert", optind >= argc ? "missing MODEL_DIR" : "expected one MODEL_DIR, got extra '%s'",
                         optind < argc ? argv[optind + 1] : "");
    if (!out)
        return cli_usage("convert", "missing -o OUT.gguf");
    const char *dir = argv[optind];

    uint32_t type = slm_pl_outtype(outtype);
    if (type == UINT32_MAX)
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
