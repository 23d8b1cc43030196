/* Resolving what users type to an image in the store (see lookup.h). */
#include "lookup.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/util.h"
#include "import.h"
#include "ref.h"

#define BUILTIN_REF "docker.io/library/busybox:latest"

bool image__is_builtin_ref(const char *canonical)
{
  return canonical && strcmp(canonical, BUILTIN_REF) == 0;
}

/* "repo@sha256:..." matches the image pulled by that digest, or a tagged
 * image of that repository whose manifest has that digest. */
static int find_by_digest(struct store *s, const struct image_ref *ref, const char *canonical,
                          struct image_record *out, vmbox_error_t *err)
{
  struct image_record *v;
  size_t n;
  if (store__image_list(s, &v, &n, err) < 0)
    return -1;
  cleanup_free char *repo = image_ref__name(ref);
  cleanup_free char *prefix = util__fmt("%s:", repo);
  long found = -1;
  for (size_t i = 0; i < n && found < 0; i++) {
    bool same_repo = false;
    for (char **p = v[i].names; p && *p; p++)
      same_repo |= util__has_prefix(*p, prefix) || strcmp(*p, canonical) == 0;
    if ((v[i].repo_digest && strcmp(v[i].repo_digest, canonical) == 0) ||
        (same_repo && v[i].manifest_digest && strcmp(v[i].manifest_digest, ref->digest) == 0))
      found = (long)i;
  }
  if (found >= 0 && out) {
    *out = v[found];
    memset(&v[found], 0, sizeof(v[found]));
  }
  image_record__list_free(v, n);
  return found >= 0 ? 1 : 0;
}

int image__find(struct store *s, const char *user_ref, struct image_record *out, char **canonical,
                vmbox_error_t *err)
{
  struct image_ref ref = {0};
  vmbox_error_t perr = NULL;
  cleanup_free char *canon = NULL;
  int r = 0;
  if (image_ref__parse(user_ref, &ref, &perr) == 0) {
    canon = image_ref__canonical(&ref);
    r = ref.digest ? find_by_digest(s, &ref, canon, out, err)
                   : store__image_find(s, canon, out, err);
  }
  vmbox_error_free(&perr);
  image_ref__free(&ref);
  /* Then as an id or id prefix, as Docker does after names. */
  if (r == 0)
    r = store__image_find(s, user_ref, out, err);
  if (canonical)
    *canonical = steal_pointer(&canon);
  return r;
}

int image__resolve(struct store *s, const char *user_ref, struct image_record *out,
                   vmbox_error_t *err)
{
  cleanup_free char *canon = NULL;
  int r = image__find(s, user_ref, out, &canon, err);
  if (r != 0 || !image__is_builtin_ref(canon))
    return r;
  struct image_record tmp = {0};
  if (import__builtin_busybox(s, out ? out : &tmp, err) < 0)
    return -1;
  image_record__free(&tmp);
  return 1;
}

const char *image__rfc3339(int64_t t)
{
  static __thread char buf[32];
  if (t == 0)
    return NULL;
  time_t tt = (time_t)t;
  struct tm tm;
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
  return buf;
}

static json_t *str_or_null(const char *s)
{
  return s ? json_string(s) : json_null();
}

json_t *image_record__to_json(const struct image_record *r)
{
  json_t *names = json_array();
  for (char **p = r->names; p && *p; p++)
    json_array_append_new(names, json_string(*p));
  json_t *j = json_object();
  json_object_set_new(j, "id", json_string(r->id));
  json_object_set_new(j, "names", names);
  json_object_set_new(j, "repo_digest", str_or_null(r->repo_digest));
  json_object_set_new(j, "manifest_digest", str_or_null(r->manifest_digest));
  json_object_set_new(j, "platform", str_or_null(r->platform));
  json_object_set_new(j, "size", json_integer(r->size));
  json_object_set_new(j, "created", json_integer(r->created));
  json_object_set_new(j, "added", json_integer(r->added));
  return j;
}

char *image__familiar(const char *canonical)
{
  struct image_ref ref = {0};
  vmbox_error_t e = NULL;
  char *f =
      image_ref__parse(canonical, &ref, &e) == 0 ? image_ref__familiar(&ref) : xstrdup(canonical);
  vmbox_error_free(&e);
  image_ref__free(&ref);
  return f;
}

char *image__disk_path(struct store *s, const struct image_record *r)
{
  const char *hex = util__digest_hex(r->manifest_digest);
  if (hex == NULL)
    return NULL;
  char *p = util__fmt("%s/ext4/%s.ext4", store__root(s), hex);
  if (access(p, F_OK) == 0)
    return p;
  free(p);
  return NULL;
}
