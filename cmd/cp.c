/* vmbox cp: copies between a box (running or stopped) and the host, as
 * docker cp does:
 *
 *   vmbox cp [-a] [-L] BOX:SRC DST     DST "-": SRC as a tar stream on stdout
 *   vmbox cp [-a] [-L] SRC BOX:DST     SRC "-": a tar stream from stdin
 *
 * The backend does the copying (backend_ops.cp_in/cp_out); this file only
 * reads the arguments and finds the box.  Errors exit 1, as docker's. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backends/backend.h"
#include "../box/box.h"
#include "../lib/util.h"
#include "cli.h"

struct cp_args {
  char *box;       /* the BOX of BOX:PATH */
  char *box_path;  /* absolute in the box */
  char *host_path; /* absolute on the host; NULL for "-" */
  bool in, follow, archive;
};

/* docker's rule: a colon before any slash makes BOX:PATH; a local path
 * with a colon in it is written ./a:b or /a:b. */
static bool split_box(const char *arg, char **box, char **path)
{
  const char *colon = strchr(arg, ':');
  const char *slash = strchr(arg, '/');
  if (arg[0] == '/' || arg[0] == '.' || colon == NULL || colon == arg || (slash && slash < colon))
    return false;
  *box = xstrndup(arg, (size_t)(colon - arg));
  /* Paths in a box are relative to its root, as docker's. */
  *path = colon[1] == '/' ? xstrdup(colon + 1) : util__fmt("/%s", colon + 1);
  return true;
}

static char *host_abs(const char *p)
{
  if (strcmp(p, "-") == 0)
    return NULL;
  if (p[0] == '/')
    return xstrdup(p);
  cleanup_free char *cwd = getcwd(NULL, 0);
  return util__fmt("%s/%s", cwd ? cwd : ".", p);
}

static int parse_paths(const char *src, const char *dst, struct cp_args *a, vmbox_error_t *err)
{
  char *ignore_box = NULL, *ignore_path = NULL;
  bool src_box = split_box(src, &a->box, &a->box_path);
  bool dst_box =
      src_box ? split_box(dst, &ignore_box, &ignore_path) : split_box(dst, &a->box, &a->box_path);
  free(ignore_box);
  free(ignore_path);
  if (src_box && dst_box)
    return vmbox_error_set(err, 0, "copying between boxes is not supported");
  if (!src_box && !dst_box) {
    vmbox_error_set(err, 0, "must specify at least one box source (BOX:PATH)");
    return vmbox_error_hint(err, "a local path with a colon is written ./%s", src);
  }
  a->in = dst_box;
  a->host_path = host_abs(a->in ? src : dst);
  return 0;
}

static int find_ops(const struct box_info *b, const struct backend_ops **ops, vmbox_error_t *err)
{
  const char *bn = json_string_value(json_object_get(b->config, "backend"));
  if (bn == NULL)
    return vmbox_error_set(err, 0, "box %s: its config names no backend", b->name);
  if (backend__lookup(bn, ops, err) < 0)
    return vmbox_error_wrap(err, "cp: box %s", b->name);
  if ((*ops)->cp_in == NULL || (*ops)->cp_out == NULL) {
    vmbox_error_set(err, 0, "cp is not supported by the %s backend", bn);
    return vmbox_error_hint(err, "use `vmbox exec BOX cat FILE` to read a file");
  }
  if (b->state.status == BOX_STATUS_CREATED && box__monitor_alive(&b->state)) {
    vmbox_error_set(err, 0, "box %s is still starting", b->name);
    return vmbox_error_hint(err, "try again in a moment");
  }
  return 0;
}

static int do_cp(struct cli *cli, const struct cp_args *a, vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, a->box, &b, err) < 0)
    return -1;
  const struct backend_ops *ops;
  int r = find_ops(&b, &ops, err);
  struct box_cp c = {.name = a->box,
                     .image = json_string_value(json_object_get(b.config, "disk")),
                     .box_path = a->box_path,
                     .host_path = a->host_path,
                     .tar_fd = a->in ? STDIN_FILENO : STDOUT_FILENO,
                     .follow = a->follow,
                     .archive = a->archive};
  if (r == 0 && !a->in && a->host_path == NULL && isatty(STDOUT_FILENO)) {
    vmbox_error_set(err, 0, "refusing to write a tar stream to a terminal");
    r = vmbox_error_hint(err, "redirect it: vmbox cp %s:%s - > out.tar", a->box, a->box_path);
  }
  if (r == 0)
    r = (a->in ? ops->cp_in : ops->cp_out)(b.id, b.dir, &c, err);
  box_info__free(&b);
  return r;
}

int cmd_cp(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"archive", no_argument, NULL, 'a'},
                                       {"follow-link", no_argument, NULL, 'L'},
                                       COMMON_LONG_OPTS};
  struct cp_args a = {0};
  int c;
  while ((c = getopt_long(argc, argv, "aLq", opts, NULL)) != -1) {
    if (c == 'a' || c == 'L') {
      *(c == 'a' ? &a.archive : &a.follow) = true;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "cp", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (argc - optind != 2)
    return cli__usage_error("cp", "\"vmbox cp\" requires exactly 2 arguments: SRC DST");
  vmbox_error_t err = NULL;
  int rc = 0;
  if (parse_paths(argv[optind], argv[optind + 1], &a, &err) < 0 || do_cp(cli, &a, &err) < 0) {
    cli__fail(&err);
    rc = 1;
  }
  free(a.box);
  free(a.box_path);
  free(a.host_path);
  return rc;
}
