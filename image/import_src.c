/* Reading import sources: directory, tar file, tar in memory.  See import_src.h. */
#include "import_src.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/util.h"

#define BLOCK 65536

/* "./a//b/" -> "a/b"; NULL for paths that climb out ("..") or are empty. */
static char *member_normalize(const char *p)
{
  cleanup_free char *tmp = xstrdup(p);
  char *out = xcalloc(1, strlen(p) + 1);
  char *save = NULL;
  for (char *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (strcmp(c, ".") == 0)
      continue;
    if (strcmp(c, "..") == 0) {
      free(out);
      return NULL;
    }
    if (*out)
      strcat(out, "/");
    strcat(out, c);
  }
  if (*out == '\0') {
    free(out);
    return NULL;
  }
  return out;
}

static const char *src_name(const struct isrc *src)
{
  return src->path ? src->path : "the built-in image";
}

static int tar_fail(const struct isrc *src, struct archive *a, vmbox_error_t *err)
{
  const char *why = archive_error_string(a);
  vmbox_error_set(err, 0, "%s is truncated or damaged (%s)",
                  src->path ? "the archive" : src_name(src), why ? why : "unreadable");
  archive_read_free(a);
  return vmbox_error_hint(err, "the file was cut short or corrupted; copy or export it again");
}

static int not_archive(struct archive *a, vmbox_error_t *err)
{
  const char *why = archive_error_string(a);
  vmbox_error_set(err, 0, "not an OCI image layout, docker save archive or tar archive (%s)",
                  why ? why : "unreadable");
  archive_read_free(a);
  return -1;
}

static struct archive *tar_open(const struct isrc *src, bool raw, vmbox_error_t *err)
{
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  if (raw)
    archive_read_support_format_raw(a);
  else
    archive_read_support_format_tar(a);
  int r = src->mem ? archive_read_open_memory(a, src->mem, src->mem_len)
                   : archive_read_open_filename(a, src->path, BLOCK);
  int e = archive_errno(a);
  /* libarchive's format errno is private; anything but an I/O failure means
   * the bytes are not an archive it knows. */
  if (r != ARCHIVE_OK && e != EACCES && e != EIO && e != ENOENT && e != EISDIR && e != EPERM) {
    not_archive(a, err);
    return NULL;
  }
  if (r != ARCHIVE_OK) {
    vmbox_error_set(err, 0, "cannot read %s: %s", src_name(src),
                    archive_error_string(a) ? archive_error_string(a) : "unknown error");
    archive_read_free(a);
    return NULL;
  }
  return a;
}

/* One pass over the tar: records member names and proves it reads to the end. */
static int tar_scan(struct isrc *src, vmbox_error_t *err)
{
  struct archive *a = tar_open(src, false, err);
  if (a == NULL)
    return -1;
  struct archive_entry *e;
  int r;
  src->members = xcalloc(1, sizeof(char *));
  src->links = xcalloc(1, sizeof(char *));
  r = archive_read_next_header(a, &e);
  if (r == ARCHIVE_FATAL || (r == ARCHIVE_EOF && archive_format(a) == 0))
    return not_archive(a, err);
  for (; r == ARCHIVE_OK || r == ARCHIVE_WARN; r = archive_read_next_header(a, &e)) {
    cleanup_free char *name = member_normalize(archive_entry_pathname(e));
    const char *hl = archive_entry_hardlink(e);
    const char *sl = archive_entry_symlink(e);
    cleanup_free char *link = NULL;
    if (hl)
      link = member_normalize(hl);
    else if (sl && name) {
      cleanup_free char *d = xstrdup(name);
      cleanup_free char *rel = sl[0] == '/' ? xstrdup(sl) : util__fmt("%s/%s", dirname(d), sl);
      link = member_normalize(rel);
    }
    strv_push(&src->members, name ? name : "");
    strv_push(&src->links, link ? link : "");
    if (archive_read_data_skip(a) != ARCHIVE_OK)
      return tar_fail(src, a, err);
  }
  if (r != ARCHIVE_EOF)
    return tar_fail(src, a, err);
  archive_read_free(a);
  if (src->members[0] == NULL)
    return vmbox_error_set(err, 0, "the archive is empty");
  return 0;
}

int isrc__open_path(const char *path, struct isrc *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  struct stat st;
  if (stat(path, &st) < 0)
    return vmbox_error_sys(err, "cannot access it");
  out->path = xstrdup(path);
  out->is_dir = S_ISDIR(st.st_mode);
  if (out->is_dir)
    return 0;
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
    return vmbox_error_set(err, 0, "not a file or directory");
  if (S_ISREG(st.st_mode) && st.st_size == 0)
    return vmbox_error_set(err, 0, "the file is empty");
  return tar_scan(out, err);
}

int isrc__open_mem(const void *buf, size_t len, struct isrc *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  out->mem = buf;
  out->mem_len = len;
  return tar_scan(out, err);
}

void isrc__close(struct isrc *src)
{
  free(src->path);
  strv_free(src->members);
  strv_free(src->links);
  memset(src, 0, sizeof(*src));
}

