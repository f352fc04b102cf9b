/* signing/store.c — the install store: A/B slots, trial + health check, commit
 * raising the anti-rollback floor, revert, lock; every state change is a temp
 * file, fsync, rename, fsync of the directory (docs/bundles.md). */
#include "sg_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAX (64u << 10)

typedef struct slot_state {
    char state[16]; /* empty, writing, trial, failed, committed */
    char name[129];
    uint64_t version;
} slot_state;
typedef struct store_state {
    uint64_t floor;
    char active, previous; /* 'a', 'b' or 0 */
    slot_state slots[2];
} store_state;

static char *pjoin(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *slot_file(const char *dir, char slot, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/slot-%c/%s", dir, slot, name);
    return p;
}

static int slot_idx(char s) { return s == 'b'; }

static int load_state(const char *dir, store_state *st, slm_err *err)
{
    memset(st, 0, sizeof *st);
    for (int i = 0; i < 2; i++)
        strcpy(st->slots[i].state, "empty");
    char *path = pjoin(dir, "state.json");
    if (!path)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        free(path);
        return SLM_OK; /* a new store */
    }
    char *text;
    size_t n;
    int rc = sg_read_file(path, STATE_MAX, &text, &n, err);
    if (rc) {
        free(path);
        return rc;
    }
    cJSON *o = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "active");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(o, "previous");
    const cJSON *slots = cJSON_GetObjectItemCaseSensitive(o, "slots");
    if (!cJSON_IsObject(o) || sg_json_uint(o, "floor", &st->floor) || !cJSON_IsString(act) ||
        !cJSON_IsString(prev) || !cJSON_IsObject(slots))
        rc = slm_err_set(err, SLM_EINPUT, "%s: malformed store state", path);
    for (int i = 0; !rc && i < 2; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(slots, i ? "b" : "a");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(s, "state");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
        if (!cJSON_IsString(state) || strlen(state->valuestring) >= sizeof st->slots[i].state ||
            !cJSON_IsString(name) || strlen(name->valuestring) >= sizeof st->slots[i].name ||
            sg_json_uint(s, "version", &st->slots[i].version))
            rc = slm_err_set(err, SLM_EINPUT, "%s: malformed slot %c", path, i ? 'b' : 'a');
        else {
            strcpy(st->slots[i].state, state->valuestring);
            strcpy(st->slots[i].name, name->valuestring);
        }
    }
    if (!rc) {
        const char *a = act->valuestring, *p = prev->valuestring;
        if ((*a && strcmp(a, "a") && strcmp(a, "b")) || (*p && strcmp(p, "a") && strcmp(p, "b")))
            rc = slm_err_set(err, SLM_EINPUT, "%s: active/previous must name slot a or b", path);
        st->active = *a;
        st->previous = *p;
    }
    cJSON_Delete(o);
    free(path);
    return rc;
}

static int save_state(const char *dir, const store_state *st, const sg_fault *fault, slm_err *err)
{
    cJSON *o = cJSON_CreateObject(), *slots = cJSON_CreateObject();
    char a[2] = {st->active, 0}, p[2] = {st->previous, 0};
    cJSON_AddStringToObject(o, "active", a);
    cJSON_AddNumberToObject(o, "floor", (double)st->floor);
    cJSON_AddNumberToObject(o, "format", 1);
    cJSON_AddStringToObject(o, "previous", p);
    for (int i = 0; i < 2; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", st->slots[i].name);
        cJSON_AddStringToObject(s, "state", st->slots[i].state);
        cJSON_AddNumberToObject(s, "version", (double)st->slots[i].version);
        cJSON_AddItemToObject(slots, i ? "b" : "a", s);
    }
    cJSON_AddItemToObject(o, "slots", slots);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = pjoin(dir, "state.json");
    int rc = text && path ? sg_write_atomic(path, text, strlen(text), 0644, fault, err)
                          : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(text);
    free(path);
    return rc;
}

