/* flatten_tool [--disk-size SIZE] [--debug] OUT.ext4 LAYER...
 * Flattens layer tarballs (bottom first) into OUT.ext4 with flatten__layers;
 * the flatten suites and the benchmark drive it.  Prints the elapsed seconds
 * on stderr with --time. */
#include <stdio.h>
#include <string.h>

#include "../../image/flatten.h"
#include "../../lib/log.h"
#include "../../lib/util.h"

static int usage(void)
{
  fprintf(stderr, "usage: flatten_tool [--disk-size SIZE] [--debug] [--time] OUT.ext4 "
                  "LAYER...\n");
  return 2;
}

int main(int argc, char **argv)
{
  struct flatten_opts opts = {0};
  vmbox_error_t err = NULL;
  bool timing = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    if (!strcmp(argv[i], "--disk-size") && i + 1 < argc) {
      if (util__parse_size(argv[++i], &opts.disk_size, &err) < 0)
        return vmbox_error_report(&err);
    } else if (!strcmp(argv[i], "--debug")) {
      log__debug_enabled = true;
    } else if (!strcmp(argv[i], "--time")) {
      timing = true;
    } else {
      return usage();
    }
  }
  if (argc - i < 1)
    return usage();
  const char *out = argv[i++];
  uint64_t t0 = util__now_ns();
  if (flatten__layers((const char *const *)&argv[i], (size_t)(argc - i), out, &opts, &err) < 0)
    return vmbox_error_report(&err);
  if (timing)
    fprintf(stderr, "flatten: %.3f s\n", (double)(util__now_ns() - t0) / 1e9);
  return 0;
}
