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

#endif