static void fill_status(const char *dir, const store_state *s, slm_store_status *out)
{
    memset(out, 0, sizeof *out);
    out->floor = s->floor;
    for (int i = 0; i < 2; i++) {
        slm_slot_info *si = &out->slots[i];
        si->present = 1;
        si->slot = i ? 'b' : 'a';
        strcpy(si->state, s->slots[i].state);
        strcpy(si->name, s->slots[i].name);
        si->version = s->slots[i].version;
    }
    if (s->active)
        out->active = out->slots[slot_idx(s->active)];
    if (s->previous)
        out->previous = out->slots[slot_idx(s->previous)];
    char *rp = pjoin(dir, "root.json");
    slm_root *r;
    slm_err e;
    if (rp && !slm_root_load(rp, &r, &e)) {
        out->root_version = r->version;
        slm_root_free(r);
    }
    free(rp);
}

static int lock_store(const char *dir, int wait, int *fd, slm_err *err)
{
    char *p = pjoin(dir, "lock");
    if (!p)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(p);
    if (*fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open the store lock: %s", dir, strerror(errno));
    int r;
    do
        r = flock(*fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return slm_err_set(err, SLM_EIO, "%s: %s", dir,
                           e == EWOULDBLOCK ? "the store is locked by another install (try again later)" : strerror(e));
    }
    return SLM_OK;
}

static int ensure_dirs(const char *dir, slm_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return slm_err_set(err, SLM_EIO, "%s: cannot create the store: %s", dir, strerror(errno));
    for (int i = 0; i < 2; i++) {
        char *p = slot_file(dir, i ? 'b' : 'a', "");
        if (!p)
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
        p[strlen(p) - 1] = 0;
        int r = mkdir(p, 0755);
        int e = errno;
        free(p);
        if (r != 0 && e != EEXIST)
            return slm_err_set(err, SLM_EIO, "%s: cannot create slot directories: %s", dir, strerror(e));
    }
    return SLM_OK;
}

/* The pinned root continued by the given roots above its version. */
static int store_trust(const char *dir, const char *const *paths, int n, int64_t now, slm_root **out, int *changed,
                       slm_err *err)
{
    char *pinned = pjoin(dir, "root.json");
    if (!pinned)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    const char **chain = calloc((size_t)n + 1, sizeof *chain);
    int rc = SLM_OK, k = 0;
    *changed = 0;
    if (!chain) {
        free(pinned);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (access(pinned, F_OK) == 0) {
        slm_root *pr;
        if ((rc = slm_root_load(pinned, &pr, err)))
            goto out;
        chain[k++] = pinned;
        for (int i = 0; i < n && !rc; i++) {
            slm_root *r;
            if ((rc = slm_root_load(paths[i], &r, err)))
                break;
            if (r->version > pr->version) {
                chain[k++] = paths[i];
                *changed = 1;
            }
            slm_root_free(r);
        }
        slm_root_free(pr);
    } else {
        if (n < 1) {
            rc = slm_err_set(err, SLM_EUSAGE, "%s: new store: give the trust root to pin (--trust ROOT)", dir);
            goto out;
        }
        for (int i = 0; i < n; i++)
            chain[k++] = paths[i];
        *changed = 1;
    }
    if (!rc)
        rc = slm_trust_chain(chain, k, now, out, err);
out:
    free(chain);
    free(pinned);
    return rc;
}

/* Re-verify an installed slot: head against root (no expiry), then every file's
 * size and SHA-256. File 0 also goes to memfd when memfd >= 0. */
static int verify_slot(const char *dir, char slot, const slm_root *root, int memfd, slm_manifest **out, slm_err *err)
{
    char *hp = slot_file(dir, slot, "head.slmb");
    if (!hp)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int fd = open(hp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = slm_err_set(err, SLM_EVERIFY, "%s: missing (slot %c is not a complete install)", hp, slot);
        free(hp);
        return rc;
    }
    slm_verify_opts o = {0, NULL, 0, 0}; /* installed: no expiry, no floor; runtime still checked */
    slm_manifest *m = NULL;
    int rc = sg_verify_head_fd(fd, hp, root, &o, &m, err);
    if (!rc) {
        uint8_t extra;
        if (read(fd, &extra, 1) != 0)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: trailing bytes after the signatures", hp);
    }
    close(fd);
    free(hp);
    size_t cap = 1 << 20;
    uint8_t *buf = rc ? NULL : malloc(cap);
    if (!rc && !buf)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; !rc && i < m->n_files; i++) {
        const slm_bundle_file *f = &m->files[i];
        char *p = slot_file(dir, slot, f->name);
        int ffd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        if (ffd < 0) {
            rc = slm_err_set(err, SLM_EVERIFY, "%s: missing from slot %c", p ? p : f->name, slot);
            free(p);
            break;
        }
        slm_sha256_ctx *h = slm_sha256_new();
        uint64_t total = 0;
        for (;;) {
            ssize_t r = read(ffd, buf, cap);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (r < 0)
                    rc = slm_err_set(err, SLM_EIO, "%s: read error", p);
                break;
            }
            total += (uint64_t)r;
            if (total > f->size) {
                rc = slm_err_set(err, SLM_EVERIFY, "%s: larger than the manifest's %llu bytes", p,
                                 (unsigned long long)f->size);
                break;
            }
            if (!h || slm_sha256_update(h, buf, (size_t)r)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
                break;
            }
            if (i == 0 && memfd >= 0) {
                const uint8_t *c = buf;
                size_t left = (size_t)r;
                while (left && !rc) {
                    ssize_t w = write(memfd, c, left);
                    if (w < 0 && errno == EINTR)
                        continue;
                    if (w <= 0)
                        rc = slm_err_set(err, SLM_EIO, "memfd write failed: %s", strerror(errno));
                    else {
                        c += w;
                        left -= (size_t)w;
                    }
                }
                if (rc)
                    break;
            }
        }
        uint8_t d[32];
        if (!rc && (!h || slm_sha256_final(h, d)))
            rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
        if (!rc && (total != f->size || memcmp(d, f->sha256, 32)))
            rc = slm_err_set(err, SLM_EVERIFY, "%s: does not match its signed manifest (altered or incomplete)", p);
        slm_sha256_free(h);
        close(ffd);
        free(p);
    }
    free(buf);
    if (rc || !out)
        slm_manifest_free(m);
    else
        *out = m;
    return rc;
}

