/* Image references, normalized the way Docker does:
 *   alpine            -> docker.io/library/alpine:latest
 *   user/app:1        -> docker.io/user/app:1
 *   localhost:5000/x  -> localhost:5000/x:latest
 *   x@sha256:...      -> digest reference (tag optional alongside it) */
#ifndef VMBOX_IMAGE_REF_H
#define VMBOX_IMAGE_REF_H

#include <stdbool.h>

#include "../lib/err.h"

struct image_ref {
  char *registry;   /* "docker.io", "localhost:5000", "127.0.0.1:5000" */
  char *repository; /* "library/alpine" */
  char *tag;        /* "latest" when neither tag nor digest was given; NULL if digest only */
  char *digest;     /* "sha256:..." or NULL */
};

int image_ref__parse(const char *s, struct image_ref *out, vmbox_error_t *err);
void image_ref__free(struct image_ref *r);
/* Full canonical name: "docker.io/library/alpine:latest" or "...@sha256:..." */
char *image_ref__canonical(const struct image_ref *r);
/* Docker's familiar short form for display: "alpine:latest", "localhost:5000/x:1". */
char *image_ref__familiar(const struct image_ref *r);
/* Repository with registry, no tag/digest: "docker.io/library/alpine". */
char *image_ref__name(const struct image_ref *r);
/* Registry host for API calls ("registry-1.docker.io" for docker.io). */
const char *image_ref__api_host(const struct image_ref *r);
/* Loopback registries speak plain HTTP, as Docker assumes. */
bool image_ref__is_loopback(const struct image_ref *r);

#endif
