/* Importing a plain root filesystem tar as a one-layer image, like
 * `docker import`.  The tar's bytes are kept as the layer when registries
 * could carry them (plain, gzip, zstd); other compressions (xz, bzip2, ...)
 * are stored decompressed.  The config is synthesized: os linux, the host's
 * (or --platform's) architecture, a default PATH, and Cmd ["sh"] so that
 * `vmbox run IMAGE` starts a shell, as with busybox (`docker import` sets no
 * Cmd at all). */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "../lib/util.h"
#include "import_int.h"
#include "manifest.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum comp { COMP_NONE, COMP_GZIP, COMP_ZSTD, COMP_OTHER };

static enum comp sniff(const unsigned char *m)
{
  static const struct {
    const char *magic;
    size_t len;
  } others[] = {
      {"\xfd"
       "7zXZ\x00",
       6},
      {"BZh", 3},
      {"\x04\x22\x4d\x18", 4},
      {"\x5d\x00\x00", 3},
      {"\x1f\x9d", 2},
      {"LZIP", 4},
  };
  if (m[0] == 0x1f && m[1] == 0x8b)
    return COMP_GZIP;
  if (memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0)
    return COMP_ZSTD;
  for (size_t i = 0; i < ARRAY_SIZE(others); i++)
    if (memcmp(m, others[i].magic, others[i].len) == 0)
      return COMP_OTHER;
  return COMP_NONE;
}

static const char *media_type(enum comp c)
{
  return c == COMP_GZIP ? MT_OCI_LAYER_GZIP : c == COMP_ZSTD ? MT_OCI_LAYER_ZSTD : MT_OCI_LAYER;
}

/* Stages the layer; returns its digest and the uncompressed tar's (diff_id). */
static int stage_layer(struct import *imp, enum comp c, char **digest, char **diff_id,
                       vmbox_error_t *err)
{
  int64_t n = 0;
  int r;
  if (c == COMP_OTHER) {
    r = import__stage(imp, NULL, STAGE_DECOMPRESSED, true, NULL, digest, &n, err);
    *diff_id = r == 0 ? xstrdup(*digest) : NULL;
  } else {
    r = import__stage(imp, NULL, STAGE_RAW, true, NULL, digest, &n, err);
    if (r == 0 && c == COMP_NONE)
      *diff_id = xstrdup(*digest);
    else if (r == 0)
      r = import__stage(imp, NULL, STAGE_DECOMPRESSED, false, NULL, diff_id, NULL, err);
  }
  imp->size = n;
  return r;
}

static int split_platform(const char *p, char **os, char **arch, char **variant, vmbox_error_t *err)
{
  cleanup_free char *s = xstrdup(p ? p : manifest__host_platform());
  char *save = NULL;
  char *a = strtok_r(s, "/", &save), *b = strtok_r(NULL, "/", &save);
  char *c = strtok_r(NULL, "/", &save);
  if (a == NULL || b == NULL || strtok_r(NULL, "/", &save))
    return vmbox_error_set(err, 0, "invalid --platform '%s' (want os/arch[/variant])", p);
  *os = xstrdup(a);
  *arch = xstrdup(b);
  *variant = c ? xstrdup(c) : NULL;
  return 0;
}

static char *make_config(const char *diff_id, const char *os, const char *arch, const char *variant)
{
  char created[32];
  time_t now = time(NULL);
  struct tm tm;
  strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  json_t *c = json_pack("{s:s, s:s}", "architecture", arch, "os", os);
  if (variant)
    json_object_set_new(c, "variant", json_string(variant));
  json_object_set_new(c, "created", json_string(created));
  json_object_set_new(c, "config", json_pack("{s:[s], s:[s]}", "Env", DEFAULT_PATH, "Cmd", "sh"));
  json_object_set_new(c, "rootfs",
                      json_pack("{s:s, s:[s]}", "type", "layers", "diff_ids", diff_id));
  json_object_set_new(c, "history",
                      json_pack("[{s:s, s:s}]", "created", created, "created_by", "vmbox import"));
  return import__dump(c);
}

int import__rootfs(struct import *imp, vmbox_error_t *err)
{
  unsigned char m[8];
  if (isrc__magic(&imp->src, m, sizeof(m)) < 0)
    return vmbox_error_sys(err, "read %s", imp->src.path);
  enum comp c = sniff(m);
  cleanup_free char *os = NULL, *arch = NULL, *variant = NULL;
  if (split_platform(imp->platform, &os, &arch, &variant, err) < 0)
    return -1;
  cleanup_free char *digest = NULL, *diff_id = NULL;
  if (stage_layer(imp, c, &digest, &diff_id, err) < 0)
    return -1;
  import__set_config(imp, make_config(diff_id, os, arch, variant));
  json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2,
                          "mediaType", MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG,
                          "digest", imp->config_digest, "size", (json_int_t)imp->config_len,
                          "layers", "mediaType", media_type(c == COMP_OTHER ? COMP_NONE : c),
                          "digest", digest, "size", (json_int_t)imp->size);
  import__set_manifest(imp, import__dump(man));
  return 0;
}
