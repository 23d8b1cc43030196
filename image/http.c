/* HTTP for the registry client: bounded libcurl requests, error messages that
 * name the registry, and the 401 dance (challenge -> token or Basic -> retry). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "ref.h"
#include "registry_int.h"

static bool is_insecure(const char *registry, char **insecure)
{
  for (char **p = insecure; p && *p; p++) {
    const char *h = *p;
    /* accept "host", "host:port" and the URL forms people paste */
    if (util__has_prefix(h, "http://"))
      h += 7;
    else if (util__has_prefix(h, "https://"))
      h += 8;
    size_t n = strcspn(h, "/");
    if (strlen(registry) == n && !strncmp(registry, h, n))
      return true;
    const char *colon = strrchr(registry, ':');
    if (colon && registry[0] != '[' && (size_t)(colon - registry) == n && !strncmp(registry, h, n))
      return true;
  }
  return false;
}

int reg_session__init(struct reg_session *s, const char *registry, const char *repository,
                      char **insecure_registries, vmbox_error_t *err)
{
  (void)err;
  memset(s, 0, sizeof(*s));
  struct image_ref r = {.registry = (char *)registry, .repository = (char *)repository};
  bool plain = image_ref__is_loopback(&r) || is_insecure(registry, insecure_registries);
  s->registry = xstrdup(registry);
  s->repository = repository ? xstrdup(repository) : NULL;
  s->base = util__fmt("%s://%s", plain ? "http" : "https", image_ref__api_host(&r));
  s->basic = auth__lookup(registry);
  log__debug("registry %s: %s, credentials %s", registry, s->base, s->basic ? "found" : "none");
  return 0;
}

void reg_session__free(struct reg_session *s)
{
  free(s->registry);
  free(s->base);
  free(s->repository);
  if (s->basic)
    explicit_bzero(s->basic, strlen(s->basic));
  free(s->basic);
  free(s->bearer);
  memset(s, 0, sizeof(*s));
}

struct curl_slist *reg_session__auth_header(const struct reg_session *s, struct curl_slist *l)
{
  cleanup_free char *h = NULL;
  if (s->bearer)
    h = util__fmt("Authorization: Bearer %s", s->bearer);
  else if (s->use_basic && s->basic)
    h = util__fmt("Authorization: Basic %s", s->basic);
  return h ? curl_slist_append(l, h) : l;
}

void http_resp__free(struct http_resp *r)
{
  free(r->body);
  free(r->content_type);
  free(r->digest);
  free(r->challenge);
  free(r->content_range);
  memset(r, 0, sizeof(*r));
}

void http__setup(CURL *h, char *errbuf)
{
  errbuf[0] = '\0';
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "vmbox/" VMBOX_VERSION);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)REG_CONNECT_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)REG_LOW_SPEED_TIME_S);
  /* Blob URLs redirect to storage backends.  The Authorization header is a
   * custom header, which curl only sends to the original host (we never set
   * UNRESTRICTED_AUTH), so tokens do not leak to a CDN. */
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)REG_MAX_REDIRS);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (log__debug_enabled && getenv("VMBOX_CURL_VERBOSE"))
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
}

static void set_field(char **dst, const char *v, size_t n)
{
  while (n > 0 && isspace((unsigned char)*v))
    v++, n--;
  while (n > 0 && isspace((unsigned char)v[n - 1]))
    n--;
  free(*dst);
  *dst = xstrndup(v, n);
}

size_t http__header_cb(char *buf, size_t sz, size_t n, void *opaque)
{
  struct http_resp *r = opaque;
  size_t len = sz * n;
  if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
    /* a new response (after a redirect or 100-continue): forget the last one's */
    free(r->challenge);
    r->challenge = NULL;
    free(r->content_range);
    r->content_range = NULL;
    return len;
  }
  static const struct {
    const char *name;
    size_t off;
  } fields[] = {
      {"content-type:", offsetof(struct http_resp, content_type)},
      {"docker-content-digest:", offsetof(struct http_resp, digest)},
      {"content-range:", offsetof(struct http_resp, content_range)},
  };
  for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
    size_t k = strlen(fields[i].name);
    if (len > k && !strncasecmp(buf, fields[i].name, k))
      set_field((char **)((char *)r + fields[i].off), buf + k, len - k);
  }
  /* Several challenges may come; Bearer is the one worth answering. */
  size_t k = strlen("www-authenticate:");
  if (len > k && !strncasecmp(buf, "www-authenticate:", k) &&
      (!r->challenge || strncasecmp(r->challenge, "bearer", 6) != 0))
    set_field(&r->challenge, buf + k, len - k);
  return len;
}

