/* `pull`: resolve a reference to one platform's manifest, download its config
 * and layers into the store, build the ext4 disk, then index the image.
 * Nothing is indexed until everything is in place; on failure the blobs this
 * pull added are removed again, so the store looks as before (apart from
 * partial downloads kept for resuming). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "flatten.h"
#include "registry_int.h"

struct pull {
  struct store *st;
  const struct image_ref *ref;
  const struct pull_opts *opts;
  struct reg_session s;
  char *name;       /* canonical, for messages */
  char *top_digest; /* what the tag points at (index or manifest) */
  char *body;       /* the platform manifest as the registry sent it */
  size_t len;
  char *digest; /* its digest */
  struct manifest m;
  struct blob_job *jobs; /* config first, then layers */
  size_t n_jobs;
  bool manifest_added;
  struct image_config cfg;
};

/* 404 for a manifest.  One more request tells a missing tag from a missing
 * repository, so the hint can say which. */
static int not_found(struct pull *p, vmbox_error_t *err)
{
  struct http_resp r = {0};
  cleanup_free char *url = util__fmt("%s/v2/%s/tags/list", p->s.base, p->s.repository);
  vmbox_error_t ignore = NULL;
  bool repo_exists =
      http__get(&p->s, url, NULL, REG_MAX_SMALL, &r, &ignore) == 0 && r.status == 200;
  vmbox_error_free(&ignore);
  http_resp__free(&r);
  vmbox_error_set(err, 0, "image not found: %s (does it exist? are you logged in?)", p->name);
  if (repo_exists && p->ref->digest)
    return vmbox_error_hint(err, "repository %s on %s has no manifest %s", p->ref->repository,
                            p->s.registry, p->ref->digest);
  if (repo_exists)
    return vmbox_error_hint(err, "repository %s on %s has no tag '%s'; check the tag",
                            p->ref->repository, p->s.registry, p->ref->tag);
  return vmbox_error_hint(err, "check the name; for a private image run `vmbox login %s`",
                          p->s.registry);
}

/* GETs a manifest by tag or digest and checks its digest. */
static int get_manifest(struct pull *p, const char *reference, const char *want_digest,
                        struct http_resp *r, char **digest_out, vmbox_error_t *err)
{
  cleanup_free char *url =
      util__fmt("%s/v2/%s/manifests/%s", p->s.base, p->s.repository, reference);
  if (http__get(&p->s, url, MANIFEST_ACCEPT, REG_MAX_MANIFEST, r, err) < 0)
    return -1;
  if (r->status == 404)
    return not_found(p, err);
  if (r->status != 200)
    return vmbox_error_set(err, 0, "registry %s answered HTTP %ld for the manifest of %s",
                           p->s.registry, r->status, p->name);
  char *got = util__sha256_digest(r->body ? r->body : "", r->len);
  /* By tag, the registry's Docker-Content-Digest (when sha256) must agree too. */
  const char *claimed = want_digest;
  if (!claimed && r->digest && util__has_prefix(r->digest, "sha256:"))
    claimed = r->digest;
  if (claimed && strcmp(claimed, got) != 0) {
    vmbox_error_set(err, 0, "manifest digest mismatch for %s: expected %s, got %s", p->name,
                    claimed, got);
    free(got);
    return vmbox_error_hint(err, "the registry sent a different manifest than requested; "
                                 "try again or check the registry");
  }
  *digest_out = got;
  return 0;
}

static int parse_manifest(struct pull *p, struct http_resp *r, struct manifest *m,
                          vmbox_error_t *err)
{
  cleanup_free char *ct =
      r->content_type ? xstrndup(r->content_type, strcspn(r->content_type, ";")) : NULL;
  if (manifest__parse(r->body ? r->body : "", r->len, ct, m, err) < 0) {
    vmbox_error_wrap(err, "bad manifest for %s from %s", p->name, p->s.registry);
    return vmbox_error_hint(err, "vmbox supports OCI and Docker schema2 images");
  }
  return 0;
}

