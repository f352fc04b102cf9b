/* tests/test_signing.c — signing/: known answers (SHA-256, Ed25519 RFC 8032),
 * keys, trust roots and rotation, bundles and every refusal of the verifier. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zstd.h>

#include "signing.h"
#include "testutil.h"

static void unhex_or_die(const char *s, uint8_t *out, size_t n)
{
    cr_assert_eq(slm_unhex(s, out, n), 0, "bad hex in the test: %s", s);
}

/* ---- known answers -------------------------------------------------------------- */
Test(signing, sha256_known_answers)
{
    uint8_t d[32];
    char hex[65];
    cr_assert_eq(slm_sha256("abc", 3, d), 0);
    slm_hex(d, 32, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"); /* FIPS 180-2 */
    cr_assert_eq(slm_sha256("", 0, d), 0);
    slm_hex(d, 32, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    slm_sha256_ctx *c = slm_sha256_new();
    cr_assert_not_null(c);
    for (size_t i = 0; i < strlen(two); i += 5) /* streaming in odd pieces = one shot */
        cr_assert_eq(slm_sha256_update(c, two + i, strlen(two) - i < 5 ? strlen(two) - i : 5), 0);
    cr_assert_eq(slm_sha256_final(c, d), 0);
    slm_sha256_free(c);
    slm_hex(d, 32, hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(signing, hex_is_strict)
{
    uint8_t b[2];
    cr_assert_eq(slm_unhex("ab0f", b, 2), 0);
    cr_assert_eq(b[0], 0xab);
    cr_assert_neq(slm_unhex("AB0F", b, 2), 0, "uppercase is a second spelling: refused");
    cr_assert_neq(slm_unhex("ab0", b, 2), 0);
    cr_assert_neq(slm_unhex("ab0fa", b, 2), 0);
    cr_assert_neq(slm_unhex("ab0g", b, 2), 0);
}

/* RFC 8032 section 7.1, TEST 1..3 */
static const struct {
    const char *sk, *pk, *msg, *sig;
} rfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

Test(signing, ed25519_rfc8032_vectors)
{
    for (size_t t = 0; t < sizeof rfc8032 / sizeof rfc8032[0]; t++) {
        uint8_t sk[32], pk[32], msg[8], sig[64], got[64];
        size_t mlen = strlen(rfc8032[t].msg) / 2;
        unhex_or_die(rfc8032[t].sk, sk, 32);
        unhex_or_die(rfc8032[t].pk, pk, 32);
        unhex_or_die(rfc8032[t].sig, sig, 64);
        if (mlen)
            unhex_or_die(rfc8032[t].msg, msg, mlen);
        slm_key *k;
        slm_err err = {0};
        cr_assert_eq(slm_key_from_seed(sk, &k, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(slm_key_public(k), pk, 32), 0, "test %zu: public key", t + 1);
        cr_assert_eq(slm_key_sign(k, msg, mlen, got, &err), 0);
        cr_assert_eq(memcmp(got, sig, 64), 0, "test %zu: signature", t + 1);
        cr_assert(slm_ed25519_verify(pk, msg, mlen, sig));
        sig[7] ^= 1;
        cr_assert(!slm_ed25519_verify(pk, msg, mlen, sig), "a flipped signature bit must fail");
        sig[7] ^= 1;
        msg[0] ^= 1;
        cr_assert(!slm_ed25519_verify(pk, msg, mlen ? mlen : 1, sig), "another message must fail");
        /* key id = SHA-256 of the raw public key */
        uint8_t h[32];
        char hex[65];
        cr_assert_eq(slm_sha256(pk, 32, h), 0);
        slm_hex(h, 32, hex);
        cr_assert_str_eq(slm_key_id(k), hex);
        slm_key_free(k);
    }
}

Test(signing, keygen_writes_0600_and_refuses_overwrite)
{
    char *dir = tu_tmpdir("sg-keygen");
    char *p = tu_path(dir, "k.key"), *pub = tu_path(dir, "k.key.pub");
    slm_err err = {0};
    cr_assert_eq(slm_keygen(p, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    slm_key *k, *kp;
    cr_assert_eq(slm_key_load_private(p, &k, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_key_load_public(pub, &kp, &err), 0, "%s", err.msg);
    cr_assert_str_eq(slm_key_id(k), slm_key_id(kp));
    uint8_t sig[64];
    cr_assert_eq(slm_key_sign(k, "m", 1, sig, &err), 0);
    cr_assert(slm_ed25519_verify(slm_key_public(kp), "m", 1, sig));
    cr_assert_neq(slm_key_sign(kp, "m", 1, sig, &err), 0, "a public key cannot sign");
    size_t n0;
    char *before = tu_read_file(p, &n0);
    cr_assert_eq(slm_keygen(p, &err), SLM_EUSAGE);
    cr_assert(strstr(err.msg, "refusing to overwrite"), "%s", err.msg);
    size_t n1;
    char *after = tu_read_file(p, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the old key is untouched");
    free(before);
    free(after);
    slm_key_free(k);
    slm_key_free(kp);
    free(p);
    free(pub);
    tu_rmtree(dir);
    free(dir);
}

/* ---- fixtures ----------------------------------------------------------------- */
#define NK 6
typedef struct fx {
    char *dir;
    slm_key *k[NK];   /* a b c in the root (threshold 2); d e f outside */
    char *root;       /* v1, 2 of {a,b,c}, signed by a,b */
    char *payload;    /* synthetic 3 KB file */
    char *bundle;     /* v1 of the payload, signed a,b */
    int64_t now;
} fx;

static void fx_key_seed(uint8_t seed[32], int i)
{
    for (int j = 0; j < 32; j++)
        seed[j] = (uint8_t)(i * 37 + j * 11 + 1);
}

static char *mk_root_v(fx *f, const char *name, uint64_t ver, int64_t expires, int thr, const int *keys, int nk,
                       const int *signers, int ns)
{
    const slm_key *kk[NK], *ss[NK];
    for (int i = 0; i < nk; i++)
        kk[i] = f->k[keys[i]];
    for (int i = 0; i < ns; i++)
        ss[i] = f->k[signers[i]];
    char *p = tu_path(f->dir, name);
    slm_err err = {0};
    cr_assert_eq(slm_root_create(p, ver, f->now - 10, expires, thr, kk, nk, ss, ns, &err), 0, "%s", err.msg);
    return p;
}

static char *mk_bundle(fx *f, const char *name, uint64_t ver, int64_t created, int64_t expires, const char *payload,
                       const int *signers, int ns)
{
    const slm_key *ss[NK];
    for (int i = 0; i < ns; i++)
        ss[i] = f->k[signers[i]];
    char *p = tu_path(f->dir, name);
    const char *paths[1] = {payload}, *names[1] = {"model.gguf"};
    slm_bundle_spec s = {"synthetic", ver, created, expires, NULL, "{\"quant\":\"f32\"}", 1, paths, names, 3};
    slm_err err = {0};
    cr_assert_eq(slm_bundle_create(p, &s, ss, ns, &err), 0, "%s", err.msg);
    return p;
}

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    f->dir = tu_tmpdir("sg");
    f->now = (int64_t)time(NULL);
    slm_err err = {0};
    for (int i = 0; i < NK; i++) {
        uint8_t seed[32];
        fx_key_seed(seed, i);
        cr_assert_eq(slm_key_from_seed(seed, &f->k[i], &err), 0, "%s", err.msg);
    }
    int abc[] = {0, 1, 2}, ab[] = {0, 1};
    f->root = mk_root_v(f, "root.json", 1, f->now + 86400, 2, abc, 3, ab, 2);
    /* compressible text plus an incompressible tail; small so that every byte
     * offset of the bundle can be tested */
    size_t n = 3 << 10;
    char *buf = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = i < n / 2 ? "once upon a time "[i % 17] : (char)(x >> 24);
    }
    f->payload = tu_path(f->dir, "payload.bin");
    cr_assert_eq(tu_write_file(f->payload, buf, n), 0);
    free(buf);
    f->bundle = mk_bundle(f, "v1.slmb", 1, f->now - 10, f->now + 3600, f->payload, ab, 2);
}

static void fx_fini(fx *f)
{
    for (int i = 0; i < NK; i++)
        slm_key_free(f->k[i]);
    free(f->root);
    free(f->payload);
    free(f->bundle);
    tu_rmtree(f->dir);
    free(f->dir);
}

static slm_root *load_root(const char *p, int64_t now)
{
    slm_root *r = NULL;
    slm_err err = {0};
    cr_assert_eq(slm_trust_chain(&p, 1, now, &r, &err), 0, "%s", err.msg);
    return r;
}

/* Verify and return the status; message in err. */
static int verify_at(const char *bundle, const slm_root *r, int64_t now, uint64_t floor_v, slm_err *err)
{
    slm_verify_opts o = {now, NULL, floor_v, 1};
    memset(err, 0, sizeof *err);
    return slm_bundle_verify(bundle, r, &o, NULL, NULL, err);
}

#define EXPECT_REFUSED(rc, err, needle)                                                                   \
    do {                                                                                                   \
        cr_assert_eq((rc), SLM_EVERIFY, "expected a verification failure, got %d: %s", (rc), (err).msg); \
        cr_assert(strstr((err).msg, (needle)), "message '%s' lacks '%s'", (err).msg, (needle));          \
    } while (0)

/* ---- bundles ----------------------------------------------------------------- */
Test(signing, bundle_round_trip_and_sealed_model_fd)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err = {0};
    slm_verify_opts o = {f.now, NULL, 0, 1};
    slm_manifest *m = NULL;
    cr_assert_eq(slm_bundle_verify(f.bundle, r, &o, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m->name, "synthetic");
    cr_assert_eq(m->version, 1);
    cr_assert_eq(m->n_files, 1);
    cr_assert_eq(m->files[0].size, 3 << 10);
    cr_assert_eq(m->n_sigs, 2);
    /* the manifest hash is the SHA-256 of the payload file itself (independent) */
    size_t n;
    char *orig = tu_read_file(f.payload, &n);
    uint8_t d[32];
    cr_assert_eq(slm_sha256(orig, n, d), 0);
    cr_assert_eq(memcmp(d, m->files[0].sha256, 32), 0);
    slm_manifest_free(m);
    int fd = -1;
    cr_assert_eq(slm_bundle_open_model(f.bundle, r, &o, &fd, NULL, &err), 0, "%s", err.msg);
    cr_assert_geq(fd, 0);
    char *got = malloc(n + 1);
    cr_assert_eq(pread(fd, got, n + 1, 0), (ssize_t)n);
    cr_assert_eq(memcmp(got, orig, n), 0);
    /* sealed: the verified bytes can no longer change */
    cr_assert_eq(pwrite(fd, "x", 1, 0), -1);
    cr_assert_eq(ftruncate(fd, 10), -1);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int fd2 = open(proc, O_RDWR);
    if (fd2 >= 0) {
        cr_assert_eq(write(fd2, "x", 1), -1, "writes through a reopened fd are refused too");
        close(fd2);
    }
    close(fd);
    free(got);
    free(orig);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, refuses_signatures_below_threshold_unknown_and_outside_keys)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err;
    int a[] = {0}, abd[] = {0, 1, 3}, de[] = {3, 4};
    char *b1 = mk_bundle(&f, "one.slmb", 2, f.now, f.now + 60, f.payload, a, 1);
    EXPECT_REFUSED(verify_at(b1, r, f.now, 0, &err), err, "below the threshold 2");
    char *b2 = mk_bundle(&f, "extra.slmb", 2, f.now, f.now + 60, f.payload, abd, 3);
    EXPECT_REFUSED(verify_at(b2, r, f.now, 0, &err), err, "unknown key");
    char *b3 = mk_bundle(&f, "outside.slmb", 2, f.now, f.now + 60, f.payload, de, 2);
    EXPECT_REFUSED(verify_at(b3, r, f.now, 0, &err), err, "not in the trust root");
    char *b4 = mk_bundle(&f, "none.slmb", 2, f.now, f.now + 60, f.payload, NULL, 0);
    EXPECT_REFUSED(verify_at(b4, r, f.now, 0, &err), err, "not signed");
    /* slm sign adds the missing signature in place: then it verifies */
    cr_assert_eq(slm_sign_file(b1, f.k[2], &err), 0, "%s", err.msg);
    cr_assert_eq(verify_at(b1, r, f.now, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_sign_file(b1, f.k[2], &err), SLM_EUSAGE, "signing twice with one key is refused");
    free(b1);
    free(b2);
    free(b3);
    free(b4);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, every_single_byte_change_is_refused)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    size_t n;
    char *orig = tu_read_file(f.bundle, &n);
    char *mut = tu_path(f.dir, "mut.slmb");
    slm_err err;
    /* every offset of the whole file (header, manifest, signatures, payload), two flips each */
    const uint8_t flips[] = {0x01, 0x80};
    int hdr = 0, man = 0, sig = 0, pay = 0;
    uint32_t mlen = (uint8_t)orig[12] | (uint8_t)orig[13] << 8 | (uint8_t)orig[14] << 16;
    uint32_t slen = (uint8_t)orig[16] | (uint8_t)orig[17] << 8 | (uint8_t)orig[18] << 16;
    for (size_t off = 0; off < n; off++) {
        for (int k = 0; k < 2; k++) {
            orig[off] ^= flips[k];
            cr_assert_eq(tu_write_file(mut, orig, n), 0);
            int rc = verify_at(mut, r, f.now, 0, &err);
            orig[off] ^= flips[k];
            cr_assert_eq(rc, SLM_EVERIFY, "offset %zu flip %02x: rc %d (%s)", off, flips[k], rc, err.msg);
        }
        if (off < 24)
            hdr++;
        else if (off < 24 + mlen)
            man++;
        else if (off < 24 + mlen + slen)
            sig++;
        else
            pay++;
    }
    cr_assert(hdr == 24 && man > 100 && sig > 100 && pay > 1000, "%d %d %d %d", hdr, man, sig, pay);
    cr_assert_eq(verify_at(f.bundle, r, f.now, 0, &err), 0, "the original still verifies");
    free(mut);
    free(orig);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, truncation_at_any_length_and_trailing_bytes_refused)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    size_t n;
    char *orig = tu_read_file(f.bundle, &n);
    char *mut = tu_path(f.dir, "cut.slmb");
    slm_err err;
    for (size_t len = 0; len < n; len++) {
        cr_assert_eq(tu_write_file(mut, orig, len), 0);
        int rc = verify_at(mut, r, f.now, 0, &err);
        cr_assert_eq(rc, SLM_EVERIFY, "truncated at %zu of %zu: rc %d (%s)", len, n, rc, err.msg);
        cr_assert(strstr(err.msg, "truncated") || strstr(err.msg, "bad magic") || strstr(err.msg, "payload ends"),
                  "at %zu: %s", len, err.msg);
    }
    char *longer = malloc(n + 1);
    memcpy(longer, orig, n);
    longer[n] = 0;
    cr_assert_eq(tu_write_file(mut, longer, n + 1), 0);
    EXPECT_REFUSED(verify_at(mut, r, f.now, 0, &err), err, "trailing bytes");
    free(longer);
    free(mut);
    free(orig);
    slm_root_free(r);
    fx_fini(&f);
}

/* header format 2 (what `slm pull` lands): the same signed head, the payload uncompressed */
Test(signing, stored_form_verifies_and_refuses_every_change)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err = {0};
    char *st = tu_path(f.dir, "stored.slmb"), *st2 = tu_path(f.dir, "stored2.slmb"), *mut = tu_path(f.dir, "m.slmb");
    cr_assert_eq(slm_bundle_store(f.bundle, st, &err), 0, "%s", err.msg);
    size_t n, pn, bn;
    char *b = tu_read_file(st, &n), *pl = tu_read_file(f.payload, &pn), *ob = tu_read_file(f.bundle, &bn);
    uint32_t mlen = (uint8_t)b[12] | (uint8_t)b[13] << 8 | (uint8_t)b[14] << 16;
    uint32_t slen = (uint8_t)b[16] | (uint8_t)b[17] << 8 | (uint8_t)b[18] << 16;
    size_t hl = 24 + mlen + slen;
    cr_assert_eq(b[8], 2);
    cr_assert_eq(n, hl + pn);
    cr_assert(!memcmp(b + 12, ob + 12, hl - 12), "the head changed");
    cr_assert(!memcmp(b + hl, pl, pn), "the payload is not the file");
    slm_verify_opts o = {f.now, NULL, 0, 1};
    slm_manifest *m = NULL;
    cr_assert_eq(slm_bundle_verify(st, r, &o, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m->stored, 1);
    slm_manifest_free(m);
    /* storing a stored bundle changes nothing */
    cr_assert_eq(slm_bundle_store(st, st2, &err), 0, "%s", err.msg);
    size_t n2;
    char *b2 = tu_read_file(st2, &n2);
    cr_assert(n2 == n && !memcmp(b, b2, n));
    free(b2);
    /* every byte, two flips each; every truncation; a trailing byte */
    for (size_t off = 0; off < n; off++)
        for (int k = 0; k < 2; k++) {
            b[off] ^= k ? 0x80 : 0x01;
            cr_assert_eq(tu_write_file(mut, b, n), 0);
            int rc = verify_at(mut, r, f.now, 0, &err);
            b[off] ^= k ? 0x80 : 0x01;
            cr_assert_eq(rc, SLM_EVERIFY, "offset %zu: rc %d (%s)", off, rc, err.msg);
        }
    for (size_t len = 0; len < n; len += 7) {
        cr_assert_eq(tu_write_file(mut, b, len), 0);
        cr_assert_eq(verify_at(mut, r, f.now, 0, &err), SLM_EVERIFY, "truncated at %zu: %s", len, err.msg);
    }
    char *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 'x';
    cr_assert_eq(tu_write_file(mut, longer, n + 1), 0);
    EXPECT_REFUSED(verify_at(mut, r, f.now, 0, &err), err, "trailing bytes");
    free(longer);
    /* another payload under the same head: refused */
    b[hl + pn / 2] ^= 0x10;
    cr_assert_eq(tu_write_file(mut, b, n), 0);
    EXPECT_REFUSED(verify_at(mut, r, f.now, 0, &err), err, "SHA-256 does not match the manifest");
    b[hl + pn / 2] ^= 0x10;
    /* signing in place keeps the format */
    int a[] = {0};
    char *one = mk_bundle(&f, "one.slmb", 2, f.now, f.now + 60, f.payload, a, 1), *one_st = tu_path(f.dir, "one-st.slmb");
    cr_assert_eq(slm_bundle_store(one, one_st, &err), 0, "%s", err.msg);
    EXPECT_REFUSED(verify_at(one_st, r, f.now, 0, &err), err, "below the threshold 2");
    cr_assert_eq(slm_sign_file(one_st, f.k[1], &err), 0, "%s", err.msg);
    cr_assert_eq(verify_at(one_st, r, f.now, 0, &err), 0, "%s", err.msg);
    size_t on;
    char *ob2 = tu_read_file(one_st, &on);
    cr_assert_eq(ob2[8], 2);
    free(ob2);
    free(one);
    free(one_st);
    free(b);
    free(pl);
    free(ob);
    free(st);
    free(st2);
    free(mut);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, expiry_rollback_and_runtime_refused)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err;
    int ab[] = {0, 1}, abc[] = {0, 1, 2};
    char *old = mk_bundle(&f, "old.slmb", 5, f.now - 7200, f.now - 3600, f.payload, ab, 2);
    EXPECT_REFUSED(verify_at(old, r, f.now, 0, &err), err, "expired at");
    /* rollback / replay: version not above the committed floor */
    EXPECT_REFUSED(verify_at(f.bundle, r, f.now, 1, &err), err, "not above the committed version 1");
    EXPECT_REFUSED(verify_at(f.bundle, r, f.now, 7, &err), err, "rollback");
    /* expired root */
    char *er = mk_root_v(&f, "expired-root.json", 1, f.now - 1, 2, abc, 3, ab, 2);
    slm_root *x = NULL;
    const char *p = er;
    int rc = slm_trust_chain(&p, 1, f.now, &x, &err);
    EXPECT_REFUSED(rc, err, "trust root v1 expired");
    /* minimum runtime */
    const char *paths[1] = {f.payload};
    slm_bundle_spec s = {"future", 3, f.now, f.now + 60, "99.0.0", NULL, 1, paths, NULL, 1};
    const slm_key *ss[2] = {f.k[0], f.k[1]};
    char *fut = tu_path(f.dir, "future.slmb");
    cr_assert_eq(slm_bundle_create(fut, &s, ss, 2, &err), 0, "%s", err.msg);
    EXPECT_REFUSED(verify_at(fut, r, f.now, 0, &err), err, "needs runtime 99.0.0");
    free(fut);
    free(old);
    free(er);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, root_rotation_rules)
{
    fx f;
    fx_init(&f);
    slm_err err;
    int abc[] = {0, 1, 2}, cde[] = {2, 3, 4}, ab[] = {0, 1}, de[] = {3, 4}, abde[] = {0, 1, 3, 4}, ad[] = {0, 3};
    /* v2 with keys c,d,e (2 of 3), signed by 2 old (a,b) + 2 new (d,e): valid */
    char *v2 = mk_root_v(&f, "v2.json", 2, f.now + 86400, 2, cde, 3, abde, 4);
    const char *chain[3] = {f.root, v2, NULL};
    slm_root *r = NULL;
    cr_assert_eq(slm_trust_chain(chain, 2, f.now, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r->version, 2);
    /* a bundle signed by the new keys verifies through the chain, not against v1 */
    char *nb = mk_bundle(&f, "new.slmb", 2, f.now, f.now + 60, f.payload, de, 2);
    cr_assert_eq(verify_at(nb, r, f.now, 0, &err), 0, "%s", err.msg);
    slm_root *r1 = load_root(f.root, f.now);
    EXPECT_REFUSED(verify_at(nb, r1, f.now, 0, &err), err, "unknown key");
    /* old keys alone no longer suffice after the rotation (a, b: only a is... not in v2) */
    char *ob = mk_bundle(&f, "oldkeys.slmb", 3, f.now, f.now + 60, f.payload, ab, 2);
    EXPECT_REFUSED(verify_at(ob, r, f.now, 0, &err), err, "unknown key");
    slm_root_free(r);
    slm_root_free(r1);
    /* skipping a version */
    char *v3 = mk_root_v(&f, "v3.json", 3, f.now + 86400, 2, cde, 3, abde, 4);
    chain[1] = v3;
    EXPECT_REFUSED(slm_trust_chain(chain, 2, f.now, &r, &err), err, "must be exactly version 2");
    /* lacking the old threshold: only d,e (new) signed */
    char *v2b = mk_root_v(&f, "v2b.json", 2, f.now + 86400, 2, cde, 3, de, 2);
    chain[1] = v2b;
    EXPECT_REFUSED(slm_trust_chain(chain, 2, f.now, &r, &err), err, "lacks the old root's threshold");
    /* lacking its own threshold: a,b (old) + d (one new) */
    int abd[] = {0, 1, 3};
    char *v2c = mk_root_v(&f, "v2c.json", 2, f.now + 86400, 3, cde, 3, abd, 3);
    chain[1] = v2c;
    EXPECT_REFUSED(slm_trust_chain(chain, 2, f.now, &r, &err), err, "lacks its own threshold");
    /* signature by a key in neither root */
    int abdef[] = {0, 1, 3, 4, 5};
    char *v2d = mk_root_v(&f, "v2d.json", 2, f.now + 86400, 2, cde, 3, abdef, 5);
    chain[1] = v2d;
    EXPECT_REFUSED(slm_trust_chain(chain, 2, f.now, &r, &err), err, "unknown key");
    /* the first root must carry its own threshold */
    char *weak = mk_root_v(&f, "weak.json", 1, f.now + 86400, 2, abc, 3, ad, 1);
    chain[0] = weak;
    EXPECT_REFUSED(slm_trust_chain(chain, 1, f.now, &r, &err), err, "below the threshold");
    /* an intermediate root may have expired; the last one may not */
    char *v1old = mk_root_v(&f, "v1old.json", 1, f.now - 5, 2, abc, 3, ab, 2);
    chain[0] = v1old;
    chain[1] = v2;
    cr_assert_eq(slm_trust_chain(chain, 2, f.now, &r, &err), 0, "%s", err.msg);
    slm_root_free(r);
    free(v2);
    free(v3);
    free(v2b);
    free(v2c);
    free(v2d);
    free(weak);
    free(v1old);
    free(nb);
    free(ob);
    fx_fini(&f);
}

/* ---- crafted bundles: a signer's own mistakes and mix-and-match ----------------- */
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Write header + the given manifest (signed by a and b) + payload. */
static void craft(fx *f, const char *path, const char *manifest, const void *payload, size_t plen)
{
    slm_sig sigs[2];
    slm_err err = {0};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(slm_key_sign(f->k[i], manifest, strlen(manifest), sigs[i].sig, &err), 0);
        memcpy(sigs[i].keyid, slm_key_id(f->k[i]), 65);
    }
    if (strcmp(sigs[0].keyid, sigs[1].keyid) > 0) {
        slm_sig t = sigs[0];
        sigs[0] = sigs[1];
        sigs[1] = t;
    }
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 2; i++) {
        char hex[129];
        slm_hex(sigs[i].sig, 64, hex);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "keyid", sigs[i].keyid);
        cJSON_AddStringToObject(o, "sig", hex);
        cJSON_AddItemToArray(a, o);
    }
    char *sj = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    size_t ml = strlen(manifest), sl = strlen(sj), n = 24 + ml + sl + plen;
    uint8_t *b = malloc(n);
    memcpy(b, "SLMBNDL\n", 8);
    put32(b + 8, 1);
    put32(b + 12, (uint32_t)ml);
    put32(b + 16, (uint32_t)sl);
    put32(b + 20, 0);
    memcpy(b + 24, manifest, ml);
    memcpy(b + 24 + ml, sj, sl);
    memcpy(b + 24 + ml + sl, payload, plen);
    cr_assert_eq(tu_write_file(path, b, n), 0);
    free(b);
    free(sj);
}

static char *manifest_with(fx *f, int n_files, uint64_t size, const uint8_t *sha, uint64_t zsize, const uint8_t *zsha)
{
    cJSON *o = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "created", (double)f->now);
    cJSON_AddNumberToObject(o, "expires", (double)f->now + 60);
    for (int i = 0; i < n_files; i++) {
        char h[65], zh[65], nm[16];
        slm_hex(sha, 32, h);
        slm_hex(zsha, 32, zh);
        snprintf(nm, sizeof nm, "f%d.bin", i);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", nm);
        cJSON_AddStringToObject(x, "sha256", h);
        cJSON_AddNumberToObject(x, "size", (double)size);
        cJSON_AddStringToObject(x, "zsha256", zh);
        cJSON_AddNumberToObject(x, "zsize", (double)zsize);
        cJSON_AddItemToArray(files, x);
    }
    cJSON_AddItemToObject(o, "files", files);
    cJSON_AddNumberToObject(o, "format", 1);
    cJSON_AddItemToObject(o, "meta", cJSON_CreateObject());
    cJSON_AddStringToObject(o, "min_runtime", "0.1.0");
    cJSON_AddStringToObject(o, "name", "crafted");
    cJSON_AddStringToObject(o, "type", "slm-bundle");
    cJSON_AddNumberToObject(o, "version", 9);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

Test(signing, endless_payload_and_missing_files_refused)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err;
    /* 4 MB of zeros compresses to a few hundred bytes: the manifest declares 1000 */
    size_t big = 4 << 20;
    void *zeros = calloc(1, big);
    size_t zcap = ZSTD_compressBound(big);
    void *z = malloc(zcap);
    size_t zn = ZSTD_compress(z, zcap, zeros, big, 3);
    cr_assert(!ZSTD_isError(zn));
    uint8_t sha[32], zsha[32];
    cr_assert_eq(slm_sha256(zeros, 1000, sha), 0);
    cr_assert_eq(slm_sha256(z, zn, zsha), 0);
    char *man = manifest_with(&f, 1, 1000, sha, zn, zsha);
    char *p = tu_path(f.dir, "endless.slmb");
    craft(&f, p, man, z, zn);
    EXPECT_REFUSED(verify_at(p, r, f.now, 0, &err), err, "more than its declared 1000 bytes");
    free(man);
    /* honest sizes: the crafted builder itself is right (control) */
    cr_assert_eq(slm_sha256(zeros, big, sha), 0);
    man = manifest_with(&f, 1, big, sha, zn, zsha);
    craft(&f, p, man, z, zn);
    cr_assert_eq(verify_at(p, r, f.now, 0, &err), 0, "%s", err.msg);
    free(man);
    /* the manifest names two files, the payload holds one: mix-and-match */
    man = manifest_with(&f, 2, big, sha, zn, zsha);
    craft(&f, p, man, z, zn);
    EXPECT_REFUSED(verify_at(p, r, f.now, 0, &err), err, "names file 'f1.bin' (2 of 2) but the payload ends");
    free(man);
    /* a manifest whose file is another bundle's payload: hash mismatch */
    uint8_t other[32];
    memset(other, 7, 32);
    man = manifest_with(&f, 1, big, other, zn, zsha);
    craft(&f, p, man, z, zn);
    EXPECT_REFUSED(verify_at(p, r, f.now, 0, &err), err, "does not match the manifest");
    free(man);
    free(p);
    free(z);
    free(zeros);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, payload_swapped_between_bundles_refused)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    slm_err err;
    /* second bundle of a different payload with the same size */
    size_t n1, n2;
    char *pl = tu_read_file(f.payload, &n1);
    pl[100] ^= 0x55;
    char *p2 = tu_path(f.dir, "payload2.bin");
    cr_assert_eq(tu_write_file(p2, pl, n1), 0);
    int ab[] = {0, 1};
    char *b2 = mk_bundle(&f, "v2.slmb", 2, f.now, f.now + 60, p2, ab, 2);
    char *a = tu_read_file(f.bundle, &n1), *b = tu_read_file(b2, &n2);
    uint32_t ml = (uint8_t)a[12] | (uint8_t)a[13] << 8, sl = (uint8_t)a[16] | (uint8_t)a[17] << 8;
    uint32_t ml2 = (uint8_t)b[12] | (uint8_t)b[13] << 8, sl2 = (uint8_t)b[16] | (uint8_t)b[17] << 8;
    size_t h1 = 24 + ml + sl, h2 = 24 + ml2 + sl2;
    /* head of bundle 1 + payload of bundle 2 */
    char *mix = malloc(h1 + (n2 - h2));
    memcpy(mix, a, h1);
    memcpy(mix + h1, b + h2, n2 - h2);
    char *mp = tu_path(f.dir, "mix.slmb");
    cr_assert_eq(tu_write_file(mp, mix, h1 + (n2 - h2)), 0);
    int rc = verify_at(mp, r, f.now, 0, &err);
    cr_assert_eq(rc, SLM_EVERIFY, "%s", err.msg);
    cr_assert(strstr(err.msg, "another bundle") || strstr(err.msg, "truncated") || strstr(err.msg, "trailing"),
              "%s", err.msg);
    free(mix);
    free(mp);
    free(a);
    free(b);
    free(pl);
    free(p2);
    free(b2);
    slm_root_free(r);
    fx_fini(&f);
}

