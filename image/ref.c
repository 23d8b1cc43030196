/* Image references, parsed and normalized the way Docker's reference package
 * does it, so a name means the same thing to vmbox as to `docker pull`. */
#include "ref.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"

#define DOCKER_HUB "docker.io"
#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

void image_ref__free(struct image_ref *r)
{
  free(r->registry);
  free(r->repository);
  free(r->tag);
  free(r->digest);
  memset(r, 0, sizeof(*r));
}

/* One path component: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'. */
static bool component_ok(const char *s, size_t n)
{
  if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (islower(c) || isdigit(c))
      continue;
    if (i == 0 || (!isalnum((unsigned char)s[i - 1]) && !(c == '-' && s[i - 1] == '-')))
      return false; /* separators never touch each other, except runs of '-' */
    if (c == '.' || c == '_') {
      /* '.' alone, '_' or '__' between alphanumerics */
      size_t run = 1;
      while (i + run < n && s[i + run] == '_' && c == '_')
        run++;
      if (run > 2 || !isalnum((unsigned char)s[i + run]))
        return false;
      i += run - 1;
      continue;
    }
    if (c != '-')
      return false;
    if (!isalnum((unsigned char)s[i + 1]) && s[i + 1] != '-')
      return false;
  }
  return true;
}

static bool path_ok(const char *path)
{
  for (const char *p = path;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (!component_ok(p, n))
      return false;
    if (!slash)
      return true;
    p = slash + 1;
  }
}

static bool host_ok(const char *h)
{
  if (*h == '\0')
    return false;
  const char *port = NULL;
  if (h[0] == '[') { /* IPv6 literal: [::1]:5000 */
    const char *end = strchr(h, ']');
    if (!end || end == h + 1)
      return false;
    for (const char *p = h + 1; p < end; p++)
      if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
        return false;
    if (end[1] == '\0')
      return true;
    if (end[1] != ':')
      return false;
    port = end + 2;
  } else {
    for (const char *p = h; *p && *p != ':'; p++)
      if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
        return false;
    if (h[0] == '.' || h[0] == '-')
      return false;
    const char *c = strchr(h, ':');
    if (!c)
      return true;
    port = c + 1;
  }
  if (*port == '\0' || strlen(port) > 5)
    return false;
  for (const char *p = port; *p; p++)
    if (!isdigit((unsigned char)*p))
      return false;
  return atoi(port) > 0 && atoi(port) < 65536;
}

static bool tag_ok(const char *t)
{
  size_t n = strlen(t);
  if (n == 0 || n > TAG_MAX_LEN || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
      return false;
  return true;
}

/* Docker treats the first component as a registry only if it looks like a
 * host: it has a '.' or ':' or is "localhost" (or an IPv6 literal). */
static bool looks_like_host(const char *s, size_t n)
{
  return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && !memcmp(s, "localhost", 9)) ||
         s[0] == '[';
}

static int split_digest(char *s, struct image_ref *out, const char *orig, vmbox_error_t *err)
{
  char *at = strchr(s, '@');
  if (!at)
    return 0;
  *at = '\0';
  const char *d = at + 1;
  if (!util__has_prefix(d, "sha256:"))
    return vmbox_error_set(err, 0,
                           "invalid reference %s: unsupported digest algorithm in %s "
                           "(only sha256 is supported)",
                           orig, d);
  if (!util__digest_hex(d))
    return vmbox_error_set(err, 0,
                           "invalid reference %s: malformed digest %s "
                           "(expected sha256: and 64 lowercase hex digits)",
                           orig, d);
  out->digest = xstrdup(d);
  return 0;
}

static void split_tag(char *s, struct image_ref *out)
{
  char *colon = strrchr(s, ':');
  char *slash = strrchr(s, '/');
  if (colon && (!slash || colon > slash)) {
    *colon = '\0';
    out->tag = xstrdup(colon + 1);
  }
}

static int split_registry(const char *name, struct image_ref *out)
{
  const char *slash = strchr(name, '/');
  if (slash && looks_like_host(name, (size_t)(slash - name))) {
    out->registry = xstrndup(name, (size_t)(slash - name));
    out->repository = xstrdup(slash + 1);
  } else {
    out->registry = xstrdup(DOCKER_HUB);
    out->repository = slash ? xstrdup(name) : util__fmt("library/%s", name);
  }
  /* Docker's historical names for Hub all mean docker.io. */
  if (!strcmp(out->registry, "index.docker.io") || !strcmp(out->registry, "registry-1.docker.io")) {
    free(out->registry);
    out->registry = xstrdup(DOCKER_HUB);
  }
  if (!strcmp(out->registry, DOCKER_HUB) && !strchr(out->repository, '/')) {
    char *r = util__fmt("library/%s", out->repository);
    free(out->repository);
    out->repository = r;
  }
  return 0;
}

