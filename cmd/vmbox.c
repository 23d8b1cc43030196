/* vmbox: one CLI over three isolation levels.  This file only dispatches:
 * global options, then the subcommand's own file takes over. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "cli.h"

static const struct command commands[] = {
    {"run", cmd_run, "Run a command in a new box",
     "run [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
     "Create a box from IMAGE and run COMMAND (default: the image's Entrypoint/Cmd).\n"
     "In the foreground vmbox exits with the command's status (125: vmbox failed,\n"
     "126: cannot run, 127: not found, 128+N: killed by signal N, 137: OOM or --timeout).\n\n"
     "Options:\n"
     "  -d, --detach            run in the background and print the box id\n"
     "  -i, --interactive       pass stdin to the box\n"
     "  -t, --tty               allocate a TTY (output and stderr merged, as docker)\n"
     "  --rm                    remove the box when it exits\n"
     "  --name NAME             name the box (default: a generated name)\n"
     "  -e, --env K=V           set an environment variable (-e K: take it from here)\n"
     "  --env-file FILE         read K=V lines from FILE\n"
     "  -w, --workdir DIR       working directory inside the box\n"
     "  -u, --user USER[:GROUP] names (from the image) or numeric ids\n"
     "  --entrypoint CMD        override the image's entrypoint\n"
     "  -v, --volume H:G[:ro]   bind mount host path H at G\n"
     "  --tmpfs PATH[:OPTS]     mount a tmpfs at PATH\n"
     "  -h, --hostname NAME     hostname inside the box\n"
     "  --read-only             make the root filesystem read-only\n"
     "  --cpus N                CPU quota (1.5 = one and a half CPUs)\n"
     "  -m, --memory SIZE       memory limit (e.g. 64m); OOM exits 137\n"
     "  --pids-limit N          limit on the number of tasks\n"
     "  --timeout SECONDS       kill the box after SECONDS (exit 137)\n"
     "  --backend ns|kvm|sentry isolation backend (default ns)\n"
     "  --kernel PATH           guest kernel for --backend kvm (else VMBOX_KERNEL,\n"
     "                          ROOT/kernels/, the newest /boot/vmlinuz-*)\n"
     "  --net none              networking (only none for now)\n"
     "  --pull POLICY           missing (default: pull what is not here), always, never\n"
     "  --log-opt max-size=SIZE rotate the box's log past SIZE (default 10m, -1: no limit)\n"},
    {"exec", cmd_exec, "Run another command in a running box",
     "exec [OPTIONS] BOX COMMAND [ARG...]\n\n"
     "The command gets the box's environment, working directory and user unless\n"
     "overridden; vmbox exits with its status.\n\n"
     "Options:\n"
     "  -i, --interactive       pass stdin to the command\n"
     "  -t, --tty               allocate a TTY\n"
     "  -e, --env K=V           set an environment variable\n"
     "  -w, --workdir DIR       working directory\n"
     "  -u, --user USER[:GROUP] names (from the image) or numeric ids\n"},
    {"ps", cmd_ps, "List boxes",
     "ps [OPTIONS]\n\n"
     "Options:\n"
     "  -a, --all               show all boxes (default: running ones)\n"
     "  -q, --quiet             print box ids only\n"
     "  --format json           print a JSON array\n"},
    {"logs", cmd_logs, "Show a box's output",
     "logs [OPTIONS] BOX\n\n"
     "Options:\n"
     "  -f, --follow            keep printing until the box ends\n"
     "  -n, --tail N            only the last N lines\n"},
    {"wait", cmd_wait, "Wait for boxes to end and print their exit codes", "wait BOX...\n"},
    {"stop", cmd_stop, "Stop running boxes",
     "stop [OPTIONS] BOX...\n\n"
     "Send SIGTERM, then SIGKILL after a grace period.\n\n"
     "Options:\n"
     "  -t, --time SECONDS      grace period (default 10)\n"},
    {"kill", cmd_kill, "Send a signal to running boxes",
     "kill [OPTIONS] BOX...\n\n"
     "Options:\n"
     "  -s, --signal SIG        signal to send (default KILL)\n"},
    {"rm", cmd_rm, "Remove boxes",
     "rm [OPTIONS] BOX...\n\n"
     "Options:\n"
     "  -f, --force             kill a running box first\n"},
    {"inspect", cmd_box_inspect, "Show boxes as JSON", "inspect BOX...\n"},
    {"cp", cmd_cp, "Copy files between a box and the host",
     "cp [OPTIONS] BOX:SRC DST\n"
     "       vmbox cp [OPTIONS] SRC BOX:DST\n\n"
     "Copy a file or directory out of or into a box, running or stopped.  Paths\n"
     "in the box are relative to its root; a symlink in the box never leads out\n"
     "of it.  A directory SRC ending in /. copies its contents.  \"-\" as DST\n"
     "writes SRC as a tar stream to stdout; \"-\" as SRC reads a tar stream from\n"
     "stdin into the directory DST.\n\n"
     "Options:\n"
     "  -a, --archive           keep uid/gid (mode and times are always kept)\n"
     "  -L, --follow-link       follow a symlink SRC\n"},
    {"pull", cmd_pull, "Download an image from a registry",
     "pull [OPTIONS] IMAGE\n\n"
     "Pull an image (docker.io/library is assumed for short names).\n\n"
     "Options:\n"
     "  --platform OS/ARCH      pick this platform from a multi-platform image\n"
     "  --insecure-registry H   talk plain HTTP to registry host H (loopback always is)\n"
     "  --disk-size SIZE        size of the flattened ext4 disk (default: automatic)\n"
     "  -q, --quiet             print only the image name\n"
     "  --format json           print the pulled image as JSON\n"},
    {"import", cmd_import, "Import an OCI layout, docker-save archive or rootfs tar",
     "import [OPTIONS] PATH [NAME]\n\n"
     "PATH is an OCI image layout (directory or tar), a `docker save` archive,\n"
     "or a plain root filesystem tar (optionally compressed), which becomes a\n"
     "one-layer image.  NAME defaults to the name recorded in the archive.\n\n"
     "Options:\n"
     "  --platform OS/ARCH      platform to pick from a multi-platform layout\n"
     "  -q, --quiet             print only the image id\n"
     "  --format json           print the imported image as JSON\n"},
    {"images", cmd_images, "List images",
     "images [OPTIONS]\n\n"
     "Options:\n"
     "  -q, --quiet             print image ids only\n"
     "  --digests               show repository digests\n"
     "  --format json           print a JSON array\n"},
    {"rmi", cmd_rmi, "Remove images",
     "rmi [OPTIONS] IMAGE...\n\n"
     "Untag IMAGE; the image is deleted when no names are left.\n\n"
     "Options:\n"
     "  -f, --force             remove the image by id even if it has several names\n"},
    {"image", cmd_image, "Manage images (inspect, ls, rm, prune, pull, import)",
     "image COMMAND\n\n"
     "Commands:\n"
     "  inspect IMAGE...        show an image's configuration (JSON)\n"
     "  ls                      same as `vmbox images`\n"
     "  rm IMAGE...             same as `vmbox rmi`\n"
     "  prune                   delete blobs and disks no image uses\n"
     "  pull, import            same as the top-level commands\n"},
    {"login", cmd_login, "Log in to a registry",
     "login [OPTIONS] REGISTRY\n\n"
     "Options:\n"
     "  -u, --username USER\n"
     "  -p, --password PASS     (prefer --password-stdin)\n"
     "  --password-stdin        read the password from standard input\n"},
    {"logout", cmd_logout, "Log out from a registry",
     "logout [REGISTRY]\n\nRemove saved credentials (default registry: docker.io).\n"},
    {"help", cmd_help, "Show help for a command", "help [COMMAND]\n"},
    {"version", cmd_version, "Show the vmbox version", "version [--format json]\n"},
};

const struct command *cli__find_command(const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

void cli__print_usage(FILE *f, const struct command *c)
{
  fprintf(f, "Usage: vmbox %s", c->usage);
}

static void print_main_usage(FILE *f)
{
  fputs("Usage: vmbox [OPTIONS] COMMAND [ARG...]\n\n"
        "Run OCI images in sandboxes: Linux namespaces, a user-space kernel, or KVM.\n\n"
        "Global options:\n"
        "  --root DIR              state and image store (default /var/lib/vmbox as root,\n"
        "                          $XDG_DATA_HOME/vmbox otherwise; env VMBOX_ROOT)\n"
        "  --format table|json     output format for commands that print state\n"
        "  --debug                 debug logging on stderr\n"
        "  -q, --quiet             print only what scripts need\n"
        "  --insecure-registry H   plain HTTP for registry host H\n"
        "  -v, --version           print the version\n\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fputs("\nRun 'vmbox COMMAND --help' for more on a command.\n", f);
}

int cli__usage_error(const char *cmd, const char *fmt, ...)
{
  fprintf(stderr, "vmbox%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nSee 'vmbox %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
  return EXIT_VMBOX_FAILED;
}

int cli__fail(vmbox_error_t *err)
{
  return vmbox_error_report(err);
}

static char *default_root(void)
{
  const char *env = getenv("VMBOX_ROOT");
  if (env && *env)
    return xstrdup(env);
  if (geteuid() == 0)
    return xstrdup("/var/lib/vmbox");
  const char *xdg = getenv("XDG_DATA_HOME");
  if (xdg && *xdg)
    return util__fmt("%s/vmbox", xdg);
  const char *home = getenv("HOME");
  return util__fmt("%s/.local/share/vmbox", home && *home ? home : "/tmp");
}

int cli__store(struct cli *cli, struct store **out, vmbox_error_t *err)
{
  if (cli->store == NULL && store__open(cli->root, &cli->store, err) < 0)
    return vmbox_error_hint(err, "check --root / VMBOX_ROOT (%s) is writable", cli->root);
  *out = cli->store;
  return 0;
}

int cli__common_opt(struct cli *cli, const char *cmd, int c, const char *arg, vmbox_error_t *err)
{
  switch (c) {
  case OPT_ROOT: cli->root = arg; return 0;
  case OPT_FORMAT:
    if (strcmp(arg, "json") == 0)
      cli->format = FORMAT_JSON;
    else if (strcmp(arg, "table") == 0)
      cli->format = FORMAT_TABLE;
    else
      return vmbox_error_set(err, 0, "invalid --format %s (use table or json)", arg);
    return 0;
  case OPT_DEBUG: cli->debug = log__debug_enabled = true; return 0;
  case 'q': cli->quiet = true; return 0;
  case OPT_INSECURE_REGISTRY: strv_push(&cli->insecure_registries, arg); return 0;
  case OPT_HELP: {
    const struct command *cm = cmd ? cli__find_command(cmd) : NULL;
    if (cm)
      cli__print_usage(stdout, cm);
    else
      print_main_usage(stdout);
    return 1;
  }
  default:
    /* getopt already printed what was wrong with the flag. */
    return vmbox_error_set(err, 0, "bad option; see 'vmbox %s%s--help'", cmd ? cmd : "",
                           cmd ? " " : "");
  }
}

