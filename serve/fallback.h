/* serve/fallback.h — the cloud fallback: one POST to an OpenAI-compatible upstream over libcurl,
 * bounded in time and size, its answer checked before it is relayed. Never prints, never exits. */
#ifndef SLM_SERVE_FALLBACK_H
#define SLM_SERVE_FALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct srv_upstream {
    const char *url;        /* base, e.g. http://10.0.0.5:8080 (the request path is appended) */
    const char *key;        /* bearer key or NULL */
    long connect_ms;        /* connection timeout */
    long timeout_ms;        /* whole-request timeout */
    size_t max_bytes;       /* largest answer accepted */
} srv_upstream;

/* Call once before any thread starts (curl_global_init). */
int srv_fallback_global_init(slm_err *err) SLM_MUST_CHECK;
/* POST body to url + path. On 0, *out (malloc'd, *out_n bytes) is an answer that looks like
 * one: a JSON object with "choices" (or, stream != 0, server-sent events of JSON ending in
 * [DONE]). Else SLM_EIO (cannot connect, timeout, too big, upstream status >= 400, garbage)
 * with one line saying which. */
int srv_fallback_post(const srv_upstream *u, const char *path, const char *body, size_t n, int stream, char **out,
                      size_t *out_n, slm_err *err) SLM_MUST_CHECK;
/* A whole completion from the upstream (for `slm run --fallback`): POST /v1/completions with the
 * prompt and sampling settings; *text (malloc'd) is choices[0].text. SLM_EIO as above. */
int srv_fallback_complete(const srv_upstream *u, const char *prompt, int max_tokens, double temperature, double top_p,
                          uint64_t seed, char **text, slm_err *err) SLM_MUST_CHECK;
/* The same for a conversation (for `slm chat --fallback`): POST /v1/chat/completions with the
 * messages (roles[i], contents[i]); *text (malloc'd) is choices[0].message.content. */
int srv_fallback_chat(const srv_upstream *u, const char *const *roles, const char *const *contents, int n_msgs,
                      int max_tokens, double temperature, double top_p, uint64_t seed, char **text,
                      slm_err *err) SLM_MUST_CHECK;
/* An OpenAI-style event stream read piece by piece (the fallback's answers): lines "data: " + a JSON
 * object, then "data: [DONE]"; blank lines and ":" comments are skipped. Each event's payload
 * ("[DONE]" too) goes to fn as soon as its line is complete; fn returns non-zero to stop (out
 * of memory). srv_sse_feed: 0, or SLM_EIO (a line that is not such an event, anything after
 * [DONE], a line over SRV_SSE_MAX_LINE bytes) / SLM_EINTERNAL, with a message; then the parser
 * stays failed. srv_sse_finish: the last line if it lacks its newline; SLM_EIO without [DONE]
 * or without any event. */
enum { SRV_SSE_MAX_LINE = 1 << 20 };
typedef int (*srv_sse_fn)(void *user, const char *data, size_t n);
typedef struct srv_sse {
    srv_sse_fn fn;
    void *user;
    char *line;
    size_t n, cap;
    int done, events, failed;
} srv_sse;
int srv_sse_feed(srv_sse *p, const char *b, size_t n, slm_err *err) SLM_MUST_CHECK;
int srv_sse_finish(srv_sse *p, slm_err *err) SLM_MUST_CHECK;
void srv_sse_free(srv_sse *p);

/* A streamed answer relayed as it arrives: srv_relay_start POSTs body to url + path from a
 * thread of its own (the connect and whole-request timeouts of u bound it, u->max_bytes its
 * size); srv_relay_next hands out each event's payload (after "data: ", malloc'd; a JSON object,
 * or "[DONE]" last) once the upstream has sent it and it was checked. It waits at most wait_ms:
 * SRV_RELAY_EVENT (*ev set), SRV_RELAY_WAIT (nothing yet), SRV_RELAY_END (after [DONE] and a clean
 * end) or SRV_RELAY_FAILED (err says why: cannot connect, timeout, status >= 400, too big, a line
 * that is not a data: event of JSON, no [DONE]). srv_relay_free stops the transfer (within about
 * a second) and frees everything. */
typedef struct srv_relay srv_relay;
enum { SRV_RELAY_EVENT = 1, SRV_RELAY_WAIT = 2, SRV_RELAY_END = 0, SRV_RELAY_FAILED = -1 };
int srv_relay_start(const srv_upstream *u, const char *path, const char *body, size_t n, srv_relay **out,
                    slm_err *err) SLM_MUST_CHECK;
int srv_relay_next(srv_relay *r, int wait_ms, char **ev, slm_err *err);
void srv_relay_free(srv_relay *r);
/* The q-quantile (0..1) of exp(lp[0..n)) — the per-token probabilities of an answer; 1 when n == 0. */
double srv_confidence(const float *lp, size_t stride_bytes, int n, double q);

#endif
