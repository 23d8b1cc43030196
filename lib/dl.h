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

#include <pthread.h>
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

/* The per-library boilerplate of lib/dl_*.c.  Each file lists its functions
 * as an X-macro FNS(F, V) of F(ret, name, (params), (args)) entries (V for
 * void ones), then:
 *   FNS(DL_PTR, DL_PTR)                          the resolved pointers
 *   DL_LIB(FNS(DL_SYM, DL_SYM), soname, purpose, package)
 *   FNS(DL_DEF, DL_DEF_VOID)                     the functions vmbox calls
 * pthread_once costs one load once done: fine per call. */
#define DL_PTR(ret, name, params, args) static __typeof__(name) *p_##name;
#define DL_SYM(ret, name, params, args) {#name, (void **)&p_##name},
#define DL_LIB(SYMS, soname_, purpose_, package_)                                                  \
  static const struct dl_sym dl_syms[] = {SYMS};                                                   \
  static const struct dl_lib dl_lib = {                                                            \
      .soname = soname_,                                                                           \
      .purpose = purpose_,                                                                         \
      .package = package_,                                                                         \
      .syms = dl_syms,                                                                             \
      .n_syms = sizeof(dl_syms) / sizeof(dl_syms[0]),                                              \
  };                                                                                               \
  static pthread_once_t dl_once = PTHREAD_ONCE_INIT;                                               \
  static void dl_load(void)                                                                        \
  {                                                                                                \
    dl__load(&dl_lib);                                                                             \
  }
#define DL_DEF(ret, name, params, args)                                                            \
  ret name params                                                                                  \
  {                                                                                                \
    pthread_once(&dl_once, dl_load);                                                               \
    return p_##name args;                                                                          \
  }
#define DL_DEF_VOID(ret, name, params, args)                                                       \
  ret name params                                                                                  \
  {                                                                                                \
    pthread_once(&dl_once, dl_load);                                                               \
    p_##name args;                                                                                 \
  }

#endif
