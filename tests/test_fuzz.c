/* tests/test_fuzz.c — replays the fuzz seed corpora and every past finding
 * (fuzz/regressions/<target>/) through the very functions the libFuzzer
 * targets call, so a fixed crash stays fixed in `make test` and `make asan`.
 *
 * Seeds are real files (fuzz/make_corpus.sh) and must parse, except those
 * named "*-bad*" or "*header-only*", which the parser must refuse as bad
 * input. Regressions: libFuzzer's own artifacts (crash-*, oom-*, timeout-*,
 * leak-*, slow-unit-*) must only not crash; the hand-made ones (planted
 * extreme counts, lengths, offsets) must be refused, unless named "ok-*". */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_gguf.c"
#include "fuzz/fuzz_gguf_model.c"
#include "fuzz/fuzz_gguf_vocab.c"
#include "fuzz/fuzz_hf_config.c"
#include "fuzz/fuzz_hf_tokenizer.c"
#include "fuzz/fuzz_imatrix.c"
#include "fuzz/fuzz_kld_base.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_st_index.c"
#include "fuzz/fuzz_root.c"
#include "fuzz/fuzz_bundle.c"
#include "fuzz/fuzz_manifest.c"
#include "fuzz/fuzz_serve_request.c"
#include "fuzz/fuzz_serve_sse.c"
#include "fuzz/fuzz_chat_template.c"
#include "fuzz/fuzz_optparse.c"
#include "testutil.h"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* <repo>/fuzz/<sub>: SLM_TESTDIR is <repo>/tests under `make test`. */
static char *fuzz_path(const char *sub)
{
    const char *td = getenv("SLM_TESTDIR");
    char *p = malloc(4096);
    if (td && *td)
        snprintf(p, 4096, "%s/../fuzz/%s", td, sub);
    else
        snprintf(p, 4096, "fuzz/%s", sub);
    return p;
}

static int name_cmp(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
static int not_dot(const struct dirent *d) { return d->d_name[0] != '.'; }

static int is_artifact(const char *name)
{
    static const char *const pre[] = {"crash-", "oom-", "timeout-", "leak-", "slow-unit-"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (!strncmp(name, pre[i], strlen(pre[i])))
            return 1;
    return 0;
}

enum { SEEDS = 1, REGRESSIONS = 2 };

/* Runs fn over every file of fuzz/<sub>; returns the file count. */
static int replay(const char *sub, fuzz_fn fn, int mode)
{
    char *dir = fuzz_path(sub);
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, not_dot, name_cmp);
    if (n < 0) {
        free(dir);
        return 0; /* the callers require at least one file */
    }
    for (int i = 0; i < n; i++) {
        char *p = tu_path(dir, ents[i]->d_name);
        size_t len = 0;
        char *data = tu_read_file(p, &len);
        cr_assert_not_null(data, "cannot read %s", p);
        int rc = fn((const uint8_t *)data, len);
        const char *name = ents[i]->d_name;
        if (mode == REGRESSIONS && !is_artifact(name)) {
            if (!strncmp(name, "ok-", 3))
                cr_expect_eq(rc, 0, "%s: must be accepted, got status %d", p, rc);
            else
                cr_expect(rc == SLM_EINPUT || rc == SLM_EIO || rc == SLM_EVERIFY,
                          "%s: must be refused (bad input, I/O or verification), got status %d", p, rc);
        }
        if (mode == SEEDS) {
            int bad = strstr(ents[i]->d_name, "-bad") || strstr(ents[i]->d_name, "header-only");
            if (bad)
                cr_expect_eq(rc, SLM_EINPUT, "%s: a bad seed must be refused as bad input, got %d", p, rc);
            else
                cr_expect_eq(rc, 0, "%s: a real file must parse, got status %d", p, rc);
        }
        free(data);
        free(p);
        free(ents[i]);
    }
    free(ents);
    free(dir);
    return n;
}

#define FUZZ_SUITE(target)                                                                      \
    Test(fuzz, seeds_##target)                                                                  \
    {                                                                                           \
        cr_assert_geq(replay("corpus/" #target, fuzz_##target, SEEDS), 1, "no seeds for " #target); \
    }                                                                                           \
    Test(fuzz, regressions_##target)                                                            \
    {                                                                                           \
        cr_assert_geq(replay("regressions/" #target, fuzz_##target, REGRESSIONS), 1,              \
                      "no fuzz/regressions/" #target " (every target keeps its extreme inputs)"); \
        char *sh = fuzz_path("dict_of.sh"), *o = NULL, *e = NULL;                               \
        const char *argv[] = {"sh", sh, #target, NULL};                                         \
        cr_expect_eq(tu_run(&o, &e, argv), 0, "no libFuzzer dictionary for " #target ": %s", e);  \
        if (o) o[strcspn(o, "\n")] = 0;                                                         \
        cr_expect(o && tu_exists(o), "dictionary %s of " #target " is missing", o ? o : "");   \
        free(o), free(e), free(sh);                                                             \
    }

FUZZ_SUITE(gguf)
FUZZ_SUITE(optparse)
FUZZ_SUITE(gguf_model)
FUZZ_SUITE(gguf_vocab)
FUZZ_SUITE(safetensors)
FUZZ_SUITE(st_index)
FUZZ_SUITE(hf_config)
FUZZ_SUITE(hf_tokenizer)
FUZZ_SUITE(imatrix)
FUZZ_SUITE(kld_base)
FUZZ_SUITE(root)
FUZZ_SUITE(bundle)
FUZZ_SUITE(manifest)
FUZZ_SUITE(serve_request)
FUZZ_SUITE(serve_sse)
FUZZ_SUITE(chat_template)

/* The harness itself: the multi-file separator splits as documented. */
Test(fuzz, split_parts)
{
    const char in[] = "a" FZ_SEP "bb" FZ_SEP FZ_SEP "d" FZ_SEP "e";
    const uint8_t *part[4];
    size_t len[4];
    int n = fz_split((const uint8_t *)in, sizeof in - 1, part, len, 4);
    cr_assert_eq(n, 4);
    cr_assert_eq(len[0], 1);
    cr_assert_eq(len[1], 2);
    cr_assert_eq(len[2], 0);
    cr_assert_eq(len[3], 1 + (sizeof FZ_SEP - 1) + 1, "the last part keeps later separators");
}
