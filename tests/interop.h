/* tests/interop.h — the test oracles: llama.cpp (node-llama-cpp and its CLI tools built by
 * `make deps`), and the npm packages in tests/interop (HF tokenizers, Jinja, tokenizer files).
 * Every check that needs one goes through these helpers: when it is missing the calling test
 * is skipped LOUDLY, unless SLM_REQUIRE_ORACLE=1 (CI), where it fails and names what is missing. */
#ifndef SLM_INTEROP_H
#define SLM_INTEROP_H

/* The one place an oracle-dependent test gives up: fails under SLM_REQUIRE_ORACLE=1, else
 * prints "*** SKIPPED ... ***" and skips the test (does not return). */
void oracle_missing(const char *what);
/* Path of tests/interop/<script> (run with node), or NULL (after oracle_missing) when node or
 * node-llama-cpp is not installed. */
const char *oracle_script(const char *script);
/* Path of tests/interop/node_modules/<rel> (a package dir or a file in one), or NULL after
 * oracle_missing. */
const char *oracle_node_file(const char *rel);
/* Path of llama.cpp's CLI tool <name> (llama-perplexity, llama-quantize, ...) in
 * $SLM_LLAMA_BIN, or NULL after oracle_missing. */
const char *oracle_llama_tool(const char *name);
/* Path of <rel> (e.g. "ggml/src/ggml-common.h") in llama.cpp's source tree of the same release
 * ($SLM_LLAMA_SRC, else two levels above $SLM_LLAMA_BIN), or NULL after oracle_missing. */
const char *oracle_llama_source(const char *rel);

/* The oracle answer cache: with $SLM_ORACLE_CACHE set (a directory; .ci/run shares one between
 * `make test` and `make asan`), tu_run() answers a run of a llama.cpp tool ($SLM_LLAMA_BIN/<tool>)
 * or of `node <tests/interop script>` whose every argument is a literal, a regular file or a new
 * path in an existing directory from the cache when the same command ran before on the same bytes:
 * key = SHA-256 of the program's identity (path, size, mtime; for llama.cpp every file of its bin
 * dir, for node the npm lock file and llama.mjs), each argument (an input file by the SHA-256 of its
 * bytes, an output path by its base name, else as is) and the LLAMA_, GGML_, NODE_, OMP_, OPENBLAS_
 * variables. A hit gives back stdout, stderr (with the caller's paths) and every file the first
 * run wrote at an argument's path (a path of the first run inside such a file replaced by the
 * caller's when both have the same length, else the oracle runs); only runs that exited 0 are
 * stored. Every lookup is logged in
 * $SLM_ORACLE_CACHE/log ("hit", "miss", "again", "fail", key, $SLM_BUILD's name, program). The same command run again
 * within one test (a retry of a flaky oracle, a check that it repeats itself) runs the oracle for
 * real ("again") and its answer replaces the stored one. Unset: nothing is cached. */
const char *oracle_cache_dir(void);
int oracle_cached_run(char **out, char **err, const char *const *argv);
/* Forget which keys this process asked for (the cache's own tests: a new test process) */
void oracle_cache_forget(void);

#endif
