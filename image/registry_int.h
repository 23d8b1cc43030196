/* Internals of the registry client, shared by http.c (requests and auth
 * retries), auth.c (challenges, tokens, credential files, login), blobs.c
 * (parallel downloads) and registry.c (pull).  Not for other modules. */
#ifndef VMBOX_IMAGE_REGISTRY_INT_H
#define VMBOX_IMAGE_REGISTRY_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "../lib/err.h"
#include "manifest.h"
#include "registry.h"

/* Every network wait is bounded. */
enum {
  REG_MAX_MANIFEST = 4 << 20, /* bytes; Docker Hub's limit is 4 MiB too */
  REG_MAX_SMALL = 1 << 20,    /* token responses, error bodies, /v2/ */
  REG_MAX_CONFIG = 16 << 20,  /* image config blobs, parsed in memory */
  REG_MAX_REDIRS = 5,
  REG_CONNECT_TIMEOUT_S = 15,
  REG_LOW_SPEED_TIME_S = 30, /* abort a transfer that moves <1 B/s this long */
  REG_SMALL_TIMEOUT_S = 120, /* whole-request limit for non-blob requests */
  REG_BLOB_ATTEMPTS = 4,     /* first try + 3 resumes */
  REG_DEFAULT_PARALLEL = 4,
};

/* One repository on one registry, and the credentials that work for it. */
struct reg_session {
  char *registry;   /* as in the reference ("docker.io", "127.0.0.1:5000"): creds key */
  char *base;       /* "https://registry-1.docker.io" */
  char *repository; /* "library/alpine" */
  char *basic;      /* base64(user:pass) from the auth files, or NULL */
  char *bearer;     /* token from the last Bearer challenge, or NULL */
  bool use_basic;   /* the registry challenged with Basic */
  bool denied;      /* auth__required_error ran: credentials missing or refused */
};

int reg_session__init(struct reg_session *s, const char *registry, const char *repository,
                      char **insecure_registries, vmbox_error_t *err);
void reg_session__free(struct reg_session *s);
/* Appends the Authorization header the session has earned so far. */
struct curl_slist *reg_session__auth_header(const struct reg_session *s, struct curl_slist *l);

struct http_resp {
  long status;
  char *body;
  size_t len, max;
  bool too_big;
  char *content_type, *digest, *challenge, *content_range;
};
void http_resp__free(struct http_resp *r);

/* Options every request gets: timeouts, redirect limits, protocols. */
void http__setup(CURL *h, char *errbuf);
/* Header callback target filling the http_resp header fields. */
size_t http__header_cb(char *buf, size_t sz, size_t n, void *opaque);
/* Turns a transport failure into a message naming the registry. */
int http__curl_error(CURLcode rc, const char *errbuf, const char *registry, const char *url,
                     vmbox_error_t *err);
/* One GET without auth handling; `auth` is an extra header list (may be NULL). */
int http__get_plain(const char *url, struct curl_slist *headers, size_t max, const char *registry,
                    struct http_resp *r, vmbox_error_t *err);
/* GET against the registry, answering 401 challenges (Bearer token, Basic)
 * once.  Any status is returned in r->status; -1 only for transport errors
 * and failed authentication. */
int http__get(struct reg_session *s, const char *url, const char *accept, size_t max,
              struct http_resp *r, vmbox_error_t *err);

/* Handles a 401: parses the challenge and gets a token (Bearer) or switches
 * to Basic.  0 means "retry the request"; -1 with err when it cannot help. */
int auth__answer_challenge(struct reg_session *s, const char *challenge, vmbox_error_t *err);
/* The failure message for a 401 we could not get past. */
int auth__required_error(struct reg_session *s, vmbox_error_t *err);

/* Credentials: vmbox's own auth file first, then Docker's config.json. */
char *auth__lookup(const char *registry); /* base64(user:pass) or NULL */
char *auth__file_path(void);
int auth__save(const char *registry, const char *b64, vmbox_error_t *err);
int auth__remove(const char *registry, bool *removed, vmbox_error_t *err);
char *auth__base64(const char *s);

/* Parallel blob downloads (config + layers) into the store, with resume. */
struct blob_job {
  const struct descriptor *desc;
  bool added; /* committed by this pull (rolled back if the pull fails) */
};
int blobs__fetch(struct store *st, struct reg_session *s, struct blob_job *jobs, size_t n,
                 const struct pull_opts *opts, vmbox_error_t *err);

#endif
