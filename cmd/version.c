#include <string.h>
#include <sys/utsname.h>

#include "cli.h"

#ifndef VMBOX_VERSION
#define VMBOX_VERSION "0.0.0-dev"
#endif

int cmd_version(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {COMMON_LONG_OPTS};
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "version", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  struct utsname u;
  uname(&u);
  if (cli->format == FORMAT_JSON) {
    out__json(json_pack("{s:s, s:s, s:s, s:[sss]}", "version", VMBOX_VERSION, "os", "linux", "arch",
                        strcmp(u.machine, "x86_64") == 0 ? "amd64" : u.machine, "backends", "ns",
                        "kvm", "sentry"));
    return 0;
  }
  printf("vmbox version %s (linux/%s)\n", VMBOX_VERSION,
         strcmp(u.machine, "x86_64") == 0 ? "amd64" : u.machine);
  return 0;
}
