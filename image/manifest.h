/* OCI / Docker schema2 manifests and indexes, and image configs (jansson). */
#ifndef VMBOX_IMAGE_MANIFEST_H
#define VMBOX_IMAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/err.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_FOREIGN_LAYER "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* The Accept header value for manifest requests. */
#define MANIFEST_ACCEPT                                                                            \
  MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST

struct descriptor {
  char *media_type;
  char *digest;
  int64_t size;
  char *platform; /* "os/arch[/variant]" for index entries, else NULL */
};

enum manifest_kind { MANIFEST_IMAGE, MANIFEST_INDEX };

struct manifest {
  enum manifest_kind kind;
  char *media_type;
  struct descriptor config;  /* MANIFEST_IMAGE */
  struct descriptor *layers; /* MANIFEST_IMAGE */
  size_t n_layers;
  struct descriptor *manifests; /* MANIFEST_INDEX */
  size_t n_manifests;
};

/* content_type may be NULL (then mediaType inside the JSON decides).  Rejects
 * unknown media types, schema1, and descriptors with malformed digests. */
int manifest__parse(const char *json, size_t len, const char *content_type, struct manifest *out,
                    vmbox_error_t *err);
void manifest__free(struct manifest *m);
/* Picks the index entry for platform "os/arch[/variant]" (variant optional). */
const struct descriptor *manifest__select(const struct manifest *idx, const char *platform);
/* True for the layer media types we can unpack (tar, gzip, zstd, docker gzip). */
int manifest__layer_supported(const char *media_type);
/* Host default platform, "linux/amd64" on x86_64. */
const char *manifest__host_platform(void);

struct image_config {
  char *os, *architecture, *variant;
  char **env;        /* "K=V" */
  char **entrypoint; /* NULL when unset */
  char **cmd;        /* NULL when unset */
  char *working_dir;
  char *user;
  char **exposed_ports; /* "80/tcp" */
  char **diff_ids;
  int64_t created; /* unix seconds, 0 if absent */
};
int image_config__parse(const char *json, size_t len, struct image_config *out, vmbox_error_t *err);
void image_config__free(struct image_config *c);

#endif
