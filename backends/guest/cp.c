/* vmbox cp inside the guest: a small ustar writer (cp out) and reader (cp
 * in), since a static init has no libarchive.  The host side is
 * backends/kvm/session.c, which turns the stream into docker cp's
 * semantics with backends/copy.c.
 *
 * Written: directories, regular files (hard links as copies), symlinks;
 * names or link targets over 100 bytes as GNU 'L'/'K' records.  Read:
 * those, hard links, and the pax 'x' headers libarchive writes for long
 * names (path, linkpath, size); anything else is skipped.  Entries are
 * created relative to their parent's fd, opened component by component
 * with O_NOFOLLOW, and ".." is refused: nothing lands outside the target
 * directory, whatever symlinks the box holds. */
#include "cp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"

#define BLOCK 512
#define META_MAX 65536 /* a pax header or a GNU long name */

/* ---- out: the box's files as a tar stream of DATA records -------------------- */

struct tout {
  int fd;
  uint8_t buf[CHAN_MAX_PAYLOAD];
  size_t len;
};

static void out_bytes(struct tout *o, const void *p, size_t n)
{
  const uint8_t *b = p;
  while (n) {
    size_t k = sizeof(o->buf) - o->len < n ? sizeof(o->buf) - o->len : n;
    memcpy(o->buf + o->len, b, k);
    o->len += k;
    b += k;
    n -= k;
    if (o->len == sizeof(o->buf)) {
      rec_send(o->fd, CHAN_MAX_PAYLOAD, CHAN_G_DATA, o->buf, o->len);
      o->len = 0;
    }
  }
}

/* w-1 octal digits and a NUL, as ustar wants (files of 8 GiB and more do
 * not fit: not supported). */
static void octal(char *dst, size_t w, unsigned long long v)
{
  dst[w - 1] = '\0';
  for (size_t i = w - 1; i-- > 0; v >>= 3)
    dst[i] = (char)('0' + (v & 7));
}

static void header(struct tout *o, const char *name, const char *link, const struct stat *st,
                   char type, unsigned long long size)
{
  char h[BLOCK];
  memset(h, 0, sizeof(h));
  snprintf(h, 100, "%s", name);
  octal(h + 100, 8, st->st_mode & 07777);
  octal(h + 108, 8, st->st_uid & 07777777);
  octal(h + 116, 8, st->st_gid & 07777777);
  octal(h + 124, 12, size);
  octal(h + 136, 12, st->st_mtime > 0 ? (unsigned long long)st->st_mtime : 0);
  h[156] = type;
  if (link)
    snprintf(h + 157, 100, "%s", link);
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof(h); i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  out_bytes(o, h, sizeof(h));
}

static void pad(struct tout *o, unsigned long long n)
{
  static const uint8_t zero[BLOCK];
  if (n % BLOCK)
    out_bytes(o, zero, BLOCK - n % BLOCK);
}

/* GNU long name ('L') or link ('K') ahead of the real header. */
static void long_meta(struct tout *o, char type, const char *s)
{
  struct stat z = {0};
  size_t n = strlen(s) + 1;
  header(o, "././@LongLink", NULL, &z, type, n);
  out_bytes(o, s, n);
  pad(o, n);
}

static void entry(struct tout *o, const char *name, const char *link, const struct stat *st,
                  char type, unsigned long long size)
{
  if (strlen(name) >= 100)
    long_meta(o, 'L', name);
  if (link && strlen(link) >= 100)
    long_meta(o, 'K', link);
  header(o, name, link, st, type, size);
}

static int put_file(struct tout *o, int pfd, const char *name, const char *path,
                    const struct stat *st)
{
  int fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  entry(o, path, NULL, st, '0', (unsigned long long)st->st_size);
  static uint8_t buf[65536];
  unsigned long long left = (unsigned long long)st->st_size;
  while (left) {
    ssize_t n = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) { /* it shrank: the header promised `left` more bytes */
      memset(buf, 0, sizeof(buf));
      n = (ssize_t)(left < sizeof(buf) ? left : sizeof(buf));
    }
    out_bytes(o, buf, (size_t)n);
    left -= (unsigned long long)n;
  }
  close(fd);
  pad(o, (unsigned long long)st->st_size);
  return 0;
}

