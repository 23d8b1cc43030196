/* The shared half of lib/dl_curl.c and lib/dl_archive.c (see dl.h). */
#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

/* No error value to carry: the failing call (curl_easy_init, archive_read_new
 * ...) has no way to say "library missing" to its caller, so say it here. */
__attribute__((noreturn)) static void fail(const struct dl_lib *lib)
{
  /* dlerror names the file, and for dlsym the missing symbol too. */
  const char *why = dlerror();
  fprintf(stderr, "vmbox: cannot load %s (needed %s): %s; install it: apt-get install %s\n",
          lib->soname, lib->purpose, why ? why : "unknown error", lib->package);
  fflush(NULL);
  exit(EXIT_VMBOX_FAILED);
}

void dl__load(const struct dl_lib *lib)
{
  /* RTLD_LOCAL: its own dependencies stay out of the global scope; RTLD_NOW:
   * an incomplete library fails here, not in the middle of a pull. */
  void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    fail(lib);
  for (size_t i = 0; i < lib->n_syms; i++) {
    dlerror();
    void *p = dlsym(h, lib->syms[i].name);
    if (p == NULL)
      fail(lib);
    *lib->syms[i].slot = p;
  }
  /* Never dlclose: the pointers live as long as the process. */
}
