/* The content store under the vmbox root:
 *
 *   ROOT/lock                      flock: shared for readers, exclusive for index writes
 *   ROOT/blobs/sha256/HEX          content-addressed blobs (manifests, configs, layers)
 *   ROOT/tmp/HEX.partial           in-progress downloads (resumed with Range)
 *   ROOT/images.json               the image index: names -> manifest/config digests
 *   ROOT/ext4/HEX.ext4             flattened disk per manifest digest (image/flatten.h)
 *
 * Every write goes to a temp file that is renamed into place, so a kill -9 at
 * any moment leaves at worst stray temp files, which store__open sweeps up. */
#ifndef VMBOX_IMAGE_STORE_H
#define VMBOX_IMAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/err.h"

struct store;

/* One image as the index records it.  `names` are canonical references
 * ("docker.io/library/alpine:latest"); an image may have several or none
 * (dangling).  The image id is its config digest, as in Docker. */
struct image_record {
  char *id;              /* config digest "sha256:..." */
  char *manifest_digest; /* digest of the platform manifest stored in blobs/ */
  char *repo_digest;     /* "docker.io/library/alpine@sha256:..." or NULL (imported) */
  char **names;          /* NULL-terminated */
  char *platform;        /* "linux/amd64" */
  int64_t size;          /* sum of compressed layer sizes + config */
  int64_t created;       /* unix time the image was created (from config), 0 if unknown */
  int64_t added;         /* unix time it entered this store */
};
void image_record__free(struct image_record *r);
void image_record__list_free(struct image_record *v, size_t n);

/* Opens (creating) the store at root; sweeps stale temp files of dead processes. */
int store__open(const char *root, struct store **out, vmbox_error_t *err);
void store__close(struct store *s);
const char *store__root(const struct store *s);
/* Path of a subdirectory (created on demand) such as "ext4" or "boxes". */
char *store__dir(struct store *s, const char *sub, vmbox_error_t *err);

/* Blobs */
char *store__blob_path(const struct store *s, const char *digest);
bool store__has_blob(const struct store *s, const char *digest);
int store__read_blob(struct store *s, const char *digest, char **buf, size_t *len,
                     vmbox_error_t *err);
/* Stores a small in-memory blob (manifest, config) and returns its digest. */
int store__put_blob(struct store *s, const void *buf, size_t len, char **digest_out,
                    vmbox_error_t *err);

/* Streaming blob writer that hashes as it goes.  With an expected digest the
 * partial file is kept across interruptions (ROOT/tmp/HEX.partial) so a later
 * attempt can resume: blob_writer__offset() says where to resume from.  A
 * digest mismatch at commit deletes the partial and stores nothing. */
struct blob_writer;
int store__blob_begin(struct store *s, const char *expected_digest, struct blob_writer **out,
                      vmbox_error_t *err);
uint64_t blob_writer__offset(const struct blob_writer *w);
int blob_writer__write(struct blob_writer *w, const void *buf, size_t len, vmbox_error_t *err);
/* Drops what was written so far (the server ignored our Range request). */
int blob_writer__restart(struct blob_writer *w, vmbox_error_t *err);
/* Consumes w whether it succeeds or fails (no abort afterwards). */
int blob_writer__commit(struct blob_writer *w, char **digest_out, vmbox_error_t *err);
/* keep_partial: leave ROOT/tmp/HEX.partial for a later resume. */
void blob_writer__abort(struct blob_writer *w, bool keep_partial);

/* Image index (ROOT/images.json).  Writers take the exclusive lock, read,
 * modify, write a temp file and rename. */
/* Adds or updates the image with rec->id, moving rec->names from any other image. */
int store__image_put(struct store *s, const struct image_record *rec, vmbox_error_t *err);
/* Looks up by canonical name, by id or unique id prefix (with or without "sha256:"). */
int store__image_get(struct store *s, const char *name_or_id, struct image_record *out,
                     vmbox_error_t *err);
int store__image_list(struct store *s, struct image_record **out, size_t *n, vmbox_error_t *err);
/* Untags `name`; removes the image record when no names are left (or by id with force). */
int store__image_remove(struct store *s, const char *name_or_id, bool force, vmbox_error_t *err);
/* Deletes blobs and ext4 files no image references; reports what it freed. */
int store__prune(struct store *s, uint64_t *freed_bytes, size_t *freed_blobs, vmbox_error_t *err);

/* Exclusive store lock for multi-step updates (pull's final index write, prune). */
int store__lock(struct store *s, bool exclusive, vmbox_error_t *err);
void store__unlock(struct store *s);

#endif
