/* What store.c (blobs, locks, prune) and index.c (images.json) share.
 * Nothing outside the store includes this. */
#ifndef VMBOX_IMAGE_STORE_PRIV_H
#define VMBOX_IMAGE_STORE_PRIV_H

#include <pthread.h>
#include <stdbool.h>

#include "store.h"

struct store {
  char *root;
  /* ROOT/lock: the index lock.  Re-entrant within the process (pull takes it
   * around its final index write, which calls store__image_put). */
  pthread_mutex_t mu; /* recursive; held while lock_depth > 0 */
  int lock_fd;
  int lock_depth;
  bool lock_excl;
  /* ROOT/gc.lock, held shared from this process's first blob write until the
   * index references those blobs (store__image_put) or the store closes, so a
   * concurrent prune never deletes blobs of an import or pull in progress. */
  pthread_mutex_t gc_mu;
  int gc_fd;
};

/* Takes the shared gc lock if this store does not hold it yet. */
int store__gc_hold(struct store *s, vmbox_error_t *err);
/* Drops it: everything written so far is now referenced by the index. */
void store__gc_release(struct store *s);

/* Index internals used by prune (caller holds the exclusive index lock). */
int index__load(struct store *s, struct image_record **out, size_t *n, vmbox_error_t *err);
int index__save(struct store *s, const struct image_record *v, size_t n, vmbox_error_t *err);

#endif
