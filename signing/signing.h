/* signing/signing.h — the face of slmkit's signing library.
 *
 * Ed25519 keys (OpenSSL EVP), threshold-signed expiring trust roots with
 * TUF-style rotation, signed model bundles (manifest + signatures + zstd
 * payload, verified streaming with bounded memory) and the A/B install store
 * (trial, health check, commit raising the anti-rollback floor, revert, lock,
 * crash-safe state changes).
 *
 * Rules: this library uses nothing else of slmkit (verification must not
 * depend on the code it protects), never prints and never exits. Every
 * function that can fail returns an slm status code (0 = OK) and fills an
 * slm_err with one line naming the file and the problem. Verification
 * failures are SLM_EVERIFY. The format and trust model: docs/bundles.md.
 */
#ifndef SLM_SIGNING_H
#define SLM_SIGNING_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h" /* slm_err and the status codes */

#if defined(__GNUC__)
#define SLM_SG_CHECK __attribute__((warn_unused_result))
#else
#define SLM_SG_CHECK
#endif

/* The runtime version verifiers of this build report (compared with a
 * manifest's min_runtime; keep equal to SLM_VERSION of tools/main.c). */
#define SLM_SIGNING_RUNTIME_VERSION "0.1.0"

/* ---- hashing, hex ------------------------------------------------------- */
#define SLM_SHA256_LEN 32
int slm_sha256(const void *data, size_t n, uint8_t out[SLM_SHA256_LEN]) SLM_SG_CHECK;
typedef struct slm_sha256_ctx slm_sha256_ctx;
slm_sha256_ctx *slm_sha256_new(void); /* NULL: out of memory */
int slm_sha256_update(slm_sha256_ctx *c, const void *data, size_t n) SLM_SG_CHECK;
int slm_sha256_final(slm_sha256_ctx *c, uint8_t out[SLM_SHA256_LEN]) SLM_SG_CHECK;
void slm_sha256_free(slm_sha256_ctx *c);
/* Lowercase hex of n bytes into out (2n+1 chars). */
void slm_hex(const uint8_t *b, size_t n, char *out);
/* Strict: exactly 2n lowercase hex digits. 0 on success. */
int slm_unhex(const char *s, uint8_t *out, size_t n);

/* ---- Ed25519 keys --------------------------------------------------------- */
#define SLM_ED25519_PUB_LEN 32
#define SLM_ED25519_SIG_LEN 64
#define SLM_KEYID_HEX_LEN 64   /* key id = SHA-256 of the raw public key, hex */
typedef struct slm_key slm_key;
/* Write a new private key (PKCS#8 PEM, mode 0600, never overwrites) at
 * priv_path and its public key (SubjectPublicKeyInfo PEM) at priv_path.pub. */
int slm_keygen(const char *priv_path, slm_err *err) SLM_SG_CHECK;
int slm_key_load_private(const char *path, slm_key **out, slm_err *err) SLM_SG_CHECK;
int slm_key_load_public(const char *path, slm_key **out, slm_err *err) SLM_SG_CHECK;
/* From a raw 32-byte seed (RFC 8032 test vectors) or raw public key. */
int slm_key_from_seed(const uint8_t seed[32], slm_key **out, slm_err *err) SLM_SG_CHECK;
int slm_key_from_raw_public(const uint8_t pub[32], slm_key **out, slm_err *err) SLM_SG_CHECK;
void slm_key_free(slm_key *k);
int slm_key_has_private(const slm_key *k);
const uint8_t *slm_key_public(const slm_key *k); /* 32 raw bytes */
const char *slm_key_id(const slm_key *k);        /* 64 lowercase hex chars */
int slm_key_sign(const slm_key *k, const void *msg, size_t n, uint8_t sig[SLM_ED25519_SIG_LEN],
                 slm_err *err) SLM_SG_CHECK;
/* 1 when sig is a valid signature of msg by pub, else 0. */
int slm_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[64]);

/* ---- trust root -------------------------------------------------------------
 * File: {"signed":"<canonical root JSON, as a string>","signatures":[...]}.
 * Signatures cover exactly the bytes of the "signed" string. */
