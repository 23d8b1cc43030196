/* Shared by the import formats (import_oci.c, import_docker.c,
 * import_rootfs.c) and the driver (import.c).  Not for use elsewhere. */
#ifndef VMBOX_IMAGE_IMPORT_INT_H
#define VMBOX_IMAGE_IMPORT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "import_src.h"
#include "store.h"

struct import {
  struct store *s;
  struct isrc src;
  const char *platform; /* --platform, or NULL */
  const char *ref_name; /* TAG of "DIR:TAG", or NULL */
  char *name;           /* canonical name to give the image, or NULL (dangling) */
  bool user_name;       /* name came from the command line */
  /* staged blobs: committed only when the whole image checked out */
  struct blob_writer **writers;
  size_t n_writers;
  char **small;
  size_t *small_len, n_small;
  /* the image */
  char *manifest, *manifest_digest;
  size_t manifest_len;
  char *config, *config_digest;
  size_t config_len;
  int64_t size;           /* sum of layer sizes */
  unsigned char magic[8]; /* first bytes of what import__stage last read */
};

/* Formats: each fills manifest/config (+digests), size and, unless the user
 * named the image, name. */
int import__oci(struct import *imp, vmbox_error_t *err);
int import__docker(struct import *imp, vmbox_error_t *err);
int import__rootfs(struct import *imp, vmbox_error_t *err);

/* Hashes a member (whole 0), the archive's raw bytes (1) or the archive
 * decompressed (2); with store, also stages the bytes as a blob.  expected
 * (may be NULL) is checked; *digest_out gets the actual digest. */
enum { STAGE_MEMBER, STAGE_RAW, STAGE_DECOMPRESSED };
int import__stage(struct import *imp, const char *member, int whole, bool store,
                  const char *expected, char **digest_out, int64_t *size_out, vmbox_error_t *err);
void import__stage_mem(struct import *imp, const char *buf, size_t len);
int import__read_json(struct import *imp, const char *member, const char *expected, char **buf,
                      size_t *len, vmbox_error_t *err);
char *import__blob_member(const char *digest);
/* Takes a manifest the importer made up (docker, rootfs): digest + stage. */
void import__set_manifest(struct import *imp, char *json);
/* Likewise for a made-up config. */
void import__set_config(struct import *imp, char *json);
/* Compact, key-ordered JSON text of j (decref'd). */
char *import__dump(json_t *j);

char *import__normalize_name(const char *name, vmbox_error_t *err);
char *import__archive_name(const char *s);
int import__finish(struct import *imp, struct image_record *out, vmbox_error_t *err);
void import__cleanup(struct import *imp);

#endif
