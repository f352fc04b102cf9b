/* signing/crypto.c — SHA-256 and Ed25519 through OpenSSL EVP (no hand-written crypto). */
#include "sg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

struct slm_sha256_ctx {
    EVP_MD_CTX *md;
};

int slm_sha256(const void *data, size_t n, uint8_t out[SLM_SHA256_LEN])
{
    unsigned int len = 0;
    if (!EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) || len != SLM_SHA256_LEN)
        return SLM_EINTERNAL;
    return SLM_OK;
}

slm_sha256_ctx *slm_sha256_new(void)
{
    slm_sha256_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->md = EVP_MD_CTX_new();
    if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) {
        slm_sha256_free(c);
        return NULL;
    }
    return c;
}

int slm_sha256_update(slm_sha256_ctx *c, const void *data, size_t n)
{
    return EVP_DigestUpdate(c->md, data, n) ? SLM_OK : SLM_EINTERNAL;
}

int slm_sha256_final(slm_sha256_ctx *c, uint8_t out[SLM_SHA256_LEN])
{
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(c->md, out, &len) || len != SLM_SHA256_LEN)
        return SLM_EINTERNAL;
    return SLM_OK;
}

void slm_sha256_free(slm_sha256_ctx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void slm_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase refused: one spelling per value */
}

int slm_unhex(const char *s, uint8_t *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* ---- keys ------------------------------------------------------------------ */
struct slm_key {
    EVP_PKEY *pkey;
    int priv;
    uint8_t pub[32];
    char id[SLM_KEYID_HEX_LEN + 1];
};

static int key_wrap(EVP_PKEY *p, int priv, const char *what, slm_key **out, slm_err *err)
{
    if (!p)
        return slm_err_set(err, SLM_EINPUT, "%s: not an Ed25519 key", what);
    if (EVP_PKEY_get_id(p) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(p);
        return slm_err_set(err, SLM_EINPUT, "%s: the key is not Ed25519", what);
    }
    slm_key *k = calloc(1, sizeof *k);
    size_t len = 32;
    if (!k) {
        EVP_PKEY_free(p);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (!EVP_PKEY_get_raw_public_key(p, k->pub, &len) || len != 32) {
        EVP_PKEY_free(p);
        free(k);
        return slm_err_set(err, SLM_EINPUT, "%s: cannot read the raw public key", what);
    }
    uint8_t h[32];
    if (slm_sha256(k->pub, 32, h)) {
        EVP_PKEY_free(p);
        free(k);
        return slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
    }
    slm_hex(h, 32, k->id);
    k->pkey = p;
    k->priv = priv;
    *out = k;
    return SLM_OK;
}

int slm_key_from_seed(const uint8_t seed[32], slm_key **out, slm_err *err)
{
    return key_wrap(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32), 1, "seed", out, err);
}

int slm_key_from_raw_public(const uint8_t pub[32], slm_key **out, slm_err *err)
{
    return key_wrap(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32), 0, "public key", out, err);
}

void slm_key_free(slm_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

int slm_key_has_private(const slm_key *k) { return k->priv; }
const uint8_t *slm_key_public(const slm_key *k) { return k->pub; }
const char *slm_key_id(const slm_key *k) { return k->id; }

static int load_pem(const char *path, int priv, slm_key **out, slm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    EVP_PKEY *p = priv ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!p)
        return slm_err_set(err, SLM_EINPUT, "%s: not a PEM %s key", path, priv ? "private" : "public");
    return key_wrap(p, priv, path, out, err);
}

int slm_key_load_private(const char *path, slm_key **out, slm_err *err) { return load_pem(path, 1, out, err); }
int slm_key_load_public(const char *path, slm_key **out, slm_err *err) { return load_pem(path, 0, out, err); }

/* Write a PEM through a fresh file created with O_EXCL and the given mode. */
static int write_pem_excl(const char *path, EVP_PKEY *p, int priv, int mode, slm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return slm_err_set(err, errno == EEXIST ? SLM_EUSAGE : SLM_EIO, "%s: %s", path,
                           errno == EEXIST ? "already exists (refusing to overwrite a key)" : strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(path);
        return slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    }
    int ok = priv ? PEM_write_PrivateKey(f, p, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, p);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        unlink(path);
        return slm_err_set(err, SLM_EIO, "%s: cannot write the key", path);
    }
    return SLM_OK;
}

int slm_keygen(const char *priv_path, slm_err *err)
{
    size_t n = strlen(priv_path);
    char *pub_path = malloc(n + 5);
    if (!pub_path)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    memcpy(pub_path, priv_path, n);
    memcpy(pub_path + n, ".pub", 5);
    struct stat st;
    if (stat(pub_path, &st) == 0) {
        slm_err_set(err, SLM_EUSAGE, "%s: already exists (refusing to overwrite a key)", pub_path);
        free(pub_path);
        return SLM_EUSAGE;
    }
    EVP_PKEY *p = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!pc || EVP_PKEY_keygen_init(pc) <= 0 || EVP_PKEY_keygen(pc, &p) <= 0) {
        EVP_PKEY_CTX_free(pc);
        free(pub_path);
        return slm_err_set(err, SLM_EINTERNAL, "Ed25519 key generation failed");
    }
    EVP_PKEY_CTX_free(pc);
    int rc = write_pem_excl(priv_path, p, 1, 0600, err);
    if (!rc) {
        rc = write_pem_excl(pub_path, p, 0, 0644, err);
        if (rc)
            unlink(priv_path);
    }
    EVP_PKEY_free(p);
    free(pub_path);
    return rc;
}

int slm_key_sign(const slm_key *k, const void *msg, size_t n, uint8_t sig[SLM_ED25519_SIG_LEN], slm_err *err)
{
    if (!k->priv)
        return slm_err_set(err, SLM_EUSAGE, "key %.16s is a public key: signing needs the private key", k->id);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t len = SLM_ED25519_SIG_LEN;
    int ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) > 0 &&
             EVP_DigestSign(md, sig, &len, msg, n) > 0 && len == SLM_ED25519_SIG_LEN;
    EVP_MD_CTX_free(md);
    return ok ? SLM_OK : slm_err_set(err, SLM_EINTERNAL, "Ed25519 signing failed");
}

int slm_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[64])
{
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    if (!p)
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, p) > 0 &&
             EVP_DigestVerify(md, sig, SLM_ED25519_SIG_LEN, msg, n) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(p);
    return ok;
}
