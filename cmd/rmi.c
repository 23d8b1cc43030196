#include "cli.h"

int cmd_rmi(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("rmi", "not implemented yet");
}
