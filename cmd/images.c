#include "cli.h"

int cmd_images(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("images", "not implemented yet");
}