#define SLM_ROOT_MAX_KEYS 64
typedef struct slm_root_key {
    char id[SLM_KEYID_HEX_LEN + 1];
    uint8_t pub[SLM_ED25519_PUB_LEN];
} slm_root_key;
typedef struct slm_sig {
    char keyid[SLM_KEYID_HEX_LEN + 1];
    uint8_t sig[SLM_ED25519_SIG_LEN];
} slm_sig;
typedef struct slm_root {
    uint64_t version;
    int64_t created, expires;     /* unix seconds */
    int threshold, n_keys;
    slm_root_key keys[SLM_ROOT_MAX_KEYS];
    char *signed_bytes;           /* exact signed bytes (NUL-terminated) */
    size_t signed_len;
    int n_sigs;
    slm_sig *sigs;
    char *path;
} slm_root;
/* A new root signed by `signers` (may be 0 signers: sign later with slm_sign_file). */
int slm_root_create(const char *out_path, uint64_t version, int64_t created, int64_t expires, int threshold,
                    const slm_key *const *keys, int n_keys, const slm_key *const *signers, int n_signers,
                    slm_err *err) SLM_SG_CHECK;
int slm_root_load(const char *path, slm_root **out, slm_err *err) SLM_SG_CHECK; /* parse only */
void slm_root_free(slm_root *r);
const slm_root_key *slm_root_find_key(const slm_root *r, const char *keyid);
/* Threshold of r's own keys over r (no expiry check). */
int slm_root_verify_self(const slm_root *r, slm_err *err) SLM_SG_CHECK;
/* next must be version old+1 and carry a threshold of old's keys AND of its own. */
int slm_root_verify_successor(const slm_root *old, const slm_root *next, slm_err *err) SLM_SG_CHECK;
/* paths[0] is the trusted (pinned) root: self-verified; each next one must be
 * its successor; the last must not be expired at `now`. *out = the last. */
int slm_trust_chain(const char *const *paths, int n, int64_t now, slm_root **out, slm_err *err) SLM_SG_CHECK;

/* ---- bundle ----------------------------------------------------------------- */
#define SLM_BUNDLE_MAGIC "SLMBNDL\n"      /* 8 bytes */
#define SLM_BUNDLE_FORMAT 1
/* Header format 2: the same head, then each payload file stored uncompressed
 * (exactly `size` bytes, checked against `sha256`; zsize/zsha256 are not
 * used). What `slm pull` lands: registries keep the model as a plain blob. */
#define SLM_BUNDLE_FORMAT_STORED 2
#define SLM_BUNDLE_HEADER_LEN 24          /* magic, u32 format, u32 manifest len, u32 sigs len, u32 reserved */
#define SLM_MANIFEST_MAX (1u << 20)
#define SLM_SIGS_MAX (64u << 10)
#define SLM_BUNDLE_MAX_FILES 16
typedef struct slm_bundle_file {
    char name[65];
    uint64_t size, zsize;                         /* uncompressed / compressed bytes */
    uint8_t sha256[SLM_SHA256_LEN], zsha256[SLM_SHA256_LEN];
    uint64_t zoffset;                             /* payload offset in the bundle file */
} slm_bundle_file;
typedef struct slm_manifest {
    char name[129];
    uint64_t version;
    int64_t created, expires;
    char min_runtime[32];
    int n_files;
    int stored;               /* 1: header format 2 (payload files stored uncompressed) */
    slm_bundle_file files[SLM_BUNDLE_MAX_FILES];
    char *meta_json;          /* the "meta" object, compact JSON ("{}" when none) */
    int has_canary;
    char *canary_text;        /* meta.canary.text */
    double canary_ppl;        /* meta.canary.ppl */
    uint8_t *bytes;           /* exact manifest bytes as stored (signed) */
    size_t len;
    int n_sigs;
    slm_sig *sigs;
    char sig_keyids[256];     /* comma-separated key ids that signed (short form) */
} slm_manifest;
void slm_manifest_free(slm_manifest *m);

typedef struct slm_bundle_spec {
    const char *name;
    uint64_t version;
    int64_t created, expires;
    const char *min_runtime;   /* NULL: SLM_SIGNING_RUNTIME_VERSION */
    const char *meta_json;     /* a JSON object or NULL */
    int n_files;
    const char *const *paths;  /* files to pack */
    const char *const *names;  /* their names in the bundle (NULL: basenames) */
    int level;                 /* zstd level 1..19 (0: 3) */
} slm_bundle_spec;
/* Compress, hash, write manifest + signatures + payload: temp file, fsync, rename. */
int slm_bundle_create(const char *out_path, const slm_bundle_spec *s, const slm_key *const *signers,
                      int n_signers, slm_err *err) SLM_SG_CHECK;
/* Add one signature to a bundle or a root, in place (atomically). */
int slm_sign_file(const char *path, const slm_key *k, slm_err *err) SLM_SG_CHECK;

