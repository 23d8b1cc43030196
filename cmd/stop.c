/* vmbox stop: SIGTERM, then SIGKILL after -t seconds (default 10). */
#include <signal.h>
#include <stdlib.h>

#include "../box/box.h"
#include "../box/monitor.h"
#include "../lib/util.h"
#include "cli.h"

static int stop_one(struct cli *cli, const char *key, int secs, vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, key, &b, err) < 0)
    return -1;
  int r = 0;
  /* A box that is not running is already stopped (docker says nothing). */
  if (b.state.status == BOX_STATUS_RUNNING) {
    r = monitor__signal(&b, SIGTERM, err);
    if (r == 0 && (r = monitor__wait_gone(&b, secs * 1000, err)) == 0)
      r = monitor__signal(&b, SIGKILL, err);
    if (r == 0)
      r = monitor__wait_gone(&b, 30000, err) == 1
              ? 0
              : vmbox_error_set(err, 0, "box %.12s did not stop", b.id);
    else if (r == 1)
      r = 0;
  }
  box_info__free(&b);
  return r < 0 ? -1 : 0;
}

int cmd_stop(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"time", required_argument, NULL, 't'}, COMMON_LONG_OPTS};
  int secs = 10, c;
  while ((c = getopt_long(argc, argv, "qt:", opts, NULL)) != -1) {
    if (c == 't') {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 0)
        return cli__usage_error("stop", "invalid -t %s: want seconds (0 or more)", optarg);
      secs = (int)v;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "stop", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("stop", "\"vmbox stop\" requires at least 1 argument: BOX");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    vmbox_error_t err = NULL;
    if (stop_one(cli, argv[i], secs, &err) < 0) {
      cli__fail(&err);
      rc = 1;
    } else {
      printf("%s\n", argv[i]);
    }
  }
  return rc;
}
