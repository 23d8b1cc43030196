/* Importing a `docker save` (docker-archive) tarball: manifest.json names a
 * config file and uncompressed layer tars.  We store the config as-is, the
 * layers as they are, and write the OCI manifest a registry would have had.
 * Layers are checked against the config's diff_ids. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "import_int.h"
#include "manifest.h"

#define JSON_MAX (8u << 20)

static bool entry_has_tag(json_t *e, const char *canonical, const char *raw)
{
  json_t *tags = json_object_get(e, "RepoTags");
  for (size_t i = 0; i < json_array_size(tags); i++) {
    const char *s = json_string_value(json_array_get(tags, i));
    cleanup_free char *c = import__archive_name(s);
    if (s && ((raw && strcmp(s, raw) == 0) || (c && canonical && strcmp(c, canonical) == 0)))
      return true;
  }
  return false;
}

static long pick_entry(struct import *imp, json_t *arr, vmbox_error_t *err)
{
  size_t n = json_array_size(arr);
  if (n == 0)
    return vmbox_error_set(err, 0, "manifest.json lists no images");
  if (n == 1 && !imp->ref_name)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (entry_has_tag(json_array_get(arr, i), imp->ref_name ? NULL : imp->name, imp->ref_name))
      return (long)i;
  vmbox_error_set(err, 0, "the archive holds %zu images and none is tagged %s", n,
                  imp->ref_name ? imp->ref_name
                  : imp->name   ? imp->name
                                : "(no name given)");
  return vmbox_error_hint(err, "name the one to import: vmbox import %s REPO:TAG", imp->src.path);
}

/* Docker names the config file after its digest: check it when it does. */
static char *config_expected(const char *path)
{
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  size_t n = strlen(base);
  if (!(n == 64 || (n == 69 && strcmp(base + 64, ".json") == 0)))
    return NULL;
  char *d = util__fmt("sha256:%.64s", base);
  if (util__digest_hex(d) == NULL) {
    free(d);
    return NULL;
  }
  return d;
}

static const char *layer_type(const unsigned char *m)
{
  if (m[0] == 0x1f && m[1] == 0x8b)
    return MT_OCI_LAYER_GZIP;
  if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
    return MT_OCI_LAYER_ZSTD;
  return MT_OCI_LAYER;
}

static int load_layer(struct import *imp, const char *path, json_t *diff_id, json_t *out,
                      vmbox_error_t *err)
{
  cleanup_free char *digest = NULL;
  int64_t n = 0;
  if (path == NULL || !isrc__has(&imp->src, path))
    return vmbox_error_set(err, 0, "layer %s is missing from the archive", path ? path : "?");
  if (import__stage(imp, path, STAGE_MEMBER, true, NULL, &digest, &n, err) < 0)
    return -1;
  const char *mt = layer_type(imp->magic);
  const char *want = json_string_value(diff_id);
  if (strcmp(mt, MT_OCI_LAYER) == 0 && (want == NULL || strcmp(want, digest) != 0)) {
    vmbox_error_set(err, 0, "layer %s is corrupt: content hashes to %s, the config says %s", path,
                    digest, want ? want : "nothing");
    return vmbox_error_hint(err, "the archive is damaged; save it again");
  }
  imp->size += n;
  json_array_append_new(
      out, json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t)n));
  return 0;
}

static int load_entry(struct import *imp, json_t *e, vmbox_error_t *err)
{
  const char *cfg_path = json_string_value(json_object_get(e, "Config"));
  json_t *paths = json_object_get(e, "Layers");
  if (cfg_path == NULL || !json_is_array(paths))
    return vmbox_error_set(err, 0, "manifest.json: entry without Config or Layers");
  cleanup_free char *expected = config_expected(cfg_path);
  if (import__read_json(imp, cfg_path, expected, &imp->config, &imp->config_len, err) < 0)
    return -1;
  imp->config_digest = util__sha256_digest(imp->config, imp->config_len);
  json_t *cfg = json_loadb(imp->config, imp->config_len, 0, NULL);
  json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
  json_t *layers = json_array();
  int r = 0;
  if (json_array_size(diff_ids) != json_array_size(paths))
    r = vmbox_error_set(err, 0, "the config lists %zu layers but manifest.json %zu",
                        json_array_size(diff_ids), json_array_size(paths));
  for (size_t i = 0; r == 0 && i < json_array_size(paths); i++)
    r = load_layer(imp, json_string_value(json_array_get(paths, i)), json_array_get(diff_ids, i),
                   layers, err);
  json_decref(cfg);
  if (r < 0) {
    json_decref(layers);
    return -1;
  }
  json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                        MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest",
                        imp->config_digest, "size", (json_int_t)imp->config_len, "layers", layers);
  import__set_manifest(imp, import__dump(m));
  return 0;
}

int import__docker(struct import *imp, vmbox_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len;
  if (isrc__read(&imp->src, "manifest.json", JSON_MAX, &buf, &len, err) < 0)
    return -1;
  json_error_t je;
  json_t *arr = json_loadb(buf, len, 0, &je);
  if (!json_is_array(arr)) {
    json_decref(arr);
    return vmbox_error_set(err, 0, "manifest.json is not a docker-save manifest (%s)",
                           arr ? "not a list" : je.text);
  }
  long i = pick_entry(imp, arr, err);
  json_t *e = i >= 0 ? json_array_get(arr, (size_t)i) : NULL;
  if (e && !imp->user_name)
    imp->name =
        import__archive_name(json_string_value(json_array_get(json_object_get(e, "RepoTags"), 0)));
  int r = e ? load_entry(imp, e, err) : -1;
  json_decref(arr);
  return r;
}
