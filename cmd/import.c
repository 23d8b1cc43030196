#include "cli.h"

int cmd_import(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("import", "not implemented yet");
}
