/* User and group names from the image's /etc/passwd and /etc/group. */
#include "passwd.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"

#define ETC_MAX (1 << 20)

/* Reads PATH inside the ext4 image (namei follows symlinks inside it). */
static int read_image_file(const char *disk, const char *path, char **out, vmbox_error_t *err)
{
  ext2_filsys fs = NULL;
  errcode_t e = ext2fs_open(disk, 0, 0, 0, unix_io_manager, &fs);
  if (e)
    return vmbox_error_set(err, 0, "open image %s: %s", disk, error_message(e));
  ext2_ino_t ino = 0;
  ext2_file_t f = NULL;
  e = ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino);
  if (!e)
    e = ext2fs_file_open(fs, ino, 0, &f);
  if (e) {
    ext2fs_close_free(&fs);
    return vmbox_error_set(err, 0, "the image has no %s", path);
  }
  __u64 size = 0;
  ext2fs_file_get_lsize(f, &size);
  unsigned int want = size > ETC_MAX ? ETC_MAX : (unsigned int)size, got = 0;
  char *buf = xmalloc(want + 1);
  e = ext2fs_file_read(f, buf, want, &got);
  ext2fs_file_close(f);
  ext2fs_close_free(&fs);
  if (e) {
    free(buf);
    return vmbox_error_set(err, 0, "read %s in the image: %s", path, error_message(e));
  }
  buf[got] = '\0';
  *out = buf;
  return 0;
}

/* Finds NAME in a passwd/group file: field 3 (id) and, for passwd, field 4. */
static bool find_entry(char *buf, const char *name, unsigned long *id, unsigned long *gid)
{
  size_t n = strlen(name);
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (strncmp(l, name, n) != 0 || l[n] != ':')
      continue;
    char *f = strchr(l + n + 1, ':'); /* skip the password field */
    if (f == NULL)
      return false;
    *id = strtoul(f + 1, &f, 10);
    if (gid && *f == ':')
      *gid = strtoul(f + 1, NULL, 10);
    return true;
  }
  return false;
}

static bool numeric(const char *s, unsigned long *out);

/* The primary gid of the passwd line with this uid; 0 if none. */
static unsigned long gid_of_uid(const char *disk, unsigned long uid)
{
  cleanup_free char *buf = NULL;
  if (disk == NULL || read_image_file(disk, "/etc/passwd", &buf, NULL) < 0)
    return 0;
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char *f[4] = {l, NULL, NULL, NULL};
    for (int i = 1; i < 4 && f[i - 1]; i++) {
      f[i] = strchr(f[i - 1], ':');
      if (f[i])
        *f[i]++ = '\0';
    }
    unsigned long u, g;
    if (f[3] && numeric(f[2], &u) && u == uid && sscanf(f[3], "%lu", &g) == 1)
      return g;
  }
  return 0;
}

static bool numeric(const char *s, unsigned long *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v > 0xfffffffeUL)
    return false;
  *out = v;
  return true;
}

static int lookup(const char *disk, const char *file, const char *name, unsigned long *id,
                  unsigned long *gid, vmbox_error_t *err)
{
  if (numeric(name, id))
    return 0;
  if (strcmp(name, "root") == 0 && disk == NULL) {
    *id = 0;
    if (gid)
      *gid = 0;
    return 0;
  }
  cleanup_free char *buf = NULL;
  if (disk == NULL || read_image_file(disk, file, &buf, err) < 0 ||
      !find_entry(buf, name, id, gid)) {
    vmbox_error_set(err, 0, "unable to find %s %s: no matching entries in %s",
                    gid ? "user" : "group", name, file);
    return vmbox_error_code(err, EXIT_VMBOX_FAILED);
  }
  return 0;
}

int passwd__resolve(const char *disk, const char *user, uid_t *uid, gid_t *gid, vmbox_error_t *err)
{
  cleanup_free char *u = xstrdup(user);
  char *g = strchr(u, ':');
  if (g)
    *g++ = '\0';
  unsigned long uv = 0, gv = 0;
  /* A bare uid takes the gid of its passwd line, else 0, as in Docker. */
  if (numeric(u, &uv))
    gv = gid_of_uid(disk, uv);
  else if (lookup(disk, "/etc/passwd", u, &uv, &gv, err) < 0)
    return -1;
  if (g && lookup(disk, "/etc/group", g, &gv, NULL, err) < 0)
    return -1;
  *uid = (uid_t)uv;
  *gid = (gid_t)gv;
  return 0;
}