static char *platforms_of(const struct manifest *idx)
{
  char *s = xstrdup("");
  for (size_t i = 0; i < idx->n_manifests; i++) {
    const char *pl = idx->manifests[i].platform;
    char *t = util__fmt("%s%s%s", s, *s ? ", " : "", pl ? pl : "unknown");
    free(s);
    s = t;
  }
  return s;
}

static const char *want_platform(const struct pull *p)
{
  return p->opts->platform ? p->opts->platform : manifest__host_platform();
}

/* Index -> the platform's manifest (fetched by digest and verified). */
static int pick_platform(struct pull *p, struct http_resp *r, vmbox_error_t *err)
{
  const struct descriptor *d = manifest__select(&p->m, want_platform(p));
  if (!d) {
    cleanup_free char *have = platforms_of(&p->m);
    vmbox_error_set(err, 0, "%s has no image for platform %s (available: %s)", p->name,
                    want_platform(p), have);
    return vmbox_error_hint(err, "pick one with --platform");
  }
  cleanup_free char *digest = xstrdup(d->digest);
  manifest__free(&p->m);
  memset(&p->m, 0, sizeof(p->m));
  if (get_manifest(p, digest, digest, r, &p->digest, err) < 0 ||
      parse_manifest(p, r, &p->m, err) < 0)
    return -1;
  if (p->m.kind != MANIFEST_IMAGE)
    return vmbox_error_set(err, 0, "bad manifest for %s: index entry %s is itself an index",
                           p->name, digest);
  return 0;
}

static int resolve(struct pull *p, vmbox_error_t *err)
{
  struct http_resp r = {0};
  const char *reference = p->ref->digest ? p->ref->digest : p->ref->tag;
  int rc = get_manifest(p, reference, p->ref->digest, &r, &p->top_digest, err);
  if (rc == 0)
    rc = parse_manifest(p, &r, &p->m, err);
  if (rc == 0 && p->m.kind == MANIFEST_INDEX)
    rc = pick_platform(p, &r, err);
  else if (rc == 0)
    p->digest = xstrdup(p->top_digest);
  if (rc == 0) {
    p->body = steal_pointer(&r.body);
    p->len = r.len;
  }
  http_resp__free(&r);
  return rc;
}

static int plan_blobs(struct pull *p, vmbox_error_t *err)
{
  /* The config is read into memory; real ones are a few KiB. */
  if (p->m.config.size < 0 || p->m.config.size > REG_MAX_CONFIG)
    return vmbox_error_set(err, 0, "image config of %s declares %lld bytes (limit %d)", p->name,
                           (long long)p->m.config.size, REG_MAX_CONFIG);
  for (size_t i = 0; i < p->m.n_layers; i++)
    if (!manifest__layer_supported(p->m.layers[i].media_type))
      return vmbox_error_set(err, 0, "unsupported layer media type %s in %s",
                             p->m.layers[i].media_type, p->name);
  p->n_jobs = 1 + p->m.n_layers;
  p->jobs = xcalloc(p->n_jobs, sizeof(*p->jobs));
  p->jobs[0].desc = &p->m.config;
  for (size_t i = 0; i < p->m.n_layers; i++)
    p->jobs[i + 1].desc = &p->m.layers[i];
  return 0;
}

static int read_config(struct pull *p, vmbox_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;
  if (store__read_blob(p->st, p->m.config.digest, &buf, &len, err) < 0 ||
      image_config__parse(buf, len, &p->cfg, err) < 0)
    return vmbox_error_wrap(err, "image config of %s", p->name);
  /* A single-platform image must still be what was asked for. */
  if (p->opts->platform && p->cfg.os && p->cfg.architecture) {
    cleanup_free char *have = util__fmt("%s/%s", p->cfg.os, p->cfg.architecture);
    if (!util__has_prefix(p->opts->platform, have))
      return vmbox_error_set(err, 0, "%s is for platform %s, not %s", p->name, have,
                             p->opts->platform);
  }
  return 0;
}

