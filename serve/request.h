/* serve/request.h — an OpenAI-style request body (/v1/completions, /v1/chat/completions)
 * parsed and validated into one plain struct. No model, no I/O: the fuzz target
 * (fuzz/fuzz_serve_request.c) calls exactly this. Never prints, never exits. */
#ifndef SLM_SERVE_REQUEST_H
#define SLM_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

enum { SRV_KIND_COMPLETION = 0, SRV_KIND_CHAT = 1 };
#define SRV_MAX_STOP 4           /* OpenAI: up to 4 stop sequences */
#define SRV_MAX_STOP_LEN 256
#define SRV_MAX_TOP_LOGPROBS 20
#define SRV_MAX_MESSAGES 256
#define SRV_MAX_TOKENS_HARD (1 << 20) /* above this, max_tokens is refused whatever the context */

typedef struct srv_message {
    char *role;                  /* system | user | assistant | tool | developer */
    char *content;               /* valid UTF-8 */
} srv_message;

typedef struct srv_request {
    int kind;                    /* SRV_KIND_* */
    char *prompt;                /* completions: the prompt (valid UTF-8) */
    srv_message *messages;       /* chat */
    int n_messages;
    int max_tokens;              /* -1: not given (server default) */
    double temperature;          /* default 1 (OpenAI) */
    double top_p;                /* default 1 */
    int seed_set;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int stream;
    int include_usage;           /* stream_options.include_usage */
    int logprobs;                /* chat: bool; completions: 0..5 (number of alternatives) + 1 when given */
    int top_logprobs;            /* alternatives per token (chat: top_logprobs; completions: logprobs) */
    int ignore_eos;              /* extension (as llama-server): generate through end-of-generation tokens */
    int private_;                /* "private": true — never leaves the device */
    char *model;                 /* as sent (echoed back), may be NULL */
} srv_request;

/* Parse body[0..n) (need not be NUL-terminated). kind selects the endpoint's schema.
 * Unknown fields are ignored (as OpenAI clients send extras); a known field of the wrong
 * type or out of range, invalid UTF-8 anywhere in a string we use, malformed JSON: SLM_EINPUT
 * with a one-line message fit for the client. On success *out owns its strings
 * (srv_request_free). */
int srv_request_parse(const char *body, size_t n, int kind, srv_request *out, slm_err *err) SLM_MUST_CHECK;
void srv_request_free(srv_request *r);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int srv_utf8_valid(const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8 sequence boundary
 * (a trailing incomplete sequence of at most 3 bytes is held back). */
size_t srv_utf8_complete(const char *s, size_t n);

#endif
