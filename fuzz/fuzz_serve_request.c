/* fuzz/fuzz_serve_request.c — the request parser of `slm serve` (serve/request.c): a body parsed
 * as a completion and as a chat request, plus the UTF-8 helpers every answer goes through. */
#include "fuzz_common.h"

#include "request.h"
#include "srv_internal.h"

static void check(const srv_request *r)
{
    if (r->max_tokens != -1 && (r->max_tokens < 1 || r->max_tokens > SRV_MAX_TOKENS_HARD))
        abort();
    if (r->temperature < 0 || r->temperature > 2 || r->top_p < 0 || r->top_p > 1)
        abort();
    if (r->n_stop < 0 || r->n_stop > SRV_MAX_STOP || r->top_logprobs < 0 || r->top_logprobs > SRV_MAX_TOP_LOGPROBS)
        abort();
    for (int i = 0; i < r->n_stop; i++)
        if (!*r->stop[i] || strlen(r->stop[i]) > SRV_MAX_STOP_LEN || !srv_utf8_valid(r->stop[i], strlen(r->stop[i])))
            abort();
    if (r->kind == SRV_KIND_COMPLETION && (!r->prompt || !srv_utf8_valid(r->prompt, strlen(r->prompt))))
        abort();
    if (r->kind == SRV_KIND_CHAT && (r->n_messages < 1 || r->n_messages > SRV_MAX_MESSAGES))
        abort();
    for (int i = 0; i < r->n_messages; i++)
        if (!srv_utf8_valid(r->messages[i].content, strlen(r->messages[i].content)))
            abort();
}

int fuzz_serve_request(const uint8_t *data, size_t size)
{
    /* the helpers: cleaning always yields valid UTF-8; a complete prefix never splits a character */
    char *clean = srv_utf8_clean((const char *)data, size);
    if (!clean || !srv_utf8_valid(clean, strlen(clean)))
        abort();
    free(clean);
    size_t k = srv_utf8_complete((const char *)data, size);
    if (k > size || (srv_utf8_valid((const char *)data, size) && k != size))
        abort();
    int rc = SLM_EINPUT;
    for (int kind = 0; kind < 2; kind++) {
        srv_request r;
        slm_err err = {0};
        int krc = srv_request_parse((const char *)data, size, kind, &r, &err);
        if (krc == 0) {
            check(&r);
            srv_request_free(&r);
            rc = 0;
        } else if (krc != SLM_EINPUT || !err.msg[0]) {
            abort(); /* a body is either a request or bad input, with a message */
        }
    }
    return rc;
}

FUZZ_ENTRY(fuzz_serve_request)
