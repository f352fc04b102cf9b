/* fuzz/fuzz_tuf.c — TUF metadata as a mirror serves it (signing/tuf.c,
 * slm_tuf_fetch): the input is up to four documents separated by FZ_SEP:
 * the trusted root, timestamp.json, snapshot.json, targets.json. They land in
 * a scratch repository whose targets/t holds 4 fixed bytes; the client walks
 * the whole workflow (root, timestamp, snapshot, targets, target "t") with a
 * fresh state and a fixed clock, so a well-signed seed reaches the target. */
#include <errno.h>

#include "fuzz_common.h"
#include "signing.h"

#define FZ_TUF_NOW 1796500000LL /* 2026-12-05: seeds expire years later */

int fuzz_tuf(const uint8_t *data, size_t size)
{
    static int ready;
    static char repo[400], md[420], tg[420], state[400], out[420], rootp[420];
    const char *dir = fz_scratch_dir();
    if (!ready) {
        snprintf(repo, sizeof repo, "%s/repo", dir);
        snprintf(md, sizeof md, "%s/metadata", repo);
        snprintf(tg, sizeof tg, "%s/targets", repo);
        snprintf(state, sizeof state, "%s/state", dir);
        snprintf(out, sizeof out, "%s/out", dir);
        snprintf(rootp, sizeof rootp, "%s/trusted-root.json", dir);
        if ((mkdir(repo, 0755) && errno != EEXIST) || (mkdir(md, 0755) && errno != EEXIST) ||
            (mkdir(tg, 0755) && errno != EEXIST))
            abort();
        fz_put(tg, "t", (const uint8_t *)"slm\n", 4);
        ready = 1;
    }
    const uint8_t *part[4];
    size_t len[4] = {0, 0, 0, 0};
    int n = fz_split(data, size, part, len, 4);
    static const char *const names[3] = {"timestamp.json", "snapshot.json", "targets.json"};
    fz_put(dir, "trusted-root.json", part[0], len[0]);
    for (int i = 0; i < 3; i++) {
        if (i + 1 < n)
            fz_put(md, names[i], part[i + 1], len[i + 1]);
        else
            fz_remove(md, names[i]);
    }
    static const char *const st[4] = {"root.json", "timestamp.json", "snapshot.json", "targets.json"};
    for (int i = 0; i < 4; i++)
        fz_remove(state, st[i]);
    unlink(out);
    slm_tuf_result res;
    slm_err err = {0};
    int rc = slm_tuf_fetch(repo, rootp, state, "t", out, FZ_TUF_NOW, &res, &err);
    if (rc == 0 && res.length != 4)
        abort(); /* accepted a target other than the 4 bytes on disk */
    return rc;
}

FUZZ_ENTRY(fuzz_tuf)
