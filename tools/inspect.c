/* tools/inspect.c — `slm inspect`: what is inside a GGUF, a safetensors file
 * or a Hugging Face model directory. */
#include <stdlib.h>

#include "cli.h"
#include "pipeline.h"

typedef struct inspect_args {
    int json, all;
} inspect_args;

static const slm_opt inspect_opts[] = {
    OPT_INCLUDE_AS(cli_json_table, inspect_args, json, "machine-readable output (one JSON object)"),
    OPT_FLAG(0, "all", inspect_args, all, "print every array element"),
    OPT_END(),
};

const slm_cmd_doc doc_inspect = {
    .usage =
        "slm inspect FILE [--json] [--all]",
    .description =
        "Show what a model file holds. FILE is a GGUF file, a .safetensors file (or a\n"
        "sharded model.safetensors.index.json), or a Hugging Face model directory.\n"
        "Prints the metadata (long arrays abbreviated unless --all), the tensor table\n"
        "(name, shape, type, bytes) and totals (parameters, bits per weight).\n"
        "Every structure is validated first: a truncated or corrupt file is refused\n"
        "with one line naming the problem.\n",
    .opts = inspect_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O error, 6 internal error",
    .examples = "slm inspect model.gguf\nslm inspect --json ./SmolLM-135M",
};

int cmd_inspect(int argc, char **argv)
{
    inspect_args a = {0};
    int ai = slm_opt_parse("inspect", inspect_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai != argc - 1)
        return cli_usage("inspect", ai >= argc ? "missing FILE" : "expected one FILE");
    slm_err err = {0};
    char *text = NULL;
    size_t len = 0;
    if (slm_pl_inspect(argv[ai], a.all, a.json, &text, &len, &err))
        return cli_fail_err("inspect", &err);
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}
