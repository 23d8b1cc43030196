/* Libraries only some commands need (libcurl: registries; libarchive:
 * layers, tar streams, initramfs) are opened on first use, as systemd does
 * for its optional ones.  Linked at build time they cost every `vmbox run`
 * ~34M cycles in the dynamic loader (libcurl and libarchive pull ~45
 * libraries: TLS, HTTP/2, LDAP, Kerberos, libxml2, ICU, libstdc++).
 *
 * lib/dl_curl.c and lib/dl_archive.c define each function vmbox calls with
 * the header's prototype; the first call loads the library and resolves all
 * of them at once.  A function they do not define is a link error (neither
 * library is linked any more), never a silent fallback. */
#ifndef VMBOX_DL_H
#define VMBOX_DL_H

#include <stddef.h>

struct dl_sym {
  const char *name;
  void **slot; /* where the address goes (a function pointer object) */
};

struct dl_lib {
  const char *soname;  /* "libcurl.so.4": the ABI the headers describe */
  const char *purpose; /* "to talk to registries" */
  const char *package; /* Debian package that ships the soname */
  const struct dl_sym *syms;
  size_t n_syms;
};

/* dlopens LIB (RTLD_NOW | RTLD_LOCAL) and fills every slot.  A missing
 * library or symbol ends the process: exit 125 with what to install.  Call
 * once per library (pthread_once). */
void dl__load(const struct dl_lib *lib);

#endif
