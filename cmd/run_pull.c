/* `vmbox run --pull missing|always|never`: finding the image, and pulling
 * it the way `docker run` does.  The pull's messages go to stderr: stdout
 * belongs to the box. */
#include <string.h>

#include "../image/lookup.h"
#include "../image/ref.h"
#include "../image/registry.h"
#include "../lib/util.h"
#include "cli.h"

bool run__valid_pull_policy(const char *p)
{
  return strcmp(p, "missing") == 0 || strcmp(p, "always") == 0 || strcmp(p, "never") == 0;
}

static int pull(struct cli *cli, struct store *s, const char *ref, vmbox_error_t *err)
{
  struct image_ref r;
  if (image_ref__parse(ref, &r, err) < 0)
    return -1;
  cleanup_free char *fam = image_ref__familiar(&r);
  struct pull_opts po = {.insecure_registries = cli->insecure_registries};
  struct pull_progress_ui ui = {0};
  if (cli->tty_err && !cli->quiet) { /* as `vmbox pull`: bars only on a terminal */
    po.progress = pull__progress_draw;
    po.progress_opaque = &ui;
  }
  struct image_record rec = {0}, old = {0};
  bool had = image__find(s, ref, &old, NULL, NULL) == 1;
  int rc = registry__pull(s, &r, &po, &rec, err);
  if (rc == 0) {
    const char *at = rec.repo_digest ? strchr(rec.repo_digest, '@') : NULL;
    bool fresh = !had || !old.manifest_digest || !rec.manifest_digest ||
                 strcmp(old.manifest_digest, rec.manifest_digest) != 0;
    if (at)
      fprintf(stderr, "Digest: %s\n", at + 1);
    fprintf(stderr, "Status: %s for %s\n", fresh ? "Downloaded newer image" : "Image is up to date",
            fam);
  } else {
    vmbox_error_wrap(err, "pull %s", fam);
  }
  if (had)
    image_record__free(&old);
  image_record__free(&rec);
  image_ref__free(&r);
  return rc;
}

int run__find_image(struct cli *cli, const char *ref, const char *policy, struct image_record *rec,
                    vmbox_error_t *err)
{
  struct store *s;
  if (cli__store(cli, &s, err) < 0)
    return -1;
  if (policy && strcmp(policy, "always") == 0 && pull(cli, s, ref, err) < 0)
    return -1;
  int r = image__resolve(s, ref, rec, err);
  if (r < 0)
    return vmbox_error_wrap(err, "image %s", ref);
  if (r == 1)
    return 0;
  if (policy && strcmp(policy, "never") == 0) {
    vmbox_error_set(err, 0, "No such image: %s", ref);
    return vmbox_error_hint(err, "pull it first (vmbox pull %s) or drop --pull never", ref);
  }
  fprintf(stderr, "Unable to find image '%s' locally\n", ref);
  fflush(stderr);
  if (pull(cli, s, ref, err) < 0)
    return -1;
  r = image__resolve(s, ref, rec, err);
  if (r <= 0)
    return r < 0 ? -1 : vmbox_error_set(err, 0, "image %s: not in the store after the pull", ref);
  return 0;
}
