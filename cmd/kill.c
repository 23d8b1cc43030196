/* vmbox kill: sends a signal (default KILL) to running boxes. */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../box/box.h"
#include "../box/monitor.h"
#include "../lib/util.h"
#include "cli.h"

/* "KILL", "SIGKILL", "kill" or "9". */
static int parse_signal(const char *s)
{
  if (isdigit((unsigned char)s[0])) {
    char *end;
    long n = strtol(s, &end, 10);
    return *end || n <= 0 || n >= NSIG ? -1 : (int)n;
  }
  if (strncasecmp(s, "SIG", 3) == 0)
    s += 3;
  for (int n = 1; n < NSIG; n++) {
    const char *name = sigabbrev_np(n);
    if (name && strcasecmp(name, s) == 0)
      return n;
  }
  return -1;
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"signal", required_argument, NULL, 's'}, COMMON_LONG_OPTS};
  int sig = SIGKILL, c;
  while ((c = getopt_long(argc, argv, "qs:", opts, NULL)) != -1) {
    if (c == 's') {
      if ((sig = parse_signal(optarg)) < 0)
        return cli__usage_error("kill", "invalid signal \"%s\" (use e.g. TERM, SIGHUP or 9)",
                                optarg);
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "kill", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("kill", "\"vmbox kill\" requires at least 1 argument: BOX");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    vmbox_error_t err = NULL;
    struct box_info b = {0};
    if (box__get(cli->root, argv[i], &b, &err) < 0 || monitor__signal(&b, sig, &err) < 0) {
      cli__fail(&err);
      rc = 1;
    } else {
      printf("%s\n", argv[i]);
    }
    box_info__free(&b);
  }
  return rc;
}