Test(signing, real_model_bundle_sampled_offsets)
{
    fx f;
    fx_init(&f);
    slm_root *r = load_root(f.root, f.now);
    int ab[] = {0, 1};
    char *b = mk_bundle(&f, "stories.slmb", 1, f.now, f.now + 60, tu_model("gguf/stories260K.gguf"), ab, 2);
    slm_err err;
    cr_assert_eq(verify_at(b, r, f.now, 0, &err), 0, "%s", err.msg);
    size_t n;
    char *orig = tu_read_file(b, &n);
    char *mut = tu_path(f.dir, "m.slmb");
    uint32_t x = 99;
    for (int i = 0; i < 40; i++) {
        x = x * 1664525u + 1013904223u;
        size_t off = i < 8 ? (size_t)i * 97 : (size_t)x % n;
        orig[off] ^= 0x20;
        cr_assert_eq(tu_write_file(mut, orig, n), 0);
        int rc = verify_at(mut, r, f.now, 0, &err);
        orig[off] ^= 0x20;
        cr_assert_eq(rc, SLM_EVERIFY, "offset %zu: rc %d (%s)", off, rc, err.msg);
    }
    free(mut);
    free(orig);
    free(b);
    slm_root_free(r);
    fx_fini(&f);
}

/* ---- store, through the library (health check as a callback) -------------------- */
static int healthy_unless_v3(void *user, const char *path, const slm_manifest *m, slm_err *err)
{
    (*(int *)user)++;
    if (access(path, R_OK) != 0)
        return slm_err_set(err, SLM_EFAIL, "model file missing");
    return m->version == 3 ? slm_err_set(err, SLM_EFAIL, "synthetic failure") : 0;
}