static int pinned_root(const char *dir, slm_root **r, slm_err *err)
{
    char *p = pjoin(dir, "root.json");
    if (!p)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc;
    if (access(p, F_OK) != 0)
        rc = slm_err_set(err, SLM_EINPUT, "%s: not an install store (no pinned trust root)", dir);
    else if (!(rc = slm_root_load(p, r, err)) && (rc = slm_root_verify_self(*r, err))) {
        slm_root_free(*r);
        *r = NULL;
    }
    free(p);
    return rc;
}

/* Delete everything in a slot directory (it is neither active nor previous). */
static int clear_slot(const char *dir, char slot, const sg_fault *fault, slm_err *err)
{
    char *sd = slot_file(dir, slot, "");
    if (!sd)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    DIR *d = opendir(sd);
    int any = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!any)
            sg_step(fault, "unlink");
        any = 1;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    int rc = SLM_OK;
    if (any) {
        sd[strlen(sd) - 1] = 0;
        char *probe = pjoin(sd, "x");
        rc = probe ? sg_fsync_dir_of(probe, fault, err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
        free(probe);
    }
    free(sd);
    return rc;
}

/* Sink: each payload file to slot/<name> through an atomic file. */
typedef struct slot_sink {
    const char *dir;
    char slot;
    const sg_fault *fault;
    sg_afile f;
    int open;
} slot_sink;

static int ss_begin(void *u, int i, const slm_bundle_file *f, slm_err *err)
{
    slot_sink *s = u;
    char *p = slot_file(s->dir, s->slot, f->name);
    if (!p)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = sg_afile_open(&s->f, p, 0444, s->fault, err);
    free(p);
    s->open = rc == 0;
    return rc;
}

static int ss_write(void *u, const void *d, size_t n, slm_err *err)
{
    return sg_afile_write(&((slot_sink *)u)->f, d, n, err);
}

static int ss_end(void *u, int i, slm_err *err)
{
    slot_sink *s = u;
    s->open = 0;
    return sg_afile_commit(&s->f, err);
}

