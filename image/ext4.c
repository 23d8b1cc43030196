/* ext4 writer over libext2fs; see ext4.h for the shape of it. */
#include "ext4.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/util.h"

#define BLOCK_SIZE 4096
#define DATA_BUF (1u << 20)
#define MAX_LINKS 65000

struct ext4 {
  ext2_filsys fs;
  struct ext4_node *root;
  struct ext4_node **buckets;
  size_t nbuckets, nnodes;
  uint32_t *nlink; /* per inode, for hardlinks */
  uint32_t next_ino, max_ino;
  char *buf;
  uint64_t written;
};

/* Running out of room is ENOSPC so callers can tell it from corruption. */
static int e2err(vmbox_error_t *err, errcode_t rc, const char *what)
{
  bool full = rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL ||
              rc == EXT2_ET_DIR_NO_SPACE;
  return vmbox_error_set(err, full ? ENOSPC : 0, "ext4: %s: %s", what, error_message(rc));
}

/* --- the in-memory tree ------------------------------------------------------ */

static uint32_t name_hash(const struct ext4_node *parent, const char *name, size_t len)
{
  uint64_t h = 1469598103934665603ull ^ (uintptr_t)parent;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
  return (uint32_t)(h ^ (h >> 32));
}

static void hash_grow(struct ext4 *fs)
{
  size_t n = fs->nbuckets ? fs->nbuckets * 2 : 4096;
  struct ext4_node **b = xcalloc(n, sizeof(*b));
  for (size_t i = 0; i < fs->nbuckets; i++) {
    struct ext4_node *e = fs->buckets[i], *next;
    for (; e; e = next) {
      next = e->hnext;
      e->hnext = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(fs->buckets);
  fs->buckets = b;
  fs->nbuckets = n;
}

struct ext4_node *ext4__root(struct ext4 *fs)
{
  return fs->root;
}

struct ext4_node *ext4__lookup(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len)
{
  uint32_t h = name_hash(dir, name, len);
  for (struct ext4_node *e = fs->buckets[h & (fs->nbuckets - 1)]; e; e = e->hnext)
    if (e->hash == h && e->parent == dir && e->namelen == len && !memcmp(e->name, name, len))
      return e;
  return NULL;
}

static struct ext4_node *node_add(struct ext4 *fs, struct ext4_node *dir, const char *name,
                                  size_t len, uint32_t mode, uint32_t ino, uint32_t layer)
{
  if (fs->nnodes >= fs->nbuckets)
    hash_grow(fs);
  struct ext4_node *n = xcalloc(1, sizeof(*n) + len + 1);
  memcpy(n->name, name, len);
  n->namelen = (uint8_t)len;
  n->parent = dir ? dir : n;
  n->hash = name_hash(dir, name, len);
  n->mode = mode;
  n->ino = ino;
  n->layer = layer;
  if (dir) {
    n->hnext = fs->buckets[n->hash & (fs->nbuckets - 1)];
    fs->buckets[n->hash & (fs->nbuckets - 1)] = n;
    n->next = dir->first;
    if (dir->first)
      dir->first->prev = n;
    dir->first = n;
    if (S_ISDIR(mode))
      dir->nsubdirs++;
  }
  fs->nnodes++;
  return n;
}

static void node_drop(struct ext4 *fs, struct ext4_node *n)
{
  struct ext4_node *dir = n->parent;
  struct ext4_node **pp = &fs->buckets[n->hash & (fs->nbuckets - 1)];
  while (*pp != n)
    pp = &(*pp)->hnext;
  *pp = n->hnext;
  if (n->prev)
    n->prev->next = n->next;
  else
    dir->first = n->next;
  if (n->next)
    n->next->prev = n->prev;
  if (S_ISDIR(n->mode))
    dir->nsubdirs--;
  fs->nnodes--;
  free(n->target);
  free(n);
}

/* --- inodes ----------------------------------------------------------------- */

/* The kernel's encoding: two epoch bits extend 32-bit seconds past 2038. */
static void set_time(__u32 *t, __u32 *extra, int64_t sec, long nsec)
{
  *t = (__u32)sec;
  *extra = (__u32)((((uint64_t)(sec - (int32_t)sec)) >> 32) & 3) | (__u32)(nsec << 2);
}

static void meta_to_inode(struct ext2_inode_large *in, const struct ext4_meta *m)
{
  in->i_mode = (__u16)m->mode;
  in->i_uid = (__u16)m->uid;
  in->i_uid_high = (__u16)(m->uid >> 16);
  in->i_gid = (__u16)m->gid;
  in->i_gid_high = (__u16)(m->gid >> 16);
  in->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
  set_time(&in->i_mtime, &in->i_mtime_extra, m->mtime, m->mtime_ns);
  set_time(&in->i_atime, &in->i_atime_extra, m->atime, m->atime_ns);
  set_time(&in->i_ctime, &in->i_ctime_extra, m->ctime, m->ctime_ns);
  set_time(&in->i_crtime, &in->i_crtime_extra, m->mtime, m->mtime_ns);
}

/* An empty extent tree in i_block, so libext2fs maps the data with extents. */
static void init_extents(struct ext2_inode_large *in)
{
  struct ext3_extent_header *eh = (struct ext3_extent_header *)in->i_block;
  memset(in->i_block, 0, sizeof(in->i_block));
  eh->eh_magic = EXT3_EXT_MAGIC;
  eh->eh_max = (sizeof(in->i_block) - sizeof(*eh)) / sizeof(struct ext3_extent);
  in->i_flags |= EXT4_EXTENTS_FL;
}

static int write_inode(struct ext4 *fs, uint32_t ino, struct ext2_inode_large *in,
                       vmbox_error_t *err)
{
  errcode_t rc = ext2fs_write_inode_full(fs->fs, ino, (struct ext2_inode *)in, sizeof(*in));
  return rc ? e2err(err, rc, "write inode") : 0;
}

static int read_inode(struct ext4 *fs, uint32_t ino, struct ext2_inode_large *in,
                      vmbox_error_t *err)
{
  memset(in, 0, sizeof(*in));
  errcode_t rc = ext2fs_read_inode_full(fs->fs, ino, (struct ext2_inode *)in, sizeof(*in));
  return rc ? e2err(err, rc, "read inode") : 0;
}

/* Inodes are handed out in order and never reused: no bitmap searches. */
static int alloc_ino(struct ext4 *fs, bool dir, uint32_t *ino, vmbox_error_t *err)
{
  if (fs->next_ino > fs->max_ino) {
    vmbox_error_set(err, ENOSPC, "ext4: out of inodes (%u)", fs->max_ino);
    return vmbox_error_hint(err, "the image has more files than its size allows; pass a "
                                 "larger --disk-size");
  }
  *ino = fs->next_ino++;
  ext2fs_inode_alloc_stats2(fs->fs, *ino, +1, dir);
  return 0;
}

static int set_xattrs(struct ext4 *fs, uint32_t ino, const struct ext4_meta *m, vmbox_error_t *err)
{
  if (m->n_xattrs == 0)
    return 0;
  struct ext2_xattr_handle *h = NULL;
  errcode_t rc = ext2fs_xattrs_open(fs->fs, ino, &h);
  if (!rc)
    rc = ext2fs_xattrs_read(h);
  for (size_t i = 0; !rc && i < m->n_xattrs; i++) {
    rc = ext2fs_xattr_set(h, m->xattrs[i].name, m->xattrs[i].value, m->xattrs[i].len);
    if (rc) {
      ext2fs_xattrs_close(&h);
      return vmbox_error_set(err, 0, "ext4: set xattr %s: %s", m->xattrs[i].name,
                             error_message(rc));
    }
  }
  errcode_t rc2 = h ? ext2fs_xattrs_close(&h) : 0;
  if (rc || rc2)
    return e2err(err, rc ? rc : rc2, "write xattrs");
  return 0;
}

static int free_inode(struct ext4 *fs, uint32_t ino, bool dir, vmbox_error_t *err)
{
  struct ext2_inode_large in;
  if (read_inode(fs, ino, &in, err) < 0)
    return -1;
  errcode_t rc = 0;
  if (ext2fs_inode_has_valid_blocks2(fs->fs, (struct ext2_inode *)&in))
    rc = ext2fs_punch(fs->fs, ino, (struct ext2_inode *)&in, NULL, 0, ~0ULL);
  if (!rc && ext2fs_file_acl_block(fs->fs, (struct ext2_inode *)&in))
    rc = ext2fs_free_ext_attr(fs->fs, ino, &in);
  if (rc)
    return e2err(err, rc, "free inode");
  memset(&in, 0, sizeof(in));
  if (write_inode(fs, ino, &in, err) < 0)
    return -1;
  ext2fs_inode_alloc_stats2(fs->fs, ino, -1, dir);
  return 0;
}

static int set_links(struct ext4 *fs, uint32_t ino, uint32_t links, vmbox_error_t *err)
{
  struct ext2_inode_large in;
  if (read_inode(fs, ino, &in, err) < 0)
    return -1;
  in.i_links_count = (__u16)links;
  return write_inode(fs, ino, &in, err);
}

/* --- file data --------------------------------------------------------------- */

static bool block_is_zero(const char *p, size_t len)
{
  const uint64_t *w = (const uint64_t *)p;
  size_t i = 0;
  for (; i < len / 8; i++)
    if (w[i])
      return false;
  for (i *= 8; i < len; i++)
    if (p[i])
      return false;
  return true;
}

/* Writes the non-zero blocks of buf at pos: all-zero blocks stay holes, which is
 * how a 1 GiB file of zeros costs nothing (tar writers send the zeros). */
static errcode_t write_sparse(ext2_file_t f, uint64_t pos, const char *buf, size_t len)
{
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < BLOCK_SIZE ? len - off : BLOCK_SIZE;
    if (block_is_zero(buf + off, n)) {
      off += n;
      continue;
    }
    size_t run = off;
    while (run < len) {
      size_t m = len - run < BLOCK_SIZE ? len - run : BLOCK_SIZE;
      if (run != off && block_is_zero(buf + run, m))
        break;
      run += m;
    }
    errcode_t rc = ext2fs_file_llseek(f, pos + off, EXT2_SEEK_SET, NULL);
    unsigned int got = 0;
    if (!rc)
      rc = ext2fs_file_write(f, buf + off, (unsigned int)(run - off), &got);
    if (rc)
      return rc;
    off = run;
  }
  return 0;
}

static int write_data(struct ext4 *fs, uint32_t ino, ext4_read_fn read, void *ctx,
                      vmbox_error_t *err)
{
  ext2_file_t f = NULL;
  errcode_t rc = ext2fs_file_open(fs->fs, ino, EXT2_FILE_WRITE, &f);
  if (rc)
    return e2err(err, rc, "open file");
  uint64_t pos = 0;
  for (bool eof = false; !eof;) {
    size_t have = 0;
    while (have < DATA_BUF) {
      ssize_t r = read(ctx, fs->buf + have, DATA_BUF - have, err);
      if (r < 0) {
        ext2fs_file_close(f);
        return -1;
      }
      if (r == 0) {
        eof = true;
        break;
      }
      have += (size_t)r;
    }
    rc = write_sparse(f, pos, fs->buf, have);
    if (rc)
      break;
    pos += have;
  }
  if (!rc)
    rc = ext2fs_file_set_size2(f, pos);
  errcode_t rc2 = ext2fs_file_close(f);
  if (rc || rc2)
    return e2err(err, rc ? rc : rc2, "write file data");
  fs->written += pos;
  return 0;
}

/* --- entries ------------------------------------------------------------------ */

int ext4__mkdir(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
                const struct ext4_meta *m, uint32_t layer, struct ext4_node **out,
                vmbox_error_t *err)
{
  struct ext2_inode_large in;
  struct ext4_node *n = len ? ext4__lookup(fs, dir, name, len) : dir;
  if (n && S_ISDIR(n->mode)) {
    /* Dir over dir merges: the contents stay, the metadata is the new one's. */
    if (read_inode(fs, n->ino, &in, err) < 0)
      return -1;
    meta_to_inode(&in, m);
    if (write_inode(fs, n->ino, &in, err) < 0 || set_xattrs(fs, n->ino, m, err) < 0)
      return -1;
    n->mode = m->mode;
    if (n->layer != EXT4_LAYER_KEEP)
      n->layer = layer;
    *out = n;
    return 0;
  }
  if (n && ext4__remove(fs, n, err) < 0)
    return -1;
  uint32_t ino = 0;
  if (alloc_ino(fs, true, &ino, err) < 0)
    return -1;
  memset(&in, 0, sizeof(in));
  meta_to_inode(&in, m);
  in.i_links_count = 2;
  init_extents(&in);
  if (write_inode(fs, ino, &in, err) < 0 || set_xattrs(fs, ino, m, err) < 0)
    return -1;
  *out = node_add(fs, dir, name, len, m->mode, ino, layer);
  return 0;
}

static void encode_dev(struct ext2_inode_large *in, uint32_t major, uint32_t minor)
{
  if (major < 256 && minor < 256) {
    in->i_block[0] = major * 256 + minor;
  } else {
    in->i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
  }
}

struct str_reader {
  const char *s;
  size_t left;
};

static ssize_t str_read(void *ctx, void *buf, size_t len, vmbox_error_t *err)
{
  (void)err;
  struct str_reader *r = ctx;
  size_t n = len < r->left ? len : r->left;
  memcpy(buf, r->s, n);
  r->s += n;
  r->left -= n;
  return (ssize_t)n;
}

static int write_symlink(struct ext4 *fs, uint32_t ino, struct ext2_inode_large *in,
                         const char *target, vmbox_error_t *err)
{
  size_t tlen = strlen(target);
  if (tlen == 0 || tlen >= BLOCK_SIZE)
    return vmbox_error_set(err, 0, "symlink target of %zu bytes not supported", tlen);
  in->i_size = (__u32)tlen;
  if (tlen < sizeof(in->i_block)) {
    /* Fast symlink: the target lives in the inode itself. */
    memcpy(in->i_block, target, tlen);
    return write_inode(fs, ino, in, err);
  }
  init_extents(in);
  in->i_size = 0;
  if (write_inode(fs, ino, in, err) < 0)
    return -1;
  struct str_reader r = {target, tlen};
  return write_data(fs, ino, str_read, &r, err);
}

int ext4__mknod(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
                const struct ext4_meta *m, uint32_t layer, ext4_read_fn read, void *ctx,
                vmbox_error_t *err)
{
  struct ext4_node *old = ext4__lookup(fs, dir, name, len);
  if (old && ext4__remove(fs, old, err) < 0)
    return -1;
  uint32_t ino = 0;
  if (alloc_ino(fs, false, &ino, err) < 0)
    return -1;
  struct ext2_inode_large in;
  memset(&in, 0, sizeof(in));
  meta_to_inode(&in, m);
  in.i_links_count = 1;
  int r;
  switch (m->mode & S_IFMT) {
  case S_IFREG:
    init_extents(&in);
    r = write_inode(fs, ino, &in, err);
    if (r == 0 && read)
      r = write_data(fs, ino, read, ctx, err);
    break;
  case S_IFLNK: r = write_symlink(fs, ino, &in, m->target, err); break;
  case S_IFCHR:
  case S_IFBLK:
    encode_dev(&in, m->rdev_major, m->rdev_minor);
    r = write_inode(fs, ino, &in, err);
    break;
  case S_IFIFO:
  case S_IFSOCK: r = write_inode(fs, ino, &in, err); break;
  default: return vmbox_error_set(err, 0, "unsupported file type 0%o", m->mode & S_IFMT);
  }
  if (r < 0 || set_xattrs(fs, ino, m, err) < 0)
    return -1;
  struct ext4_node *n = node_add(fs, dir, name, len, m->mode, ino, layer);
  if (m->target)
    n->target = xstrdup(m->target);
  fs->nlink[ino] = 1;
  return 0;
}

int ext4__link(struct ext4 *fs, struct ext4_node *dir, const char *name, size_t len,
               struct ext4_node *target, uint32_t layer, vmbox_error_t *err)
{
  if (S_ISDIR(target->mode))
    return vmbox_error_set(err, 0, "hardlink to a directory");
  struct ext4_node *old = ext4__lookup(fs, dir, name, len);
  if (old == target) {
    old->layer = layer;
    return 0;
  }
  if (fs->nlink[target->ino] >= MAX_LINKS)
    return vmbox_error_set(err, EMLINK, "hardlink");
  /* "d" linking to "d/f": replacing d would delete the target itself. */
  for (struct ext4_node *p = target->parent; old && p != fs->root; p = p->parent)
    if (p == old)
      return vmbox_error_set(err, 0, "hardlink would replace its own target's directory");
  if (old && ext4__remove(fs, old, err) < 0)
    return -1;
  uint32_t ino = target->ino;
  if (set_links(fs, ino, ++fs->nlink[ino], err) < 0)
    return -1;
  struct ext4_node *n = node_add(fs, dir, name, len, target->mode, ino, layer);
  if (target->target)
    n->target = xstrdup(target->target);
  return 0;
}

int ext4__remove(struct ext4 *fs, struct ext4_node *n, vmbox_error_t *err)
{
  if (n == fs->root)
    return vmbox_error_set(err, 0, "cannot remove the root directory");
  if (S_ISDIR(n->mode)) {
    while (n->first)
      if (ext4__remove(fs, n->first, err) < 0)
        return -1;
    if (free_inode(fs, n->ino, true, err) < 0)
      return -1;
  } else if (--fs->nlink[n->ino] == 0) {
    if (free_inode(fs, n->ino, false, err) < 0)
      return -1;
  } else if (set_links(fs, n->ino, fs->nlink[n->ino], err) < 0) {
    return -1;
  }
  node_drop(fs, n);
  return 0;
}

uint64_t ext4__bytes_written(const struct ext4 *fs)
{
  return fs->written;
}

/* --- creating and finishing --------------------------------------------------- */

uint64_t ext4__journal_bytes(uint64_t size_bytes)
{
  int j = ext2fs_default_journal_size(size_bytes / BLOCK_SIZE);
  return j > 0 ? (uint64_t)j * BLOCK_SIZE : 0;
}

static void fill_params(struct ext2_super_block *p, uint64_t blocks, uint64_t inodes)
{
  memset(p, 0, sizeof(*p));
  ext2fs_blocks_count_set(p, blocks);
  p->s_log_block_size = 2; /* 4 KiB */
  p->s_rev_level = EXT2_DYNAMIC_REV;
  p->s_inode_size = 256;
  p->s_inodes_count = (__u32)inodes;
  p->s_feature_compat = EXT2_FEATURE_COMPAT_DIR_INDEX | EXT2_FEATURE_COMPAT_EXT_ATTR;
  p->s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS |
                          EXT4_FEATURE_INCOMPAT_FLEX_BG | EXT4_FEATURE_INCOMPAT_64BIT;
  p->s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
                           EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
                           EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE;
  p->s_log_groups_per_flex = 4;
  p->s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
  p->s_min_extra_isize = p->s_want_extra_isize =
      sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
}

/* What mke2fs does after laying out the groups: ids, reserved inodes, bad-block
 * inode, root and lost+found, journal. */
static int setup_fs(struct ext4 *fs, vmbox_error_t *err)
{
  ext2_filsys e = fs->fs;
  if (getrandom(e->super->s_uuid, sizeof(e->super->s_uuid), 0) < 0 ||
      getrandom(e->super->s_hash_seed, sizeof(e->super->s_hash_seed), 0) < 0)
    return vmbox_error_sys(err, "getrandom");
  e->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
  e->super->s_flags |= EXT2_FLAGS_SIGNED_HASH; /* x86's char; what mke2fs picks there */
  e->super->s_max_mnt_count = (__u16)-1;
  e->super->s_mkfs_time = e->super->s_wtime = (__u32)time(NULL);
  errcode_t rc = ext2fs_allocate_tables(e);
  if (rc)
    return e2err(err, rc, "allocate group tables");
  ext2fs_mark_inode_bitmap2(e->inode_map, EXT2_BAD_INO);
  ext2fs_inode_alloc_stats2(e, EXT2_BAD_INO, +1, 0);
  if ((rc = ext2fs_update_bb_inode(e, NULL)))
    return e2err(err, rc, "bad block inode");
  for (uint32_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(e->super); i++)
    ext2fs_inode_alloc_stats2(e, i, +1, 0);
  fs->next_ino = EXT2_FIRST_INODE(e->super);
  fs->max_ino = e->super->s_inodes_count;
  fs->nlink = xcalloc((size_t)fs->max_ino + 1, sizeof(*fs->nlink));

  struct ext2_inode_large in;
  memset(&in, 0, sizeof(in));
  struct ext4_meta m = {.mode = S_IFDIR | 0755};
  meta_to_inode(&in, &m);
  in.i_links_count = 2;
  init_extents(&in);
  ext2fs_inode_alloc_stats2(e, EXT2_ROOT_INO, +1, 1);
  if (write_inode(fs, EXT2_ROOT_INO, &in, err) < 0)
    return -1;
  hash_grow(fs);
  fs->root = node_add(fs, NULL, "", 0, m.mode, EXT2_ROOT_INO, 0);
  struct ext4_node *lf;
  m.mode = S_IFDIR | 0700;
  if (ext4__mkdir(fs, fs->root, "lost+found", 10, &m, EXT4_LAYER_KEEP, &lf, err) < 0)
    return -1;
  int jblocks = ext2fs_default_journal_size(ext2fs_blocks_count(e->super));
  if (jblocks > 0 &&
      (rc = ext2fs_add_journal_inode2(e, (blk_t)jblocks, ~0ULL,
                                      EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK)))
    return e2err(err, rc, "create journal");
  return 0;
}

int ext4__create(const char *path, uint64_t size_bytes, uint64_t inodes, struct ext4 **out,
                 vmbox_error_t *err)
{
  uint64_t blocks = size_bytes / BLOCK_SIZE;
  {
    /* The file is sized up front: the kernel wants the device as big as the fs,
     * and whatever we never write stays a hole (the inode tables included). */
    cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
      return vmbox_error_sys(err, "create %s", path);
    if (ftruncate(fd, (off_t)(blocks * BLOCK_SIZE)) < 0)
      return vmbox_error_sys(err, "size %s", path);
  }
  struct ext2_super_block p;
  fill_params(&p, blocks, inodes);
  struct ext4 *fs = xcalloc(1, sizeof(*fs));
  errcode_t rc =
      ext2fs_initialize(path, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &p, unix_io_manager, &fs->fs);
  if (rc) {
    free(fs);
    return vmbox_error_set(err, 0, "ext4: create filesystem in %s: %s", path, error_message(rc));
  }
  fs->buf = xmalloc(DATA_BUF);
  if (setup_fs(fs, err) < 0) {
    ext4__abort(fs);
    return vmbox_error_wrap(err, "%s", path);
  }
  *out = fs;
  return 0;
}

static uint8_t dirent_type(uint32_t mode)
{
  switch (mode & S_IFMT) {
  case S_IFREG: return EXT2_FT_REG_FILE;
  case S_IFDIR: return EXT2_FT_DIR;
  case S_IFCHR: return EXT2_FT_CHRDEV;
  case S_IFBLK: return EXT2_FT_BLKDEV;
  case S_IFIFO: return EXT2_FT_FIFO;
  case S_IFSOCK: return EXT2_FT_SOCK;
  case S_IFLNK: return EXT2_FT_SYMLINK;
  }
  return EXT2_FT_UNKNOWN;
}

struct dirbuf {
  char *p;
  size_t len, cap;
  size_t last; /* offset of the last entry in the current block */
};

/* Appends one linear directory entry; the last one of a block takes up the rest. */
static void dirbuf_add(struct dirbuf *b, uint32_t ino, const char *name, size_t len, uint8_t type)
{
  size_t need = 8 + ((len + 3) & ~(size_t)3);
  size_t room = BLOCK_SIZE - b->len % BLOCK_SIZE;
  if (b->len && b->len % BLOCK_SIZE == 0)
    room = 0;
  if (b->len == 0 || need > room) {
    if (b->len) { /* stretch the previous block's last entry to the block end */
      struct ext2_dir_entry_2 *last = (void *)(b->p + b->last);
      last->rec_len = (__u16)(last->rec_len + room);
      b->len += room;
    }
    if (b->len + BLOCK_SIZE > b->cap) {
      b->cap = b->cap ? b->cap * 2 : BLOCK_SIZE * 4;
      b->p = xrealloc(b->p, b->cap);
    }
    memset(b->p + b->len, 0, BLOCK_SIZE);
  }
  struct ext2_dir_entry_2 *d = (void *)(b->p + b->len);
  d->inode = ino;
  d->rec_len = (__u16)need;
  d->name_len = (__u8)len;
  d->file_type = type;
  memcpy(d->name, name, len);
  b->last = b->len;
  b->len += need;
}

static int write_dir(struct ext4 *fs, struct ext4_node *dir, struct dirbuf *b, vmbox_error_t *err)
{
  b->len = 0;
  dirbuf_add(b, dir->ino, ".", 1, EXT2_FT_DIR);
  dirbuf_add(b, dir->parent->ino, "..", 2, EXT2_FT_DIR);
  for (struct ext4_node *c = dir->first; c; c = c->next)
    dirbuf_add(b, c->ino, c->name, c->namelen, dirent_type(c->mode));
  size_t room = BLOCK_SIZE - b->len % BLOCK_SIZE;
  if (room != BLOCK_SIZE) {
    struct ext2_dir_entry_2 *last = (void *)(b->p + b->last);
    last->rec_len = (__u16)(last->rec_len + room);
    b->len += room;
  }
  /* DIR_NLINK: past the 16-bit limit the count is 1, "many". */
  uint32_t links = 2 + dir->nsubdirs;
  if (set_links(fs, dir->ino, links >= MAX_LINKS ? 1 : links, err) < 0)
    return -1;
  struct str_reader r = {b->p, b->len};
  uint64_t before = fs->written;
  int ret = write_data(fs, dir->ino, str_read, &r, err);
  fs->written = before;
  return ret;
}

static int write_dirs(struct ext4 *fs, struct ext4_node *dir, struct dirbuf *b, vmbox_error_t *err)
{
  if (write_dir(fs, dir, b, err) < 0)
    return -1;
  for (struct ext4_node *c = dir->first; c; c = c->next)
    if (S_ISDIR(c->mode) && write_dirs(fs, c, b, err) < 0)
      return -1;
  return 0;
}

static void free_tree(struct ext4 *fs)
{
  for (size_t i = 0; i < fs->nbuckets; i++) {
    struct ext4_node *e = fs->buckets[i], *next;
    for (; e; e = next) {
      next = e->hnext;
      free(e->target);
      free(e);
    }
  }
  if (fs->root)
    free(fs->root);
  free(fs->buckets);
  free(fs->nlink);
  free(fs->buf);
  free(fs);
}

int ext4__finish(struct ext4 *fs, vmbox_error_t *err)
{
  struct dirbuf b = {0};
  int ret = write_dirs(fs, fs->root, &b, err);
  free(b.p);
  if (ret < 0) {
    ext4__abort(fs);
    return -1;
  }
  errcode_t rc = ext2fs_close_free(&fs->fs);
  free_tree(fs);
  return rc ? e2err(err, rc, "close filesystem") : 0;
}

void ext4__abort(struct ext4 *fs)
{
  if (!fs)
    return;
  if (fs->fs)
    ext2fs_free(fs->fs);
  free_tree(fs);
}
