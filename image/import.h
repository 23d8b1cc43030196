/* vmbox import: OCI image layouts (directory or tar), `docker save` archives,
 * and plain rootfs tars (which become a one-layer image).  No network. */
#ifndef VMBOX_IMAGE_IMPORT_H
#define VMBOX_IMAGE_IMPORT_H

#include "../lib/err.h"
#include "store.h"

/* name may be NULL: then the archive's own ref name (OCI annotation
 * org.opencontainers.image.ref.name, docker save RepoTags) is used if any. */
int import__path(struct store *s, const char *path, const char *name, const char *platform,
                 struct image_record *out, vmbox_error_t *err);

/* The busybox image embedded in the vmbox binary (built from Debian's
 * busybox-static).  Imports it as docker.io/library/busybox:latest. */
int import__builtin_busybox(struct store *s, struct image_record *out, vmbox_error_t *err);

#endif
