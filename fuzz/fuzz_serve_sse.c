/* fuzz/fuzz_serve_sse.c — the event-stream parser that checks a fallback's streamed answer before
 * `slm serve` relays it (serve/fallback.c, srv_sse_*): the input fed whole and fed in two pieces
 * split at a place its first byte picks must give the same verdict and the same events. */
#include "fuzz_common.h"

#include "fallback.h"

typedef struct sse_count {
    size_t events, bytes;
    int after_done;
    int saw_done;
} sse_count;

static int count_event(void *user, const char *d, size_t n)
{
    sse_count *c = user;
    if (c->saw_done)
        c->after_done = 1;
    if (n == 6 && !memcmp(d, "[DONE]", 6))
        c->saw_done = 1;
    c->events++;
    c->bytes += n;
    return 0;
}

static int sse_run(const uint8_t *data, size_t size, size_t split, sse_count *c)
{
    srv_sse p = {.fn = count_event, .user = c};
    slm_err err = {0};
    int rc = srv_sse_feed(&p, (const char *)data, split, &err);
    if (!rc)
        rc = srv_sse_feed(&p, (const char *)data + split, size - split, &err);
    if (!rc)
        rc = srv_sse_finish(&p, &err);
    if (rc && !err.msg[0])
        abort(); /* every refusal says why */
    srv_sse_free(&p);
    return rc;
}

int fuzz_serve_sse(const uint8_t *data, size_t size)
{
    sse_count whole = {0}, parts = {0};
    int rc = sse_run(data, size, size, &whole);
    int rc2 = sse_run(data, size, size ? data[0] % (size + 1) : 0, &parts);
    if (rc != rc2 || whole.after_done || parts.after_done)
        abort();
    if (!rc && (whole.events != parts.events || whole.bytes != parts.bytes || !whole.saw_done || whole.events < 2))
        abort();
    return rc ? SLM_EINPUT : 0;
}

FUZZ_ENTRY(fuzz_serve_sse)
