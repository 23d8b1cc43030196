/* The image index, ROOT/images.json:
 *
 *   {"version": 1, "images": [{"id", "names", "manifest_digest", "repo_digest",
 *                              "platform", "size", "created", "added"}, ...]}
 *
 * Readers hold ROOT/lock shared, writers exclusive for the whole
 * read-modify-write, and the file is replaced by rename, so concurrent vmbox
 * processes always see a complete index. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/util.h"
#include "lookup.h"
#include "store_priv.h"

void image_record__free(struct image_record *r)
{
  if (r == NULL)
    return;
  free(r->id);
  free(r->manifest_digest);
  free(r->repo_digest);
  strv_free(r->names);
  free(r->platform);
  memset(r, 0, sizeof(*r));
}

void image_record__list_free(struct image_record *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    image_record__free(&v[i]);
  free(v);
}

static char *dup_or_null(const char *s)
{
  return s ? xstrdup(s) : NULL;
}

static void record_copy(struct image_record *dst, const struct image_record *src)
{
  dst->id = dup_or_null(src->id);
  dst->manifest_digest = dup_or_null(src->manifest_digest);
  dst->repo_digest = dup_or_null(src->repo_digest);
  dst->names = src->names ? strv_dup(src->names) : xcalloc(1, sizeof(char *));
  dst->platform = dup_or_null(src->platform);
  dst->size = src->size;
  dst->created = src->created;
  dst->added = src->added;
}

/* ---- JSON <-> records --------------------------------------------------------- */

static char *json_str(json_t *o, const char *k)
{
  return dup_or_null(json_string_value(json_object_get(o, k)));
}

static int record_from_json(json_t *j, struct image_record *r)
{
  json_t *names = json_object_get(j, "names");
  r->id = json_str(j, "id");
  if (!json_is_object(j) || util__digest_hex(r->id) == NULL || !json_is_array(names))
    return -1;
  r->manifest_digest = json_str(j, "manifest_digest");
  r->repo_digest = json_str(j, "repo_digest");
  r->platform = json_str(j, "platform");
  r->size = json_integer_value(json_object_get(j, "size"));
  r->created = json_integer_value(json_object_get(j, "created"));
  r->added = json_integer_value(json_object_get(j, "added"));
  r->names = xcalloc(1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(names); i++) {
    json_t *v = json_array_get(names, i);
    if (!json_is_string(v))
      return -1;
    strv_push(&r->names, json_string_value(v));
  }
  return 0;
}

/* ---- load / save (callers hold the lock) ---------------------------------------- */

static int index_corrupt(struct store *s, const char *path, const char *why, vmbox_error_t *err)
{
  vmbox_error_set(err, 0, "image index %s is corrupt: %s", path, why);
  return vmbox_error_hint(err,
                          "move it aside (mv %s %s.bad) and pull or import your images "
                          "again; downloaded blobs under %s/blobs are reused",
                          path, path, s->root);
}

static int index_parse(struct store *s, const char *path, const char *buf, size_t len,
                       struct image_record **out, size_t *n, vmbox_error_t *err)
{
  json_error_t je;
  json_t *root = json_loadb(buf, len, 0, &je);
  if (root == NULL) {
    cleanup_free char *why = util__fmt("line %d: %s", je.line, je.text);
    return index_corrupt(s, path, why, err);
  }
  json_t *imgs = json_object_get(root, "images");
  if (!json_is_array(imgs)) {
    json_decref(root);
    return index_corrupt(s, path, "no \"images\" array", err);
  }
  size_t cnt = json_array_size(imgs);
  struct image_record *v = xcalloc(cnt + 1, sizeof(*v));
  for (size_t i = 0; i < cnt; i++)
    if (record_from_json(json_array_get(imgs, i), &v[i]) < 0) {
      image_record__list_free(v, cnt);
      json_decref(root);
      cleanup_free char *why = util__fmt("image entry %zu is malformed", i);
      return index_corrupt(s, path, why, err);
    }
  json_decref(root);
  *out = v;
  *n = cnt;
  return 0;
}

