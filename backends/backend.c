/* The registry of backends: --backend NAME -> ops table. */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/util.h"
#include "ns/ns.h"

/* Weak: `make KVM_SRC=` builds vmbox without backends/kvm/ and still links;
 * the Makefile forces the symbol in (-u) when the kvm sources are built. */
extern const struct backend_ops backend_kvm_ops __attribute__((weak));

struct backend_entry {
  const char *name;
  const struct backend_ops *ops; /* NULL: planned, not built yet */
  const char *missing;           /* why ops is NULL */
};

static const struct backend_entry backends[] = {
    {"ns", &ns__backend, NULL},
    {"kvm", &backend_kvm_ops, "was not built into this vmbox (make without KVM_SRC=)"},
    {"sentry", NULL, "is not available yet"},
};

int backend__lookup(const char *name, const struct backend_ops **out, vmbox_error_t *err)
{
  for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
    if (strcmp(name, backends[i].name) != 0)
      continue;
    if (backends[i].ops == NULL) {
      vmbox_error_set(err, 0, "backend %s %s", name, backends[i].missing);
      return vmbox_error_hint(err, "use --backend ns");
    }
    *out = backends[i].ops;
    return 0;
  }
  vmbox_error_set(err, 0, "unknown backend %s", name);
  return vmbox_error_hint(err, "backends: ns, kvm, sentry");
}

void backend__images_gone(void)
{
  for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
    if (backends[i].ops && backends[i].ops->images_gone)
      backends[i].ops->images_gone();
}

const char *backend__default_name(void)
{
  return "ns";
}

int backend__own_dir(const struct box_spec *s, const char *name, char **dir, vmbox_error_t *err)
{
  *dir = util__fmt("%s/%s", s->state_dir, name);
  int r = util__mkdir_p(s->state_dir, 0700, err);
  if (r == 0 && mkdir(*dir, 0700) < 0) {
    r = vmbox_error_sys(err, "state dir %s", *dir);
    if (errno == EEXIST)
      vmbox_error_hint(err, "another box uses this state dir, or one was not cleaned up");
  }
  if (r < 0)
    (*dir)[0] = '\0';
  return r;
}

bool backend__valid_id(const char *id)
{
  size_t n = strlen(id);
  if (n == 0 || n > 64 || id[0] == '.')
    return false;
  return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static char *dup_or_null(const char *s)
{
  return s ? xstrdup(s) : NULL;
}

void backend__process_copy(struct box_process *dst, const struct box_process *src)
{
  *dst = *src;
  dst->argv = src->argv ? strv_dup(src->argv) : NULL;
  dst->env = src->env ? strv_dup(src->env) : NULL;
  dst->cwd = dup_or_null(src->cwd);
  dst->groups = NULL;
  if (src->n_groups) {
    gid_t *g = xcalloc(src->n_groups, sizeof(*g));
    memcpy(g, src->groups, src->n_groups * sizeof(*g));
    dst->groups = g;
  }
}

void backend__process_clear(struct box_process *p)
{
  strv_free((char **)p->argv);
  strv_free((char **)p->env);
  free((char *)p->cwd);
  free((gid_t *)p->groups);
  memset(p, 0, sizeof(*p));
}

struct box_spec *backend__spec_dup(const struct box_spec *s)
{
  struct box_spec *d = xcalloc(1, sizeof(*d));
  *d = *s;
  d->id = dup_or_null(s->id);
  d->image = dup_or_null(s->image);
  d->state_dir = dup_or_null(s->state_dir);
  d->hostname = dup_or_null(s->hostname);
  backend__process_copy(&d->proc, &s->proc);
  struct box_mount *m = s->n_mounts ? xcalloc(s->n_mounts, sizeof(*m)) : NULL;
  for (size_t i = 0; i < s->n_mounts; i++) {
    m[i] = s->mounts[i];
    m[i].source = xstrdup(s->mounts[i].source);
    m[i].target = xstrdup(s->mounts[i].target);
  }
  d->mounts = m;
  struct box_tmpfs *t = s->n_tmpfs ? xcalloc(s->n_tmpfs, sizeof(*t)) : NULL;
  for (size_t i = 0; i < s->n_tmpfs; i++) {
    t[i].target = xstrdup(s->tmpfs[i].target);
    t[i].options = dup_or_null(s->tmpfs[i].options);
  }
  d->tmpfs = t;
  d->net.tap = dup_or_null(s->net.tap);
  d->net.netns = dup_or_null(s->net.netns);
  d->net.address = dup_or_null(s->net.address);
  d->net.gateway = dup_or_null(s->net.gateway);
  d->net.mac = dup_or_null(s->net.mac);
  return d;
}

void backend__spec_free(struct box_spec *s)
{
  if (s == NULL)
    return;
  free((char *)s->id);
  free((char *)s->image);
  free((char *)s->state_dir);
  free((char *)s->hostname);
  backend__process_clear(&s->proc);
  for (size_t i = 0; i < s->n_mounts; i++) {
    free((char *)s->mounts[i].source);
    free((char *)s->mounts[i].target);
  }
  free((void *)s->mounts);
  for (size_t i = 0; i < s->n_tmpfs; i++) {
    free((char *)s->tmpfs[i].target);
    free((char *)s->tmpfs[i].options);
  }
  free((void *)s->tmpfs);
  free((char *)s->net.tap);
  free((char *)s->net.netns);
  free((char *)s->net.address);
  free((char *)s->net.gateway);
  free((char *)s->net.mac);
  free(s);
}
