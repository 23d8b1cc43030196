/* vmbox ps: the boxes, docker's table (running only unless -a), -q ids, or JSON. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../box/box.h"
#include "../lib/util.h"
#include "cli.h"

/* Docker's units.HumanDuration. */
static void human_duration(int64_t secs, char *buf, size_t len)
{
  int64_t m = secs / 60, h = m / 60;
  if (secs < 1)
    snprintf(buf, len, "Less than a second");
  else if (secs == 1)
    snprintf(buf, len, "1 second");
  else if (secs < 60)
    snprintf(buf, len, "%" PRId64 " seconds", secs);
  else if (m == 1)
    snprintf(buf, len, "About a minute");
  else if (m < 60)
    snprintf(buf, len, "%" PRId64 " minutes", m);
  else if (h == 1)
    snprintf(buf, len, "About an hour");
  else if (h < 48)
    snprintf(buf, len, "%" PRId64 " hours", h);
  else if (h < 24 * 7 * 2)
    snprintf(buf, len, "%" PRId64 " days", h / 24);
  else if (h < 24 * 30 * 2)
    snprintf(buf, len, "%" PRId64 " weeks", h / 24 / 7);
  else if (h < 24 * 365 * 2)
    snprintf(buf, len, "%" PRId64 " months", h / 24 / 30);
  else
    snprintf(buf, len, "%" PRId64 " years", h / 24 / 365);
}

static void status_text(const struct box_info *b, char *buf, size_t len)
{
  char d[64];
  int64_t now = time(NULL);
  switch (b->state.status) {
  case BOX_STATUS_CREATED: snprintf(buf, len, "Created"); return;
  case BOX_STATUS_RUNNING:
    human_duration(now - b->state.started, d, sizeof(d));
    snprintf(buf, len, "Up %s", d);
    return;
  default:
    human_duration(now - b->state.finished, d, sizeof(d));
    snprintf(buf, len, "Exited (%d) %s ago", b->state.exit_code, d);
  }
}

static void add_row(struct table *t, const struct box_info *b)
{
  char id[13], created[80], status[128], d[64];
  snprintf(id, sizeof(id), "%.12s", b->id);
  human_duration(time(NULL) - json_integer_value(json_object_get(b->config, "created")), d,
                 sizeof(d));
  snprintf(created, sizeof(created), "%s ago", d);
  status_text(b, status, sizeof(status));
  cleanup_free char *cmd = box__command(b);
  /* Docker quotes the command and cuts it at 20 characters. */
  cleanup_free char *shown =
      strlen(cmd) > 20 ? util__fmt("\"%.17s...\"", cmd) : util__fmt("\"%s\"", cmd);
  const char *image = json_string_value(json_object_get(b->config, "image"));
  const char *cells[] = {id, image ? image : "", shown, created, status, b->name, NULL};
  table__row(t, cells);
}

static void print(struct cli *cli, struct box_info *v, size_t n, bool all)
{
  static const char *const h[] = {"CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                                  "STATUS",       "NAMES", NULL};
  if (cli->format == FORMAT_JSON) {
    json_t *arr = json_array();
    for (size_t i = n; i-- > 0;)
      if (all || v[i].state.status == BOX_STATUS_RUNNING)
        json_array_append_new(arr, box__to_json(&v[i]));
    out__json(arr);
    return;
  }
  struct table *t = cli->quiet ? NULL : table__new(h);
  for (size_t i = n; i-- > 0;) { /* newest first, as docker */
    if (!all && v[i].state.status != BOX_STATUS_RUNNING)
      continue;
    if (t)
      add_row(t, &v[i]);
    else
      printf("%.12s\n", v[i].id);
  }
  if (t)
    table__print(t);
}

int cmd_ps(struct cli *cli, int argc, char **argv)
{
  static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, COMMON_LONG_OPTS};
  bool all = false;
  int c;
  while ((c = getopt_long(argc, argv, "aq", opts, NULL)) != -1) {
    if (c == 'a') {
      all = true;
      continue;
    }
    vmbox_error_t err = NULL;
    int r = cli__common_opt(cli, "ps", c, optarg, &err);
    if (r == 1)
      return 0;
    if (r < 0)
      return cli__fail(&err);
  }
  if (optind < argc)
    return cli__usage_error("ps", "unexpected argument '%s'", argv[optind]);
  vmbox_error_t err = NULL;
  struct box_info *v = NULL;
  size_t n = 0;
  if (box__list(cli->root, &v, &n, &err) < 0)
    return cli__fail(&err);
  print(cli, v, n, all);
  box_info__list_free(v, n);
  return 0;
}
