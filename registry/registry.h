/* registry/registry.h — the face of slmkit's registry client.
 *
 * Signed bundles (signing/) through OCI registries (CNCF Distribution, zot,
 * Harbor, GHCR, ...) with the OCI distribution API over libcurl: blob upload
 * with digest check, manifests, tags, Bearer token auth, referrers (with the
 * tag-schema fallback), and a pull that verifies every byte while it arrives,
 * resumes with HTTP Range after an interruption, keeps memory bounded and
 * lands atomically (temp file, fsync, rename).
 *
 * Layout of a pushed bundle (docs/registry.md): an OCI image manifest with
 * artifactType "application/vnd.cncf.model.manifest.v1+json" (CNCF ModelPack),
 * a ModelPack config, layer 0 = the bundle head (header with format 2, signed
 * manifest, signatures), layers 1.. = each payload file uncompressed (the GGUF
 * itself: its digest is the sha256 the signed manifest carries, and identical
 * models give one blob across releases, which registries store once).
 * Concatenating the layers gives a format-2 bundle ("stored": the same signed
 * head, the payload uncompressed), which verifies and installs as the zstd
 * bundle does. The signed manifest and signatures are also attached as a
 * referrer artifact (subject = the model manifest).
 *
 * Rules: uses signing/ only; never prints, never exits; returns slm status
 * codes with a one-line message in slm_err. Network problems are SLM_EIO,
 * digest/signature/rollback refusals SLM_EVERIFY, bad references SLM_EUSAGE,
 * malformed registry answers SLM_EINPUT.
 */
#ifndef SLM_REGISTRY_H
#define SLM_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "signing.h"

#define SLM_OCI_MANIFEST_MT "application/vnd.oci.image.manifest.v1+json"
#define SLM_OCI_INDEX_MT "application/vnd.oci.image.index.v1+json"
#define SLM_OCI_EMPTY_MT "application/vnd.oci.empty.v1+json"
#define SLM_MODEL_ARTIFACT_TYPE "application/vnd.cncf.model.manifest.v1+json" /* ModelPack */
#define SLM_MODEL_CONFIG_MT "application/vnd.cncf.model.config.v1+json"       /* ModelPack */
#define SLM_BUNDLE_HEAD_MT "application/vnd.slmkit.bundle.head.v1"
/* ModelPack: an unarchived, uncompressed weights file (config.format says gguf) */
#define SLM_MODEL_WEIGHT_RAW_MT "application/vnd.cncf.model.weight.v1.raw"
/* ModelPack: any further file of the bundle, unarchived and uncompressed */
#define SLM_MODEL_FILE_RAW_MT "application/vnd.cncf.model.weight.config.v1.raw"
#define SLM_SIGNATURE_ARTIFACT_TYPE "application/vnd.slmkit.bundle.signature.v1+json"
#define SLM_TUF_ARTIFACT_TYPE "application/vnd.slmkit.tuf.metadata.v1+json"
#define SLM_TUF_METADATA_MT "application/vnd.tuf.metadata.v1+json" /* one TUF role file */

/* host[:port]/repo/path[:tag][@sha256:<64 hex>] (no host part: refused). */
typedef struct slm_ref {
    char host[256];
    char repo[256];
    char tag[129];     /* "" when only a digest was given */
    char digest[72];   /* "sha256:<hex>" or "" */
} slm_ref;
int slm_ref_parse(const char *s, slm_ref *r, slm_err *err);

typedef struct slm_registry_opts {
    int plain_http;             /* http:// instead of https:// (loopback test registries) */
    const char *creds_file;     /* docker config.json format; NULL: $DOCKER_CONFIG/config.json or ~/.docker/config.json */
    long connect_timeout;       /* seconds (0: 10) */
    long stall_timeout;         /* seconds without at least 1 KiB/s before giving up (0: 30) */
    int retries;                /* resumed attempts after a cut connection (-1: 0; 0: default 3) */
    const char *const *allow_hosts; /* redirects may go to these hosts too (NULL-terminated or NULL) */
    const char *ca_file;        /* extra CA bundle (NULL: system) */
    /* pull/update only */
    const slm_root *root;       /* when set, the head is verified before any payload byte is fetched,
                                   and the whole bundle before it lands */
    uint64_t floor;             /* version must be above this (rollback) */
    int64_t now;                /* unix seconds for expiry checks (0: time(NULL)) */
    const char *user_agent;
} slm_registry_opts;

