/* Exit notes of --rm boxes: ROOT/exits/ID holds the exit code of a box
 * that removed itself, so a `vmbox wait` that was already waiting can still
 * print it (as docker's does).  Notes are small and short-lived: each new
 * one prunes those older than EXIT_NOTE_TTL. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/util.h"
#include "box.h"

enum { EXIT_NOTE_TTL = 600 }; /* seconds */

static void prune(const char *dir)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  time_t now = time(NULL);
  struct dirent *e;
  struct stat st;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
        now - st.st_mtime > EXIT_NOTE_TTL)
      unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
}

void box__exit_note_write(const char *root, const char *id, int code)
{
  cleanup_free char *dir = util__fmt("%s/exits", root);
  cleanup_free char *p = util__fmt("%s/%s", dir, id);
  char buf[16];
  int n = snprintf(buf, sizeof(buf), "%d\n", code);
  if (util__mkdir_p(dir, 0700, NULL) == 0)
    util__write_file_replace(p, buf, (size_t)n, 0600, NULL); /* read at once; a crash ends it */
  prune(dir);
}

int box__exit_note_read(const char *root, const char *id, int *code)
{
  cleanup_free char *p = util__fmt("%s/exits/%s", root, id);
  cleanup_free char *buf = NULL;
  if (util__read_file(p, &buf, NULL, NULL) < 0)
    return 0;
  *code = atoi(buf);
  return 1;
}