Test(signing, store_ab_floor_revert)
{
    fx f;
    fx_init(&f);
    char *store = tu_path(f.dir, "store");
    int ab[] = {0, 1};
    char *b2 = mk_bundle(&f, "v2.slmb", 2, f.now, f.now + 60, f.payload, ab, 2);
    char *b3 = mk_bundle(&f, "v3.slmb", 3, f.now, f.now + 60, f.payload, ab, 2);
    char *b4 = mk_bundle(&f, "v4.slmb", 4, f.now, f.now + 60, f.payload, ab, 2);
    int calls = 0;
    slm_install_opts o = {f.now, NULL, healthy_unless_v3, &calls, NULL, NULL, 0};
    slm_store_status st;
    slm_err err = {0};
    const char *trust[1] = {f.root};
    cr_assert_eq(slm_store_install(store, f.bundle, trust, 1, &o, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.active.version, 1);
    cr_assert_eq(st.active.slot, 'a');
    cr_assert_eq(slm_store_install(store, b2, NULL, 0, &o, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.active.version, 2);
    cr_assert_eq(st.active.slot, 'b');
    cr_assert_eq(st.previous.version, 1);
    cr_assert_eq(st.floor, 2);
    EXPECT_REFUSED(slm_store_install(store, f.bundle, NULL, 0, &o, &st, &err), err, "rollback");
    EXPECT_REFUSED(slm_store_install(store, b2, NULL, 0, &o, &st, &err), err, "not above");
    cr_assert_eq(slm_store_install(store, b3, NULL, 0, &o, &st, &err), SLM_EFAIL);
    cr_assert(strstr(err.msg, "health check failed") && strstr(err.msg, "v2 stays active"), "%s", err.msg);
    cr_assert_eq(slm_store_status_get(store, &st, &err), 0);
    cr_assert_eq(st.active.version, 2);
    cr_assert_eq(st.floor, 2, "a failed trial does not raise the floor");
    cr_assert(!st.previous.present, "the v1 slot was overwritten by the failed trial");
    cr_assert_eq(slm_store_install(store, b4, NULL, 0, &o, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.active.version, 4);
    cr_assert_eq(slm_store_revert(store, &o, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.active.version, 2);
    cr_assert_eq(st.floor, 4, "revert never lowers the floor");
    /* the reverted-to model opens as a sealed, verified fd */
    int fd = -1;
    slm_manifest *m = NULL;
    cr_assert_eq(slm_store_open_model(store, &fd, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m->version, 2);
    close(fd);
    slm_manifest_free(m);
    /* tampering with the installed model is caught at open time */
    char path[4096];
    cr_assert_eq(slm_store_active_path(store, path, sizeof path, &err), 0, "%s", err.msg);
    chmod(path, 0644);
    int wfd = open(path, O_WRONLY);
    cr_assert_geq(wfd, 0);
    cr_assert_eq(pwrite(wfd, "X", 1, 100), 1);
    close(wfd);
    EXPECT_REFUSED(slm_store_open_model(store, &fd, NULL, &err), err, "does not match its signed manifest");
    cr_assert_eq(calls, 4);
    free(b2);
    free(b3);
    free(b4);
    free(store);
    fx_fini(&f);
}

Test(signing, store_lock_excludes_a_second_install)
{
    fx f;
    fx_init(&f);
    char *store = tu_path(f.dir, "store");
    slm_install_opts o = {f.now, NULL, NULL, NULL, NULL, NULL, 0};
    slm_err err = {0};
    const char *trust[1] = {f.root};
    cr_assert_eq(slm_store_install(store, f.bundle, trust, 1, &o, NULL, &err), 0, "%s", err.msg);
    char *lp = tu_path(store, "lock");
    int fd = open(lp, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    int ab[] = {0, 1};
    char *b2 = mk_bundle(&f, "v2.slmb", 2, f.now, f.now + 60, f.payload, ab, 2);
    cr_assert_eq(slm_store_install(store, b2, NULL, 0, &o, NULL, &err), SLM_EIO);
    cr_assert(strstr(err.msg, "locked"), "%s", err.msg);
    close(fd);
    cr_assert_eq(slm_store_install(store, b2, NULL, 0, &o, NULL, &err), 0, "%s", err.msg);
    free(b2);
    free(lp);
    free(store);
    fx_fini(&f);
}