int index__load(struct store *s, struct image_record **out, size_t *n, vmbox_error_t *err)
{
  cleanup_free char *path = util__fmt("%s/images.json", s->root);
  cleanup_free char *buf = NULL;
  size_t len = 0;
  vmbox_error_t e = NULL;
  if (util__read_file(path, &buf, &len, &e) < 0) {
    if (e->errno_ == ENOENT) {
      vmbox_error_free(&e);
      *out = xcalloc(1, sizeof(**out));
      *n = 0;
      return 0;
    }
    *err = e;
    return vmbox_error_wrap(err, "read image index");
  }
  return index_parse(s, path, buf, len, out, n, err);
}

int index__save(struct store *s, const struct image_record *v, size_t n, vmbox_error_t *err)
{
  json_t *imgs = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(imgs, image_record__to_json(&v[i]));
  json_t *root = json_pack("{s:i, s:o}", "version", 1, "images", imgs);
  cleanup_free char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
  json_decref(root);
  cleanup_free char *path = util__fmt("%s/images.json", s->root);
  vmbox_error_t e = NULL;
  if (util__write_file_atomic(path, text, strlen(text), 0644, &e) == 0)
    return 0;
  int no_space = e->errno_ == ENOSPC || e->errno_ == EDQUOT;
  if (!no_space) {
    *err = e;
    return vmbox_error_wrap(err, "write image index");
  }
  vmbox_error_free(&e);
  vmbox_error_set(err, 0, "disk full writing the image index under %s", s->root);
  return vmbox_error_hint(err, "free some space and try again; the index is unchanged");
}

/* ---- matching ---------------------------------------------------------------------- */

static bool strv_has(char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp(*v, s) == 0)
      return true;
  return false;
}

static bool is_hex(const char *s)
{
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
      return false;
  return true;
}

/* Index of the image KEY names: exact name, then id or unique id prefix.
 * Returns -1 not found, -2 ambiguous prefix. */
static long index_match(const struct image_record *v, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strv_has(v[i].names, key))
      return (long)i;
  const char *hex = util__has_prefix(key, "sha256:") ? key + 7 : key;
  if (!is_hex(hex) || strlen(hex) > 64)
    return -1;
  long found = -1;
  for (size_t i = 0; i < n; i++)
    if (util__has_prefix(v[i].id + 7, hex)) {
      if (found >= 0)
        return -2;
      found = (long)i;
    }
  return found;
}

static int ambiguous(const char *key, vmbox_error_t *err)
{
  vmbox_error_set(err, 0, "image id prefix '%s' is ambiguous: several images match", key);
  return vmbox_error_hint(err, "give more characters of the id, or the image name");
}

int store__image_find(struct store *s, const char *key, struct image_record *out,
                      vmbox_error_t *err)
{
  struct image_record *v;
  size_t n;
  if (store__lock(s, false, err) < 0)
    return -1;
  int r = index__load(s, &v, &n, err);
  store__unlock(s);
  if (r < 0)
    return -1;
  long i = index_match(v, n, key);
  if (i >= 0 && out)
    record_copy(out, &v[i]);
  image_record__list_free(v, n);
  if (i == -2)
    return ambiguous(key, err);
  return i >= 0 ? 1 : 0;
}

int store__image_get(struct store *s, const char *name_or_id, struct image_record *out,
                     vmbox_error_t *err)
{
  int r = store__image_find(s, name_or_id, out, err);
  if (r == 0)
    vmbox_error_set(err, 0, "No such image: %s", name_or_id);
  return r == 1 ? 0 : -1;
}

int store__image_list(struct store *s, struct image_record **out, size_t *n, vmbox_error_t *err)
{
  if (store__lock(s, false, err) < 0)
    return -1;
  int r = index__load(s, out, n, err);
  store__unlock(s);
  return r;
}

/* ---- writes ------------------------------------------------------------------------ */

static void names_remove(char **names, const char *name)
{
  size_t w = 0;
  for (size_t r = 0; names && names[r]; r++) {
    if (strcmp(names[r], name) == 0)
      free(names[r]);
    else
      names[w++] = names[r];
  }
  if (names)
    names[w] = NULL;
}

