/* `vmbox run --log-opt KEY=VALUE`: how big ctr.log may grow, as docker's
 * json-file driver: max-size=SIZE (default 10m; -1: unlimited).  Past it
 * the monitor rotates ctr.log to ctr.log.1, replacing the older one: at
 * most two files, so max-file=2 is the only max-file accepted. */
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "cli.h"

int run__log_opt(const char *opt, int64_t *max_size, vmbox_error_t *err)
{
  const char *eq = strchr(opt, '=');
  if (eq == NULL)
    return vmbox_error_set(err, 0, "invalid --log-opt %s: want KEY=VALUE", opt);
  const char *v = eq + 1;
  if (strncmp(opt, "max-size=", 9) == 0) {
    uint64_t n;
    if (strcmp(v, "-1") == 0) {
      *max_size = -1;
      return 0;
    }
    if (util__parse_size(v, &n, err) < 0 || n == 0 || n > INT64_MAX)
      return vmbox_error_wrap(err, "--log-opt max-size (want e.g. 10m, or -1)");
    *max_size = (int64_t)n;
    return 0;
  }
  if (strncmp(opt, "max-file=", 9) == 0) {
    if (strcmp(v, "2") == 0)
      return 0;
    return vmbox_error_set(err, 0,
                           "--log-opt max-file=%s: only 2 (ctr.log and one rotated "
                           "file) is supported",
                           v);
  }
  vmbox_error_set(err, 0, "unknown --log-opt %.*s", (int)(eq - opt), opt);
  return vmbox_error_hint(err, "supported: max-size=SIZE, max-file=2");
}

json_int_t run__log_max_size(int64_t opt)
{
  enum { DEFAULT_MAX = 10 * 1024 * 1024 };
  return opt == 0 ? DEFAULT_MAX : opt < 0 ? 0 : (json_int_t)opt;
}
