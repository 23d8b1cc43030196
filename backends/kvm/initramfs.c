/* The guest's initramfs, in two parts the kernel unpacks in order:
 *
 *   base   /init (vmbox-init, linked into vmbox), /dev/console, and the
 *          modules the kernel needs to reach the box disk: virtio-pci and
 *          virtio-blk (+ ext4 where it is a module), with their modules.dep
 *          dependencies, decompressed (.ko.xz/.zst/.gz: finit_module without
 *          flags wants plain ELF), listed in load order.  Built once per
 *          kernel release + init and cached: <cache>/initramfs-<key>.cpio,
 *          written to a temp file and renamed under a lock.
 *   box    /vmbox/config only (proto.h), a few hundred bytes per box.
 *
 * Uncompressed newc: the guest unpacks a megabyte faster than it could
 * decompress one. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../guest/proto.h"
#include "kvmbox.h"

/* What the guest needs to mount /dev/vda as ext4 (virtio_blk over
 * virtio-pci, legacy or modern).  Deps come from modules.dep. */
static const char *const wanted[] = {
    "virtio_pci", "virtio_blk", "ext4", "crc32c_generic", "vmw_vsock_virtio_transport",
    "virtio_net"};
#define MAX_MODS 64

struct mods {
  const char *dir;     /* /lib/modules/RELEASE */
  char *dep;           /* modules.dep */
  char *builtin;       /* modules.builtin */
  char *rel[MAX_MODS]; /* load order, relative paths */
  size_t n;
};

static void mods__free(struct mods *m)
{
  free(m->dep);
  free(m->builtin);
  for (size_t i = 0; i < m->n; i++)
    free(m->rel[i]);
}

/* "kernel/drivers/virtio/virtio_pci.ko.xz" -> does it name module `name`
 * (dashes and underscores are the same to modprobe)? */
static bool names(const char *rel, size_t len, const char *name)
{
  const char *base = rel;
  for (size_t i = 0; i < len; i++)
    if (rel[i] == '/')
      base = rel + i + 1;
  size_t bl = (size_t)(rel + len - base), nl = strlen(name);
  if (bl < nl + 3 || strncmp(base + nl, ".ko", 3) != 0)
    return false;
  for (size_t i = 0; i < nl; i++)
    if (base[i] != name[i] &&
        !((base[i] == '-' || base[i] == '_') && (name[i] == '-' || name[i] == '_')))
      return false;
  return true;
}

/* The line of `list` (modules.dep or .builtin) for module `name`. */
static const char *find_line(const char *list, const char *name, size_t *keylen)
{
  for (const char *l = list; l && *l;) {
    const char *end = strchr(l, '\n');
    size_t ll = end ? (size_t)(end - l) : strlen(l);
    size_t kl = strcspn(l, ":\n");
    if (kl > ll)
      kl = ll;
    if (names(l, kl, name)) {
      *keylen = kl;
      return l;
    }
    l = end ? end + 1 : NULL;
  }
  return NULL;
}

static int want(struct mods *m, const char *name, int depth, vmbox_error_t *err)
{
  size_t kl;
  if (depth > 16)
    return vmbox_error_set(err, 0, "module %s: dependency chain too deep", name);
  if (m->builtin && find_line(m->builtin, name, &kl))
    return 0;
  const char *l = find_line(m->dep, name, &kl);
  if (l == NULL) {
    vmbox_error_set(err, 0, "kernel modules in %s: no %s (built in or module)", m->dir, name);
    return vmbox_error_hint(
        err, "use a kernel with virtio-pci and virtio-blk, e.g. linux-image-cloud-amd64");
  }
  cleanup_free char *rel = xstrndup(l, kl);
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->rel[i], rel) == 0)
      return 0;
  /* Deps first: "path: dep1 dep2" */
  const char *p = l + kl + 1, *eol = strchr(l, '\n');
  size_t rest = eol ? (size_t)(eol - p) : strlen(p);
  cleanup_free char *deps = xstrndup(p, rest);
  for (char *s = NULL, *d = strtok_r(deps, " \t", &s); d; d = strtok_r(NULL, " \t", &s)) {
    char *b = strrchr(d, '/');
    b = b ? b + 1 : d;
    b[strcspn(b, ".")] = '\0';
    if (want(m, b, depth + 1, err) < 0)
      return -1;
  }
  if (m->n == MAX_MODS)
    return vmbox_error_set(err, 0, "too many kernel modules needed");
  m->rel[m->n++] = steal_pointer(&rel);
  return 0;
}

