/* Importing an OCI image layout: index.json -> (nested indexes) -> one
 * platform manifest -> config + layers, every blob checked by digest. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "import_int.h"
#include "manifest.h"

#define JSON_MAX (8u << 20)

static json_t *entry_annotations(json_t *index, size_t i)
{
  return json_object_get(json_array_get(json_object_get(index, "manifests"), i), "annotations");
}

static const char *entry_ref_name(json_t *index, size_t i)
{
  return json_string_value(
      json_object_get(entry_annotations(index, i), "org.opencontainers.image.ref.name"));
}

/* The image name an index entry records, canonical, or NULL. */
static char *entry_name(json_t *index, size_t i)
{
  json_t *a = entry_annotations(index, i);
  char *n = import__archive_name(json_string_value(json_object_get(a, "io.containerd.image.name")));
  return n ? n : import__archive_name(entry_ref_name(index, i));
}

static long find_ref(json_t *index, const struct manifest *idx, const char *ref)
{
  for (size_t i = 0; ref && i < idx->n_manifests; i++) {
    const char *r = entry_ref_name(index, i);
    if (r && strcmp(r, ref) == 0)
      return (long)i;
  }
  return -1;
}

/* Tag part of a canonical name ("docker.io/library/a:1" -> "1"). */
static const char *name_tag(const char *name)
{
  const char *slash = name ? strrchr(name, '/') : NULL;
  const char *colon = slash ? strchr(slash, ':') : NULL;
  return colon ? colon + 1 : NULL;
}

static int too_many(struct import *imp, json_t *index, const struct manifest *idx,
                    vmbox_error_t *err)
{
  cleanup_free char *names = xstrdup("");
  for (size_t i = 0; i < idx->n_manifests; i++) {
    cleanup_free char *full = entry_name(index, i);
    const char *r = entry_ref_name(index, i);
    const char *n = full ? full : r ? r : idx->manifests[i].digest;
    char *t = util__fmt("%s%s%s", names, *names ? ", " : "", n);
    free(names);
    names = t;
  }
  vmbox_error_set(err, 0, "the layout holds %zu images (%s)", idx->n_manifests, names);
  return vmbox_error_hint(err,
                          "pick one: vmbox import %s:TAG [NAME], or give the NAME it has "
                          "in the layout",
                          imp->src.path);
}

/* Which top-level entry of index.json to import. */
static long pick_entry(struct import *imp, json_t *index, const struct manifest *idx,
                       vmbox_error_t *err)
{
  if (idx->n_manifests == 0)
    return vmbox_error_set(err, 0, "index.json lists no images");
  if (imp->ref_name) {
    long i = find_ref(index, idx, imp->ref_name);
    if (i < 0)
      return vmbox_error_set(err, 0, "no image tagged '%s' in the layout", imp->ref_name);
    return i;
  }
  if (idx->n_manifests == 1)
    return 0;
  const struct descriptor *d =
      manifest__select(idx, imp->platform ? imp->platform : manifest__host_platform());
  if (d)
    return d - idx->manifests;
  for (size_t i = 0; imp->name && i < idx->n_manifests; i++) {
    cleanup_free char *n = entry_name(index, i);
    if (n && strcmp(n, imp->name) == 0)
      return (long)i;
  }
  long i = find_ref(index, idx, imp->name ? name_tag(imp->name) : NULL);
  if (i < 0)
    i = find_ref(index, idx, "latest");
  return i >= 0 ? i : too_many(imp, index, idx, err);
}

static int no_platform(struct import *imp, const struct manifest *idx, const char *want,
                       vmbox_error_t *err)
{
  cleanup_free char *have = xstrdup("");
  for (size_t i = 0; i < idx->n_manifests; i++) {
    const char *p = idx->manifests[i].platform ? idx->manifests[i].platform : "?";
    char *t = util__fmt("%s%s%s", have, *have ? ", " : "", p);
    free(have);
    have = t;
  }
  vmbox_error_set(err, 0, "no image for platform %s in the index (it has: %s)", want, have);
  return imp->platform ? -1 : vmbox_error_hint(err, "choose one with --platform");
}

static int load_layers(struct import *imp, const struct manifest *m, vmbox_error_t *err)
{
  for (size_t i = 0; i < m->n_layers; i++) {
    cleanup_free char *member = import__blob_member(m->layers[i].digest);
    int64_t n = 0;
    if (!isrc__has(&imp->src, member))
      return vmbox_error_set(err, 0, "layer %s is missing from the layout", m->layers[i].digest);
    if (import__stage(imp, member, STAGE_MEMBER, true, m->layers[i].digest, NULL, &n, err) < 0)
      return -1;
    imp->size += n;
  }
  return 0;
}

static int load_image(struct import *imp, char *buf, size_t len, const struct manifest *m,
                      const char *digest, vmbox_error_t *err)
{
  imp->manifest = buf;
  imp->manifest_len = len;
  imp->manifest_digest = xstrdup(digest);
  cleanup_free char *cm = import__blob_member(m->config.digest);
  if (!isrc__has(&imp->src, cm))
    return vmbox_error_set(err, 0, "config %s is missing from the layout", m->config.digest);
  if (import__read_json(imp, cm, m->config.digest, &imp->config, &imp->config_len, err) < 0)
    return -1;
  imp->config_digest = xstrdup(m->config.digest);
  return load_layers(imp, m, err);
}

/* Follows a descriptor down nested indexes to one image manifest. */
static int resolve(struct import *imp, const struct descriptor *d, int depth, vmbox_error_t *err)
{
  if (depth > 4)
    return vmbox_error_set(err, 0, "indexes nested too deeply at %s", d->digest);
  cleanup_free char *member = import__blob_member(d->digest);
  if (!isrc__has(&imp->src, member))
    return vmbox_error_set(err, 0, "manifest %s is missing from the layout", d->digest);
  char *buf = NULL;
  size_t len;
  struct manifest m;
  if (import__read_json(imp, member, d->digest, &buf, &len, err) < 0)
    return -1;
  if (manifest__parse(buf, len, d->media_type, &m, err) < 0) {
    free(buf);
    return vmbox_error_wrap(err, "manifest %s", d->digest);
  }
  int r;
  if (m.kind == MANIFEST_INDEX) {
    free(buf);
    const char *want = imp->platform ? imp->platform : manifest__host_platform();
    const struct descriptor *sel = manifest__select(&m, want);
    r = sel ? resolve(imp, sel, depth + 1, err) : no_platform(imp, &m, want, err);
  } else {
    r = load_image(imp, buf, len, &m, d->digest, err);
  }
  manifest__free(&m);
  return r;
}

int import__oci(struct import *imp, vmbox_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len;
  if (isrc__read(&imp->src, "index.json", JSON_MAX, &buf, &len, err) < 0)
    return -1;
  struct manifest idx;
  if (manifest__parse(buf, len, MT_OCI_INDEX, &idx, err) < 0)
    return vmbox_error_wrap(err, "index.json");
  json_t *index = json_loadb(buf, len, 0, NULL);
  int r = -1;
  if (idx.kind != MANIFEST_INDEX) {
    vmbox_error_set(err, 0, "index.json is not an image index");
  } else {
    long i = pick_entry(imp, index, &idx, err);
    if (i >= 0 && !imp->user_name)
      imp->name = entry_name(index, (size_t)i);
    if (i >= 0)
      r = resolve(imp, &idx.manifests[i], 0, err);
  }
  json_decref(index);
  manifest__free(&idx);
  return r;
}
