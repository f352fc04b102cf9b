/* tools/tokenize.c — `slm tokenize`: the ids a model's tokenizer gives a text
 * (llama-tokenize's role). Reads only the tokenizer.* metadata of the GGUF;
 * the weights are never touched. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

typedef struct tokenize_args {
    const char *model, *prompt, *file;
    int no_bos, special, ids, pieces, json;
} tokenize_args;

static const slm_opt tokenize_opts[] = {
    OPT_PATH('m', "model", tokenize_args, model, "FILE", "GGUF file"),
    OPT_STRING('p', "prompt", tokenize_args, prompt, "TEXT", "text to tokenize"),
    OPT_PATH('f', "file", tokenize_args, file, "FILE", "read the text from FILE (bytes as they are)"),
    OPT_FLAG(0, "no-bos", tokenize_args, no_bos, "do not add BOS/EOS even if the model asks for them"),
    OPT_FLAG(0, "special", tokenize_args, special, "parse special-token texts into their ids (parse_special)"),
    OPT_FLAG(0, "ids", tokenize_args, ids, "print only the ids, space-separated on one line"),
    OPT_FLAG(0, "pieces", tokenize_args, pieces, "print only the token texts, one JSON string per line"),
    OPT_INCLUDE_AS(cli_json_table, tokenize_args, json, "{\"n_tokens\": N, \"ids\": [...], \"pieces\": [...]}"),
    OPT_END(),
};

const slm_cmd_doc doc_tokenize = {
    .usage =
        "slm tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--json] [--no-bos] [--special]\n"
        "             [--ids | --pieces]",
    .description =
        "Tokenize a text with the tokenizer stored in a GGUF (tokenizer.ggml.* metadata;\n"
        "the weights are not read) and print the token ids, as llama.cpp's llama-tokenize\n"
        "does. The BOS token is added when the model asks for it (tokenizer.ggml.add_bos_token,\n"
        "and EOS when add_eos_token is set), unless --no-bos. Texts of special tokens\n"
        "(\"<|im_end|>\", \"<end_of_turn>\", ...) are ordinary text unless --special;\n"
        "user-defined added tokens are always matched, as in llama.cpp.\n"
        "\n"
        "output (default): one line per token: ID, a tab, the token's text as a JSON string\n",
    .opts = tokenize_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input (not a GGUF, no or bad tokenizer metadata),\n"
        "4 I/O error, 6 internal error",
};


/* A token's text as a JSON string. cJSON copies bytes >= 0x80 as they are, so a
 * byte token's partial UTF-8 sequence is printed raw, like llama-tokenize. */
static char *json_piece(const char *p)
{
    cJSON *s = cJSON_CreateString(p);
    char *out = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    return out;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *C = "tokenize";
    tokenize_args a = {0};
    int ai = slm_opt_parse(C, tokenize_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    const char *model_path = a.model, *prompt = a.prompt, *file = a.file;
    int no_bos = a.no_bos, special = a.special, only_ids = a.ids, only_pieces = a.pieces, json = a.json;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    if (!model_path)
        return cli_usage(C, "-m MODEL.gguf is required");
    if (!prompt == !file)
        return cli_usage(C, "give exactly one of -p TEXT and -f FILE");
    if (only_ids + only_pieces + json > 1)
        return cli_usage(C, "--ids, --pieces and --json exclude each other");

    slm_err err = {0};
    char *text = NULL;
    size_t len;
    if (file) {
        if (!(text = cli_read_file(file, (size_t)1 << 30, &len, &err)))
            return cli_fail_err(C, &err);
    } else {
        len = strlen(prompt);
    }
    slm_pl_tokens tk;
    int rc = slm_pl_tokenize_gguf(model_path, file ? text : prompt, len, no_bos, special, &tk, &err);
    free(text);
    if (rc)
        return cli_fail_err(C, &err);

    if (json) {
        cJSON *root = cJSON_CreateObject(), *ja = cJSON_CreateArray(), *jp = cJSON_CreateArray();
        cJSON_AddNumberToObject(root, "n_tokens", (double)tk.n);
        for (size_t i = 0; i < tk.n; i++) {
            cJSON_AddItemToArray(ja, cJSON_CreateNumber(tk.ids[i]));
            cJSON_AddItemToArray(jp, cJSON_CreateString(tk.pieces[i]));
        }
        cJSON_AddItemToObject(root, "ids", ja);
        cJSON_AddItemToObject(root, "pieces", jp);
        char *s = cJSON_PrintUnformatted(root);
        if (s)
            printf("%s\n", s);
        else
            rc = cli_fail(C, 6, "out of memory");
        free(s);
        cJSON_Delete(root);
    } else if (only_ids) {
        for (size_t i = 0; i < tk.n; i++)
            printf("%s%d", i ? " " : "", tk.ids[i]);
        printf("\n");
    } else {
        for (size_t i = 0; i < tk.n && !rc; i++) {
            char *js = json_piece(tk.pieces[i]);
            if (!js)
                rc = cli_fail(C, 6, "out of memory");
            else if (only_pieces)
                printf("%s\n", js);
            else
                printf("%d\t%s\n", tk.ids[i], js);
            free(js);
        }
    }
    if (fflush(stdout) != 0 && !rc)
        rc = cli_fail(C, 4, "cannot write the output");
    slm_pl_tokens_free(&tk);
    return rc;
}
