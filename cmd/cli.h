/* What every subcommand shares: global options, the lazily opened store,
 * output helpers, and the table of commands. */
#ifndef VMBOX_CMD_CLI_H
#define VMBOX_CMD_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "../image/store.h"
#include "../lib/err.h"

enum output_format { FORMAT_TABLE, FORMAT_JSON };

struct cli {
  const char *root;
  enum output_format format;
  bool debug, quiet;
  bool tty_err; /* stderr is a terminal: progress bars allowed */
  bool color;   /* and NO_COLOR is unset */
  char **insecure_registries;
  struct store *store;
};

/* Opens the store on first use. */
int cli__store(struct cli *cli, struct store **out, vmbox_error_t *err);

/* Every command accepts the global options too (`vmbox images --format json`).
 * Append COMMON_LONG_OPTS to a command's option table and call
 * cli__common_opt() from its default: case. */
enum {
  OPT_ROOT = 1000,
  OPT_FORMAT,
  OPT_DEBUG,
  OPT_HELP,
  OPT_INSECURE_REGISTRY,
  OPT_COMMAND_BASE = 1100, /* commands number their own long-only options from here */
};
#define COMMON_LONG_OPTS                                                                           \
  {"root", required_argument, NULL, OPT_ROOT}, {"format", required_argument, NULL, OPT_FORMAT},    \
      {"debug", no_argument, NULL, OPT_DEBUG}, {"quiet", no_argument, NULL, 'q'},                  \
      {"help", no_argument, NULL, OPT_HELP},                                                       \
      {"insecure-registry", required_argument, NULL, OPT_INSECURE_REGISTRY},                       \
  {                                                                                                \
    NULL, 0, NULL, 0                                                                               \
  }

/* Handles a global option.  Returns 0 if handled, 1 for --help (usage was
 * printed; the caller returns 0), -1 with err set for a bad value or an
 * unknown option. */
int cli__common_opt(struct cli *cli, const char *cmd, int c, const char *arg, vmbox_error_t *err);

struct command {
  const char *name;
  int (*fn)(struct cli *cli, int argc, char **argv);
  const char *summary;
  const char *usage; /* full help text after "Usage: vmbox " */
};
const struct command *cli__find_command(const char *name);
void cli__print_usage(FILE *f, const struct command *c);

/* A bad flag or argument: prints "vmbox CMD: MSG" and the usage hint, returns 125. */
int cli__usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints an error value and returns its exit code. */
int cli__fail(vmbox_error_t *err);

/* Output */
void out__json(json_t *j); /* prints and decrefs */
struct table;
struct table *table__new(const char *const *headers);
void table__row(struct table *t, const char *const *cells);
void table__print(struct table *t); /* prints and frees */

/* Subcommands (one file each). */
int cmd_help(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_pull(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_images(struct cli *cli, int argc, char **argv);
int cmd_rmi(struct cli *cli, int argc, char **argv);
int cmd_image(struct cli *cli, int argc, char **argv);
int cmd_login(struct cli *cli, int argc, char **argv);
int cmd_logout(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_logs(struct cli *cli, int argc, char **argv);
int cmd_wait(struct cli *cli, int argc, char **argv);
int cmd_stop(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_box_inspect(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_cp(struct cli *cli, int argc, char **argv);

/* run_pull.c: `run --pull missing|always|never` (NULL = missing). */
/* pull.c: docker's per-layer progress lines on stderr (a TTY only). */
struct pull_progress;
struct pull_progress_ui {
  size_t lines; /* drawn last time; the cursor goes back up over them */
};
void pull__progress_draw(const struct pull_progress *p, size_t n, void *opaque);

bool run__valid_pull_policy(const char *policy);
int run__find_image(struct cli *cli, const char *ref, const char *policy, struct image_record *rec,
                    vmbox_error_t *err);
/* run_log.c: --log-opt; *max_size 0 = default, -1 = unlimited. */
int run__log_opt(const char *opt, int64_t *max_size, vmbox_error_t *err);
/* What config.json's log_max_size gets (0: unlimited). */
json_int_t run__log_max_size(int64_t opt);

#endif
