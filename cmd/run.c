/* vmbox run: image + flags -> a box, started under its own monitor; in the
 * foreground the box's output reaches our stdout/stderr and we exit with its
 * status (Docker's codes: 125 vmbox, 126 cannot run, 127 not found). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../box/box.h"
#include "../box/monitor.h"
#include "../box/netspec.h"
#include "../box/spec.h"
#include "../image/flatten.h"
#include "../image/lookup.h"
#include "../image/manifest.h"
#include "../lib/util.h"
#include "cli.h"

enum {
  OPT_RM = OPT_COMMAND_BASE,
  OPT_NAME,
  OPT_ENV_FILE,
  OPT_ENTRYPOINT,
  OPT_TMPFS,
  OPT_HOSTNAME,
  OPT_READ_ONLY,
  OPT_CPUS,
  OPT_PIDS,
  OPT_TIMEOUT,
  OPT_BACKEND,
  OPT_NET,
  OPT_KERNEL,
  OPT_PULL,
  OPT_LOG_OPT,
};

struct run_opts {
  struct box_flags f;
  bool detach, interactive, tty, rm;
  const char *name, *backend, *image;
  const char *kernel; /* --kernel: the kvm backend's guest kernel */
  char **env_files;
  const char *pull; /* --pull missing|always|never */
  int64_t log_max;  /* --log-opt max-size: 0 default, -1 unlimited */
};

static void run_opts__free(struct run_opts *o)
{
  strv_free(o->f.env);
  strv_free(o->f.volumes);
  strv_free(o->f.tmpfs);
  strv_free(o->env_files);
}

static int parse_number(const char *flag, const char *v, double min, double *out,
                        vmbox_error_t *err)
{
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || d < min)
    return vmbox_error_set(err, 0, "invalid %s \"%s\": want a number >= %g", flag, v, min);
  *out = d;
  return 0;
}

static int limit_opt(struct run_opts *o, int c, const char *v, vmbox_error_t *err)
{
  double d;
  switch (c) {
  case 'm':
    if (util__parse_size(v, &o->f.limits.memory, err) < 0)
      return vmbox_error_wrap(err, "--memory");
    if (o->f.limits.memory < 6 * 1024 * 1024) /* Docker's minimum */
      return vmbox_error_set(err, 0, "--memory %s is too small: the minimum is 6m", v);
    return 0;
  case OPT_CPUS:
    if (parse_number("--cpus", v, 0.01, &d, err) < 0)
      return -1;
    o->f.limits.cpu_millis = (uint64_t)(d * 1000);
    return 0;
  case OPT_PIDS:
    if (parse_number("--pids-limit", v, -1, &d, err) < 0)
      return -1;
    o->f.limits.pids = d <= 0 ? 0 : (int64_t)d;
    return 0;
  default:
    if (parse_number("--timeout", v, 0, &d, err) < 0)
      return -1;
    o->f.timeout = (unsigned)d;
    return 0;
  }
}

static int run_opt(struct run_opts *o, int c, const char *v, vmbox_error_t *err)
{
  switch (c) {
  case 'd': o->detach = true; return 0;
  case 'i': o->interactive = true; return 0;
  case 't': o->tty = true; return 0;
  case OPT_RM: o->rm = true; return 0;
  case OPT_NAME: o->name = v; return 0;
  case 'e': strv_push(&o->f.env, v); return 0;
  case OPT_ENV_FILE: strv_push(&o->env_files, v); return 0;
  case 'w': o->f.workdir = v; return 0;
  case 'u': o->f.user = v; return 0;
  case OPT_ENTRYPOINT: o->f.entrypoint = v; return 0;
  case 'v': strv_push(&o->f.volumes, v); return 0;
  case OPT_TMPFS: strv_push(&o->f.tmpfs, v); return 0;
  case 'h':
  case OPT_HOSTNAME: o->f.hostname = v; return 0;
  case OPT_READ_ONLY: o->f.read_only = true; return 0;
  case OPT_BACKEND: o->backend = v; return 0;
  case OPT_KERNEL: o->kernel = v; return 0;
  case OPT_NET:
    if (netspec__parse(v, NULL, NULL, err) < 0)
      return -1;
    o->f.net = strcmp(v, "none") == 0 ? NULL : v; /* box_spec__build parses it again */
    return 0;
  case OPT_PULL:
    if (!run__valid_pull_policy(v))
      return vmbox_error_set(err, 0, "invalid --pull %s: want missing, always or never", v);
    o->pull = v;
    return 0;
  case OPT_LOG_OPT: return run__log_opt(v, &o->log_max, err);
  case 'm':
  case OPT_CPUS:
  case OPT_PIDS:
  case OPT_TIMEOUT: return limit_opt(o, c, v, err);
  default: return 2; /* not ours */
  }
}