typedef struct slm_verify_opts {
    int64_t now;                 /* unix seconds (expiry) */
    const char *runtime_version; /* NULL: SLM_SIGNING_RUNTIME_VERSION */
    uint64_t floor;              /* version must be > floor (0: any) */
    int check_expiry;            /* 1 normally; 0 for an installed slot at run time */
} slm_verify_opts;
/* Where verified payload bytes go while they are hashed (NULL: discard). The
 * bytes of file i reach `write` before its hash is checked: a sink must only
 * trust its output once slm_bundle_verify returned 0. */
typedef struct slm_bundle_sink {
    int (*begin)(void *user, int i, const slm_bundle_file *f, slm_err *err);
    int (*write)(void *user, const void *data, size_t n, slm_err *err);
    int (*end)(void *user, int i, slm_err *err);
    void *user;
} slm_bundle_sink;
/* Header; signatures over the raw manifest bytes (threshold of root, every
 * signature by a key of root and valid); then the manifest (expiry, runtime,
 * floor); then every payload byte hashed while it is decompressed, reads capped
 * by the declared sizes, trailing bytes refused. Memory: a few fixed buffers. */
int slm_bundle_verify(const char *path, const slm_root *root, const slm_verify_opts *o, const slm_bundle_sink *sink,
                      slm_manifest **out, slm_err *err) SLM_SG_CHECK;
/* No signature, expiry or floor check (for repackaging, e.g. `slm push`): the
 * head is parsed, then every payload byte goes to sink and is checked against
 * the manifest's sizes and hashes exactly as slm_bundle_verify does. */
int slm_bundle_unpack(const char *path, const slm_bundle_sink *sink, slm_manifest **out, slm_err *err) SLM_SG_CHECK;
/* Write the format-2 (stored) form of a bundle: the same head, each payload
 * file uncompressed (checked as slm_bundle_unpack does); temp, fsync, rename.
 * It is byte for byte what `slm pull` lands for that bundle. */
int slm_bundle_store(const char *in, const char *out, slm_err *err) SLM_SG_CHECK;
/* Only header + signatures + manifest checks (no payload), from the first bytes. */
int slm_bundle_verify_head(const char *path, const slm_root *root, const slm_verify_opts *o, slm_manifest **out,
                           slm_err *err) SLM_SG_CHECK;

/* For `slm run --bundle`: verify the bundle and decompress its first payload
 * file (the model) into a sealed memfd while hashing it; *fd is returned only
 * when every check passed. The bytes behind *fd cannot change any more
 * (F_SEAL_WRITE|SHRINK|GROW), so mapping it has no check-then-use race: load
 * "/proc/self/fd/<fd>" (or mmap the fd read-only). Close *fd when done. */
int slm_bundle_open_model(const char *path, const slm_root *root, const slm_verify_opts *o, int *fd,
                          slm_manifest **out, slm_err *err) SLM_SG_CHECK;

/* ---- install store (A/B slots) ------------------------------------------- */
/* Health check of a trial model: 0 = healthy; else fill err (one line). */
typedef int (*slm_health_fn)(void *user, const char *model_path, const slm_manifest *m, slm_err *err);
/* Called just before each durable step (write, fsync, rename, fsync dir) with
 * its description; tests kill the process there (SLM_FAULT_STEP). */
typedef void (*slm_fault_fn)(void *user, const char *step);
typedef struct slm_install_opts {
    int64_t now;
    const char *runtime_version;
    slm_health_fn health;       /* NULL: no health check (not recommended) */
    void *health_user;
    slm_fault_fn fault;
    void *fault_user;
    int lock_wait;              /* 1: wait for the store lock; 0: fail at once */
} slm_install_opts;
typedef struct slm_slot_info {
    int present;                /* 0: no such slot / none */
    char slot;                  /* 'a' or 'b' */
    char state[16];             /* "committed", "trial", "failed", "writing", "empty" */
    char name[129];
    uint64_t version;
} slm_slot_info;
typedef struct slm_store_status {
    slm_slot_info active, previous;
    slm_slot_info slots[2];
    uint64_t floor;
    uint64_t root_version;      /* of the pinned root; 0 when none */
} slm_store_status;
/* Pinned trust: the store keeps root.json. trust_paths continue the chain from
 * it (those at or below its version are skipped); on the first install
 * trust_paths[0] is the anchor and gets pinned. */
int slm_store_install(const char *dir, const char *bundle, const char *const *trust_paths, int n_trust,
                      const slm_install_opts *o, slm_store_status *st, slm_err *err) SLM_SG_CHECK;