typedef struct slm_push_result {
    char manifest_digest[72];
    uint64_t manifest_size;
    int n_layers;
    int blobs_uploaded;         /* blobs the registry did not have yet */
    int blobs_existing;         /* blobs already there (deduplicated) */
    char payload_digest[72];    /* layer 1 (the model: sha256 of the GGUF) */
    int referrers_api;          /* 1: the registry answered the referrers API; 0: tag-schema fallback used */
    char referrer_digest[72];
} slm_push_result;

typedef struct slm_pull_result {
    char manifest_digest[72];
    uint64_t bytes_total;       /* bundle size */
    uint64_t bytes_downloaded;  /* transferred in this run */
    uint64_t resumed_from;      /* first resumed byte offset in the bundle (0: none) */
    int resumes;                /* Range requests made */
    uint64_t version;           /* signed version (when verified) */
    char name[129];
} slm_pull_result;

/* Push a bundle file under ref (a tag is required). */
int slm_registry_push(const char *bundle_path, const char *ref, const slm_registry_opts *o, slm_push_result *res,
                      slm_err *err) SLM_SG_CHECK;
/* Pull ref into out_path (the bundle in its stored form, format 2). Bytes arrive in
 * out_path.part (kept on failure; the next pull of the same manifest resumes
 * from it) and are hashed as they arrive; out_path appears (rename) only when
 * every layer digest matched and, with o->root, slm_bundle_verify passed. */
int slm_registry_pull(const char *ref, const char *out_path, const slm_registry_opts *o, slm_pull_result *res,
                      slm_err *err) SLM_SG_CHECK;

/* TUF metadata through the registry (docs/registry.md): push REPO/metadata's
 * N.root.json chain, targets, snapshot and timestamp as one artifact under ref's
 * tag (overwritten by every publish: the timestamp must stay fresh); pull them
 * into dir/metadata/ (each layer's digest checked, at most 4 MiB each, names
 * limited to those). *found = 0 when the tag does not exist (nothing written).
 * The files prove nothing by themselves: slm_tuf_check_file verifies them. */
int slm_registry_push_tuf(const char *repo_dir, const char *ref, const slm_registry_opts *o, char digest_out[72],
                          slm_err *err) SLM_SG_CHECK;
int slm_registry_pull_tuf(const char *ref, const char *dir, const slm_registry_opts *o, int *found,
                          slm_err *err) SLM_SG_CHECK;

/* For fuzzing and tests: parse a registry's image manifest / token answer /
 * WWW-Authenticate header. 0 on success. */
typedef struct slm_oci_layer {
    char media_type[128];
    char digest[72];
    uint64_t size;
} slm_oci_layer;
#define SLM_OCI_MAX_LAYERS 17
typedef struct slm_oci_manifest {
    char artifact_type[128];
    slm_oci_layer config;
    int n_layers;
    slm_oci_layer layers[SLM_OCI_MAX_LAYERS];
} slm_oci_manifest;
int slm_oci_manifest_parse(const char *json, size_t n, slm_oci_manifest *m, slm_err *err);
/* The TUF metadata artifact: an OCI manifest with artifactType SLM_TUF_ARTIFACT_TYPE whose
 * layers are SLM_TUF_METADATA_MT, each titled (org.opencontainers.image.title) N.root.json,
 * targets.json, snapshot.json or timestamp.json (no name twice), each at most 4 MiB. */
int slm_oci_tuf_manifest_parse(const char *json, size_t n, slm_oci_manifest *m, char names[][32], slm_err *err);
int slm_oci_token_parse(const char *json, size_t n, char *token, size_t cap, slm_err *err);
typedef struct slm_auth_challenge {
    char scheme[16];
    char realm[512], service[256], scope[512];
} slm_auth_challenge;
int slm_auth_challenge_parse(const char *header, slm_auth_challenge *c);

#endif /* SLM_REGISTRY_H */