int slm_store_install(const char *dir, const char *bundle, const char *const *trust_paths, int n_trust,
                      const slm_install_opts *o, slm_store_status *out, slm_err *err)
{
    sg_fault fault = {o->fault, o->fault_user};
    int lock_fd = -1, rc, root_changed = 0;
    slm_root *root = NULL;
    slm_manifest *m = NULL;
    store_state st;
    if ((rc = ensure_dirs(dir, err)) || (rc = lock_store(dir, o->lock_wait, &lock_fd, err)))
        return rc;
    if ((rc = load_state(dir, &st, err)) ||
        (rc = store_trust(dir, trust_paths, n_trust, o->now, &root, &root_changed, err)))
        goto out;
    slm_verify_opts vo = {o->now, o->runtime_version, st.floor, 1};
    /* Cheap refusals (signatures, expiry, rollback) before anything is written. */
    if ((rc = slm_bundle_verify_head(bundle, root, &vo, &m, err)))
        goto out;
    slm_manifest_free(m);
    m = NULL;
    char target = st.active == 'a' ? 'b' : 'a';
    slot_state *ts = &st.slots[slot_idx(target)];
    if (st.previous == target)
        st.previous = 0; /* about to be overwritten: no longer a revert target */
    strcpy(ts->state, "writing");
    ts->name[0] = 0;
    ts->version = 0;
    if ((rc = save_state(dir, &st, &fault, err)) || (rc = clear_slot(dir, target, &fault, err)))
        goto out;
    slot_sink ss = {dir, target, &fault, {0}, 0};
    slm_bundle_sink sink = {ss_begin, ss_write, ss_end, &ss};
    rc = slm_bundle_verify(bundle, root, &vo, &sink, &m, err);
    if (ss.open)
        sg_afile_abort(&ss.f);
    if (rc)
        goto out; /* the slot stays "writing": never used */
    uint8_t *hb;
    size_t hn;
    if (sg_head_bytes(m, &hb, &hn)) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto out;
    }
    char *hp = slot_file(dir, target, "head.slmb");
    rc = hp ? sg_write_atomic(hp, hb, hn, 0444, &fault, err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(hp);
    free(hb);
    if (rc)
        goto out;
    strcpy(ts->state, "trial");
    snprintf(ts->name, sizeof ts->name, "%s", m->name);
    ts->version = m->version;
    if ((rc = save_state(dir, &st, &fault, err)))
        goto out;
    if (o->health) {
        char *mp = slot_file(dir, target, m->files[0].name);
        slm_err herr = {0};
        int hrc = mp ? o->health(o->health_user, mp, m, &herr) : SLM_EINTERNAL;
        free(mp);
        if (hrc) {
            strcpy(ts->state, "failed");
            if ((rc = save_state(dir, &st, &fault, err)))
                goto out;
            const slot_state *as = st.active ? &st.slots[slot_idx(st.active)] : NULL;
            char keep[200];
            if (as)
                snprintf(keep, sizeof keep, "'%s' v%llu stays active", as->name, (unsigned long long)as->version);
            else
                snprintf(keep, sizeof keep, "no model is active");
            rc = slm_err_set(err, SLM_EFAIL, "%s: health check failed, reverted at once (%s): %s", bundle, keep,
                             herr.msg[0] ? herr.msg : "unhealthy");
            goto out;
        }
    }
    if (root_changed) {
        char *text;
        size_t n;
        char *rp = pjoin(dir, "root.json");
        if (!rp) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto out;
        }
        if (!(rc = sg_read_file(root->path, 1u << 20, &text, &n, err))) {
            rc = sg_write_atomic(rp, text, n, 0644, &fault, err);
            free(text);
        }
        free(rp);
        if (rc)
            goto out;
    }
    /* Commit: one rename makes the new slot active and raises the floor. */
    if (st.active && !strcmp(st.slots[slot_idx(st.active)].state, "committed"))
        st.previous = st.active;
    st.active = target;
    strcpy(ts->state, "committed");
    if (m->version > st.floor)
        st.floor = m->version;
    rc = save_state(dir, &st, &fault, err);
