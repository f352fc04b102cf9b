/* tests/interop.h — running llama.cpp (node-llama-cpp) as the oracle.
 * When node or the package is missing the calling test is skipped LOUDLY,
 * unless SLM_REQUIRE_ORACLE=1 (CI), where it fails. */
#ifndef SLM_INTEROP_H
#define SLM_INTEROP_H

/* Path of tests/interop/<script>, or NULL (after skipping/failing the test)
 * when the oracle is not installed. */
const char *oracle_script(const char *script);

#endif