static long member_index(const struct isrc *src, const char *name)
{
  for (size_t i = 0; src->members && src->members[i]; i++)
    if (strcmp(src->members[i], name) == 0)
      return (long)i;
  return -1;
}

bool isrc__has(const struct isrc *src, const char *member)
{
  cleanup_free char *n = member_normalize(member);
  if (n == NULL)
    return false;
  if (src->is_dir) {
    cleanup_free char *p = util__fmt("%s/%s", src->path, n);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
  }
  return member_index(src, n) >= 0;
}

static int file_stream(const char *p, isrc_sink sink, void *opaque, vmbox_error_t *err)
{
  cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "%s", p);
  cleanup_free char *buf = xmalloc(BLOCK);
  for (;;) {
    ssize_t n = read(fd, buf, BLOCK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmbox_error_sys(err, "read %s", p);
    if (n == 0)
      return 0;
    if (sink(buf, (size_t)n, opaque, err) < 0)
      return -1;
  }
}

static int dir_stream(const struct isrc *src, const char *member, isrc_sink sink, void *opaque,
                      vmbox_error_t *err)
{
  cleanup_free char *p = util__fmt("%s/%s", src->path, member);
  return file_stream(p, sink, opaque, err);
}

static int tar_copy_data(const struct isrc *src, struct archive *a, isrc_sink sink, void *opaque,
                         vmbox_error_t *err)
{
  const void *buf;
  size_t len;
  la_int64_t off;
  int r;
  while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
    if (len && sink(buf, len, opaque, err) < 0) {
      archive_read_free(a);
      return -1;
    }
  if (r != ARCHIVE_EOF)
    return tar_fail(src, a, err);
  archive_read_free(a);
  return 0;
}

static int tar_stream(const struct isrc *src, const char *member, isrc_sink sink, void *opaque,
                      vmbox_error_t *err)
{
  /* Follow a link member (docker-archive's HEX/layer.tar -> ../HEX.tar) a few hops. */
  for (int hops = 0; hops < 8; hops++) {
    long i = member_index(src, member);
    if (i < 0)
      return vmbox_error_set(err, 0, "%s: no member %s", src_name(src), member);
    if (src->links[i][0] == '\0')
      break;
    member = src->links[i];
  }
  struct archive *a = tar_open(src, false, err);
  if (a == NULL)
    return -1;
  struct archive_entry *e;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    cleanup_free char *name = member_normalize(archive_entry_pathname(e));
    if (name && strcmp(name, member) == 0 && archive_entry_filetype(e) == AE_IFREG)
      return tar_copy_data(src, a, sink, opaque, err);
  }
  if (r != ARCHIVE_EOF)
    return tar_fail(src, a, err);
  archive_read_free(a);
  return vmbox_error_set(err, 0, "%s: member %s is not a regular file", src_name(src), member);
}

int isrc__stream(const struct isrc *src, const char *member, isrc_sink sink, void *opaque,
                 vmbox_error_t *err)
{
  cleanup_free char *n = member_normalize(member);
  if (n == NULL)
    return vmbox_error_set(err, 0, "%s: invalid member path '%s'", src_name(src), member);
  return src->is_dir ? dir_stream(src, n, sink, opaque, err)
                     : tar_stream(src, n, sink, opaque, err);
}

struct membuf {
  char *buf;
  size_t len, max;
  const char *member;
};

static int membuf_sink(const void *buf, size_t len, void *opaque, vmbox_error_t *err)
{
  struct membuf *m = opaque;
  if (m->len + len > m->max)
    return vmbox_error_set(err, 0, "%s is too large (over %zu bytes)", m->member, m->max);
  m->buf = xrealloc(m->buf, m->len + len + 1);
  memcpy(m->buf + m->len, buf, len);
  m->len += len;
  m->buf[m->len] = '\0';
  return 0;
}

int isrc__read(const struct isrc *src, const char *member, size_t max, char **buf, size_t *len,
               vmbox_error_t *err)
{
  struct membuf m = {.buf = xcalloc(1, 1), .max = max, .member = member};
  if (isrc__stream(src, member, membuf_sink, &m, err) < 0) {
    free(m.buf);
    return -1;
  }
  *buf = m.buf;
  *len = m.len;
  return 0;
}

int isrc__stream_whole(const struct isrc *src, bool raw, isrc_sink sink, void *opaque,
                       vmbox_error_t *err)
{
  if (raw && src->mem)
    return sink(src->mem, src->mem_len, opaque, err);
  if (raw)
    return file_stream(src->path, sink, opaque, err);
  struct archive *a = tar_open(src, true, err);
  if (a == NULL)
    return -1;
  struct archive_entry *e;
  if (archive_read_next_header(a, &e) != ARCHIVE_OK)
    return tar_fail(src, a, err);
  return tar_copy_data(src, a, sink, opaque, err);
}

int isrc__magic(const struct isrc *src, unsigned char *buf, size_t len)
{
  memset(buf, 0, len);
  if (src->mem) {
    memcpy(buf, src->mem, len < src->mem_len ? len : src->mem_len);
    return 0;
  }
  int fd = open(src->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, len);
  close(fd);
  return n < 0 ? -1 : 0;
}