static size_t body_cb(char *buf, size_t sz, size_t n, void *opaque)
{
  struct http_resp *r = opaque;
  size_t len = sz * n;
  if (r->len + len > r->max) {
    r->too_big = true;
    return 0; /* aborts the transfer */
  }
  r->body = xrealloc(r->body, r->len + len + 1);
  memcpy(r->body + r->len, buf, len);
  r->len += len;
  r->body[r->len] = '\0';
  return len;
}

int http__curl_error(CURLcode rc, const char *errbuf, const char *registry, const char *url,
                     vmbox_error_t *err)
{
  const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
    vmbox_error_set(err, 0, "registry %s is unreachable: %s", registry, why);
    if (rc == CURLE_COULDNT_RESOLVE_HOST)
      return vmbox_error_hint(err, "check the registry name and this machine's DNS and network");
    if (url && util__has_prefix(url, "https://"))
      return vmbox_error_hint(err,
                              "check the registry address and that it is running; "
                              "plain-HTTP registries need --insecure-registry %s",
                              registry);
    return vmbox_error_hint(err, "check the registry address and that it is running");
  case CURLE_OPERATION_TIMEDOUT:
    vmbox_error_set(err, 0, "registry %s timed out: %s", registry, why);
    return vmbox_error_hint(err, "the registry or the network is too slow; try again");
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
    vmbox_error_set(err, 0, "TLS connection to registry %s failed: %s", registry, why);
    return vmbox_error_hint(err, "if %s serves plain HTTP, pass --insecure-registry %s", registry,
                            registry);
  case CURLE_TOO_MANY_REDIRECTS:
    return vmbox_error_set(err, 0, "registry %s: too many redirects (more than %d) for %s",
                           registry, REG_MAX_REDIRS, url);
  default:
    return vmbox_error_set(err, 0, "request to registry %s failed: %s (%s)", registry, why, url);
  }
}

int http__get_plain(const char *url, struct curl_slist *headers, size_t max, const char *registry,
                    struct http_resp *r, vmbox_error_t *err)
{
  http_resp__free(r);
  r->max = max;
  CURL *h = curl_easy_init();
  if (!h)
    return vmbox_error_set(err, 0, "cannot initialise libcurl");
  char errbuf[CURL_ERROR_SIZE];
  http__setup(h, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)REG_SMALL_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http__header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  log__debug("GET %s", url);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(h);
  if (r->too_big)
    return vmbox_error_set(err, 0, "registry %s: response to %s is larger than %zu bytes", registry,
                           url, max);
  if (rc != CURLE_OK)
    return http__curl_error(rc, errbuf, registry, url, err);
  log__debug("  -> %ld (%zu bytes)", r->status, r->len);
  return 0;
}

int http__get(struct reg_session *s, const char *url, const char *accept, size_t max,
              struct http_resp *r, vmbox_error_t *err)
{
  /* At most: as we are, after a token/Basic switch, after a token refresh. */
  for (int attempt = 0; attempt < 3; attempt++) {
    struct curl_slist *hdrs = NULL;
    if (accept) {
      cleanup_free char *a = util__fmt("Accept: %s", accept);
      hdrs = curl_slist_append(hdrs, a);
    }
    hdrs = reg_session__auth_header(s, hdrs);
    int rc = http__get_plain(url, hdrs, max, s->registry, r, err);
    curl_slist_free_all(hdrs);
    if (rc < 0)
      return -1;
    if (r->status != 401)
      return 0;
    if (!r->challenge || attempt == 2)
      return auth__required_error(s, err);
    bool had_token = s->bearer != NULL, had_basic = s->use_basic;
    if (auth__answer_challenge(s, r->challenge, err) < 0)
      return -1;
    /* Basic creds that were already sent and refused will not work better. */
    if (!s->bearer && had_basic && s->use_basic && !had_token)
      return auth__required_error(s, err);
  }
  return auth__required_error(s, err);
}
