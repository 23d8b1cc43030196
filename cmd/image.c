/* vmbox image COMMAND: inspect and prune live here; ls, rm, pull and import
 * are the top-level commands under another name, as in Docker. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backends/backend.h"
#include "../image/lookup.h"
#include "../image/manifest.h"
#include "../lib/util.h"
#include "cli.h"

/* Parses only the common options; returns -1 to continue, else an exit code. */
static int common_only(struct cli *cli, const char *cmd, const char *shorts,
                       const struct option *opts, int argc, char **argv, int *flag)
{
  int c;
  while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
    if (c == 'f' || c == 'a') {
      if (flag)
        *flag |= c == 'f' ? 1 : 2;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, cmd, c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  return -1;
}

static json_t *strv_json(char *const *v)
{
  if (v == NULL)
    return json_null();
  json_t *a = json_array();
  for (; *v; v++)
    json_array_append_new(a, json_string(*v));
  return a;
}

static json_t *names_json(char *const *names, const char *extra)
{
  json_t *a = json_array();
  for (; names && *names; names++) {
    char *f = image__familiar(*names);
    json_array_append_new(a, json_string(f));
    free(f);
  }
  if (extra) {
    char *f = image__familiar(extra);
    json_array_append_new(a, json_string(f));
    free(f);
  }
  return a;
}

static json_t *config_json(const struct image_config *c)
{
  json_t *ports = json_object();
  for (char **p = c->exposed_ports; p && *p; p++)
    json_object_set_new(ports, *p, json_object());
  return json_pack("{s:o, s:o, s:o, s:s, s:s, s:o}", "Env", strv_json(c->env), "Entrypoint",
                   strv_json(c->entrypoint), "Cmd", strv_json(c->cmd), "WorkingDir",
                   c->working_dir ? c->working_dir : "", "User", c->user ? c->user : "",
                   "ExposedPorts", ports);
}

/* Docker's `image inspect` document, plus vmbox's Manifest and Disk. */
static int inspect_one(struct store *s, const struct image_record *r, json_t *out,
                       vmbox_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len;
  struct image_config c;
  if (store__read_blob(s, r->id, &buf, &len, err) < 0 || image_config__parse(buf, len, &c, err) < 0)
    return vmbox_error_hint(err, "the image is damaged; pull or import it again");
  cleanup_free char *disk = image__disk_path(s, r);
  const char *created = image__rfc3339(r->created);
  json_t *j =
      json_pack("{s:s, s:o, s:o, s:s, s:I, s:s, s:s, s:s*, s:o, s:{s:s, s:o}, s:s?, s:s?, s:s?}",
                "Id", r->id, "RepoTags", names_json(r->names, NULL), "RepoDigests",
                r->repo_digest ? names_json(NULL, r->repo_digest) : json_array(), "Created",
                created ? created : "1970-01-01T00:00:00Z", "Size", (json_int_t)r->size, "Os",
                c.os ? c.os : "linux", "Architecture", c.architecture ? c.architecture : "",
                "Variant", c.variant, "Config", config_json(&c), "RootFS", "Type", "layers",
                "Layers", strv_json(c.diff_ids ? c.diff_ids : (char *[]){NULL}), "Platform",
                r->platform, "Manifest", r->manifest_digest, "Disk", disk);
  image_config__free(&c);
  json_array_append_new(out, j);
  return 0;
}

static int cmd_inspect(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {COMMON_LONG_OPTS};
  int rc = common_only(cli, "image", "q", opts, argc, argv, NULL);
  if (rc >= 0)
    return rc;
  if (optind >= argc)
    return cli__usage_error("image inspect", "requires at least 1 argument");
  vmbox_error_t err = NULL;
  struct store *s;
  if (cli__store(cli, &s, &err) < 0)
    return cli__fail(&err);
  json_t *arr = json_array();
  rc = 0;
  for (int i = optind; i < argc; i++) {
    struct image_record r = {0};
    int f = image__find(s, argv[i], &r, NULL, &err);
    if (f == 0)
      vmbox_error_set(&err, 0, "No such image: %s", argv[i]);
    if (f <= 0 || inspect_one(s, &r, arr, &err) < 0) {
      vmbox_error_code(&err, 1); /* docker image inspect: 1 */
      rc = vmbox_error_report(&err);
    }
    image_record__free(&r);
  }
  out__json(arr);
  return rc;
}

static bool confirm(void)
{
  fputs("WARNING! This will remove all dangling images.\n"
        "Are you sure you want to continue? [y/N] ",
        stdout);
  fflush(stdout);
  char line[16];
  return fgets(line, sizeof(line), stdin) && (line[0] == 'y' || line[0] == 'Y');
}

/* Dangling images (no names left) go first, then every unreferenced blob. */
static int prune_dangling(struct store *s, json_t *deleted, vmbox_error_t *err)
{
  struct image_record *v;
  size_t n;
  if (store__image_list(s, &v, &n, err) < 0)
    return -1;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++)
    if (v[i].names == NULL || v[i].names[0] == NULL) {
      r = store__image_remove(s, v[i].id, false, err);
      if (r == 0)
        json_array_append_new(deleted, json_string(v[i].id));
    }
  image_record__list_free(v, n);
  return r;
}

