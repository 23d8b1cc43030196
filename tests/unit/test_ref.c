/* Image reference parsing and normalization, as Docker does it.  Prints TAP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../image/ref.h"
#include "../../image/registry_int.h"
#include "../../lib/util.h"

static int n_test, n_fail;

static void ok(int cond, const char *fmt, const char *arg)
{
  n_test++;
  if (!cond)
    n_fail++;
  printf("%sok %d - ", cond ? "" : "not ", n_test);
  printf(fmt, arg);
  putchar('\n');
}

static int eq(const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
  const char *in, *registry, *repo, *tag, *digest, *canonical, *familiar, *api;
  int loopback;
};

static const struct good goods[] = {
    {"alpine", "docker.io", "library/alpine", "latest", NULL, "docker.io/library/alpine:latest",
     "alpine:latest", "registry-1.docker.io", 0},
    {"alpine:3.19", "docker.io", "library/alpine", "3.19", NULL, "docker.io/library/alpine:3.19",
     "alpine:3.19", "registry-1.docker.io", 0},
    {"user/app:1", "docker.io", "user/app", "1", NULL, "docker.io/user/app:1", "user/app:1",
     "registry-1.docker.io", 0},
    {"docker.io/alpine", "docker.io", "library/alpine", "latest", NULL,
     "docker.io/library/alpine:latest", "alpine:latest", "registry-1.docker.io", 0},
    {"index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", NULL,
     "docker.io/library/alpine:latest", "alpine:latest", "registry-1.docker.io", 0},
    {"localhost:5000/x", "localhost:5000", "x", "latest", NULL, "localhost:5000/x:latest",
     "localhost:5000/x:latest", "localhost:5000", 1},
    {"localhost/x:v1", "localhost", "x", "v1", NULL, "localhost/x:v1", "localhost/x:v1",
     "localhost", 1},
    {"127.0.0.1:41234/a/b/c:t_1.2-3", "127.0.0.1:41234", "a/b/c", "t_1.2-3", NULL,
     "127.0.0.1:41234/a/b/c:t_1.2-3", "127.0.0.1:41234/a/b/c:t_1.2-3", "127.0.0.1:41234", 1},
    {"[::1]:5000/x", "[::1]:5000", "x", "latest", NULL, "[::1]:5000/x:latest",
     "[::1]:5000/x:latest", "[::1]:5000", 1},
    {"quay.io/foo/bar-baz__q.x", "quay.io", "foo/bar-baz__q.x", "latest", NULL,
     "quay.io/foo/bar-baz__q.x:latest", "quay.io/foo/bar-baz__q.x:latest", "quay.io", 0},
    {"alpine@sha256:" D64, "docker.io", "library/alpine", NULL, "sha256:" D64,
     "docker.io/library/alpine@sha256:" D64, "alpine@sha256:" D64, "registry-1.docker.io", 0},
    {"ghcr.io/o/r:1@sha256:" D64, "ghcr.io", "o/r", "1", "sha256:" D64, "ghcr.io/o/r:1@sha256:" D64,
     "ghcr.io/o/r:1@sha256:" D64, "ghcr.io", 0},
    {"127.0.0.1.example.com:80/x", "127.0.0.1.example.com:80", "x", "latest", NULL,
     "127.0.0.1.example.com:80/x:latest", "127.0.0.1.example.com:80/x:latest",
     "127.0.0.1.example.com:80", 0},
    {"library/busybox", "docker.io", "library/busybox", "latest", NULL,
     "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", 0},
    {"a--b/c", "docker.io", "a--b/c", "latest", NULL, "docker.io/a--b/c:latest", "a--b/c:latest",
     "registry-1.docker.io", 0},
};

static const char *const bads[] = {
    "",
    "Alpine",
    "alpine:",
    "alpine:-bad",
    "alpine@sha256:abc",
    "alpine@md5:" D64,
    "alpine@sha256:"
    "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
    "/alpine",
    "alpine/",
    "a//b",
    "a..b",
    "_a",
    "a_-b",
    "a___b",
    "has space",
    "https://registry/x",
    "localhost:99999/x",
    "localhost:/x",
    "host:port/x",
    "-bad.io/x",
    "x:"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

static void check_good(const struct good *g)
{
  struct image_ref r;
  vmbox_error_t err = NULL;
  int rc = image_ref__parse(g->in, &r, &err);
  if (rc < 0) {
    ok(0, "parse %s", g->in);
    fprintf(stderr, "# %s\n", err->msg);
    vmbox_error_free(&err);
    return;
  }
  cleanup_free char *canon = image_ref__canonical(&r);
  cleanup_free char *fam = image_ref__familiar(&r);
  cleanup_free char *name = image_ref__name(&r);
  cleanup_free char *want_name = util__fmt("%s/%s", g->registry, g->repo);
  int good = eq(r.registry, g->registry) && eq(r.repository, g->repo) && eq(r.tag, g->tag) &&
             eq(r.digest, g->digest) && eq(canon, g->canonical) && eq(fam, g->familiar) &&
             eq(image_ref__api_host(&r), g->api) && eq(name, want_name) &&
             image_ref__is_loopback(&r) == (g->loopback != 0);
  if (!good)
    fprintf(stderr, "# got %s | %s | %s | %s | %s | %s | loop=%d\n", r.registry, r.repository,
            r.tag ? r.tag : "(null)", r.digest ? r.digest : "(null)", canon, fam,
            image_ref__is_loopback(&r));
  ok(good, "normalize %s", g->in);
  image_ref__free(&r);
}

static void check_bad(const char *in)
{
  struct image_ref r;
  vmbox_error_t err = NULL;
  int rc = image_ref__parse(in, &r, &err);
  int good = rc < 0 && err && err->msg && strstr(err->msg, "invalid reference");
  ok(good, "reject \"%s\"", in);
  if (rc == 0)
    image_ref__free(&r);
  vmbox_error_free(&err);
}

/* Which scheme and API host a registry gets: loopback and --insecure-registry
 * hosts speak plain HTTP, everything else HTTPS; Hub's API is registry-1. */
