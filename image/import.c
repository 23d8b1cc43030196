/* vmbox import: OCI image layouts (directory or tar), `docker save` archives
 * and plain rootfs tars.  Every blob is hashed while it streams into a staged
 * (uncommitted) blob writer; only when the whole image checks out are the blobs
 * committed, the disk flattened and the index updated, so bad input leaves the
 * store exactly as it was. */
#include "import.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "flatten.h"
#include "import_int.h"
#include "manifest.h"
#include "ref.h"

#define JSON_MAX (8u << 20) /* manifests, configs, index.json */

/* ---- staging ------------------------------------------------------------------ */

void import__cleanup(struct import *imp)
{
  for (size_t i = 0; i < imp->n_writers; i++)
    blob_writer__abort(imp->writers[i], false);
  free(imp->writers);
  for (size_t i = 0; i < imp->n_small; i++)
    free(imp->small[i]);
  free(imp->small);
  free(imp->small_len);
  free(imp->manifest);
  free(imp->manifest_digest);
  free(imp->config);
  free(imp->config_digest);
  free(imp->name);
  isrc__close(&imp->src);
  memset(imp, 0, sizeof(*imp));
}

static char *md_digest(EVP_MD_CTX *md)
{
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(md, h, &n);
  char *d = xmalloc(7 + 2 * n + 1);
  strcpy(d, "sha256:");
  for (unsigned i = 0; i < n; i++)
    sprintf(d + 7 + 2 * i, "%02x", h[i]);
  return d;
}

struct hash_sink {
  EVP_MD_CTX *md;
  struct blob_writer *w; /* NULL: hash only */
  int64_t n;
  unsigned char *magic;
};

static int hash_sink_fn(const void *buf, size_t len, void *opaque, vmbox_error_t *err)
{
  struct hash_sink *h = opaque;
  for (size_t i = 0; (int64_t)i + h->n < 8 && i < len; i++)
    h->magic[h->n + (int64_t)i] = ((const unsigned char *)buf)[i];
  EVP_DigestUpdate(h->md, buf, len);
  h->n += (int64_t)len;
  return h->w ? blob_writer__write(h->w, buf, len, err) : 0;
}

static int corrupt_blob(const char *what, const char *want, const char *got, vmbox_error_t *err)
{
  if (strstr(what, util__digest_hex(want) ? util__digest_hex(want) : want))
    vmbox_error_set(err, 0, "%s is corrupt: its content hashes to %s", what, got);
  else
    vmbox_error_set(err, 0, "%s is corrupt: expected %s, its content hashes to %s", what, want,
                    got);
  return vmbox_error_hint(err, "the archive is damaged; export or download it again");
}

int import__stage(struct import *imp, const char *member, int whole, bool store,
                  const char *expected, char **digest_out, int64_t *size_out, vmbox_error_t *err)
{
  struct hash_sink h = {.md = EVP_MD_CTX_new(), .magic = imp->magic};
  memset(imp->magic, 0, sizeof(imp->magic));
  EVP_DigestInit_ex(h.md, EVP_sha256(), NULL);
  int r = 0;
  /* Blobs the store has are still hashed: a damaged archive fails either way. */
  if (store && !(expected && store__has_blob(imp->s, expected))) {
    r = store__blob_begin(imp->s, expected, &h.w, err);
    /* A partial left by an interrupted pull is not this archive's bytes. */
    if (r == 0 && blob_writer__offset(h.w) > 0)
      r = blob_writer__restart(h.w, err);
  }
  if (r == 0)
    r = whole ? isrc__stream_whole(&imp->src, whole == STAGE_RAW, hash_sink_fn, &h, err)
              : isrc__stream(&imp->src, member, hash_sink_fn, &h, err);
  cleanup_free char *got = md_digest(h.md);
  EVP_MD_CTX_free(h.md);
  if (r == 0 && expected && strcmp(expected, got) != 0)
    r = corrupt_blob(member ? member : "layer", expected, got, err);
  if (r < 0) {
    blob_writer__abort(h.w, false);
    return -1;
  }
  if (h.w) {
    imp->writers = xrealloc(imp->writers, (imp->n_writers + 1) * sizeof(*imp->writers));
    imp->writers[imp->n_writers++] = h.w;
  }
  if (digest_out)
    *digest_out = steal_pointer(&got);
  if (size_out)
    *size_out = h.n;
  return 0;
}

/* Keeps a small blob (manifest, config) to store at commit. */
void import__stage_mem(struct import *imp, const char *buf, size_t len)
{
  imp->small = xrealloc(imp->small, (imp->n_small + 1) * sizeof(char *));
  imp->small_len = xrealloc(imp->small_len, (imp->n_small + 1) * sizeof(size_t));
  imp->small[imp->n_small] = xmalloc(len + 1);
  memcpy(imp->small[imp->n_small], buf, len);
  imp->small_len[imp->n_small++] = len;
}

