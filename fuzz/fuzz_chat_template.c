/* fuzz/fuzz_chat_template.c — chat templates (runtime/jinja_*.c, chat_template.c).
 * Input: TEMPLATE [FZ_SEP MESSAGES.json]. Without a (valid) conversation a fixed
 * one is used. The template is parsed and rendered twice (with and without the
 * generation prompt); every input must render or be refused with one error. */
#include "fuzz_common.h"
#include "runtime.h"

int fuzz_chat_template(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    int np = fz_split(data, size, part, len, 2);
#define MSG(r, s) {r, s, sizeof s - 1}
    static const slm_chat_msg fixed[] = {MSG("system", "You are terse."), MSG("user", "Hi \"there\" \xe4\xbd\xa0\xe5\xa5\xbd\n"),
                                         MSG("assistant", "  Hello!  "), MSG("user", "{{ x }} {% if %}")};
#undef MSG
    slm_err err = {0};
    slm_chat_msg *msgs = NULL;
    size_t n_msgs = 0;
    int mrc = -1;
    if (np == 2)
        mrc = slm_chat_messages_parse((const char *)part[1], len[1], "fuzz", &msgs, &n_msgs, &err);
    slm_chat_template *t;
    int rc = slm_chat_template_parse((const char *)part[0], len[0], &t, &err);
    if (rc) {
        free(msgs);
        if (rc != SLM_EINPUT || !err.msg[0])
            abort(); /* a refusal must be bad input with a message */
        return rc;
    }
    for (int gen = 1; gen >= 0; gen--) {
        slm_chat_params p;
        slm_chat_params_init(&p);
        p.msgs = mrc == 0 ? msgs : fixed;
        p.n_msgs = mrc == 0 ? n_msgs : sizeof fixed / sizeof fixed[0];
        p.add_generation_prompt = gen;
        p.bos_token = "<s>";
        p.eos_token = "</s>";
        p.now = 1733300000;
        char *out = NULL;
        size_t out_len = 0;
        err.msg[0] = 0;
        int r = slm_chat_template_render(t, &p, &out, &out_len, &err);
        if (r == 0 && (!out || out[out_len] != 0))
            abort(); /* rendered text must be NUL-terminated */
        if (r != 0 && (out || !err.msg[0] || (r != SLM_EINPUT && r != SLM_EINTERNAL)))
            abort();
        free(out);
        if (gen == 1)
            rc = r;
    }
    slm_chat_template_free(t);
    free(msgs);
    return rc;
}

FUZZ_ENTRY(fuzz_chat_template)