static void fill_record(struct pull *p, struct image_record *rec)
{
  memset(rec, 0, sizeof(*rec));
  rec->id = xstrdup(p->m.config.digest);
  rec->manifest_digest = xstrdup(p->digest);
  cleanup_free char *name = image_ref__name(p->ref);
  rec->repo_digest = util__fmt("%s@%s", name, p->top_digest);
  /* A digest reference names the image by digest, as docker does. */
  char *n = p->ref->digest ? util__fmt("%s@%s", name, p->ref->digest) : xstrdup(p->name);
  strv_push(&rec->names, n);
  free(n);
  if (p->cfg.os && p->cfg.architecture)
    rec->platform = util__fmt("%s/%s%s%s", p->cfg.os, p->cfg.architecture,
                              p->cfg.variant ? "/" : "", p->cfg.variant ? p->cfg.variant : "");
  else
    rec->platform = xstrdup(want_platform(p));
  rec->size = p->m.config.size;
  for (size_t i = 0; i < p->m.n_layers; i++)
    rec->size += p->m.layers[i].size;
  rec->created = p->cfg.created;
  rec->added = (int64_t)time(NULL);
}

static int finish(struct pull *p, struct image_record *rec, vmbox_error_t *err)
{
  p->manifest_added = !store__has_blob(p->st, p->digest);
  cleanup_free char *d = NULL;
  if (store__put_blob(p->st, p->body, p->len, &d, err) < 0)
    return vmbox_error_wrap(err, "store manifest of %s", p->name);
  fill_record(p, rec);
  if (!p->opts->skip_flatten) {
    struct flatten_opts fo = {.disk_size = p->opts->disk_size};
    cleanup_free char *path = NULL;
    if (flatten__image(p->st, rec, &fo, &path, err) < 0)
      return vmbox_error_wrap(err, "build the disk image of %s", p->name);
  }
  if (store__image_put(p->st, rec, err) < 0)
    return vmbox_error_wrap(err, "record %s in the image index", p->name);
  return 0;
}

/* Takes back the blobs this pull committed.  (A concurrent pull that found
 * one of them present would download it again on its next attempt.) */
static void rollback(struct pull *p)
{
  for (size_t i = 0; i < p->n_jobs; i++) {
    if (!p->jobs[i].added)
      continue;
    cleanup_free char *path = store__blob_path(p->st, p->jobs[i].desc->digest);
    if (path && unlink(path) == 0)
      log__debug("rolled back %s", p->jobs[i].desc->digest);
  }
  if (p->manifest_added) {
    cleanup_free char *path = store__blob_path(p->st, p->digest);
    if (path)
      unlink(path);
  }
}

static void pull_free(struct pull *p)
{
  reg_session__free(&p->s);
  free(p->name);
  free(p->top_digest);
  free(p->body);
  free(p->digest);
  manifest__free(&p->m);
  free(p->jobs);
  image_config__free(&p->cfg);
}

int registry__pull(struct store *st, const struct image_ref *ref, const struct pull_opts *opts,
                   struct image_record *out, vmbox_error_t *err)
{
  static const struct pull_opts none = {0};
  struct pull p = {.st = st, .ref = ref, .opts = opts ? opts : &none};
  p.name = image_ref__canonical(ref);
  reg_session__init(&p.s, ref->registry, ref->repository, p.opts->insecure_registries, err);
  struct image_record rec = {0};
  int rc = resolve(&p, err);
  if (rc == 0)
    rc = plan_blobs(&p, err);
  if (rc == 0 && (rc = blobs__fetch(st, &p.s, p.jobs, p.n_jobs, p.opts, err)) < 0)
    vmbox_error_wrap(err, "pull %s", p.name);
  if (rc == 0)
    rc = read_config(&p, err);
  if (rc == 0)
    rc = finish(&p, &rec, err);
  if (rc < 0) {
    rollback(&p);
    image_record__free(&rec);
  } else if (out) {
    *out = rec;
  } else {
    image_record__free(&rec);
  }
  pull_free(&p);
  return rc;
}