/* Reads a JSON member, checks its digest (if expected) and stages it. */
int import__read_json(struct import *imp, const char *member, const char *expected, char **buf,
                      size_t *len, vmbox_error_t *err)
{
  if (isrc__read(&imp->src, member, JSON_MAX, buf, len, err) < 0)
    return -1;
  cleanup_free char *got = util__sha256_digest(*buf, *len);
  if (expected && strcmp(got, expected) != 0) {
    free(*buf);
    *buf = NULL;
    return corrupt_blob(member, expected, got, err);
  }
  import__stage_mem(imp, *buf, *len);
  return 0;
}

char *import__dump(json_t *j)
{
  char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(j);
  return s;
}

void import__set_manifest(struct import *imp, char *json)
{
  imp->manifest = json;
  imp->manifest_len = strlen(json);
  imp->manifest_digest = util__sha256_digest(json, imp->manifest_len);
  import__stage_mem(imp, json, imp->manifest_len);
}

void import__set_config(struct import *imp, char *json)
{
  imp->config = json;
  imp->config_len = strlen(json);
  imp->config_digest = util__sha256_digest(json, imp->config_len);
  import__stage_mem(imp, json, imp->config_len);
}

char *import__blob_member(const char *digest)
{
  return util__fmt("blobs/sha256/%s", util__digest_hex(digest));
}

/* ---- finishing: commit, flatten, index ------------------------------------------ */

static int import_commit(struct import *imp, vmbox_error_t *err)
{
  for (size_t i = 0; i < imp->n_small; i++)
    if (store__put_blob(imp->s, imp->small[i], imp->small_len[i], NULL, err) < 0)
      return -1;
  while (imp->n_writers > 0) {
    struct blob_writer *w = imp->writers[0];
    memmove(imp->writers, imp->writers + 1, --imp->n_writers * sizeof(*imp->writers));
    if (blob_writer__commit(w, NULL, err) < 0)
      return -1;
  }
  return 0;
}

static char *platform_of(const struct image_config *c)
{
  const char *os = c->os ? c->os : "linux";
  const char *arch = c->architecture ? c->architecture : "amd64";
  return c->variant && *c->variant ? util__fmt("%s/%s/%s", os, arch, c->variant)
                                   : util__fmt("%s/%s", os, arch);
}

/* --platform os/arch matches an image of os/arch/variant, as with pull. */
static bool platform_matches(const char *want, const char *have)
{
  size_t n = strlen(want);
  return strcmp(want, have) == 0 || (strncmp(want, have, n) == 0 && have[n] == '/');
}

static int record_build(struct import *imp, struct image_record *rec, vmbox_error_t *err)
{
  struct image_config cfg;
  if (image_config__parse(imp->config, imp->config_len, &cfg, err) < 0)
    return vmbox_error_wrap(err, "image config %s", imp->config_digest);
  rec->platform = platform_of(&cfg);
  rec->created = cfg.created;
  image_config__free(&cfg);
  if (imp->platform && !platform_matches(imp->platform, rec->platform))
    return vmbox_error_set(err, 0, "the image is for %s, not the requested --platform %s",
                           rec->platform, imp->platform);
  rec->id = xstrdup(imp->config_digest);
  rec->manifest_digest = xstrdup(imp->manifest_digest);
  rec->names = xcalloc(2, sizeof(char *));
  if (imp->name)
    rec->names[0] = xstrdup(imp->name);
  rec->size = imp->size + (int64_t)imp->config_len;
  rec->added = (int64_t)time(NULL);
  return 0;
}

int import__finish(struct import *imp, struct image_record *out, vmbox_error_t *err)
{
  struct image_record rec = {0};
  if (record_build(imp, &rec, err) < 0 || import_commit(imp, err) < 0) {
    image_record__free(&rec);
    return -1;
  }
  /* The disk is built now so `run` starts at once, and so a broken layer fails
   * the import rather than the first run. */
  struct flatten_opts fo = {0};
  cleanup_free char *disk = NULL;
  if (flatten__image(imp->s, &rec, &fo, &disk, err) < 0 ||
      store__image_put(imp->s, &rec, err) < 0) {
    image_record__free(&rec);
    return -1;
  }
  if (out)
    *out = rec;
  else
    image_record__free(&rec);
  return 0;
}

/* ---- names ---------------------------------------------------------------------- */

/* Canonical form of a user or archive name; tags only.  NULL + err on failure. */
char *import__normalize_name(const char *name, vmbox_error_t *err)
{
  struct image_ref ref = {0};
  if (image_ref__parse(name, &ref, err) < 0)
    return NULL;
  char *c = NULL;
  if (ref.digest)
    vmbox_error_set(err, 0, "cannot name an imported image by digest (%s); use a tag", name);
  else
    c = image_ref__canonical(&ref);
  image_ref__free(&ref);
  return c;
}