static int resolve(struct mods *m, vmbox_error_t *err)
{
  cleanup_free char *dep = util__fmt("%s/modules.dep", m->dir);
  cleanup_free char *bi = util__fmt("%s/modules.builtin", m->dir);
  /* A kernel with everything built in (`make kernel`, CONFIG_MODULES off)
   * has no module directory at all: nothing to load. */
  struct stat st;
  if (stat(m->dir, &st) < 0 && errno == ENOENT)
    return 0;
  if (util__read_file(dep, &m->dep, NULL, err) < 0) {
    vmbox_error_wrap(err, "guest kernel modules");
    return vmbox_error_hint(err,
                            "install the kernel's modules (its linux-image package) next to it");
  }
  if (util__read_file(bi, &m->builtin, NULL, NULL) < 0)
    m->builtin = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(wanted); i++) {
    size_t kl;
    /* crc32c is only for ext4's metadata checksums; absent is fine. */
    if (strcmp(wanted[i], "crc32c_generic") == 0 && !find_line(m->dep, wanted[i], &kl))
      continue;
    if (want(m, wanted[i], 0, err) < 0)
      return -1;
  }
  return 0;
}

/* A module file, decompressed whatever its filter (libarchive's raw format). */
static int read_module(const char *path, char **out, size_t *len, vmbox_error_t *err)
{
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_raw(a);
  struct archive_entry *e;
  int r = -1;
  size_t cap = 1 << 20, n = 0;
  char *buf = xmalloc(cap);
  if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK ||
      archive_read_next_header(a, &e) != ARCHIVE_OK) {
    vmbox_error_set(err, 0, "kernel module %s: %s", path, archive_error_string(a));
    goto out;
  }
  for (;;) {
    if (n == cap)
      buf = xrealloc(buf, cap *= 2);
    la_ssize_t got = archive_read_data(a, buf + n, cap - n);
    if (got < 0) {
      vmbox_error_set(err, 0, "kernel module %s: %s", path, archive_error_string(a));
      goto out;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  if (n < 4 || memcmp(buf, "\177ELF", 4) != 0) {
    vmbox_error_set(err, 0, "kernel module %s: not an ELF file once decompressed", path);
    goto out;
  }
  *out = steal_pointer(&buf);
  *len = n;
  r = 0;
out:
  free(buf);
  archive_read_free(a);
  return r;
}

/* Two symbols of one .incbin blob: compare as addresses, not as arrays. */
static size_t guest_init_len(void)
{
  return (size_t)((uintptr_t)vmbox_guest_init_end - (uintptr_t)vmbox_guest_init);
}

static int put(struct archive *a, const char *name, mode_t type, mode_t perm, const void *data,
               size_t len, dev_t rdev, vmbox_error_t *err)
{
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, perm);
  archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)len : 0);
  if (rdev)
    archive_entry_set_rdev(e, rdev);
  int r = archive_write_header(a, e);
  archive_entry_free(e);
  if (r == ARCHIVE_OK && type == AE_IFREG && len &&
      archive_write_data(a, data, len) != (la_ssize_t)len)
    r = ARCHIVE_FATAL;
  if (r != ARCHIVE_OK)
    return vmbox_error_set(err, 0, "initramfs %s: %s", name, archive_error_string(a));
  return 0;
}

static int write_base(struct archive *a, struct mods *m, vmbox_error_t *err)
{
  size_t init_len = guest_init_len();
  static const char *const dirs[] = {"dev",     "proc",  "sys",
                                     "newroot", "vmbox", GUEST_MODULES_DIR + 1};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (put(a, dirs[i], AE_IFDIR, 0755, NULL, 0, 0, err) < 0)
      return -1;
  /* The kernel opens /dev/console for init before anything is mounted. */
  if (put(a, "dev/console", AE_IFCHR, 0600, NULL, 0, makedev(5, 1), err) < 0 ||
      put(a, "init", AE_IFREG, 0755, vmbox_guest_init, init_len, 0, err) < 0)
    return -1;
  cleanup_free char *order = xstrdup("");
  for (size_t i = 0; i < m->n; i++) {
    cleanup_free char *src = util__fmt("%s/%s", m->dir, m->rel[i]);
    cleanup_free char *data = NULL;
    size_t len = 0;
    if (read_module(src, &data, &len, err) < 0)
      return -1;
    const char *b = strrchr(m->rel[i], '/');
    cleanup_free char *ko = xstrndup(b ? b + 1 : m->rel[i], strcspn(b ? b + 1 : m->rel[i], "."));
    cleanup_free char *dst = util__fmt("%s/%s.ko", GUEST_MODULES_DIR + 1, ko);
    if (put(a, dst, AE_IFREG, 0644, data, len, 0, err) < 0)
      return -1;
    char *o = util__fmt("%s%s.ko\n", order, ko);
    free(order);
    order = o;
  }
  return put(a, GUEST_MODULES_ORDER + 1, AE_IFREG, 0644, order, strlen(order), 0, err);
}

