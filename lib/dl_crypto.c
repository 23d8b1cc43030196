/* libcrypto, opened on first use (see dl.h): only digests need it (sha256
 * of blobs, the kvm disk map; base64 for registry logins), yet linking it
 * costs every `vmbox run` ~4 ms of CPU in the loader (a 4.5 MB library).
 * Every function vmbox calls is defined here with the header's prototype; a
 * new call elsewhere needs a line in CRYPTO_FNS, or the link fails. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>

#include "dl.h"

/* F: returns a value, V: returns void.  (ret, name, params, args) */
#define CRYPTO_FNS(F, V)                                                                           \
  F(int, EVP_Digest,                                                                               \
    (const void *a0, size_t a1, unsigned char *a2, unsigned int *a3, const EVP_MD *a4,             \
     ENGINE *a5),                                                                                  \
    (a0, a1, a2, a3, a4, a5))                                                                      \
  F(int, EVP_DigestFinal_ex, (EVP_MD_CTX * a0, unsigned char *a1, unsigned int *a2), (a0, a1, a2)) \
  F(int, EVP_DigestInit_ex, (EVP_MD_CTX * a0, const EVP_MD *a1, ENGINE *a2), (a0, a1, a2))         \
  F(int, EVP_DigestUpdate, (EVP_MD_CTX * a0, const void *a1, size_t a2), (a0, a1, a2))             \
  F(int, EVP_EncodeBlock, (unsigned char *a0, const unsigned char *a1, int a2), (a0, a1, a2))      \
  V(void, EVP_MD_CTX_free, (EVP_MD_CTX * a0), (a0))                                                \
  F(EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())                                                      \
  F(const EVP_MD *, EVP_sha256, (void), ())                                                        \
  F(unsigned char *, SHA256, (const unsigned char *a0, size_t a1, unsigned char *a2), (a0, a1, a2))

CRYPTO_FNS(DL_PTR, DL_PTR)
DL_LIB(CRYPTO_FNS(DL_SYM, DL_SYM), "libcrypto.so.3", "to compute image digests", "libssl3")
CRYPTO_FNS(DL_DEF, DL_DEF_VOID)
