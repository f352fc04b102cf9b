/* tools/convert.c — `slm convert`: HF checkpoint (safetensors) -> GGUF. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "formats.h"
#include "libquant.h"

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

static size_t encode(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols, void *ctx)
{
    (void)ctx;
    switch (type) {
    case SLM_TYPE_F16:
        slm_fp32_to_fp16_row(src, dst, nrows * ncols);
        return (size_t)(nrows * ncols) * 2;
    case SLM_TYPE_BF16:
        slm_fp32_to_bf16_row(src, dst, nrows * ncols);
        return (size_t)(nrows * ncols) * 2;
    default:
        return slm_quantize_rows(type, src, dst, nrows, ncols, NULL);
    }
}

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

    uint32_t type;
    if (!strcmp(outtype, "f32"))
        type = SLM_TYPE_F32;
    else if (!strcmp(outtype, "f16"))
        type = SLM_TYPE_F16;
    else if (!strcmp(outtype, "bf16"))
        type = SLM_TYPE_BF16;
    else if (!strcmp(outtype, "q8_0") && slm_qtraits_get(SLM_TYPE_Q8_0))
        type = SLM_TYPE_Q8_0;
    else
        return cli_usage("convert", "unknown --outtype '%s' (f32, f16, bf16, q8_0)", outtype);

    double t0 = cli_now();
    slm_err err = {0};
    slm_plan plan;
    int rc = slm_plan_build(dir, type, &plan, &err);
    if (rc)
        return cli_fail_err("convert", &err);

    slm_afile_clean_stale(out);
    cli_progress bar;
    cli_progress_start(&bar, "convert", 1);
    rc = slm_plan_write(&plan, out, threads, encode, NULL, progress, &bar, &err);
    cli_progress_end(&bar);
    if (rc) {
        slm_plan_free(&plan);
        return cli_fail_err("convert", &err);
    }
    double secs = cli_now() - t0;

    uint64_t params = 0;
    for (size_t i = 0; i < plan.n; i++)
        params += plan.t[i].n_elems;
    gguf_file *g = NULL;
    uint64_t bytes = 0;
    if (gguf_open(out, &g, &err) == SLM_OK) {
        bytes = g->size;
        gguf_close(g);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", dir);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "architecture", plan.cfg.gguf_arch);
        cJSON_AddStringToObject(o, "outtype", outtype);
        cJSON_AddNumberToObject(o, "tensors", (double)plan.n);
        cJSON_AddNumberToObject(o, "parameters", (double)params);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "peak_rss_kb", (double)cli_peak_rss_kb());
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("%s: %s, %zu tensors, %.2fM parameters, %s -> %s (%llu bytes) in %.2f s\n", dir, plan.cfg.gguf_arch,
               plan.n, params / 1e6, outtype, out, (unsigned long long)bytes, secs);
    }
    slm_plan_free(&plan);
    return 0;
}
