/* Manifests, indexes and image configs: the JSON the registry and importers
 * hand us.  Everything here is untrusted input, so every field is type-checked
 * and digests are validated before anyone builds a path from them. */
#include "manifest.h"

#include <jansson.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "../lib/util.h"

static const char *const image_types[] = {MT_OCI_MANIFEST, MT_DOCKER_MANIFEST};
static const char *const index_types[] = {MT_OCI_INDEX, MT_DOCKER_LIST};
static const char *const layer_types[] = {
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_FOREIGN_LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; s && i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

int manifest__layer_supported(const char *media_type)
{
  return in_list(media_type, layer_types, ARRAY_SIZE(layer_types));
}

const char *manifest__host_platform(void)
{
#if defined(__x86_64__)
  return "linux/amd64";
#elif defined(__aarch64__)
  return "linux/arm64";
#else
  return "linux/unknown";
#endif
}

static char *platform_string(json_t *p)
{
  const char *os = json_string_value(json_object_get(p, "os"));
  const char *arch = json_string_value(json_object_get(p, "architecture"));
  const char *variant = json_string_value(json_object_get(p, "variant"));
  if (!os || !arch)
    return NULL;
  return variant && *variant ? util__fmt("%s/%s/%s", os, arch, variant)
                             : util__fmt("%s/%s", os, arch);
}

static int parse_descriptor(json_t *j, struct descriptor *d, const char *what, vmbox_error_t *err)
{
  json_t *size = json_object_get(j, "size");
  const char *digest = json_string_value(json_object_get(j, "digest"));
  const char *mt = json_string_value(json_object_get(j, "mediaType"));
  if (!json_is_object(j) || !util__digest_hex(digest) || !json_is_integer(size) ||
      json_integer_value(size) < 0)
    return vmbox_error_set(err, 0, "malformed %s descriptor (need a sha256 digest and a size)",
                           what);
  d->digest = xstrdup(digest);
  d->size = json_integer_value(size);
  d->media_type = mt ? xstrdup(mt) : NULL;
  json_t *p = json_object_get(j, "platform");
  d->platform = json_is_object(p) ? platform_string(p) : NULL;
  return 0;
}

static int parse_list(json_t *arr, struct descriptor **out, size_t *n, const char *what,
                      vmbox_error_t *err)
{
  if (!json_is_array(arr))
    return vmbox_error_set(err, 0, "malformed manifest: \"%s\" is not a list", what);
  *n = json_array_size(arr);
  *out = xcalloc(*n, sizeof(struct descriptor));
  for (size_t i = 0; i < *n; i++)
    if (parse_descriptor(json_array_get(arr, i), &(*out)[i], what, err) < 0)
      return -1;
  return 0;
}

/* The media type may come from the HTTP header, the JSON, or (old OCI
 * layouts) neither; the shape of the document decides then. */
static const char *effective_type(json_t *root, const char *content_type)
{
  const char *mt = json_string_value(json_object_get(root, "mediaType"));
  if (mt)
    return mt;
  if (content_type && *content_type && strcmp(content_type, "application/json") != 0 &&
      strcmp(content_type, "application/octet-stream") != 0)
    return content_type;
  if (json_object_get(root, "manifests"))
    return MT_OCI_INDEX;
  if (json_object_get(root, "config"))
    return MT_OCI_MANIFEST;
  return NULL;
}

static int parse_root(json_t *root, const char *content_type, struct manifest *m,
                      vmbox_error_t *err)
{
  json_t *sv = json_object_get(root, "schemaVersion");
  if (json_is_integer(sv) && json_integer_value(sv) == 1)
    return vmbox_error_set(err, 0, "unsupported manifest schema version 1"),
           vmbox_error_hint(err,
                            "the image is too old; re-push it with a current docker or skopeo");
  const char *mt = effective_type(root, content_type);
  if (mt == NULL)
    return vmbox_error_set(err, 0, "malformed manifest: no mediaType");
  m->media_type = xstrdup(mt);
  if (in_list(mt, index_types, ARRAY_SIZE(index_types))) {
    m->kind = MANIFEST_INDEX;
    return parse_list(json_object_get(root, "manifests"), &m->manifests, &m->n_manifests,
                      "manifests", err);
  }
  if (!in_list(mt, image_types, ARRAY_SIZE(image_types)))
    return vmbox_error_set(err, 0, "unsupported manifest media type %s", mt);
  m->kind = MANIFEST_IMAGE;
  if (parse_descriptor(json_object_get(root, "config"), &m->config, "config", err) < 0)
    return -1;
  if (parse_list(json_object_get(root, "layers"), &m->layers, &m->n_layers, "layers", err) < 0)
    return -1;
  for (size_t i = 0; i < m->n_layers; i++)
    if (!manifest__layer_supported(m->layers[i].media_type))
      return vmbox_error_set(err, 0, "unsupported layer media type %s (layer %s)",
                             m->layers[i].media_type ? m->layers[i].media_type : "(none)",
                             m->layers[i].digest);
  return 0;
}

int manifest__parse(const char *json, size_t len, const char *content_type, struct manifest *out,
                    vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  json_error_t jerr;
  json_t *root = json_loadb(json, len, 0, &jerr);
  if (root == NULL)
    return vmbox_error_set(err, 0, "malformed manifest JSON: %s (line %d)", jerr.text, jerr.line);
  int r = json_is_object(root) ? parse_root(root, content_type, out, err)
                               : vmbox_error_set(err, 0, "malformed manifest: not an object");
  json_decref(root);
  if (r < 0)
    manifest__free(out);
  return r;
}

static void descriptor_free(struct descriptor *d)
{
  free(d->media_type);
  free(d->digest);
  free(d->platform);
}

void manifest__free(struct manifest *m)
{
  descriptor_free(&m->config);
  for (size_t i = 0; i < m->n_layers; i++)
    descriptor_free(&m->layers[i]);
  for (size_t i = 0; i < m->n_manifests; i++)
    descriptor_free(&m->manifests[i]);
  free(m->layers);
  free(m->manifests);
  free(m->media_type);
  memset(m, 0, sizeof(*m));
}

/* "linux/arm64" matches "linux/arm64/v8": a missing variant matches any, as
 * Docker does; an exact match wins over a variant-less one. */
const struct descriptor *manifest__select(const struct manifest *idx, const char *platform)
{
  const struct descriptor *loose = NULL;
  size_t plen = strlen(platform);
  for (size_t i = 0; i < idx->n_manifests; i++) {
    const char *p = idx->manifests[i].platform;
    if (p == NULL)
      continue;
    if (strcmp(p, platform) == 0)
      return &idx->manifests[i];
    if (!loose && strncmp(p, platform, plen) == 0 && p[plen] == '/')
      loose = &idx->manifests[i];
  }
  return loose;
}

static char **strv_from_json(json_t *arr)
{
  if (!json_is_array(arr))
    return NULL;
  char **v = xcalloc(json_array_size(arr) + 1, sizeof(char *));
  size_t n = 0, i;
  json_t *e;
  json_array_foreach(arr, i, e) if (json_is_string(e)) v[n++] = xstrdup(json_string_value(e));
  return v;
}

static char *str_or_null(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  return s ? xstrdup(s) : NULL;
}

static int64_t parse_rfc3339(const char *s)
{
  struct tm tm = {0};
  if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
    return 0;
  return (int64_t)timegm(&tm);
}

int image_config__parse(const char *json, size_t len, struct image_config *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  json_error_t jerr;
  json_t *root = json_loadb(json, len, 0, &jerr);
  if (root == NULL || !json_is_object(root)) {
    json_decref(root);
    return vmbox_error_set(err, 0, "malformed image config JSON: %s",
                           root ? "not an object" : jerr.text);
  }
  out->os = str_or_null(root, "os");
  out->architecture = str_or_null(root, "architecture");
  out->variant = str_or_null(root, "variant");
  out->created = parse_rfc3339(json_string_value(json_object_get(root, "created")));
  json_t *c = json_object_get(root, "config");
  out->env = strv_from_json(json_object_get(c, "Env"));
  out->entrypoint = strv_from_json(json_object_get(c, "Entrypoint"));
  out->cmd = strv_from_json(json_object_get(c, "Cmd"));
  out->working_dir = str_or_null(c, "WorkingDir");
  out->user = str_or_null(c, "User");
  json_t *ports = json_object_get(c, "ExposedPorts");
  if (json_is_object(ports)) {
    const char *k;
    json_t *v;
    json_object_foreach(ports, k, v) strv_push(&out->exposed_ports, k);
  }
  out->diff_ids = strv_from_json(json_object_get(json_object_get(root, "rootfs"), "diff_ids"));
  json_decref(root);
  return 0;
}

void image_config__free(struct image_config *c)
{
  free(c->os);
  free(c->architecture);
  free(c->variant);
  strv_free(c->env);
  strv_free(c->entrypoint);
  strv_free(c->cmd);
  free(c->working_dir);
  free(c->user);
  strv_free(c->exposed_ports);
  strv_free(c->diff_ids);
  memset(c, 0, sizeof(*c));
}
