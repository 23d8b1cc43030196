/* The OCI distribution v2 client (libcurl): auth, manifests, parallel blob
 * downloads with resume, and the pull that ties them to the store. */
#ifndef VMBOX_IMAGE_REGISTRY_H
#define VMBOX_IMAGE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "../lib/err.h"
#include "ref.h"
#include "store.h"

/* Progress of one blob; the CLI renders it (only on a TTY). */
struct pull_progress {
  const char *digest;
  uint64_t done, total;
  enum { PULL_WAITING, PULL_DOWNLOADING, PULL_DONE, PULL_EXISTS } state;
};
typedef void (*pull_progress_fn)(const struct pull_progress *p, size_t n, void *opaque);

struct pull_opts {
  const char *platform;       /* NULL: host platform */
  char **insecure_registries; /* plain-HTTP hosts besides loopback */
  pull_progress_fn progress;  /* may be NULL */
  void *progress_opaque;
  int max_parallel;   /* 0: default (4) */
  bool skip_flatten;  /* don't build the cached ext4 disk before indexing */
  uint64_t disk_size; /* flatten_opts.disk_size; 0: automatic */
};

/* Pulls ref into the store, builds its ext4 disk (flatten__image, unless
 * opts->skip_flatten) and records it in the index.  *out is filled with the
 * resulting image record.  On failure the store is as before, except for
 * partial downloads kept for a later resume. */
int registry__pull(struct store *s, const struct image_ref *ref, const struct pull_opts *opts,
                   struct image_record *out, vmbox_error_t *err);

/* Checks credentials against the registry (GET /v2/ with Basic, following a
 * Bearer challenge) and, if they work, saves them. */
int registry__login(const char *registry, const char *user, const char *password,
                    char **insecure_registries, vmbox_error_t *err);
/* Returns 0 when credentials were removed, 1 when there were none. */
int registry__logout(const char *registry, vmbox_error_t *err);

#endif
