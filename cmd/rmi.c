/* vmbox rmi [-f] IMAGE...: untag, and delete images left without names.
 * As `docker rmi`, an unknown image is reported, the rest still removed,
 * and the exit status is 1. */
#include <string.h>

#include "../backends/backend.h"
#include "../image/lookup.h"
#include "../lib/util.h"
#include "cli.h"

static void print_untagged(const char *name)
{
  cleanup_free char *f = image__familiar(name);
  printf("Untagged: %s\n", f);
}

/* Removes one image; prints what happened.  Returns 0, or -1 with err. */
static int rmi_one(struct store *s, const char *arg, bool force, vmbox_error_t *err)
{
  struct image_record rec = {0};
  cleanup_free char *canon = NULL;
  int r = image__find(s, arg, &rec, &canon, err);
  if (r <= 0)
    return r < 0 ? -1 : vmbox_error_set(err, 0, "No such image: %s", arg);
  bool by_name = canon && rec.names && strv_len(rec.names) > 0;
  if (by_name) {
    by_name = false;
    for (char **n = rec.names; *n; n++)
      by_name |= strcmp(*n, canon) == 0;
  }
  r = store__image_remove(s, by_name ? canon : rec.id, force, err);
  if (r == 0 && by_name)
    print_untagged(canon);
  for (char **n = rec.names; r == 0 && !by_name && n && *n; n++)
    print_untagged(*n);
  vmbox_error_t e = NULL;
  if (r == 0 && store__image_find(s, rec.id, NULL, &e) == 0)
    printf("Deleted: %s\n", rec.id);
  vmbox_error_free(&e);
  image_record__free(&rec);
  return r < 0 ? -1 : 0;
}

int cmd_rmi(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, COMMON_LONG_OPTS};
  bool force = false;
  int c;
  while ((c = getopt_long(argc, argv, "fq", opts, NULL)) != -1) {
    if (c == 'f') {
      force = true;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "rmi", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind >= argc)
    return cli__usage_error("rmi", "requires at least 1 argument");
  vmbox_error_t err = NULL;
  struct store *s;
  if (cli__store(cli, &s, &err) < 0)
    return cli__fail(&err);
  int rc = 0, removed = 0;
  for (int i = optind; i < argc; i++) {
    if (rmi_one(s, argv[i], force, &err) == 0) {
      removed++;
      continue;
    }
    vmbox_error_code(&err, 1);
    rc = vmbox_error_report(&err);
  }
  /* Docker frees layers with the image: do it unless an import is in flight. */
  if (removed > 0 && store__prune_nowait(s, NULL, NULL, &err) < 0)
    vmbox_error_report(&err);
  if (removed > 0)
    backend__images_gone();
  return rc;
}
