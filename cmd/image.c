#include "cli.h"

int cmd_image(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("image", "not implemented yet");
}
