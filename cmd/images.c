/* vmbox images: the docker-style table, -q ids, or a JSON array. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../image/lookup.h"
#include "../image/ref.h"
#include "../lib/util.h"
#include "cli.h"

enum { OPT_DIGESTS = OPT_COMMAND_BASE };

/* "About an hour ago", "3 days ago": Docker's units, rounded down. */
static void ago(int64_t t, char *buf, size_t len)
{
  static const struct {
    int64_t secs;
    const char *unit;
  } units[] = {{365 * 86400, "year"}, {30 * 86400, "month"}, {7 * 86400, "week"},
               {86400, "day"},        {3600, "hour"},        {60, "minute"}};
  int64_t d = (int64_t)time(NULL) - t;
  if (d < 60) {
    snprintf(buf, len, "Less than a minute ago");
    return;
  }
  for (size_t i = 0; i < ARRAY_SIZE(units); i++)
    if (d >= units[i].secs) {
      int64_t n = d / units[i].secs;
      if (n == 1)
        snprintf(buf, len, "About %s %s ago", units[i].unit[0] == 'h' ? "an" : "a", units[i].unit);
      else
        snprintf(buf, len, "%" PRId64 " %ss ago", n, units[i].unit);
      return;
    }
}

/* "docker.io/library/alpine:3" -> repo "alpine", tag "3". */
static void split_name(const char *canonical, char **repo, char **tag)
{
  char *f = image__familiar(canonical);
  char *at = strchr(f, '@'); /* a digest-only name ("alpine@sha256:...") has no tag */
  if (at) {
    *at = '\0';
    *tag = xstrdup("<none>");
    *repo = f;
    return;
  }
  char *slash = strrchr(f, '/');
  char *colon = strrchr(slash ? slash : f, ':');
  *tag = xstrdup(colon ? colon + 1 : "<none>");
  if (colon)
    *colon = '\0';
  *repo = f;
}

static void add_row(struct table *t, const struct image_record *r, const char *name, bool digests)
{
  cleanup_free char *repo = NULL, *tag = NULL;
  if (name)
    split_name(name, &repo, &tag);
  char id[13], created[64], size[32];
  snprintf(id, sizeof(id), "%.12s", r->id + 7);
  ago(r->created, created, sizeof(created));
  util__human_size((uint64_t)r->size, size, sizeof(size));
  const char *at = r->repo_digest ? strchr(r->repo_digest, '@') : NULL;
  const char *cells[] = {repo ? repo : "<none>",
                         tag ? tag : "<none>",
                         at ? at + 1 : "<none>",
                         id,
                         created,
                         size,
                         NULL};
  if (!digests)
    memmove(&cells[2], &cells[3], 4 * sizeof(char *));
  table__row(t, cells);
}

static int newest_first(const void *a, const void *b)
{
  const struct image_record *x = a, *y = b;
  if (x->created != y->created)
    return x->created < y->created ? 1 : -1;
  return x->added < y->added ? 1 : x->added > y->added ? -1 : strcmp(x->id, y->id);
}

/* `vmbox images alpine` / `alpine:3`: only that repository (and tag). */
static bool name_matches(const char *name, const char *filter_repo, const char *filter_tag)
{
  if (filter_repo == NULL)
    return true;
  if (name == NULL)
    return false;
  size_t n = strlen(filter_repo);
  if (strncmp(name, filter_repo, n) != 0)
    return false;
  if (name[n] == '@')
    return filter_tag == NULL;
  return name[n] == ':' && (filter_tag == NULL || strcmp(name + n + 1, filter_tag) == 0);
}

struct filter {
  char *repo, *tag;
};

static int filter_parse(const char *arg, struct filter *f, vmbox_error_t *err)
{
  struct image_ref ref = {0};
  if (image_ref__parse(arg, &ref, err) < 0)
    return -1;
  f->repo = image_ref__name(&ref);
  /* A bare repository means every tag; the parser filled in "latest". */
  f->tag = strrchr(arg, ':') > strrchr(arg, '/') && ref.tag ? xstrdup(ref.tag) : NULL;
  image_ref__free(&ref);
  return 0;
}

static bool record_matches(const struct image_record *r, const struct filter *f)
{
  if (f->repo == NULL)
    return true;
  for (char **p = r->names; p && *p; p++)
    if (name_matches(*p, f->repo, f->tag))
      return true;
  return false;
}

static void print_table(struct image_record *v, size_t n, bool digests, const struct filter *f)
{
  static const char *const hd[] = {"REPOSITORY", "TAG",  "DIGEST", "IMAGE ID",
                                   "CREATED",    "SIZE", NULL};
  static const char *const h[] = {"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", NULL};
  struct table *t = table__new(digests ? hd : h);
  for (size_t i = 0; i < n; i++) {
    if (f->repo == NULL && (v[i].names == NULL || v[i].names[0] == NULL))
      add_row(t, &v[i], NULL, digests);
    for (char **p = v[i].names; p && *p; p++)
      if (name_matches(*p, f->repo, f->tag))
        add_row(t, &v[i], *p, digests);
  }
  table__print(t);
}

static void print_list(struct cli *cli, struct image_record *v, size_t n, bool digests,
                       const struct filter *f)
{
  if (cli->format == FORMAT_JSON) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
      if (record_matches(&v[i], f))
        json_array_append_new(arr, image_record__to_json(&v[i]));
    out__json(arr);
  } else if (cli->quiet) {
    for (size_t i = 0; i < n; i++)
      if (record_matches(&v[i], f))
        printf("%.12s\n", v[i].id + 7);
  } else {
    print_table(v, n, digests, f);
  }
}

int cmd_images(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"digests", no_argument, NULL, OPT_DIGESTS},
                                       {"all", no_argument, NULL, 'a'},
                                       COMMON_LONG_OPTS};
  bool digests = false;
  int c;
  while ((c = getopt_long(argc, argv, "aq", opts, NULL)) != -1) {
    if (c == OPT_DIGESTS || c == 'a') {
      digests |= c == OPT_DIGESTS; /* -a: we have no intermediate images to hide */
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "images", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (argc - optind > 1)
    return cli__usage_error("images", "too many arguments");
  vmbox_error_t err = NULL;
  struct filter f = {0};
  struct store *s;
  struct image_record *v = NULL;
  size_t n = 0;
  if ((optind < argc && filter_parse(argv[optind], &f, &err) < 0) ||
      cli__store(cli, &s, &err) < 0 || store__image_list(s, &v, &n, &err) < 0) {
    free(f.repo);
    free(f.tag);
    return cli__fail(&err);
  }
  qsort(v, n, sizeof(*v), newest_first);
  print_list(cli, v, n, digests, &f);
  image_record__list_free(v, n);
  free(f.repo);
  free(f.tag);
  return 0;
}
