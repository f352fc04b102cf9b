/* tests/test_interop.c — llama.cpp itself (node-llama-cpp) loads the GGUF files
 * `slm convert` writes and generates the expected text from them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "testutil.h"

static void llamacpp_continues(const char *model, const char *outtype, const char *want)
{
    const char *script = oracle_script("generate.mjs");
    char *dir = tu_tmpdir("interop");
    char *out = tu_path(dir, "m.gguf");
    char *o = NULL, *e = NULL;
    const char *conv[] = {"convert", tu_model(model), "-o", out, "--outtype", outtype, NULL};
    cr_assert_eq(tu_run_slm(&o, &e, conv), 0, "%s", e);
    free(o);
    free(e);
    const char *gen[] = {"node", script, out, "Once upon a time", "40", NULL};
    int rc = tu_run(&o, &e, gen);
    cr_assert_eq(rc, 0, "llama.cpp failed to run our %s file: %s", model, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "oracle output: %s", o);
    const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
    cr_assert(strncmp(text, want, strlen(want)) == 0, "llama.cpp on our %s (%s) wrote \"%s\", want \"%s\"", model,
              outtype, text, want);
    cJSON_Delete(j);
    free(o);
    free(e);
    free(out);
    tu_rmtree(dir);
    free(dir);
}

Test(interop, llamacpp_runs_our_stories260k_f32, .timeout = 120)
{
    llamacpp_continues("stories260k", "f32",
                       ", there was a little girl named Lily. She loved to play outside in the park.");
}

Test(interop, llamacpp_runs_our_stories260k_f16, .timeout = 120)
{
    llamacpp_continues("stories260k", "f16",
                       ", there was a little girl named Lily. She loved to play outside in the park.");
}

Test(interop, llamacpp_runs_our_gpt2, .timeout = 120)
{
    llamacpp_continues("tinystories-gpt2", "f16",
                       ", there was a little girl named Lily. She loved to play with her mom.");
}

Test(interop, llamacpp_runs_our_llama256_bf16, .timeout = 120)
{
    llamacpp_continues("stories-llama256", "bf16",
                       ", there was a little boy named Tim. Tim loved to play with his toys. One day, he found a");
}
