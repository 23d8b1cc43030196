#include "cli.h"

int cmd_logout(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("logout", "not implemented yet");
}

int cmd_login(struct cli *cli, int argc, char **argv)
{
  (void)cli;
  (void)argc;
  (void)argv;
  return cli__usage_error("login", "not implemented yet");
}
