/* vmbox rm: removes boxes that are not running (-f: kills them first). */
#include <signal.h>

#include "../box/box.h"
#include "../box/monitor.h"
#include "../lib/util.h"
#include "cli.h"

static int rm_one(struct cli *cli, const char *key, bool force, vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, key, &b, err) < 0)
    return -1;
  int r = 0;
  if (b.state.status == BOX_STATUS_RUNNING && !force) {
    vmbox_error_set(err, 0, "cannot remove box %s: it is running", key);
    r = vmbox_error_hint(err, "stop it first (vmbox stop %s) or use vmbox rm -f", key);
  } else if (b.state.status == BOX_STATUS_RUNNING) {
    /* The monitor records the exit and deletes the backend state. */
    if (monitor__signal(&b, SIGKILL, NULL) == 0 && monitor__wait_gone(&b, 30000, err) == 0)
      r = vmbox_error_set(err, 0, "box %.12s did not die after SIGKILL", b.id);
    if (r == 0 && box__reload(&b, err) == 0)
      r = box__refresh(&b, err);
  }
  if (r == 0 && b.state.status == BOX_STATUS_CREATED && box__monitor_alive(&b.state)) {
    vmbox_error_set(err, 0, "cannot remove box %s: it is starting", key);
    r = -1;
  }
  if (r == 0)
    r = box__remove(cli->root, &b, err);
  box_info__free(&b);
  return r;
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, COMMON_LONG_OPTS};
  bool force = false;
  int c;
  while ((c = getopt_long(argc, argv, "qf", opts, NULL)) != -1) {
    if (c == 'f') {
      force = true;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "rm", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("rm", "\"vmbox rm\" requires at least 1 argument: BOX");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    vmbox_error_t err = NULL;
    if (rm_one(cli, argv[i], force, &err) < 0) {
      cli__fail(&err);
      rc = 1;
    } else {
      printf("%s\n", argv[i]);
    }
  }
  return rc;
}