static void index_drop(struct image_record *v, size_t *n, size_t i)
{
  image_record__free(&v[i]);
  memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
  (*n)--;
}

/* Applies rec to the loaded index v (capacity n + 1). */
static void index_apply_put(struct image_record *v, size_t *n, const struct image_record *rec)
{
  for (char **p = rec->names; p && *p; p++)
    for (size_t i = 0; i < *n; i++)
      if (strcmp(v[i].id, rec->id) != 0)
        names_remove(v[i].names, *p);
  for (size_t i = 0; i < *n; i++) {
    if (strcmp(v[i].id, rec->id) != 0)
      continue;
    struct image_record old = v[i];
    record_copy(&v[i], rec);
    /* Tagging adds names; it never drops the ones the image already had. */
    for (char **p = old.names; p && *p; p++)
      if (!strv_has(v[i].names, *p))
        strv_push(&v[i].names, *p);
    if (v[i].repo_digest == NULL && old.repo_digest)
      v[i].repo_digest = xstrdup(old.repo_digest);
    v[i].added = old.added ? old.added : v[i].added;
    image_record__free(&old);
    return;
  }
  record_copy(&v[*n], rec);
  if (v[*n].added == 0)
    v[*n].added = (int64_t)time(NULL);
  (*n)++;
}

/* Read-modify-write of the index under the exclusive lock: the one way
 * every writer changes images.json.  v has room for one more record. */
typedef int (*index_edit_fn)(struct image_record *v, size_t *n, void *ctx, vmbox_error_t *err);

static int index_update(struct store *s, index_edit_fn edit, void *ctx, vmbox_error_t *err)
{
  struct image_record *v;
  size_t n;
  if (store__lock(s, true, err) < 0)
    return -1;
  int r = index__load(s, &v, &n, err);
  if (r == 0) {
    v = xrealloc(v, (n + 1) * sizeof(*v));
    r = edit(v, &n, ctx, err);
    if (r == 0)
      r = index__save(s, v, n, err);
    image_record__list_free(v, n);
  }
  store__unlock(s);
  return r;
}

static int edit_put(struct image_record *v, size_t *n, void *ctx, vmbox_error_t *err)
{
  (void)err;
  index_apply_put(v, n, ctx);
  return 0;
}

int store__image_put(struct store *s, const struct image_record *rec, vmbox_error_t *err)
{
  if (util__digest_hex(rec->id) == NULL)
    return vmbox_error_set(err, 0, "image record has an invalid id '%s'",
                           rec->id ? rec->id : "(null)");
  int r = index_update(s, edit_put, (void *)rec, err);
  if (r == 0)
    store__gc_release(s);
  return r;
}

static int remove_matched(struct image_record *v, size_t *n, long i, const char *key, bool force,
                          vmbox_error_t *err)
{
  if (strv_has(v[i].names, key)) {
    names_remove(v[i].names, key);
  } else if (strv_len(v[i].names) > 1 && !force) {
    vmbox_error_set(err, 0,
                    "conflict: unable to delete %.19s (must be forced) - image is "
                    "referenced in multiple repositories",
                    v[i].id + 7);
    return vmbox_error_hint(err, "remove it by name, or use -f to remove every name");
  } else {
    index_drop(v, n, (size_t)i); /* by id: every name goes with it */
    return 0;
  }
  if (v[i].names[0] == NULL)
    index_drop(v, n, (size_t)i);
  return 0;
}

struct remove_ctx {
  const char *key;
  bool force;
};

static int edit_remove(struct image_record *v, size_t *n, void *ctx, vmbox_error_t *err)
{
  struct remove_ctx *c = ctx;
  long i = index_match(v, *n, c->key);
  if (i == -1)
    return vmbox_error_set(err, 0, "No such image: %s", c->key);
  if (i == -2)
    return ambiguous(c->key, err);
  return remove_matched(v, n, i, c->key, c->force, err);
}

int store__image_remove(struct store *s, const char *name_or_id, bool force, vmbox_error_t *err)
{
  struct remove_ctx c = {name_or_id, force};
  return index_update(s, edit_remove, &c, err);
}
