/* A write-once ext4 image built with libext2fs.  The directory tree lives in
 * memory while layers are applied (whiteouts and replacements are then just
 * pointer updates and lookups never scan directory blocks); file inodes and
 * their data go to the image at once, and directory blocks are written in one
 * pass by ext4__finish.  Nothing here follows symlinks: the layer reader
 * resolves paths inside the image root. */
#ifndef VMBOX_IMAGE_EXT4_H
#define VMBOX_IMAGE_EXT4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/err.h"

struct ext4;

/* One name in the tree.  Several nodes share an inode for hardlinks.  Owned by
 * struct ext4; callers read the fields but change them only through ext4__*. */
struct ext4_node {
  struct ext4_node *parent;              /* root's parent is root */
  struct ext4_node *hnext;               /* hash chain (parent, name) */
  struct ext4_node *first, *next, *prev; /* children (dirs) and siblings */
  char *target;                          /* symlink target */
  uint32_t ino;
  uint32_t hash;
  uint32_t mode;  /* S_IFMT | permissions */
  uint32_t layer; /* last layer that wrote this name (opaque dirs keep these) */
  uint32_t nsubdirs;
  uint8_t namelen;
  char name[];
};

/* The layer stamp of lost+found: no layer's whiteout or opaque marker hides
 * it, since e2fsck wants it. */
#define EXT4_LAYER_KEEP UINT32_MAX

struct ext4_xattr {
  const char *name;
  const void *value;
  size_t len;
};

/* What a tar header says about an entry. */
struct ext4_meta {
  uint32_t mode; /* S_IFMT | permissions */
  uint32_t uid, gid;
  int64_t mtime, atime, ctime;
  long mtime_ns, atime_ns, ctime_ns;
  uint32_t rdev_major, rdev_minor;
  const char *target; /* symlinks */
  const struct ext4_xattr *xattrs;
  size_t n_xattrs;
};

/* Creates an empty ext4 (root, lost+found, journal) of size_bytes with room for
 * `inodes` inodes in a file that must not exist yet. */
int ext4__create(const char *path, uint64_t size_bytes, uint64_t inodes, struct ext4 **out,
                 vmbox_error_t *err);
/* Writes the directories and closes the image; frees fs in every case. */
int ext4__finish(struct ext4 *fs, vmbox_error_t *err);
/* Drops everything without finishing the image (the caller deletes the file). */
void ext4__abort(struct ext4 *fs);

struct ext4_node *ext4__root(struct ext4 *fs);
struct ext4_node *ext4__lookup(struct ext4 *fs, struct ext4_node *dir, const char *name,
                               size_t len);

/* Creates a directory, or updates the metadata of an existing one (merge). */
int ext4__mkdir(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
                const struct ext4_meta *m, uint32_t layer, struct ext4_node **out,
                vmbox_error_t *err);
/* Creates a non-directory (any existing name is removed first).  Regular file
 * data comes from read() until it returns 0; all-zero blocks stay holes. */
typedef ssize_t (*ext4_read_fn)(void *ctx, void *buf, size_t len, vmbox_error_t *err);
int ext4__mknod(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
                const struct ext4_meta *m, uint32_t layer, ext4_read_fn read, void *ctx,
                vmbox_error_t *err);
/* Adds a hardlink to target's inode (replacing any existing name). */
int ext4__link(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
               struct ext4_node *target, uint32_t layer, vmbox_error_t *err);
/* Removes a name (recursively for directories), freeing inodes at 0 links. */
int ext4__remove(struct ext4 *fs, struct ext4_node *node, vmbox_error_t *err);

/* Bytes of regular file data written so far (for the content bound). */
uint64_t ext4__bytes_written(const struct ext4 *fs);
/* Blocks the journal of a filesystem of size_bytes takes (for sizing). */
uint64_t ext4__journal_bytes(uint64_t size_bytes);

#endif
