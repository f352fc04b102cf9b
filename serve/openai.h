/* serve/openai.h — JSON bodies of the OpenAI-compatible answers (serve/openai.c). */
#ifndef SLM_SERVE_OPENAI_H
#define SLM_SERVE_OPENAI_H

#include "srv_internal.h"

/* The whole answer of a finished job (malloc'd). */
char *srv_json_result(const srv_server *s, const srv_job *j);
/* One stream chunk: text bytes [b0, b1), tokens [t0, t1) for logprobs; first: the chat
 * chunk that carries the role; finish: the finish_reason or NULL. */
char *srv_json_chunk(const srv_server *s, const srv_job *j, size_t b0, size_t b1, int t0, int t1, int first,
                     const char *finish);
char *srv_json_usage_chunk(const srv_server *s, const srv_job *j);
/* {"error": {"message", "type", "code"}} */
char *srv_json_error(const char *msg, const char *type, const char *code);

#endif
