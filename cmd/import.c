/* vmbox import PATH [NAME]: OCI layouts, docker-save archives, rootfs tars. */
#include <string.h>

#include "../image/import.h"
#include "../image/lookup.h"
#include "../lib/util.h"
#include "cli.h"

enum { OPT_PLATFORM = OPT_COMMAND_BASE };

static void print_result(struct cli *cli, const struct image_record *r)
{
  if (cli->format == FORMAT_JSON) {
    out__json(image_record__to_json(r));
    return;
  }
  if (cli->quiet) {
    puts(r->id);
    return;
  }
  /* As `docker load` reports. */
  if (r->names == NULL || r->names[0] == NULL)
    printf("Loaded image ID: %s\n", r->id);
  for (char **n = r->names; n && *n; n++) {
    cleanup_free char *f = image__familiar(*n);
    printf("Loaded image: %s\n", f);
  }
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"platform", required_argument, NULL, OPT_PLATFORM},
                                       COMMON_LONG_OPTS};
  const char *platform = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
    if (c == OPT_PLATFORM) {
      platform = optarg;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "import", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  int n = argc - optind;
  if (n < 1 || n > 2)
    return cli__usage_error("import", n < 1 ? "requires a PATH" : "too many arguments");
  if (platform && (!strchr(platform, '/') || platform[0] == '/'))
    return cli__usage_error("import", "invalid --platform '%s' (want os/arch[/variant])", platform);
  vmbox_error_t err = NULL;
  struct store *s;
  struct image_record rec = {0};
  if (cli__store(cli, &s, &err) < 0 ||
      import__path(s, argv[optind], n == 2 ? argv[optind + 1] : NULL, platform, &rec, &err) < 0)
    return cli__fail(&err);
  print_result(cli, &rec);
  image_record__free(&rec);
  return 0;
}