/* A name recorded in an archive: only full references name an image; a bare
 * tag ("latest") does not, as with `docker load` of such a layout. */
char *import__archive_name(const char *s)
{
  if (s == NULL || (!strchr(s, '/') && !strchr(s, ':')))
    return NULL;
  vmbox_error_t e = NULL;
  char *c = import__normalize_name(s, &e);
  if (e)
    log__debug("import: ignoring archive name '%s': %s", s, e->msg);
  vmbox_error_free(&e);
  return c;
}

/* ---- entry points ----------------------------------------------------------------- */

static int import_source(struct import *imp, struct image_record *out, vmbox_error_t *err)
{
  int r;
  if (isrc__has(&imp->src, "index.json") &&
      (isrc__has(&imp->src, "oci-layout") || !isrc__has(&imp->src, "manifest.json")))
    r = import__oci(imp, err);
  else if (isrc__has(&imp->src, "manifest.json"))
    r = import__docker(imp, err);
  else if (imp->src.is_dir)
    return vmbox_error_set(err, 0, "%s is a directory but not an OCI image layout (no index.json)",
                           imp->src.path),
           vmbox_error_hint(err, "to import a root filesystem directory, tar it first: "
                                 "tar -C DIR -cf rootfs.tar .");
  else
    r = import__rootfs(imp, err);
  if (r < 0)
    return -1;
  return import__finish(imp, out, err);
}

static int set_user_name(struct import *imp, const char *name, vmbox_error_t *err)
{
  if (name == NULL)
    return 0;
  imp->user_name = true;
  imp->name = import__normalize_name(name, err);
  return imp->name ? 0 : vmbox_error_wrap(err, "invalid image name");
}

/* "DIR:TAG" picks one tag of a multi-tag OCI layout, as skopeo's oci:DIR:TAG. */
static int open_path(struct import *imp, const char *path, vmbox_error_t *err)
{
  struct stat st;
  const char *colon = strrchr(path, ':');
  if (stat(path, &st) < 0 && errno == ENOENT && colon && colon[1]) {
    cleanup_free char *dir = xstrndup(path, (size_t)(colon - path));
    if (stat(dir, &st) == 0) {
      imp->ref_name = colon + 1;
      return isrc__open_path(dir, &imp->src, err);
    }
  }
  if (isrc__open_path(path, &imp->src, err) == 0)
    return 0;
  if ((*err)->hint)
    return -1;
  if ((*err)->errno_ == ENOENT)
    return vmbox_error_hint(err, "give the path of an OCI layout, a `docker save` archive "
                                 "or a root filesystem tar");
  return vmbox_error_hint(err, "vmbox imports OCI image layouts (directory or tar), "
                               "`docker save` archives and root filesystem tars");
}

/* "-" (as `docker import -`): stdin is spooled to a temp file, because
 * archives are read more than once. */
static int spool_stdin(struct store *s, char **path, vmbox_error_t *err)
{
  *path = util__fmt("%s/tmp/stdin.tmp.%d", store__root(s), (int)getpid());
  cleanup_close int fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "create %s", *path);
  char buf[65536];
  ssize_t n;
  while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmbox_error_sys(err, "read standard input");
    if (write(fd, buf, (size_t)n) != n)
      return vmbox_error_sys(err, "write %s", *path);
  }
  return 0;
}

int import__path(struct store *s, const char *path, const char *name, const char *platform,
                 struct image_record *out, vmbox_error_t *err)
{
  struct import imp = {.s = s, .platform = platform};
  cleanup_free char *spool = NULL;
  int r = set_user_name(&imp, name, err);
  if (r == 0 && strcmp(path, "-") == 0)
    r = spool_stdin(s, &spool, err);
  if (r == 0)
    r = open_path(&imp, spool ? spool : path, err);
  if (r == 0)
    r = import_source(&imp, out, err);
  import__cleanup(&imp);
  if (spool)
    unlink(spool);
  return r < 0 ? vmbox_error_wrap(err, "import %s", spool ? "from standard input" : path) : 0;
}

extern const char vmbox_builtin_busybox[], vmbox_builtin_busybox_end[];

int import__builtin_busybox(struct store *s, struct image_record *out, vmbox_error_t *err)
{
  struct import imp = {.s = s};
  int r = set_user_name(&imp, "docker.io/library/busybox:latest", err);
  if (r == 0)
    r = isrc__open_mem(
        vmbox_builtin_busybox,
        (size_t)((uintptr_t)vmbox_builtin_busybox_end - (uintptr_t)vmbox_builtin_busybox), &imp.src,
        err);
  if (r == 0)
    r = import_source(&imp, out, err);
  import__cleanup(&imp);
  return r < 0 ? vmbox_error_wrap(err, "import the built-in busybox image") : 0;
}