struct scheme {
  const char *registry, *insecure, *base;
};

static const struct scheme schemes[] = {
    {"docker.io", NULL, "https://registry-1.docker.io"},
    {"quay.io", NULL, "https://quay.io"},
    {"127.0.0.1:5000", NULL, "http://127.0.0.1:5000"},
    {"localhost:5000", NULL, "http://localhost:5000"},
    {"[::1]:5000", NULL, "http://[::1]:5000"},
    {"myreg.lan:5000", NULL, "https://myreg.lan:5000"},
    {"myreg.lan:5000", "myreg.lan:5000", "http://myreg.lan:5000"},
    {"myreg.lan:5000", "myreg.lan", "http://myreg.lan:5000"},
    {"myreg.lan:5000", "http://myreg.lan:5000/", "http://myreg.lan:5000"},
    {"myreg.lan:5000", "other.lan:5000", "https://myreg.lan:5000"},
    {"myreg.lan", "myreg.lan:5000", "https://myreg.lan"},
};

static void check_scheme(const struct scheme *c)
{
  char *insecure[] = {(char *)c->insecure, NULL};
  struct reg_session s;
  reg_session__init(&s, c->registry, "x", c->insecure ? insecure : NULL, NULL);
  cleanup_free char *desc = util__fmt("%s with --insecure-registry %s -> %s", c->registry,
                                      c->insecure ? c->insecure : "(none)", c->base);
  if (strcmp(s.base, c->base) != 0)
    fprintf(stderr, "# got %s\n", s.base);
  ok(strcmp(s.base, c->base) == 0, "%s", desc);
  reg_session__free(&s);
}

int main(void)
{
  /* credentials must not come from the machine running the test */
  setenv("XDG_CONFIG_HOME", "/nonexistent", 1);
  setenv("DOCKER_CONFIG", "/nonexistent", 1);
  printf("1..%zu\n", ARRAY_SIZE(goods) + ARRAY_SIZE(bads) + ARRAY_SIZE(schemes));
  for (size_t i = 0; i < ARRAY_SIZE(goods); i++)
    check_good(&goods[i]);
  for (size_t i = 0; i < ARRAY_SIZE(bads); i++)
    check_bad(bads[i]);
  for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
    check_scheme(&schemes[i]);
  return n_fail ? 1 : 0;
}
