/* vmbox exec: another process in a running box, through its monitor's
 * control socket (box/ctl.h); our stdio becomes the process's. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../box/box.h"
#include "../box/ctl.h"
#include "../box/spec.h"
#include "../lib/util.h"
#include "cli.h"

struct exec_opts {
  bool interactive, tty;
  char **env;
  const char *workdir, *user;
};

static int parse(struct cli *cli, struct exec_opts *o, int argc, char **argv, vmbox_error_t *err)
{
  static const struct option opts[] = {
      {"interactive", no_argument, NULL, 'i'}, {"tty", no_argument, NULL, 't'},
      {"env", required_argument, NULL, 'e'},   {"workdir", required_argument, NULL, 'w'},
      {"user", required_argument, NULL, 'u'},  COMMON_LONG_OPTS};
  int c;
  while ((c = getopt_long(argc, argv, "+itqe:w:u:", opts, NULL)) != -1) {
    int r = 0;
    switch (c) {
    case 'i': o->interactive = true; break;
    case 't': o->tty = true; break;
    case 'e': strv_push(&o->env, optarg); break;
    case 'w': o->workdir = optarg; break;
    case 'u': o->user = optarg; break;
    default: r = cli__common_opt(cli, "exec", c, optarg, err);
    }
    if (r != 0)
      return r;
  }
  if (argc - optind < 2)
    return vmbox_error_set(err, 0, "\"vmbox exec\" requires at least 2 arguments: BOX COMMAND");
  if (o->workdir && o->workdir[0] != '/')
    return vmbox_error_set(err, 0, "the working directory \"%s\" is not absolute", o->workdir);
  return 0;
}

/* The box's own env, cwd and user, with the flags on top. */
static int request(const struct box_info *b, const struct exec_opts *o, char **cmd, json_t **out,
                   vmbox_error_t *err)
{
  json_t *spec = json_object_get(b->config, "spec");
  uid_t uid = (uid_t)json_integer_value(json_object_get(spec, "uid"));
  gid_t gid = (gid_t)json_integer_value(json_object_get(spec, "gid"));
  const char *disk = json_string_value(json_object_get(b->config, "disk"));
  if (o->user && box_spec__parse_user(disk, o->user, &uid, &gid, err) < 0)
    return -1;
  cleanup_strv char **env = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(spec, "env"), i, v) strv_push(&env, json_string_value(v));
  for (i = 0; o->env && o->env[i]; i++)
    if (strchr(o->env[i], '='))
      box_spec__env_set(&env, o->env[i]);
  json_t *argv = json_array(), *jenv = json_array();
  for (i = 0; cmd[i]; i++)
    json_array_append_new(argv, json_string(cmd[i]));
  for (i = 0; env && env[i]; i++)
    json_array_append_new(jenv, json_string(env[i]));
  const char *cwd = o->workdir ? o->workdir : json_string_value(json_object_get(spec, "cwd"));
  *out = json_pack("{s:o, s:o, s:s, s:I, s:I, s:b, s:b}", "argv", argv, "env", jenv, "cwd",
                   cwd ? cwd : "/", "uid", (json_int_t)uid, "gid", (json_int_t)gid, "tty", o->tty,
                   "interactive", o->interactive);
  return 0;
}

static int exec_in(struct cli *cli, const struct exec_opts *o, char **argv, int *code,
                   vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, argv[0], &b, err) < 0)
    return -1;
  json_t *req = NULL;
  int r = b.state.status == BOX_STATUS_RUNNING
              ? 0
              : vmbox_error_set(err, 0, "box %s is not running", argv[0]);
  if (r == 0)
    r = request(&b, o, argv + 1, &req, err);
  if (r == 0) {
    cleanup_close int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fds[3] = {o->interactive ? 0 : null, 1, 2};
    fflush(stdout);
    r = ctl__exec(&b, req, fds, code, err);
  }
  json_decref(req);
  box_info__free(&b);
  return r;
}

int cmd_exec(struct cli *cli, int argc, char **argv)
{
  struct exec_opts o = {0};
  vmbox_error_t err = NULL;
  int code = 0;
  int r = parse(cli, &o, argc, argv, &err);
  if (r == 0 && exec_in(cli, &o, argv + optind, &code, &err) < 0)
    r = -1;
  strv_free(o.env);
  if (r == 1)
    return 0;
  return r < 0 ? cli__fail(&err) : code;
}
