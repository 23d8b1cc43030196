/* libcurl, opened on first use (see dl.h).  Every curl_* function vmbox
 * calls is defined here with curl.h's prototype; the compiler checks each
 * against the header's declaration.  A new call elsewhere needs a line in
 * CURL_FNS below, or the link fails (-lcurl is gone on purpose). */
/* Our own definitions of the variadic functions would clash with the
 * type-checking macros; callers elsewhere keep them. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>

#include "dl.h"

/* F: returns a value, V: returns void.  (ret, name, params, args) */
#define CURL_FNS(F, V)                                                                             \
  V(void, curl_easy_cleanup, (CURL * a0), (a0))                                                    \
  F(char *, curl_easy_escape, (CURL * a0, const char *a1, int a2), (a0, a1, a2))                   \
  F(CURL *, curl_easy_init, (void), ())                                                            \
  F(CURLcode, curl_easy_perform, (CURL * a0), (a0))                                                \
  F(const char *, curl_easy_strerror, (CURLcode a0), (a0))                                         \
  V(void, curl_free, (void *a0), (a0))                                                             \
  F(CURLMcode, curl_multi_add_handle, (CURLM * a0, CURL * a1), (a0, a1))                           \
  F(CURLMcode, curl_multi_cleanup, (CURLM * a0), (a0))                                             \
  F(CURLMsg *, curl_multi_info_read, (CURLM * a0, int *a1), (a0, a1))                              \
  F(CURLM *, curl_multi_init, (void), ())                                                          \
  F(CURLMcode, curl_multi_perform, (CURLM * a0, int *a1), (a0, a1))                                \
  F(CURLMcode, curl_multi_poll,                                                                    \
    (CURLM * a0, struct curl_waitfd * a1, unsigned int a2, int a3, int *a4), (a0, a1, a2, a3, a4)) \
  F(CURLMcode, curl_multi_remove_handle, (CURLM * a0, CURL * a1), (a0, a1))                        \
  F(struct curl_slist *, curl_slist_append, (struct curl_slist * a0, const char *a1), (a0, a1))    \
  V(void, curl_slist_free_all, (struct curl_slist * a0), (a0))

/* The variadic ones, defined by hand below. */
#define CURL_VA_FNS(X) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_multi_setopt)

#define PTR_VA(name) static __typeof__(name) *p_##name;
#define SYM_VA(name) {#name, (void **)&p_##name},
CURL_FNS(DL_PTR, DL_PTR)
CURL_VA_FNS(PTR_VA)
DL_LIB(CURL_FNS(DL_SYM, DL_SYM) CURL_VA_FNS(SYM_VA), "libcurl.so.4", "to talk to registries",
       "libcurl4")
CURL_FNS(DL_DEF, DL_DEF_VOID)

/* A variadic function cannot pass its "..." on, so these take the one
 * argument curl reads and forward it as a pointer-sized value.  That is
 * exact on LP64 (x86-64, arm64): every option and info argument is a long,
 * a data pointer, a function pointer or a curl_off_t, all 8 bytes passed in
 * one integer register or stack slot, and curl itself reads exactly one
 * va_arg of that size (never a double or a struct). */
#define DEF_VA(ret, name, handle_t, opt_t)                                                         \
  ret name(handle_t *h, opt_t opt, ...)                                                            \
  {                                                                                                \
    _Static_assert(sizeof(void *) == sizeof(long) && sizeof(curl_off_t) == sizeof(long),           \
                   "forwarding one curl argument as a pointer needs LP64");                        \
    va_list ap;                                                                                    \
    va_start(ap, opt);                                                                             \
    void *arg = va_arg(ap, void *);                                                                \
    va_end(ap);                                                                                    \
    pthread_once(&dl_once, dl_load);                                                               \
    return p_##name(h, opt, arg);                                                                  \
  }
DEF_VA(CURLcode, curl_easy_setopt, CURL, CURLoption)
DEF_VA(CURLcode, curl_easy_getinfo, CURL, CURLINFO)
DEF_VA(CURLMcode, curl_multi_setopt, CURLM, CURLMoption)
