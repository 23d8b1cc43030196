/* Finding the guest kernel and reading what we need from its header.
 * Order (as Docker users expect flags > environment > defaults): --kernel,
 * $VMBOX_KERNEL, the store's <root>/kernels/, vmbox's own minimal kernel
 * (`make kernel` puts it in VMBOX_KERNEL_DIR, the build dir's kernel/),
 * then the host's newest /boot/vmlinuz-*.  A file that is not a bzImage is
 * refused here, at create, with a message that names it: boot.c checks it
 * again, byte by byte. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "kvmbox.h"

/* Where `make kernel` (scripts/kernel.sh) leaves vmlinuz-vmbox; the Makefile
 * passes the build dir's absolute kernel/ path. */
#ifndef VMBOX_KERNEL_DIR
#define VMBOX_KERNEL_DIR "/usr/local/lib/vmbox"
#endif
#define OWN_KERNEL VMBOX_KERNEL_DIR "/vmlinuz-vmbox"

#define HINT_INSTALL                                                                               \
  "build vmbox's own with `make kernel`, install one (apt-get install linux-image-cloud-amd64), "  \
  "or pass --kernel PATH"

static int corrupt(vmbox_error_t *err, const char *path, const char *why)
{
  vmbox_error_set(err, 0, "guest kernel %s is not a usable bzImage: %s", path, why);
  return vmbox_error_hint(err, "pass --kernel PATH to a Linux bzImage, e.g. /boot/vmlinuz-*");
}

int kernel__inspect(const char *path, char **release, vmbox_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    vmbox_error_sys(err, "guest kernel %s", path);
    return vmbox_error_hint(err, HINT_INSTALL);
  }
  if (!S_ISREG(st.st_mode))
    return corrupt(err, path, "not a regular file");
  uint8_t h[0x1000];
  ssize_t n = pread(fd, h, sizeof(h), 0);
  if (n < 0x250)
    return corrupt(err, path, "too short for a boot header");
  /* Linux x86 boot protocol: boot_flag 0xAA55 at 0x1FE, "HdrS" at 0x202. */
  if (h[0x1fe] != 0x55 || h[0x1ff] != 0xaa || memcmp(h + 0x202, "HdrS", 4) != 0)
    return corrupt(err, path, "no Linux boot header (HdrS)");
  unsigned version = h[0x206] | h[0x207] << 8;
  if (version < 0x20c)
    return corrupt(err, path, "boot protocol older than 2.12 (no 64-bit entry)");
  if (!(h[0x211] & 0x01))
    return corrupt(err, path, "not a bzImage (loaded low)");
  /* setup_sects (0 means 4) and syssize (16-byte units): a cut download
   * fails here by name instead of crashing the guest. */
  unsigned setup = h[0x1f1] ? h[0x1f1] : 4;
  uint64_t sys = (uint64_t)(h[0x1f4] | h[0x1f5] << 8 | h[0x1f6] << 16 | (uint32_t)h[0x1f7] << 24);
  uint64_t need = (uint64_t)(setup + 1) * 512 + sys * 16;
  if ((uint64_t)st.st_size < need) {
    char why[128];
    snprintf(why, sizeof(why), "truncated: %lld bytes, its header says %llu", (long long)st.st_size,
             (unsigned long long)need);
    return corrupt(err, path, why);
  }
  /* kernel_version: a pointer (minus 0x200) to "RELEASE (builder) #..." */
  size_t off = (size_t)(h[0x20e] | h[0x20f] << 8) + 0x200;
  char ver[256] = "";
  if (off > 0x200 && off < (size_t)st.st_size) {
    ssize_t m = pread(fd, ver, sizeof(ver) - 1, (off_t)off);
    ver[m > 0 ? m : 0] = '\0';
  }
  ver[strcspn(ver, " ")] = '\0';
  if (ver[0] == '\0' || strspn(ver, "abcdefghijklmnopqrstuvwxyz0123456789.-_+") != strlen(ver))
    return corrupt(err, path, "no kernel release string in the header");
  *release = xstrdup(ver);
  return 0;
}

static int by_version(const struct dirent **a, const struct dirent **b)
{
  return strverscmp((*a)->d_name, (*b)->d_name);
}

/* The newest regular file in dir whose name starts with prefix, or NULL. */
static char *newest(const char *dir, const char *prefix)
{
  struct dirent **list = NULL;
  int n = scandir(dir, &list, NULL, by_version);
  char *found = NULL;
  for (int i = n - 1; i >= 0; i--) {
    if (found == NULL && util__has_prefix(list[i]->d_name, prefix)) {
      char *p = util__fmt("%s/%s", dir, list[i]->d_name);
      struct stat st;
      if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
        found = p;
      else
        free(p);
    }
    free(list[i]);
  }
  free(list);
  return found;
}

int kernel__find(const char *flag, const char *root, char **path, char **release,
                 const char **source, vmbox_error_t *err)
{
  const char *env = getenv("VMBOX_KERNEL");
  cleanup_free char *found = NULL;
  if (flag && *flag) {
    found = xstrdup(flag);
    *source = "--kernel";
  } else if (env && *env) {
    found = xstrdup(env);
    *source = "VMBOX_KERNEL";
  } else {
    cleanup_free char *store = root ? util__fmt("%s/kernels", root) : NULL;
    found = store ? newest(store, "") : NULL;
    *source = "the vmbox store";
    struct stat st;
    if (found == NULL && stat(OWN_KERNEL, &st) == 0 && S_ISREG(st.st_mode)) {
      found = xstrdup(OWN_KERNEL);
      *source = "make kernel";
    }
    if (found == NULL) {
      found = newest("/boot", "vmlinuz-");
      *source = "/boot";
    }
  }
  if (found == NULL) {
    vmbox_error_set(err, 0,
                    "no guest kernel found (looked at --kernel, VMBOX_KERNEL, %s%s" OWN_KERNEL
                    ", /boot)",
                    root ? root : "", root ? "/kernels, " : "");
    return vmbox_error_hint(err, HINT_INSTALL);
  }
  if (kernel__inspect(found, release, err) < 0)
    return vmbox_error_wrap(err, "kernel from %s", *source);
  *path = steal_pointer(&found);
  return 0;
}
