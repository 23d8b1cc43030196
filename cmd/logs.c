/* vmbox logs: the box's output from ctr.log, stdout to stdout and stderr to
 * stderr; -f follows until the box ends, --tail N starts N lines from the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../box/box.h"
#include "../box/log.h"
#include "../lib/util.h"
#include "cli.h"

enum { OPT_TAIL = OPT_COMMAND_BASE };

static void emit(const struct log_record *r, size_t n, size_t skip)
{
  for (size_t i = skip; i < n; i++) {
    FILE *f = r[i].stream == 'e' ? stderr : stdout;
    fwrite(r[i].data, 1, r[i].len, f);
  }
  fflush(stdout);
  fflush(stderr);
}

/* Appends what the file has beyond *buf's end. */
static int read_more(int fd, char **buf, size_t *len, vmbox_error_t *err)
{
  for (;;) {
    *buf = xrealloc(*buf, *len + 65536);
    ssize_t n = read(fd, *buf + *len, 65536);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmbox_error_sys(err, "read log");
    if (n == 0)
      return 0;
    *len += (size_t)n;
  }
}

/* Prints the records after *off; returns how many whole records there were. */
static void print_new(char *buf, size_t len, size_t *off)
{
  struct log_record *r = NULL;
  size_t used = 0, n = log__parse(buf + *off, len - *off, &r, &used);
  emit(r, n, 0);
  free(r);
  *off += used;
}

/* --log-opt max-size: the monitor renamed ctr.log to ctr.log.1 and opened
 * a new one.  Returns the new file's fd when that happened, else -1. */
static int rotated(const char *path, int fd)
{
  struct stat a, b;
  if (stat(path, &a) < 0 || fstat(fd, &b) < 0 || (a.st_dev == b.st_dev && a.st_ino == b.st_ino))
    return -1;
  return open(path, O_RDONLY | O_CLOEXEC);
}

static int follow(struct cli *cli, struct box_info *b, const char *path, int *fd, char **buf,
                  size_t *len, size_t *off, vmbox_error_t *err)
{
  for (;;) {
    bool ended = b->state.status == BOX_STATUS_EXITED;
    int nfd = rotated(path, *fd);
    /* The old file's last records (written before the rename) come first. */
    if (read_more(*fd, buf, len, err) < 0) {
      if (nfd >= 0)
        close(nfd);
      return -1;
    }
    print_new(*buf, *len, off);
    if (nfd >= 0) {
      close(*fd);
      *fd = nfd;
      *len = *off = 0;
      continue;
    }
    if (ended)
      return 0;
    usleep(100 * 1000);
    struct box_info fresh;
    int r = box__find(cli->root, b->id, &fresh, err);
    if (r <= 0)
      return r; /* removed (--rm): nothing more will come */
    box_info__free(b);
    *b = fresh;
  }
}

/* ctr.log.1 (rotated, may be absent) and ctr.log as one list of records. */
static void print_all(const char *old, size_t old_len, const char *cur, size_t cur_len, long tail,
                      size_t *off)
{
  struct log_record *r1 = NULL, *r2 = NULL;
  size_t used1 = 0, n1 = old ? log__parse(old, old_len, &r1, &used1) : 0;
  size_t n2 = log__parse(cur, cur_len, &r2, off);
  size_t skip = tail >= 0 && (size_t)tail < n1 + n2 ? n1 + n2 - (size_t)tail : 0;
  emit(r1, n1, skip < n1 ? skip : n1);
  emit(r2, n2, skip > n1 ? skip - n1 : 0);
  free(r1);
  free(r2);
}

static int show(struct cli *cli, const char *key, bool f, long tail, vmbox_error_t *err)
{
  struct box_info b;
  if (box__get(cli->root, key, &b, err) < 0)
    return -1;
  cleanup_free char *p = box__path(&b, "ctr.log");
  cleanup_free char *p1 = box__path(&b, "ctr.log.1");
  cleanup_free char *old = NULL;
  size_t old_len = 0;
  if (util__read_file(p1, &old, &old_len, NULL) < 0)
    old = NULL;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  size_t len = 0, off = 0;
  int r = 0;
  if (fd < 0 && errno != ENOENT)
    r = vmbox_error_sys(err, "open %s", p);
  if (fd >= 0 && (r = read_more(fd, &buf, &len, err)) == 0) {
    print_all(old, old_len, buf ? buf : "", len, tail, &off);
    if (f)
      r = follow(cli, &b, p, &fd, &buf, &len, &off, err);
  }
  if (fd >= 0)
    close(fd);
  box_info__free(&b);
  return r;
}

int cmd_logs(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                       {"tail", required_argument, NULL, OPT_TAIL},
                                       COMMON_LONG_OPTS};
  bool f = false;
  long tail = -1;
  int c;
  while ((c = getopt_long(argc, argv, "fqn:", opts, NULL)) != -1) {
    if (c == 'f') {
      f = true;
      continue;
    }
    if (c == OPT_TAIL || c == 'n') {
      char *end;
      tail = strcmp(optarg, "all") == 0 ? -1 : strtol(optarg, &end, 10);
      if (strcmp(optarg, "all") != 0 && (*end || end == optarg || tail < 0))
        return cli__usage_error("logs", "invalid --tail %s: want a number or \"all\"", optarg);
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "logs", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (argc - optind != 1)
    return cli__usage_error("logs", "\"vmbox logs\" requires exactly 1 argument: BOX");
  vmbox_error_t err = NULL;
  if (show(cli, argv[optind], f, tail, &err) < 0) {
    cli__fail(&err);
    return 1; /* docker's code for a daemon-side error */
  }
  return 0;
}