int cmd_help(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  if (argc < 2) {
    print_main_usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    cli__print_usage(stdout, cli__find_command("help"));
    return 0;
  }
  const struct command *c = cli__find_command(argv[1]);
  if (c == NULL)
    return cli__usage_error("help", "unknown command '%s'", argv[1]);
  cli__print_usage(stdout, c);
  return 0;
}

int main(int argc, char **argv)
{
  struct cli cli = {0};
  cleanup_free char *root = default_root();
  cli.root = root;
  cli.tty_err = isatty(STDERR_FILENO);
  const char *nc = getenv("NO_COLOR");
  cli.color = cli.tty_err && !(nc && *nc);

  static const struct option opts[] = {{"version", no_argument, NULL, 'v'}, COMMON_LONG_OPTS};
  int c;
  opterr = 1;
  /* '+': stop at the command name; everything after belongs to it. */
  while ((c = getopt_long(argc, argv, "+qv", opts, NULL)) != -1) {
    if (c == 'v') {
      optind = 0;
      return cmd_version(&cli, 1, (char *[]){"version", NULL});
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(&cli, NULL, c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc) {
    print_main_usage(stderr);
    return EXIT_VMBOX_FAILED;
  }
  const struct command *cmd = cli__find_command(argv[optind]);
  if (cmd == NULL)
    return cli__usage_error(NULL, "'%s' is not a vmbox command", argv[optind]);
  int first = optind;
  optind = 0; /* full getopt reset for the subcommand */
  int rc = cmd->fn(&cli, argc - first, argv + first);
  if (cli.store)
    store__close(cli.store);
  strv_free(cli.insecure_registries);
  return rc;
}