static int parse(struct cli *cli, struct run_opts *o, int argc, char **argv, vmbox_error_t *err)
{
  static const struct option opts[] = {{"detach", no_argument, NULL, 'd'},
                                       {"interactive", no_argument, NULL, 'i'},
                                       {"tty", no_argument, NULL, 't'},
                                       {"rm", no_argument, NULL, OPT_RM},
                                       {"name", required_argument, NULL, OPT_NAME},
                                       {"env", required_argument, NULL, 'e'},
                                       {"env-file", required_argument, NULL, OPT_ENV_FILE},
                                       {"workdir", required_argument, NULL, 'w'},
                                       {"user", required_argument, NULL, 'u'},
                                       {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
                                       {"volume", required_argument, NULL, 'v'},
                                       {"tmpfs", required_argument, NULL, OPT_TMPFS},
                                       {"hostname", required_argument, NULL, OPT_HOSTNAME},
                                       {"read-only", no_argument, NULL, OPT_READ_ONLY},
                                       {"cpus", required_argument, NULL, OPT_CPUS},
                                       {"memory", required_argument, NULL, 'm'},
                                       {"pids-limit", required_argument, NULL, OPT_PIDS},
                                       {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                       {"backend", required_argument, NULL, OPT_BACKEND},
                                       {"net", required_argument, NULL, OPT_NET},
                                       {"network", required_argument, NULL, OPT_NET},
                                       {"pull", required_argument, NULL, OPT_PULL},
                                       {"log-opt", required_argument, NULL, OPT_LOG_OPT},
                                       {"kernel", required_argument, NULL, OPT_KERNEL},
                                       COMMON_LONG_OPTS};
  int c;
  /* '+': flags after IMAGE belong to the command. */
  while ((c = getopt_long(argc, argv, "+ditqe:w:u:v:m:h:", opts, NULL)) != -1) {
    int r = run_opt(o, c, optarg, err);
    if (r == 2)
      r = cli__common_opt(cli, "run", c, optarg, err);
    if (r != 0)
      return r;
  }
  if (optind >= argc)
    return vmbox_error_set(err, 0, "\"vmbox run\" requires at least 1 argument: IMAGE");
  o->image = argv[optind];
  o->f.cmd = argv + optind + 1;
  for (size_t i = 0; o->env_files && o->env_files[i]; i++)
    if (box_spec__read_env_file(o->env_files[i], &o->f.env, err) < 0)
      return -1;
  return 0;
}

/* --kernel reaches the kvm backend in the monitor's environment (the spec
 * is backend-neutral): absolute, since the monitor runs in "/". */
static int check_kvm_opts(struct run_opts *o, vmbox_error_t *err)
{
  bool kvm = strcmp(o->backend, "kvm") == 0;
  if (o->kernel && !kvm)
    return vmbox_error_set(err, 0, "--kernel is only for --backend kvm");
  /* Before the box exists: a refused box must not stay behind as Exited. */
  if (o->f.net && !kvm && strncmp(o->f.net, "tap:", 4) == 0) {
    vmbox_error_set(err, 0, "--net %s: tap networking needs --backend kvm", o->f.net);
    return vmbox_error_hint(err, "ns boxes get networking with the bridge mode (not yet)");
  }
  if (o->kernel == NULL)
    return 0;
  cleanup_free char *abs = realpath(o->kernel, NULL);
  if (abs == NULL) {
    vmbox_error_sys(err, "--kernel %s", o->kernel);
    return vmbox_error_hint(err, "pass the path of a Linux bzImage, e.g. /boot/vmlinuz-*");
  }
  setenv("VMBOX_KERNEL_FLAG", abs, 1);
  return 0;
}

static int check_opts(struct run_opts *o, const struct backend_ops **ops, vmbox_error_t *err)
{
  if (o->backend == NULL)
    o->backend = backend__default_name();
  if (backend__lookup(o->backend, ops, err) < 0)
    return vmbox_error_code(err, EXIT_VMBOX_FAILED);
  if (check_kvm_opts(o, err) < 0)
    return vmbox_error_code(err, EXIT_VMBOX_FAILED);
  return 0;
}

/* The image record, its config and its flattened disk. */
static int load_image(struct cli *cli, const char *ref, const char *pull, struct image_record *rec,
                      struct image_config *ic, char **disk, vmbox_error_t *err)
{
  struct store *s;
  if (run__find_image(cli, ref, pull, rec, err) < 0 || cli__store(cli, &s, err) < 0)
    return -1;
  cleanup_free char *buf = NULL;
  size_t len = 0;
  if (store__read_blob(s, rec->id, &buf, &len, err) < 0 ||
      image_config__parse(buf, len, ic, err) < 0)
    return vmbox_error_wrap(err, "image %s: config", ref);
  struct flatten_opts fo = {0};
  cleanup_free char *path = NULL;
  if (flatten__image(s, rec, &fo, &path, err) < 0)
    return vmbox_error_wrap(err, "image %s", ref);
  /* Relative under a relative --root; the backend wants it absolute. */
  *disk = realpath(path, NULL);
  if (*disk == NULL)
    return vmbox_error_sys(err, "image %s: disk %s", ref, path);
  return 0;
}

static json_t *box_config(const struct run_opts *o, const struct image_record *rec,
                          const char *disk, const struct box_spec_owned *spec)
{
  json_t *j =
      json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "image", o->image, "image_id", rec->id, "disk",
                disk, "backend", o->backend, "auto_remove", o->rm, "spec", box_spec__to_json(spec));
  json_object_set_new(j, "log_max_size", json_integer(run__log_max_size(o->log_max)));
  return j;
}

static int launch(struct cli *cli, struct run_opts *o, const struct backend_ops *ops,
                  struct box_spec_owned *spec, const struct image_record *rec, const char *disk,
                  int *code, vmbox_error_t *err)
{
  struct box_info box;
  /* The monitor runs in "/": a relative --root must not depend on our cwd. */
  cleanup_free char *root = realpath(cli->root, NULL);
  if (root == NULL)
    return vmbox_error_sys(err, "resolve --root %s", cli->root);
  json_t *cfg = box_config(o, rec, disk, spec);
  int r = box__create(root, o->name, cfg, &box, err);
  json_decref(cfg);
  if (r < 0)
    return -1;
  spec->spec.id = box.id;
  spec->spec.image = disk;
  spec->spec.state_dir = box.dir;
  spec->spec.proc.tty = o->tty;
  struct monitor_opts mo = {.ops = ops,
                            .spec = &spec->spec,
                            .box = &box,
                            .root = root,
                            .detach = o->detach,
                            .interactive = o->interactive,
                            .auto_remove = o->rm};
  r = monitor__launch(&mo, code, err);
  if (r == 0 && o->detach)
    printf("%s\n", box.id);
  box_info__free(&box);
  return r;
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
  struct run_opts o = {0};
  vmbox_error_t err = NULL;
  int r = parse(cli, &o, argc, argv, &err);
  if (r != 0) {
    run_opts__free(&o);
    if (r == 1)
      return 0;
    vmbox_error_hint(&err, "see 'vmbox run --help'");
    return cli__fail(&err);
  }
  const struct backend_ops *ops = NULL;
  struct image_record rec = {0};
  struct image_config ic = {0};
  struct box_spec_owned spec = {0};
  cleanup_free char *disk = NULL;
  int code = 0;
  if (check_opts(&o, &ops, &err) < 0 ||
      load_image(cli, o.image, o.pull, &rec, &ic, &disk, &err) < 0 ||
      (o.f.disk = disk, box_spec__build(&ic, &o.f, &spec, &err)) < 0 ||
      launch(cli, &o, ops, &spec, &rec, disk, &code, &err) < 0)
    code = cli__fail(&err);
  box_spec__free(&spec);
  image_config__free(&ic);
  image_record__free(&rec);
  run_opts__free(&o);
  return code < 0 ? 0 : code;
}
