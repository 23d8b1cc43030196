/* Finding an image the way a user names it: "alpine", "alpine:3.19",
 * "localhost:5000/app@sha256:...", a full id or a unique id prefix. */
#ifndef VMBOX_IMAGE_LOOKUP_H
#define VMBOX_IMAGE_LOOKUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../lib/err.h"
#include "store.h"

/* Like store__image_get (key is a canonical name, id or id prefix) but "not
 * found" is not an error: returns 1 found, 0 not found, -1 on error (corrupt
 * index, ambiguous prefix). */
int store__image_find(struct store *s, const char *key, struct image_record *out,
                      vmbox_error_t *err);

/* Resolves what a user typed: a reference (normalized with image/ref.h), a
 * repo digest, or an id / unique id prefix.  Returns 1 found, 0 not found, -1 on
 * error.  *canonical (may be NULL) receives the normalized reference, or NULL
 * when the input is no valid reference. */
int image__find(struct store *s, const char *user_ref, struct image_record *out, char **canonical,
                vmbox_error_t *err);

/* image__find, then: if the reference is docker.io/library/busybox:latest and
 * the store lacks it, imports the busybox built into vmbox.  Returns 1 found
 * (or imported), 0 not found (the caller pulls, or reports "No such image"),
 * -1 on error.  This is what `vmbox run IMAGE` uses before deciding to pull. */
int image__resolve(struct store *s, const char *user_ref, struct image_record *out,
                   vmbox_error_t *err);

/* True when the image is the one vmbox can provide without a registry. */
bool image__is_builtin_ref(const char *canonical);

/* The stable JSON form of an image (`images --format json`, `import --format
 * json`): id, names, repo_digest, manifest_digest, platform, size, created,
 * added (unix seconds, as `pull --format json`). */
json_t *image_record__to_json(const struct image_record *r);
/* "2024-01-02T03:04:05Z" (thread-local buffer), or NULL for 0. */
const char *image__rfc3339(int64_t t);
/* Docker's short display form of a canonical name ("alpine:latest"). */
char *image__familiar(const char *canonical);
/* Path of the image's flattened disk if it has been built, else NULL. */
char *image__disk_path(struct store *s, const struct image_record *r);

/* Like store__prune, but returns 1 at once instead of waiting when another
 * vmbox holds blobs not yet in the index (rmi frees space opportunistically). */
int store__prune_nowait(struct store *s, uint64_t *freed_bytes, size_t *freed_blobs,
                        vmbox_error_t *err);

#endif
