/* vmbox pull: flags, the docker-like progress display (TTY only) and output. */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "../image/lookup.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "../image/registry.h"
#include "../lib/util.h"
#include "cli.h"

enum { OPT_PLATFORM = OPT_COMMAND_BASE, OPT_DISK_SIZE };

static const char *state_text(const struct pull_progress *p)
{
  switch (p->state) {
  case PULL_WAITING: return "Waiting";
  case PULL_DOWNLOADING: return "Downloading";
  case PULL_DONE: return "Download complete";
  case PULL_EXISTS: return "Already exists";
  }
  return "";
}

void pull__progress_draw(const struct pull_progress *p, size_t n, void *opaque)
{
  struct pull_progress_ui *ui = opaque;
  if (ui->lines)
    fprintf(stderr, "\033[%zuA", ui->lines);
  for (size_t i = 0; i < n; i++) {
    const char *hex = util__digest_hex(p[i].digest);
    fprintf(stderr, "\r\033[2K%.12s: %s", hex ? hex : p[i].digest, state_text(&p[i]));
    if (p[i].state == PULL_DOWNLOADING && p[i].total > 0) {
      char done[32], total[32], bar[51];
      int w = (int)(50 * (p[i].done > p[i].total ? p[i].total : p[i].done) / p[i].total);
      memset(bar, ' ', 50);
      memset(bar, '=', (size_t)w);
      if (w < 50)
        bar[w] = '>';
      bar[50] = '\0';
      util__human_size(p[i].done, done, sizeof(done));
      util__human_size(p[i].total, total, sizeof(total));
      fprintf(stderr, " [%s] %s/%s", bar, done, total);
    }
    fputc('\n', stderr);
  }
  ui->lines = n;
  fflush(stderr);
}

static bool platform_ok(const char *s)
{
  int slashes = 0;
  if (!*s || *s == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//"))
    return false;
  for (const char *p = s; *p; p++) {
    if (*p == '/')
      slashes++;
    else if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
      return false;
  }
  return slashes == 1 || slashes == 2;
}

static json_t *layers_json(struct store *st, const char *manifest_digest)
{
  json_t *arr = json_array();
  cleanup_free char *buf = NULL;
  size_t len = 0;
  struct manifest m = {0};
  vmbox_error_t err = NULL;
  if (store__read_blob(st, manifest_digest, &buf, &len, &err) == 0 &&
      manifest__parse(buf, len, NULL, &m, &err) == 0) {
    for (size_t i = 0; i < m.n_layers; i++)
      json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "digest", m.layers[i].digest,
                                           "media_type", m.layers[i].media_type, "size",
                                           (json_int_t)m.layers[i].size));
    manifest__free(&m);
  }
  vmbox_error_free(&err);
  return arr;
}

/* The shared image object (image_record__to_json) plus what a pull adds. */
static void print_json(struct store *st, const struct image_record *r, bool fresh)
{
  json_t *j = image_record__to_json(r);
  json_object_set_new(j, "name", r->names && r->names[0] ? json_string(r->names[0]) : json_null());
  json_object_set_new(j, "layers", layers_json(st, r->manifest_digest));
  cleanup_free char *disk = image__disk_path(st, r);
  json_object_set_new(j, "disk", disk ? json_string(disk) : json_null());
  json_object_set_new(j, "status", json_string(fresh ? "downloaded" : "up-to-date"));
  out__json(j);
}

static void print_result(struct cli *cli, struct store *st, const struct image_ref *ref,
                         const struct image_record *r, bool fresh)
{
  cleanup_free char *canon = image_ref__canonical(ref);
  if (cli->format == FORMAT_JSON) {
    print_json(st, r, fresh);
    return;
  }
  if (cli->quiet) {
    puts(canon);
    return;
  }
  cleanup_free char *fam = image_ref__familiar(ref);
  const char *at = r->repo_digest ? strchr(r->repo_digest, '@') : NULL;
  if (at)
    printf("Digest: %s\n", at + 1);
  printf("Status: %s for %s\n", fresh ? "Downloaded newer image" : "Image is up to date", fam);
  puts(canon);
}

static int do_pull(struct cli *cli, const char *name, struct pull_opts *po)
{
  vmbox_error_t err = NULL;
  struct image_ref ref;
  if (image_ref__parse(name, &ref, &err) < 0)
    return cli__fail(&err);
  struct store *st;
  if (cli__store(cli, &st, &err) < 0) {
    image_ref__free(&ref);
    return cli__fail(&err);
  }
  cleanup_free char *canon = image_ref__canonical(&ref);
  struct image_record old = {0}, rec = {0};
  vmbox_error_t ignore = NULL;
  bool had = store__image_get(st, canon, &old, &ignore) == 0;
  vmbox_error_free(&ignore);
  int rc = registry__pull(st, &ref, po, &rec, &err);
  if (rc == 0) {
    bool fresh = !had || !old.manifest_digest || !rec.manifest_digest ||
                 strcmp(old.manifest_digest, rec.manifest_digest) != 0;
    print_result(cli, st, &ref, &rec, fresh);
  }
  if (had)
    image_record__free(&old);
  image_record__free(&rec);
  image_ref__free(&ref);
  return rc < 0 ? cli__fail(&err) : 0;
}

int cmd_pull(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"platform", required_argument, NULL, OPT_PLATFORM},
                                       {"disk-size", required_argument, NULL, OPT_DISK_SIZE},
                                       COMMON_LONG_OPTS};
  struct pull_opts po = {0};
  vmbox_error_t err = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    if (c == OPT_PLATFORM) {
      if (!platform_ok(optarg))
        return cli__usage_error("pull",
                                "invalid --platform %s (use os/arch[/variant], "
                                "e.g. linux/amd64)",
                                optarg);
      po.platform = optarg;
    } else if (c == OPT_DISK_SIZE) {
      if (util__parse_size(optarg, &po.disk_size, &err) < 0 || po.disk_size == 0) {
        vmbox_error_free(&err);
        return cli__usage_error("pull", "invalid --disk-size %s (use e.g. 512m, 2g)", optarg);
      }
    } else {
      int r = cli__common_opt(cli, "pull", c, optarg, &err);
      if (r == 1)
        return 0;
      if (r < 0)
        return cli__fail(&err);
    }
  }
  if (argc - optind != 1)
    return cli__usage_error("pull", "requires exactly one image name (e.g. vmbox pull alpine)");
  po.insecure_registries = cli->insecure_registries;
  struct pull_progress_ui ui = {0};
  if (cli->tty_err && !cli->quiet && cli->format != FORMAT_JSON) {
    po.progress = pull__progress_draw;
    po.progress_opaque = &ui;
  }
  return do_pull(cli, argv[optind], &po);
}
