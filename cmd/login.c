/* vmbox login / logout: credentials for registries, checked before saving. */
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../image/registry.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "cli.h"

enum { OPT_PASSWORD_STDIN = OPT_COMMAND_BASE };

#define MAX_SECRET 65536

static void chomp(char *s)
{
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
}

/* The whole of stdin, as `docker login --password-stdin` reads it. */
static char *read_stdin(void)
{
  char *buf = xmalloc(MAX_SECRET + 1);
  size_t n = 0;
  while (n < MAX_SECRET) {
    ssize_t r = read(STDIN_FILENO, buf + n, MAX_SECRET - n);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  chomp(buf);
  return buf;
}

/* One line from the terminal, echo off for secrets. */
static char *prompt(const char *what, bool secret)
{
  struct termios old, quiet;
  bool restore = false;
  fprintf(stderr, "%s: ", what);
  fflush(stderr);
  if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    restore = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (restore) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    fputc('\n', stderr);
  }
  if (n < 0) {
    free(line);
    return NULL;
  }
  chomp(line);
  return line;
}

struct login_args {
  const char *user, *password;
  bool password_stdin;
};

static int parse_login(struct cli *cli, int argc, char **argv, struct login_args *a)
{
  static const struct option opts[] = {{"username", required_argument, NULL, 'u'},
                                       {"password", required_argument, NULL, 'p'},
                                       {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
                                       COMMON_LONG_OPTS};
  vmbox_error_t err = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "u:p:q", opts, NULL)) != -1) {
    if (c == 'u')
      a->user = optarg;
    else if (c == 'p')
      a->password = optarg;
    else if (c == OPT_PASSWORD_STDIN)
      a->password_stdin = true;
    else {
      int r = cli__common_opt(cli, "login", c, optarg, &err);
      if (r != 0)
        return r < 0 ? cli__fail(&err) : -1;
    }
  }
  if (a->password && a->password_stdin)
    return cli__usage_error("login", "--password and --password-stdin are mutually exclusive");
  if (a->password_stdin && !a->user)
    return cli__usage_error("login", "--password-stdin needs --username");
  if (argc - optind > 1)
    return cli__usage_error("login", "takes at most one registry");
  return 0;
}

int cmd_login(struct cli *cli, int argc, char **argv)
{
  struct login_args a = {0};
  int r = parse_login(cli, argc, argv, &a);
  if (r != 0)
    return r < 0 ? 0 : r; /* -1: --help was printed */
  const char *registry = optind < argc ? argv[optind] : "docker.io";
  cleanup_free char *user = a.user ? xstrdup(a.user) : NULL;
  cleanup_free char *pass = a.password ? xstrdup(a.password) : NULL;
  bool tty = isatty(STDIN_FILENO);
  if (a.password)
    log__warn("using --password on the command line is insecure; use --password-stdin");
  if (!user && tty)
    user = prompt("Username", false);
  if (!user || !*user)
    return cli__usage_error("login", "a username is required (-u USER)");
  if (a.password_stdin)
    pass = read_stdin();
  else if (!pass && tty)
    pass = prompt("Password", true);
  if (!pass || !*pass)
    return cli__usage_error("login", "a password is required (-p PASS or --password-stdin)");
  vmbox_error_t err = NULL;
  int rc = registry__login(registry, user, pass, cli->insecure_registries, &err);
  explicit_bzero(pass, strlen(pass));
  if (rc < 0)
    return cli__fail(&err);
  puts("Login Succeeded");
  return 0;
}

int cmd_logout(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {COMMON_LONG_OPTS};
  vmbox_error_t err = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    int r = cli__common_opt(cli, "logout", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (argc - optind > 1)
    return cli__usage_error("logout", "takes at most one registry");
  const char *registry = optind < argc ? argv[optind] : "docker.io";
  int rc = registry__logout(registry, &err);
  if (rc < 0)
    return cli__fail(&err);
  if (rc == 1)
    printf("Not logged in to %s\n", registry);
  else
    printf("Removing login credentials for %s\n", registry);
  return 0;
}
