/* tests/interop.c — see interop.h */
#include "interop.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

void oracle_missing(const char *what)
{
    const char *req = getenv("SLM_REQUIRE_ORACLE");
    if (req && *req == '1')
        cr_assert_fail("oracle required (SLM_REQUIRE_ORACLE=1) but %s", what);
    fprintf(stderr, "\n*** SKIPPED: oracle missing: %s ***\n\n", what);
    cr_skip_test("SKIPPED: oracle missing: %s", what);
}

static const char *testdir(void)
{
    const char *dir = getenv("SLM_TESTDIR");
    return dir && *dir ? dir : "tests";
}

static int have_node(void)
{
    const char *argv[] = {"node", "--version", NULL};
    return tu_run(NULL, NULL, argv) == 0;
}

const char *oracle_node_file(const char *rel)
{
    static __thread char path[4096];
    if (!have_node()) {
        oracle_missing("node is not installed");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/interop/node_modules/%s", testdir(), rel);
    if (!tu_exists(path)) {
        char why[4200];
        snprintf(why, sizeof why, "%s is not installed (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}

const char *oracle_script(const char *script)
{
    static __thread char path[4096];
    if (!oracle_node_file("node-llama-cpp/package.json"))
        return NULL;
    snprintf(path, sizeof path, "%s/interop/%s", testdir(), script);
    return path;
}

const char *oracle_llama_tool(const char *name)
{
    static __thread char path[4096];
    const char *bin = getenv("SLM_LLAMA_BIN");
    if (!bin || !*bin) {
        oracle_missing("SLM_LLAMA_BIN is not set (llama.cpp's CLI tools, built by make deps)");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s", bin, name);
    if (access(path, X_OK) != 0) {
        char why[4200];
        snprintf(why, sizeof why, "llama.cpp tool %s is not built (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}

const char *oracle_llama_source(const char *rel)
{
    static __thread char path[4096];
    const char *src = getenv("SLM_LLAMA_SRC"), *bin = getenv("SLM_LLAMA_BIN");
    if (src && *src) snprintf(path, sizeof path, "%s/%s", src, rel);
    else if (bin && *bin) snprintf(path, sizeof path, "%s/../../%s", bin, rel);
    else {
        oracle_missing("neither SLM_LLAMA_SRC nor SLM_LLAMA_BIN is set (llama.cpp's source, make deps)");
        return NULL;
    }
    if (!tu_exists(path)) {
        char why[4200];
        snprintf(why, sizeof why, "llama.cpp source file %s is missing (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}

/* ---- the oracle answer cache (interop.h, docs/ci.md) ---- */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *oracle_cache_dir(void)
{
    const char *d = getenv("SLM_ORACLE_CACHE");
    return d && *d ? d : NULL;
}

/* llama.cpp's CLI tools, and the node scripts of tests/interop that read only the files their
 * arguments name (not tuf_client.mjs, openai_client.mjs: a repository tree, a live server) */
static int is_llama_tool(const char *a0)
{
    const char *bin = getenv("SLM_LLAMA_BIN");
    size_t n = bin ? strlen(bin) : 0;
    return n && !strncmp(a0, bin, n) && a0[n] == '/' && !strchr(a0 + n + 1, '/');
}
static int is_pure_script(const char *a1)
{
    static const char *const ok[] = {"perplexity.mjs", "logits.mjs", "finite.mjs", "generate.mjs",
                                     "tokenize.mjs",   "render.mjs", "hf_tokenize.mjs"};
    char want[4096];
    const char *base = strrchr(a1, '/');
    if (!base)
        return 0;
    snprintf(want, sizeof want, "%s/interop/%s", testdir(), base + 1);
    if (strcmp(a1, want))
        return 0;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(base + 1, ok[i]))
            return 1;
    return 0;
}

typedef struct {
    EVP_MD_CTX *md;
} hasher;
static void h_str(hasher *h, const char *tag, const char *s)
{
    EVP_DigestUpdate(h->md, tag, strlen(tag));
    EVP_DigestUpdate(h->md, s, strlen(s) + 1);
}
/* SHA-256 of a file's bytes as hex into hex[65]; 0, or -1 if it cannot be read */
static int file_sha(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    static __thread unsigned char buf[1 << 16];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)r);
    close(fd);
    unsigned char d[32];
    EVP_DigestFinal_ex(md, d, NULL);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    return r < 0 ? -1 : 0;
}
static void h_file(hasher *h, const char *tag, const char *path)
{
    char hex[65] = "unreadable";
    if (file_sha(path, hex))
        snprintf(hex, sizeof hex, "unreadable");
    h_str(h, tag, hex);
}
/* a program's identity: path, size, mtime */
static void h_stat(hasher *h, const char *tag, const char *path)
{
    struct stat st;
    char b[4200];
    if (stat(path, &st))
        snprintf(b, sizeof b, "%s missing", path);
    else
        snprintf(b, sizeof b, "%s %lld %lld.%09ld", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                 st.st_mtim.tv_nsec);
    h_str(h, tag, b);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
/* every file of a directory (the llama.cpp tools and the shared libraries beside them) by stat */
static void h_dir(hasher *h, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        h_str(h, "dir-missing", dir);
        return;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        h_stat(h, "tool-file", p);
        free(names[i]);
    }
}
static void which(const char *prog, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    snprintf(out, cap, "%s", prog);
    if (strchr(prog, '/') || !path)
        return;
    const char *p = path;
    while (*p) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        snprintf(out, cap, "%.*s/%s", (int)n, p, prog);
        if (access(out, X_OK) == 0)
            return;
        p += n + (c ? 1 : 0);
    }
    snprintf(out, cap, "%s", prog);
}

enum { ARG_LIT, ARG_IN, ARG_OUT };
#define MAX_ARGS 64

/* Key of one oracle run, or -1 if the command cannot be cached (an argument names a directory or
 * something that is not a regular file). kind[i]: what argv[i] is (an input file: hashed by its
 * bytes; an output: a path that does not exist yet in an existing directory, keyed by its base
 * name; else the literal string). */
static int cache_key(const char *const *argv, int kind[MAX_ARGS], char (*sha)[65], char key[65])
{
    int n = 0;
    while (argv[n])
        if (++n >= MAX_ARGS)
            return -1;
    hasher h = {EVP_MD_CTX_new()};
    EVP_DigestInit_ex(h.md, EVP_sha256(), NULL);
    h_str(&h, "slmkit-oracle-cache", "1");
    char prog[4096];
    which(argv[0], prog, sizeof prog);
    h_stat(&h, "program", prog);
    if (is_llama_tool(argv[0])) {
        h_dir(&h, getenv("SLM_LLAMA_BIN"));
    } else {
        char p[4200];
        snprintf(p, sizeof p, "%s/interop/node_modules/.package-lock.json", testdir());
        h_file(&h, "npm-lock", p);
        snprintf(p, sizeof p, "%s/interop/llama.mjs", testdir());
        h_file(&h, "llama.mjs", p);
    }
    int ok = 0;
    kind[0] = ARG_LIT;
    for (int i = 1; i < n && !ok; i++) {
        const char *a = argv[i];
        struct stat st;
        kind[i] = ARG_LIT;
        if (stat(a, &st) == 0) {
            if (!S_ISREG(st.st_mode))
                ok = -1; /* a directory (or a device): its contents are not in the key */
            else {
                kind[i] = ARG_IN;
                if (file_sha(a, sha[i]))
                    snprintf(sha[i], 65, "unreadable");
                h_str(&h, "in", sha[i]);
            }
            continue;
        }
        const char *slash = strrchr(a, '/');
        if (slash && slash > a && slash[1]) {
            char parent[4096];
            snprintf(parent, sizeof parent, "%.*s", (int)(slash - a), a);
            if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode)) {
                kind[i] = ARG_OUT;
                h_str(&h, "out", slash + 1);
                continue;
            }
        }
        h_str(&h, "lit", a);
    }
    /* the environment that changes what llama.cpp and node do */
    extern char **environ;
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "LLAMA_", 6) || !strncmp(*e, "GGML_", 5) || !strncmp(*e, "NODE_", 5) ||
            !strncmp(*e, "OMP_", 4) || !strncmp(*e, "OPENBLAS_", 9))
            h_str(&h, "env", *e);
    unsigned char d[32];
    EVP_DigestFinal_ex(h.md, d, NULL);
    EVP_MD_CTX_free(h.md);
    for (int i = 0; i < 32; i++)
        sprintf(key + 2 * i, "%02x", d[i]);
    return ok;
}

/* The texts (stdout, stderr) are stored with each path argument replaced by \001<i>\001, and
 * given back with the caller's paths: a run in another scratch directory reads its own names. */
static char *subst_paths(const char *s, const char *const *argv, const int *kind, int n)
{
    size_t cap = strlen(s) * 2 + 64, o = 0;
    char *r = malloc(cap);
    while (*s) {
        int best = -1;
        size_t bl = 0;
        for (int i = 1; i < n; i++) {
            size_t l = strlen(argv[i]);
            if (kind[i] != ARG_LIT && l > bl && !strncmp(s, argv[i], l))
                best = i, bl = l;
        }
        if (o + 16 > cap)
            r = realloc(r, cap *= 2);
        if (best >= 0) {
            o += (size_t)sprintf(r + o, "\001%d\001", best);
            s += bl;
        } else
            r[o++] = *s++;
    }
    r[o] = 0;
    return r;
}
static char *unsubst_paths(const char *s, const char *const *argv, int n)
{
    size_t cap = strlen(s) + 64, o = 0;
    char *r = malloc(cap);
    while (*s) {
        int i = -1, used = 0;
        if (*s == '\001' && sscanf(s, "\001%d\001%n", &i, &used) == 1 && used > 0 && i > 0 && i < n) {
            size_t l = strlen(argv[i]);
            while (o + l + 1 > cap)
                r = realloc(r, cap *= 2);
            memcpy(r + o, argv[i], l);
            o += l;
            s += used;
            continue;
        }
        if (o + 2 > cap)
            r = realloc(r, cap *= 2);
        r[o++] = *s++;
    }
    r[o] = 0;
    return r;
}

static int copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *b = tu_read_file(from, &len);
    if (!b)
        return -1;
    char tmp[4500];
    snprintf(tmp, sizeof tmp, "%s.oc%ld", to, (long)getpid());
    int rc = tu_write_file(tmp, b, len);
    free(b);
    if (rc || rename(tmp, to)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}
/* An output file of a hit, to the caller's path `to`: the first run's files may hold the paths it
 * was given (llama-quantize writes the imatrix file's name into the GGUF metadata); each such path
 * is replaced by the caller's, byte for byte when both have the same length (scratch directories
 * do). 0, 1 if a path of another length is inside (the hit is not usable), -1 on an I/O error. */
static int replay_file(const char *ent, int idx, const char *const *argv, const int *kind, int n)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/out%d", ent, idx);
    size_t len = 0;
    char *b = tu_read_file(p, &len);
    if (!b)
        return -1;
    int rc = 0;
    for (int i = 1; i < n && !rc; i++) {
        if (kind[i] == ARG_LIT)
            continue;
        snprintf(p, sizeof p, "%s/arg%d", ent, i);
        char *orig = tu_read_file(p, NULL);
        size_t ol = orig ? strlen(orig) : 0;
        if (ol && strcmp(orig, argv[i]))
            for (char *at = memmem(b, len, orig, ol); at && !rc; at = memmem(at + ol, len - (size_t)(at + ol - b), orig, ol)) {
                if (strlen(argv[i]) != ol)
                    rc = 1;
                else
                    memcpy(at, argv[i], ol);
            }
        free(orig);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.oc%ld", argv[idx], (long)getpid());
    if (!rc && (tu_write_file(tmp, b, len) || rename(tmp, argv[idx]))) {
        unlink(tmp);
        rc = -1;
    }
    free(b);
    return rc;
}

static void cache_log(const char *dir, const char *what, const char *key, const char *const *argv)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/log", dir);
    FILE *f = fopen(p, "a");
    if (!f)
        return;
    const char *prog = strrchr(argv[0], '/');
    const char *script = argv[1] ? strrchr(argv[1], '/') : NULL;
    const char *build = getenv("SLM_BUILD"), *b = build ? strrchr(build, '/') : NULL;
    fprintf(f, "%s %s %s %s%s%s\n", what, key, b ? b + 1 : build && *build ? build : "-", prog ? prog + 1 : argv[0],
            script ? " " : "", script ? script + 1 : "");
    fclose(f);
}

/* The keys this test process has asked for. A test that runs the same command again is retrying (a
 * flaky oracle: llama-perplexity now and then loses its last lines at exit, test_families.c) or
 * checking that the oracle repeats itself: either way it needs a real run, whose answer then
 * replaces the stored one. */
static char (*seen_keys)[65];
static size_t n_seen;
static int seen_before(const char *key)
{
    for (size_t i = 0; i < n_seen; i++)
        if (!strcmp(seen_keys[i], key))
            return 1;
    seen_keys = realloc(seen_keys, (n_seen + 1) * sizeof *seen_keys);
    memcpy(seen_keys[n_seen++], key, 65);
    return 0;
}

void oracle_cache_forget(void) { n_seen = 0; }

int oracle_cached_run(char **out, char **err, const char *const *argv)
{
    const char *dir = oracle_cache_dir();
    int kind[MAX_ARGS];
    char key[65], sha[MAX_ARGS][65];
    if (!dir || !argv[0] || !argv[1] ||
        !(is_llama_tool(argv[0]) || (!strcmp(argv[0], "node") && is_pure_script(argv[1]))) ||
        cache_key(argv, kind, sha, key))
        return tu_run_uncached(out, err, argv);
    int n = 0;
    while (argv[n])
        n++;
    if (mkdir(dir, 0755) && errno != EEXIST)
        return tu_run_uncached(out, err, argv);
    char ent[4200], p[4400];
    snprintf(ent, sizeof ent, "%s/%s", dir, key);
    snprintf(p, sizeof p, "%s/stdout", ent);
    int again = seen_before(key);
    if (!again && tu_exists(p)) { /* a hit: the texts and every output file of the first run */
        char *o = tu_read_file(p, NULL), *e;
        snprintf(p, sizeof p, "%s/stderr", ent);
        e = tu_read_file(p, NULL);
        int bad = !o || !e;
        for (int i = 1; i < n && !bad; i++) {
            if (kind[i] == ARG_LIT)
                continue;
            snprintf(p, sizeof p, "%s/out%d", ent, i);
            bad = tu_exists(p) && replay_file(ent, i, argv, kind, n);
        }
        if (!bad) {
            cache_log(dir, "hit", key, argv);
            if (out)
                *out = unsubst_paths(o, argv, n);
            if (err)
                *err = unsubst_paths(e, argv, n);
            free(o), free(e);
            return 0;
        }
        free(o), free(e);
    }
    char *o = NULL, *e = NULL;
    int rc = tu_run_uncached(&o, &e, argv);
    cache_log(dir, rc != 0 ? "fail" : again ? "again" : "miss", key, argv);
    if (rc == 0 && o && e) { /* only answers: a failed run runs again next time */
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s/tmp.%ld.%s", dir, (long)getpid(), key);
        int bad = mkdir(tmp, 0755);
        for (int i = 1; i < n && !bad; i++) {
            char now[65];
            if (kind[i] == ARG_LIT || !tu_exists(argv[i]))
                continue;
            /* the files it wrote: new ones, and inputs it rewrote (an output path that exists) */
            if (kind[i] == ARG_IN && (file_sha(argv[i], now) || !strcmp(now, sha[i])))
                continue;
            snprintf(p, sizeof p, "%s/out%d", tmp, i);
            bad = copy_file(argv[i], p);
        }
        for (int i = 1; i < n && !bad; i++) /* the paths it was given, for replay_file */
            if (kind[i] != ARG_LIT) {
                snprintf(p, sizeof p, "%s/arg%d", tmp, i);
                bad = tu_write_file(p, argv[i], strlen(argv[i]));
            }
        char *so = subst_paths(o, argv, kind, n), *se = subst_paths(e, argv, kind, n);
        snprintf(p, sizeof p, "%s/stderr", tmp);
        bad = bad || tu_write_file(p, se, strlen(se));
        snprintf(p, sizeof p, "%s/stdout", tmp); /* last: an entry with stdout is complete */
        bad = bad || tu_write_file(p, so, strlen(so));
        free(so), free(se);
        if (!bad && again) { /* a retry: its answer replaces the stored one */
            char old[4400];
            snprintf(old, sizeof old, "%s/old.%ld.%s", dir, (long)getpid(), key);
            if (rename(ent, old) == 0)
                tu_rmtree(old);
        }
        if (bad || rename(tmp, ent)) /* a concurrent worker stored the same key first: keep that */
            tu_rmtree(tmp);
    }
    tu_hand(out, o);
    tu_hand(err, e);
    return rc;
}