int slm_store_status_get(const char *dir, slm_store_status *st, slm_err *err) SLM_SG_CHECK;
/* Back to the previous committed slot (re-verified first); the floor stays. */
int slm_store_revert(const char *dir, const slm_install_opts *o, slm_store_status *st, slm_err *err) SLM_SG_CHECK;
/* Path of the active slot's model file (for tools that only read it). */
int slm_store_active_path(const char *dir, char *path, size_t cap, slm_err *err) SLM_SG_CHECK;
/* For `slm run --store`: re-verify the active slot (signatures against the
 * pinned root, no expiry) and copy its model into a sealed memfd while hashing;
 * *fd only when the hash matches. See slm_bundle_open_model. */
int slm_store_open_model(const char *dir, int *fd, slm_manifest **out, slm_err *err) SLM_SG_CHECK;

/* ---- TUF-compatible repository metadata (docs/registry.md) ---------------
 * A directory REPO/metadata/{1.root.json,root.json,targets.json,snapshot.json,
 * timestamp.json} + REPO/targets/<name>, as the TUF specification (1.0.x)
 * lays it out (consistent_snapshot false): four top-level roles with
 * thresholds, versions and expiries, Ed25519 keys ({"keytype":"ed25519",
 * "scheme":"ed25519","keyval":{"public":hex}}, key id = SHA-256 of the key's
 * canonical JSON), signatures over the canonical JSON of "signed". Any TUF
 * client (python-tuf, tuf-js, go-tuf) can consume it. */
enum { SLM_TUF_ROOT, SLM_TUF_TARGETS, SLM_TUF_SNAPSHOT, SLM_TUF_TIMESTAMP, SLM_TUF_NROLES };
typedef struct slm_tuf_role_keys {
    const slm_key *const *keys;  /* private keys (sign) or public (init lists them) */
    int n;
    int threshold;               /* init only */
} slm_tuf_role_keys;
/* Canonical JSON (OLPC) of a cJSON tree (passed as void * so that this face
 * does not need cJSON); malloc'd, NULL when there is none (floats, duplicates). */
char *slm_tuf_canonical(const void *cjson);
/* Root v1 (signed by the root role's keys, which must be private). */
int slm_tuf_init(const char *repo, const slm_tuf_role_keys roles[SLM_TUF_NROLES], int64_t now, int64_t expires,
                 slm_err *err) SLM_SG_CHECK;
/* Copy file to REPO/targets/name and publish targets (v+1, signed by
 * roles[TARGETS]), snapshot (v+1) and timestamp (v+1, with the snapshot's
 * length and SHA-256). expires[r]: absolute unix time per role. custom_json:
 * an object stored as the target's "custom" (or NULL). */
int slm_tuf_add(const char *repo, const char *file, const char *name, const slm_tuf_role_keys roles[SLM_TUF_NROLES],
                int64_t now, const int64_t expires[SLM_TUF_NROLES], const char *custom_json, slm_err *err) SLM_SG_CHECK;
typedef struct slm_tuf_result {
    uint64_t root_version, timestamp_version, snapshot_version, targets_version, length;
} slm_tuf_result;
/* The TUF client workflow over REPO (a directory: a mirror, an unpacked
 * download): trusted root from STATE (else root_path, then kept in STATE),
 * rotation through N+1.root.json (both thresholds), root not expired;
 * timestamp (threshold, no version rollback against STATE, not expired);
 * snapshot (exactly the length/hash/version the timestamp names, threshold,
 * no targets rollback, not expired); targets (the version the snapshot names,
 * threshold, not expired); then target: at most its signed length read,
 * SHA-256 compared, written to out_path atomically. Refusals: SLM_EVERIFY. */
int slm_tuf_fetch(const char *repo, const char *root_path, const char *state, const char *target,
                  const char *out_path, int64_t now, slm_tuf_result *res, slm_err *err) SLM_SG_CHECK;

/* The same workflow (steps up to targets, state updated alike), then `file`
 * (a target obtained elsewhere, e.g. pulled from an OCI registry) must have
 * exactly the length and SHA-256 that targets.json signs for `target`.
 * file NULL: the metadata only (the target must be listed; res->length). */
int slm_tuf_check_file(const char *repo, const char *root_path, const char *state, const char *target,
                       const char *file, int64_t now, slm_tuf_result *res, slm_err *err) SLM_SG_CHECK;

/* ---- helpers for the tools ---------------------------------------------- */
/* "30d", "12h", "90m", "45s", "365d" -> seconds. 0 on success. */
int slm_parse_duration(const char *s, int64_t *out);

#endif /* SLM_SIGNING_H */