static int walk(struct tout *o, int pfd, const char *name, const char *path, bool follow, char *err,
                size_t cap);

static int put_dir(struct tout *o, int pfd, const char *name, const char *path,
                   const struct stat *st, char *err, size_t cap)
{
  char *dpath = malloc(strlen(path) + 2);
  if (dpath == NULL)
    return -1;
  sprintf(dpath, "%s/", path);
  entry(o, dpath, NULL, st, '5', 0);
  free(dpath);
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    snprintf(err, cap, "open %s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  int r = 0;
  struct dirent *de;
  while (r == 0 && (de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char *child = malloc(strlen(path) + strlen(de->d_name) + 2);
    if (child == NULL)
      break;
    sprintf(child, "%s/%s", path, de->d_name);
    r = walk(o, dirfd(d), de->d_name, child, false, err, cap);
    free(child);
  }
  closedir(d);
  return r;
}

static int walk(struct tout *o, int pfd, const char *name, const char *path, bool follow, char *err,
                size_t cap)
{
  struct stat st;
  if (fstatat(pfd, name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0) {
    snprintf(err, cap, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (S_ISDIR(st.st_mode))
    return put_dir(o, pfd, name, path, &st, err, cap);
  if (S_ISREG(st.st_mode)) {
    if (put_file(o, pfd, name, path, &st) < 0)
      snprintf(err, cap, "read %s: %s", path, strerror(errno));
    return 0; /* unreadable files are skipped, as tar does, not fatal */
  }
  if (S_ISLNK(st.st_mode)) {
    char link[4096];
    ssize_t n = readlinkat(pfd, name, link, sizeof(link) - 1);
    if (n >= 0) {
      link[n] = '\0';
      entry(o, path, link, &st, '2', 0);
    }
  }
  return 0; /* devices, fifos, sockets: not copied */
}

/* [follow u8][path]: path is absolute, without a trailing "/." (the host
 * strips it); the top entry is named after its last component. */
static int cp_out(int fd, const uint8_t *req, size_t len, char *err, size_t cap)
{
  if (len < 2 || req[1] != '/') {
    snprintf(err, cap, "a bad cp request");
    return -1;
  }
  char *path = strndup((const char *)req + 1, len - 1);
  char *slash = strrchr(path, '/');
  const char *base = slash[1] ? slash + 1 : ".";
  char *parent = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
  int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  static struct tout o;
  o.fd = fd;
  o.len = 0;
  int r = -1;
  struct stat st;
  if (pfd < 0 || fstatat(pfd, base, &st, req[0] ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
    snprintf(err, cap, "Could not find the file %s in the box: %s", path, strerror(errno));
  else
    r = walk(&o, pfd, base, base, req[0] != 0, err, cap);
  static const uint8_t zero[2 * BLOCK];
  if (r == 0) {
    out_bytes(&o, zero, sizeof(zero));
    if (o.len)
      rec_send(fd, CHAN_MAX_PAYLOAD, CHAN_G_DATA, o.buf, o.len);
  }
  if (pfd >= 0)
    close(pfd);
  free(path);
  free(parent);
  return r;
}

/* ---- in: a tar stream from DATA records into a directory ------------------- */

struct tin {
  int root;       /* the target directory */
  const char *as; /* the top entry's new name, or NULL */
  bool archive;
  uint8_t hdr[BLOCK];
  size_t hlen;
  /* the entry being read */
  char type;
  unsigned long long left, padding;
  int out; /* file being written, -1: skipping */
  char *meta;
  size_t meta_len;
  char *long_name, *long_link; /* from 'L'/'K' or pax, for the next entry */
  char err[512];
  bool failed;
};

static unsigned long long num(const uint8_t *p, size_t w)
{
  if (p[0] & 0x80) { /* base-256 */
    unsigned long long v = p[0] & 0x7f;
    for (size_t i = 1; i < w; i++)
      v = v << 8 | p[i];
    return v;
  }
  char s[16] = {0};
  memcpy(s, p, w < sizeof(s) - 1 ? w : sizeof(s) - 1);
  return strtoull(s, NULL, 8);
}

static bool tin_fail(struct tin *t, const char *fmt, const char *a)
{
  if (!t->failed)
    snprintf(t->err, sizeof(t->err), fmt, a, strerror(errno));
  t->failed = true;
  return false;
}

static void tin_refuse(struct tin *t, const char *fmt, const char *a)
{
  if (!t->failed)
    snprintf(t->err, sizeof(t->err), fmt, a);
  t->failed = true;
}

/* The entry's path: ".." refused, leading "/" and "./" dropped, the top
 * component renamed when asked.  Returns a malloc'd relative path or NULL
 * (the root itself, or refused). */
static char *clean_path(const struct tin *t, const char *raw)
{
  while (*raw == '/' || (raw[0] == '.' && raw[1] == '/'))
    raw += raw[0] == '/' ? 1 : 2;
  char *p = strdup(raw);
  size_t n = strlen(p);
  while (n && p[n - 1] == '/')
    p[--n] = '\0';
  if (n == 0 || strcmp(p, ".") == 0) {
    free(p);
    return NULL;
  }
  for (char *c = p; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
    if (strncmp(c, "..", 2) == 0 && (c[2] == '/' || c[2] == '\0')) {
      free(p);
      return NULL;
    }
  if (t->as) {
    char *rest = strchr(p, '/');
    char *q = malloc(strlen(t->as) + (rest ? strlen(rest) : 0) + 1);
    sprintf(q, "%s%s", t->as, rest ? rest : "");
    free(p);
    p = q;
  }
  return p;
}

/* The parent directory of rel (created as needed), opened without
 * following any symlink; *name points at rel's last component. */
static int open_parent(struct tin *t, char *rel, const char **name)
{
  int fd = dup(t->root);
  char *c = rel, *slash;
  while (fd >= 0 && (slash = strchr(c, '/'))) {
    *slash = '\0';
    mkdirat(fd, c, 0755);
    int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    *slash = '/';
    close(fd);
    fd = next;
    c = slash + 1;
  }
  *name = c;
  return fd;
}

static void set_meta(struct tin *t, int pfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
                     time_t mtime, bool link)
{
  if (!t->archive)
    uid = gid = 0;
  fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
  if (!link)
    fchmodat(pfd, name, mode & 07777, 0);
  struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
  utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static void begin_entry(struct tin *t)
{
  const uint8_t *h = t->hdr;
  char raw[257];
  char type = (char)h[156];
  unsigned long long size = num(h + 124, 12);
  t->type = type;
  t->left = size;
  t->padding = (BLOCK - size % BLOCK) % BLOCK;
  t->out = -1;
  if (type == 'x' || type == 'L' || type == 'K') {
    t->meta = size <= META_MAX ? calloc(1, size + 1) : NULL;
    t->meta_len = 0;
    return;
  }
  if (type == 'g')
    return;
  if (h[345] && memcmp(h + 257, "ustar", 5) == 0)
    snprintf(raw, sizeof(raw), "%.155s/%.100s", (const char *)h + 345, (const char *)h);
  else
    snprintf(raw, sizeof(raw), "%.100s", (const char *)h);
  char linkraw[101];
  snprintf(linkraw, sizeof(linkraw), "%.100s", (const char *)h + 157);
  char *rel = clean_path(t, t->long_name ? t->long_name : raw);
  const char *link = t->long_link ? t->long_link : linkraw;
  mode_t mode = (mode_t)num(h + 100, 8);
  uid_t uid = (uid_t)num(h + 108, 8);
  gid_t gid = (gid_t)num(h + 116, 8);
  time_t mtime = (time_t)num(h + 136, 12);
  const char *name;
  int pfd = rel ? open_parent(t, rel, &name) : -1;
  if (rel && pfd < 0)
    tin_fail(t, "create the parents of %s: %s", rel);
  if (pfd >= 0) {
    struct stat st;
    bool exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (type == '5') {
      if (exists && !S_ISDIR(st.st_mode))
        tin_refuse(t, "cannot overwrite non-directory %s with a directory", rel);
      else if (!exists && mkdirat(pfd, name, 0700) < 0)
        tin_fail(t, "mkdir %s: %s", rel);
      else
        set_meta(t, pfd, name, mode, uid, gid, mtime, false);
    } else if (exists && S_ISDIR(st.st_mode)) {
      tin_refuse(t, "cannot overwrite directory %s with a non-directory", rel);
    } else {
      if (exists)
        unlinkat(pfd, name, 0);
      if (type == '2') {
        if (symlinkat(link, pfd, name) < 0)
          tin_fail(t, "symlink %s: %s", rel);
        else
          set_meta(t, pfd, name, mode, uid, gid, mtime, true);
      } else if (type == '1') {
        char *target = clean_path(t, link);
        if (target == NULL || linkat(t->root, target, pfd, name, 0) < 0)
          tin_fail(t, "hard link %s: %s", rel);
        free(target);
      } else if (type == '0' || type == '\0' || type == '7') {
        t->out = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (t->out < 0)
          tin_fail(t, "create %s: %s", rel);
        else
          set_meta(t, pfd, name, mode, uid, gid, mtime, false);
      }
    }
    close(pfd);
  }
  free(rel);
  free(t->long_name);
  free(t->long_link);
  t->long_name = t->long_link = NULL;
}

/* A pax header's "len key=value\n" records: path, linkpath. */
static void pax(struct tin *t)
{
  char *p = t->meta, *end = t->meta + t->meta_len;
  while (p < end) {
    char *sp = memchr(p, ' ', (size_t)(end - p));
    unsigned long n = strtoul(p, NULL, 10);
    if (sp == NULL || n == 0 || n > (unsigned long)(end - p))
      return;
    char *kv = sp + 1, *eq = memchr(kv, '=', (size_t)(p + n - kv));
    if (eq && p[n - 1] == '\n') {
      char **dst = strncmp(kv, "path=", 5) == 0       ? &t->long_name
                   : strncmp(kv, "linkpath=", 9) == 0 ? &t->long_link
                                                      : NULL;
      if (dst) {
        free(*dst);
        *dst = strndup(eq + 1, (size_t)(p + n - 1 - (eq + 1)));
      }
    }
    p += n;
  }
}

static void end_entry(struct tin *t)
{
  if (t->out >= 0) {
    close(t->out);
    t->out = -1;
  }
  if (t->meta) {
    if (t->type == 'x') {
      pax(t);
    } else {
      char **dst = t->type == 'L' ? &t->long_name : &t->long_link;
      free(*dst);
      *dst = strdup(t->meta);
    }
    free(t->meta);
    t->meta = NULL;
  }
}

static void body(struct tin *t, const uint8_t *p, size_t n)
{
  if (t->out >= 0) {
    const uint8_t *b = p;
    size_t k = n;
    while (k) {
      ssize_t w = write(t->out, b, k);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        tin_fail(t, "write%s: %s", "");
        break;
      }
      b += w;
      k -= (size_t)w;
    }
  } else if (t->meta) {
    memcpy(t->meta + t->meta_len, p, n);
    t->meta_len += n;
  }
}

/* Feeds stream bytes; false once the stream ended (two zero blocks) or
 * failed. */
static bool tin_feed(struct tin *t, const uint8_t *p, size_t n, bool *end)
{
  while (n && !t->failed && !*end) {
    if (t->left) {
      size_t k = t->left < n ? (size_t)t->left : n;
      body(t, p, k);
      t->left -= k;
      p += k;
      n -= k;
      if (t->left == 0 && t->padding == 0)
        end_entry(t);
      continue;
    }
    if (t->padding) {
      size_t k = t->padding < n ? (size_t)t->padding : n;
      t->padding -= k;
      p += k;
      n -= k;
      if (t->padding == 0)
        end_entry(t);
      continue;
    }
    size_t k = BLOCK - t->hlen < n ? BLOCK - t->hlen : n;
    memcpy(t->hdr + t->hlen, p, k);
    t->hlen += k;
    p += k;
    n -= k;
    if (t->hlen < BLOCK)
      continue;
    t->hlen = 0;
    static const uint8_t zero[BLOCK];
    if (memcmp(t->hdr, zero, BLOCK) == 0) {
      *end = true;
      break;
    }
    begin_entry(t);
    if (t->left == 0 && t->padding == 0)
      end_entry(t);
  }
  return !t->failed;
}

/* [flags u8][path]: bit 0 keeps uid/gid (-a); bit 1: path is the directory
 * to unpack into (created if missing) -- else the top entry becomes path:
 * into path when it is an existing directory, else renamed to it. */
static int cp_in(int fd, const uint8_t *req, size_t len, char *err, size_t cap)
{
  if (len < 2 || req[1] != '/') {
    snprintf(err, cap, "a bad cp request");
    return -1;
  }
  char *path = strndup((const char *)req + 1, len - 1);
  bool into = req[0] & 2;
  struct stat st;
  bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  size_t pl = strlen(path);
  if (!into && !is_dir && pl > 1 && path[pl - 1] == '/')
    into = true; /* "DST/": a directory it will be */
  struct tin t = {.archive = req[0] & 1, .out = -1};
  char *dir = NULL;
  if (into || is_dir) {
    dir = strdup(path);
    if (!is_dir && mkdir(dir, 0755) < 0 && errno != EEXIST)
      snprintf(err, cap, "mkdir %s: %s", dir, strerror(errno));
  } else {
    while (pl > 1 && path[pl - 1] == '/')
      path[--pl] = '\0';
    char *slash = strrchr(path, '/');
    t.as = slash + 1;
    dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
  }
  t.root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (t.root < 0 && err[0] == '\0')
    snprintf(err, cap, "%s: %s", dir, strerror(errno));
  /* Read DATA until DATA_EOF; after an error, keep reading (and dropping)
   * so the host is not left writing into a closed connection. */
  static uint8_t buf[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  size_t have = 0;
  bool end = false, eof = false;
  while (!eof) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 60000) <= 0)
      break;
    ssize_t n = read(fd, buf + have, sizeof(buf) - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    while (have >= CHAN_HDR_LEN) {
      size_t rl = chan__get_u16(buf + 1);
      if (rl > CHAN_MAX_PAYLOAD) {
        eof = true;
        break;
      }
      if (have < CHAN_HDR_LEN + rl)
        break;
      if (buf[0] == CHAN_H_DATA && t.root >= 0 && !t.failed && !end)
        tin_feed(&t, buf + CHAN_HDR_LEN, rl, &end);
      else if (buf[0] == CHAN_H_DATA_EOF)
        eof = true;
      have -= CHAN_HDR_LEN + rl;
      memmove(buf, buf + CHAN_HDR_LEN + rl, have);
    }
  }
  end_entry(&t);
  if (err[0] == '\0' && t.failed)
    snprintf(err, cap, "%s", t.err);
  else if (err[0] == '\0' && !eof)
    snprintf(err, cap, "the tar stream was cut short");
  if (t.root >= 0)
    close(t.root);
  free(dir);
  free(path);
  return err[0] ? -1 : 0;
}

int cp__session(int fd, uint8_t type, const uint8_t *req, size_t len)
{
  char msg[600] = "";
  int r = type == CHAN_H_CP_OUT ? cp_out(fd, req, len, msg + 1, sizeof(msg) - 1)
                                : cp_in(fd, req, len, msg + 1, sizeof(msg) - 1);
  if (r == 0)
    sync(); /* a cp in that returned is on the disk */
  msg[0] = r == 0 ? 0 : 1;
  size_t n = r == 0 ? 1 : 1 + strlen(msg + 1);
  rec_send(fd, CHAN_MAX_PAYLOAD, CHAN_G_DONE, msg, n);
  return r == 0 ? 0 : 1;
}
