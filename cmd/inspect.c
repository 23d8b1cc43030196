/* vmbox inspect: boxes as a JSON array (box__to_json's stable fields). */
#include "../box/box.h"
#include "../lib/util.h"
#include "cli.h"

int cmd_box_inspect(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {COMMON_LONG_OPTS};
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "inspect", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("inspect", "\"vmbox inspect\" requires at least 1 argument: BOX");
  json_t *arr = json_array();
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    vmbox_error_t err = NULL;
    struct box_info b;
    if (box__get(cli->root, argv[i], &b, &err) < 0) {
      cli__fail(&err);
      rc = 1;
      continue;
    }
    json_array_append_new(arr, box__to_json(&b));
    box_info__free(&b);
  }
  out__json(arr);
  return rc;
}
