/* vmbox wait: blocks until each box ends and prints its exit code. */
#include <unistd.h>

#include "../box/box.h"
#include "../box/monitor.h"
#include "../lib/util.h"
#include "cli.h"

static int wait_one(struct cli *cli, const char *key, vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, key, &b, err) < 0)
    return -1;
  int r = monitor__wait_gone(&b, -1, err);
  cleanup_free char *cfg = box__path(&b, "config.json");
  int code;
  /* A --rm box removed itself as it ended: its monitor left the exit code
   * in a note (box/exits.c), as docker's wait still prints it.  A box gone
   * before we started waiting was "No such box" (box__get), also as docker. */
  if (r >= 0 && access(cfg, F_OK) < 0) {
    if (box__exit_note_read(cli->root, b.id, &code) == 1) {
      printf("%d\n", code);
    } else {
      r = vmbox_error_set(err, 0, "box %s was removed before its exit code was recorded", key);
      vmbox_error_hint(err, "its exit code went to the vmbox run that started it");
    }
  } else if (r >= 0 && (r = box__reload(&b, err)) == 0 && (r = box__refresh(&b, err)) == 0) {
    /* Once the monitor is gone its last state is on disk. */
    printf("%d\n", b.state.exit_code);
  }
  fflush(stdout);
  box_info__free(&b);
  return r;
}

int cmd_wait(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {COMMON_LONG_OPTS};
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "wait", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("wait", "\"vmbox wait\" requires at least 1 argument: BOX");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    vmbox_error_t err = NULL;
    if (wait_one(cli, argv[i], &err) < 0) {
      cli__fail(&err);
      rc = 1;
    }
  }
  return rc;
}