out:
    if (out && !rc)
        fill_status(dir, &st, out);
    slm_manifest_free(m);
    slm_root_free(root);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}

int slm_store_status_get(const char *dir, slm_store_status *out, slm_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return slm_err_set(err, SLM_EIO, "%s: no such store directory", dir);
    store_state st;
    int rc = load_state(dir, &st, err);
    if (!rc)
        fill_status(dir, &st, out);
    return rc;
}

int slm_store_revert(const char *dir, const slm_install_opts *o, slm_store_status *out, slm_err *err)
{
    sg_fault fault = {o->fault, o->fault_user};
    int lock_fd, rc;
    store_state st;
    slm_root *root = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return slm_err_set(err, SLM_EIO, "%s: no such store directory", dir);
    if ((rc = lock_store(dir, o->lock_wait, &lock_fd, err)))
        return rc;
    if ((rc = load_state(dir, &st, err)))
        goto out;
    if (!st.previous || strcmp(st.slots[slot_idx(st.previous)].state, "committed")) {
        rc = slm_err_set(err, SLM_EFAIL, "%s: no previous committed slot to revert to", dir);
        goto out;
    }
    if ((rc = pinned_root(dir, &root, err)) || (rc = verify_slot(dir, st.previous, root, -1, NULL, err)))
        goto out;
    char old = st.active;
    st.active = st.previous;
    st.previous = old; /* still committed: revert again to undo */
    rc = save_state(dir, &st, &fault, err);
    if (!rc && out)
        fill_status(dir, &st, out);
out:
    slm_root_free(root);
    close(lock_fd);
    return rc;
}

int slm_store_active_path(const char *dir, char *path, size_t cap, slm_err *err)
{
    store_state st;
    int rc = load_state(dir, &st, err);
    if (rc)
        return rc;
    if (!st.active)
        return slm_err_set(err, SLM_EINPUT, "%s: no active model (nothing installed yet)", dir);
    char *hp = slot_file(dir, st.active, "head.slmb");
    slm_root *root = NULL;
    slm_manifest *m = NULL;
    int fd = hp ? open(hp, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        rc = slm_err_set(err, SLM_EVERIFY, "%s: active slot %c has no manifest", dir, st.active);
    else if (!(rc = pinned_root(dir, &root, err))) {
        slm_verify_opts o = {0, NULL, 0, 0};
        rc = sg_verify_head_fd(fd, hp, root, &o, &m, err);
    }
    if (fd >= 0)
        close(fd);
    if (!rc) {
        char *p = slot_file(dir, st.active, m->files[0].name);
        if (!p || strlen(p) >= cap)
            rc = slm_err_set(err, SLM_EINTERNAL, "path too long");
        else
            strcpy(path, p);
        free(p);
    }
    free(hp);
    slm_manifest_free(m);
    slm_root_free(root);
    return rc;
}

int slm_store_open_model(const char *dir, int *fd, slm_manifest **out, slm_err *err)
{
    *fd = -1;
    store_state st;
    slm_root *root = NULL;
    int rc = load_state(dir, &st, err);
    if (rc)
        return rc;
    if (!st.active)
        return slm_err_set(err, SLM_EINPUT, "%s: no active model (nothing installed yet)", dir);
    if ((rc = pinned_root(dir, &root, err)))
        return rc;
    int mfd;
    if ((rc = sg_memfd_new(&mfd, err))) {
        slm_root_free(root);
        return rc;
    }
    slm_manifest *m = NULL;
    rc = verify_slot(dir, st.active, root, mfd, &m, err);
    if (!rc && m->version != st.slots[slot_idx(st.active)].version)
        rc = slm_err_set(err, SLM_EVERIFY, "%s: active slot holds v%llu but the store state says v%llu", dir,
                         (unsigned long long)m->version, (unsigned long long)st.slots[slot_idx(st.active)].version);
    if (!rc)
        rc = sg_memfd_seal(mfd, err);
    slm_root_free(root);
    if (rc) {
        close(mfd);
        slm_manifest_free(m);
        return rc;
    }
    *fd = mfd;
    if (out)
        *out = m;
    else
        slm_manifest_free(m);
    return SLM_OK;
}