static int cmd_prune(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {
      {"force", no_argument, NULL, 'f'}, {"all", no_argument, NULL, 'a'}, COMMON_LONG_OPTS};
  int flags = 0;
  int rc = common_only(cli, "image", "fqa", opts, argc, argv, &flags);
  if (rc >= 0)
    return rc;
  if (optind < argc)
    return cli__usage_error("image prune", "takes no arguments");
  if (flags & 2)
    return cli__usage_error("image prune", "--all is not supported: vmbox does not track "
                                           "which images containers use; remove images "
                                           "with `vmbox rmi`");
  if (!(flags & 1) && cli->format != FORMAT_JSON && isatty(STDIN_FILENO) && !confirm())
    return 0;
  vmbox_error_t err = NULL;
  struct store *s;
  json_t *deleted = json_array();
  uint64_t bytes = 0;
  size_t blobs = 0;
  if (cli__store(cli, &s, &err) < 0 || prune_dangling(s, deleted, &err) < 0 ||
      store__prune(s, &bytes, &blobs, &err) < 0) {
    json_decref(deleted);
    return cli__fail(&err);
  }
  backend__images_gone();
  if (cli->format == FORMAT_JSON) {
    out__json(json_pack("{s:o, s:I, s:I}", "deleted_images", deleted, "deleted_blobs",
                        (json_int_t)blobs, "reclaimed_bytes", (json_int_t)bytes));
    return 0;
  }
  if (json_array_size(deleted) > 0) {
    puts("Deleted Images:");
    for (size_t i = 0; i < json_array_size(deleted); i++)
      printf("deleted: %s\n", json_string_value(json_array_get(deleted, i)));
    puts("");
  }
  json_decref(deleted);
  char human[32];
  util__human_size(bytes, human, sizeof(human));
  printf("Total reclaimed space: %s\n", human);
  return 0;
}

static const struct {
  const char *name;
  int (*fn)(struct cli *cli, int argc, char **argv);
} subs[] = {
    {"inspect", cmd_inspect}, {"ls", cmd_images},   {"list", cmd_images}, {"rm", cmd_rmi},
    {"remove", cmd_rmi},      {"prune", cmd_prune}, {"pull", cmd_pull},   {"import", cmd_import},
};

int cmd_image(struct cli *cli, int argc, char **argv)
{
  const struct command *self = cli__find_command("image");
  if (argc < 2) {
    cli__print_usage(stderr, self);
    return EXIT_VMBOX_FAILED;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    cli__print_usage(stdout, self);
    return 0;
  }
  for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
    if (strcmp(argv[1], subs[i].name) == 0) {
      optind = 0;
      return subs[i].fn(cli, argc - 1, argv + 1);
    }
  return cli__usage_error("image", "unknown command '%s'", argv[1]);
}