static int validate(const struct image_ref *r, const char *orig, vmbox_error_t *err)
{
  if (!host_ok(r->registry))
    return vmbox_error_set(err, 0, "invalid reference %s: bad registry host %s", orig, r->registry);
  for (const char *p = r->repository; *p; p++)
    if (isupper((unsigned char)*p))
      return vmbox_error_set(err, 0, "invalid reference %s: repository name must be lowercase",
                             orig);
  if (!path_ok(r->repository))
    return vmbox_error_set(err, 0, "invalid reference %s: bad repository name %s", orig,
                           r->repository);
  if (strlen(r->registry) + 1 + strlen(r->repository) > NAME_MAX_LEN)
    return vmbox_error_set(err, 0, "invalid reference %s: name longer than %d characters", orig,
                           NAME_MAX_LEN);
  if (r->tag && !tag_ok(r->tag))
    return vmbox_error_set(err, 0, "invalid reference %s: bad tag %s", orig, r->tag);
  return 0;
}

int image_ref__parse(const char *s, struct image_ref *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  if (s == NULL || *s == '\0')
    return vmbox_error_set(err, 0, "invalid reference: empty image name");
  for (const char *p = s; *p; p++)
    if (isspace((unsigned char)*p) || !isprint((unsigned char)*p))
      return vmbox_error_set(err, 0,
                             "invalid reference \"%s\": contains whitespace or "
                             "control characters",
                             s);
  if (strstr(s, "://"))
    return vmbox_error_set(err, 0,
                           "invalid reference %s: give the image name without a "
                           "scheme (e.g. localhost:5000/app:1)",
                           s);
  cleanup_free char *buf = xstrdup(s);
  if (split_digest(buf, out, s, err) < 0)
    goto fail;
  split_tag(buf, out);
  if (*buf == '\0' || buf[strlen(buf) - 1] == '/' || *buf == '/') {
    vmbox_error_set(err, 0, "invalid reference %s: missing repository name", s);
    goto fail;
  }
  split_registry(buf, out);
  if (validate(out, s, err) < 0)
    goto fail;
  if (!out->tag && !out->digest)
    out->tag = xstrdup("latest");
  return 0;
fail:
  image_ref__free(out);
  return -1;
}

char *image_ref__name(const struct image_ref *r)
{
  return util__fmt("%s/%s", r->registry, r->repository);
}

static char *with_suffix(char *name, const struct image_ref *r)
{
  char *s = util__fmt("%s%s%s%s%s", name, r->tag ? ":" : "", r->tag ? r->tag : "",
                      r->digest ? "@" : "", r->digest ? r->digest : "");
  free(name);
  return s;
}

char *image_ref__canonical(const struct image_ref *r)
{
  return with_suffix(image_ref__name(r), r);
}

char *image_ref__familiar(const struct image_ref *r)
{
  char *name;
  if (strcmp(r->registry, DOCKER_HUB) != 0)
    name = image_ref__name(r);
  else if (util__has_prefix(r->repository, "library/") && !strchr(r->repository + 8, '/'))
    name = xstrdup(r->repository + 8);
  else
    name = xstrdup(r->repository);
  return with_suffix(name, r);
}

const char *image_ref__api_host(const struct image_ref *r)
{
  return strcmp(r->registry, DOCKER_HUB) == 0 ? "registry-1.docker.io" : r->registry;
}

/* Host part of "host:port" / "[v6]:port", without brackets. */
static char *host_only(const char *registry)
{
  if (registry[0] == '[') {
    const char *end = strchr(registry, ']');
    return end ? xstrndup(registry + 1, (size_t)(end - registry - 1)) : xstrdup(registry);
  }
  const char *c = strchr(registry, ':');
  return c ? xstrndup(registry, (size_t)(c - registry)) : xstrdup(registry);
}

bool image_ref__is_loopback(const struct image_ref *r)
{
  cleanup_free char *h = host_only(r->registry);
  if (!strcmp(h, "localhost") || !strcmp(h, "::1"))
    return true;
  /* 127.0.0.0/8, written as a dotted quad */
  if (!util__has_prefix(h, "127."))
    return false;
  int dots = 0;
  for (const char *p = h; *p; p++) {
    if (*p == '.')
      dots++;
    else if (!isdigit((unsigned char)*p))
      return false;
  }
  return dots == 3;
}
