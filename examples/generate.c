/* examples/generate.c — embed slmkit: print the greedy continuation of a prompt, streamed.
 *
 *   generate MODEL.gguf PROMPT N
 *
 * Built against the installed library only (examples/Makefile: pkg-config --cflags --libs slm).
 * The text equals `slm run -m MODEL.gguf -p PROMPT -n N --temp 0`'s standard output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slm.h>

static int print_piece(void *user, const char *piece, size_t len, int32_t token)
{
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout); /* streamed: each piece as soon as its token is sampled */
    return 0;       /* non-zero would stop the generation */
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: generate MODEL.gguf PROMPT N\n");
        return 2;
    }
    char *end;
    long n = strtol(argv[3], &end, 10);
    if (*end || n < 0) {
        fprintf(stderr, "generate: N wants a token count >= 0, got '%s'\n", argv[3]);
        return 2;
    }
    if (slm_version() / 100 != SLM_VERSION_NUMBER / 100)
        fprintf(stderr, "generate: built with slm.h %s, running libslm %s\n", SLM_VERSION_STRING,
                slm_version_string());

    slm_lm *m = NULL;
    int rc = slm_lm_open(argv[1], NULL, &m);
    if (rc) {
        fprintf(stderr, "generate: error: %s\n", slm_last_error());
        return rc;
    }
    slm_gen_params p;
    slm_gen_params_init(&p);
    p.max_tokens = (int)n;
    p.temperature = 0; /* greedy */
    slm_gen_result res;
    rc = slm_lm_generate(m, argv[2], strlen(argv[2]), &p, print_piece, NULL, &res);
    if (rc)
        fprintf(stderr, "generate: error: %s\n", slm_last_error());
    else
        printf("\n");
    slm_lm_close(m);
    return rc;
}