static int build(const char *tmp, struct mods *m, vmbox_error_t *err)
{
  struct archive *a = archive_write_new();
  archive_write_set_format_cpio_newc(a);
  archive_write_set_bytes_in_last_block(a, 1);
  int r = -1;
  if (archive_write_open_filename(a, tmp) != ARCHIVE_OK)
    vmbox_error_set(err, 0, "initramfs %s: %s", tmp, archive_error_string(a));
  else if (write_base(a, m, err) == 0 && archive_write_close(a) == ARCHIVE_OK)
    r = 0;
  else if (err && *err == NULL)
    vmbox_error_set(err, 0, "initramfs %s: %s", tmp, archive_error_string(a));
  archive_write_free(a);
  return r;
}

/* Key: the init binary and every module's bytes, not just names: a kernel
 * package rebuilt under the same release still gets a fresh archive. */
static char *cache_key(const struct mods *m, const char *release)
{
  size_t init_len = guest_init_len();
  cleanup_free char *ih = util__sha256_digest(vmbox_guest_init, init_len);
  cleanup_free char *acc = util__fmt("v1 %s %s", release, ih);
  for (size_t i = 0; i < m->n; i++) {
    cleanup_free char *p = util__fmt("%s/%s", m->dir, m->rel[i]);
    struct stat st;
    if (stat(p, &st) < 0)
      st.st_size = st.st_mtime = 0;
    char *n =
        util__fmt("%s %s %lld %lld", acc, m->rel[i], (long long)st.st_size, (long long)st.st_mtime);
    free(acc);
    acc = n;
  }
  cleanup_free char *d = util__sha256_digest(acc, strlen(acc));
  return xstrndup(util__digest_hex(d), 16);
}

int initramfs__base(const char *cache_dir, const char *release, char **out, vmbox_error_t *err)
{
  cleanup_free char *dir = util__fmt("/lib/modules/%s", release);
  struct mods m = {.dir = dir};
  int r = -1;
  cleanup_free char *key = NULL, *path = NULL, *lock = NULL, *tmp = NULL;
  if (resolve(&m, err) < 0)
    goto out;
  key = cache_key(&m, release);
  path = util__fmt("%s/initramfs-%s.cpio", cache_dir, key);
  struct stat st;
  if (stat(path, &st) == 0 && st.st_size > 0) {
    r = 0;
    goto out;
  }
  if (util__mkdir_p(cache_dir, 0700, err) < 0)
    goto out;
  lock = util__fmt("%s/initramfs.lock", cache_dir);
  cleanup_close int lfd = util__lock_file(lock, true, err);
  if (lfd < 0)
    goto out;
  if (stat(path, &st) == 0 && st.st_size > 0) { /* another box built it meanwhile */
    r = 0;
    goto out;
  }
  tmp = util__fmt("%s.tmp.%d", path, (int)getpid());
  r = build(tmp, &m, err);
  if (r == 0 && rename(tmp, path) < 0)
    r = vmbox_error_sys(err, "rename %s", tmp);
  if (r < 0)
    unlink(tmp);
out:
  mods__free(&m);
  if (r < 0)
    return vmbox_error_wrap(err, "initramfs for kernel %s", release);
  *out = steal_pointer(&path);
  return 0;
}

/* Appends the per-box archive after a copy of the base (copy_file_range:
 * a reflink or an in-kernel copy of ~1 MB, never through our buffers). */
int initramfs__for_box(const char *base, const void *cfg, size_t cfg_len, const char *dst,
                       vmbox_error_t *err)
{
  cleanup_close int in = open(base, O_RDONLY | O_CLOEXEC);
  cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  struct stat st;
  if (in < 0 || out < 0 || fstat(in, &st) < 0)
    return vmbox_error_sys(err, "initramfs %s", in < 0 ? base : dst);
  for (off_t left = st.st_size; left > 0;) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
    if (n <= 0)
      return vmbox_error_sys(err, "copy %s to %s", base, dst);
    left -= n;
  }
  struct archive *a = archive_write_new();
  archive_write_set_format_cpio_newc(a);
  archive_write_set_bytes_in_last_block(a, 1);
  int r = -1;
  if (archive_write_open_fd(a, out) == ARCHIVE_OK &&
      put(a, GUEST_CONFIG_PATH + 1, AE_IFREG, 0600, cfg, cfg_len, 0, err) == 0 &&
      archive_write_close(a) == ARCHIVE_OK)
    r = 0;
  else if (err && *err == NULL)
    vmbox_error_set(err, 0, "initramfs %s: %s", dst, archive_error_string(a));
  archive_write_free(a);
  return r;
}
