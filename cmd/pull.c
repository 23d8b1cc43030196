#include "cli.h"

int cmd_pull(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("pull", "not implemented yet");
}
