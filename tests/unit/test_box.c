/* box/: ctr.log framing, spec building from an image config + flags, and
 * box ids, names and lookup in a temp root. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../box/box.h"
#include "../../box/log.h"
#include "../../box/spec.h"
#include "../../lib/util.h"
#include "tap.h"

static void test_log(void)
{
  char path[] = "/tmp/vmbox-test-log.XXXXXX";
  int fd = mkstemp(path);
  log__append(fd, 'o', "one\ntwo\npart", 12);
  log__append(fd, 'e', "err\n", 4);
  char *buf = NULL;
  size_t len = 0, used = 0;
  util__read_file(path, &buf, &len, NULL);
  struct log_record *r = NULL;
  size_t n = log__parse(buf, len, &r, &used);
  TAP_OK(n == 4, "log: one record per line, partial line last (%zu)", n);
  TAP_OK(n == 4 && r[1].stream == 'o' && r[1].len == 4 && memcmp(r[1].data, "two\n", 4) == 0,
         "log: record data and stream");
  TAP_OK(n == 4 && r[3].stream == 'e' && used == len, "log: stderr record, all consumed");
  free(r);
  /* A record cut short (a writer mid-append) is left for the next read. */
  n = log__parse(buf, len - 2, &r, &used);
  TAP_OK(n == 3 && used < len - 2, "log: a torn record is not returned");
  free(r);
  free(buf);
  close(fd);
  unlink(path);
}

static void test_spec(void)
{
  char *img_env[] = {"PATH=/bin", "A=image", NULL};
  char *img_ep[] = {"/bin/sh", "-c", NULL};
  char *img_cmd[] = {"echo hi", NULL};
  struct image_config ic = {
      .env = img_env, .entrypoint = img_ep, .cmd = img_cmd, .working_dir = "/w", .user = "7:8"};
  char *flag_env[] = {"A=flag", "B=2", NULL};
  struct box_flags f = {.env = flag_env};
  struct box_spec_owned o;
  vmbox_error_t err = NULL;
  TAP_OK(box_spec__build(&ic, &f, &o, &err) == 0, "spec: builds");
  TAP_OK(strcmp(o.argv[0], "/bin/sh") == 0 && strcmp(o.argv[2], "echo hi") == 0 && !o.argv[3],
         "spec: Entrypoint + Cmd");
  TAP_OK(strcmp(o.env[1], "A=flag") == 0 && strcmp(o.env[2], "B=2") == 0, "spec: -e overrides Env");
  TAP_OK(o.spec.proc.uid == 7 && o.spec.proc.gid == 8 && strcmp(o.cwd, "/w") == 0,
         "spec: User and WorkingDir");
  box_spec__free(&o);
  char *cmd[] = {"ls", NULL};
  f.cmd = cmd;
  f.entrypoint = "";
  box_spec__build(&ic, &f, &o, &err);
  TAP_OK(strcmp(o.argv[0], "ls") == 0 && !o.argv[1], "spec: --entrypoint '' + CMD");
  box_spec__free(&o);
  f.cmd = NULL;
  TAP_OK(box_spec__build(&ic, &f, &o, &err) < 0 && err->exit_code == 125,
         "spec: no command at all is a 125 error");
  vmbox_error_free(&err);
  f.workdir = "rel";
  TAP_OK(box_spec__build(&ic, &f, &o, &err) < 0, "spec: relative -w refused");
  vmbox_error_free(&err);
}

static void test_boxes(void)
{
  char root[] = "/tmp/vmbox-test-box.XXXXXX";
  mkdtemp(root);
  vmbox_error_t err = NULL;
  struct box_info a, b, c;
  json_t *cfg = json_object();
  TAP_OK(box__create(root, "alpha", cfg, &a, &err) == 0, "box: create named");
  TAP_OK(strlen(a.id) == 64 && strspn(a.id, "0123456789abcdef") == 64, "box: 64 hex id");
  TAP_OK(box__create(root, "alpha", cfg, &b, &err) < 0 && strstr(err->msg, "already in use"),
         "box: names are unique");
  vmbox_error_free(&err);
  TAP_OK(box__create(root, NULL, cfg, &b, &err) == 0 && strchr(b.name, '_'),
         "box: generated name %s", b.name);
  char prefix[8];
  snprintf(prefix, sizeof(prefix), "%.6s", a.id);
  TAP_OK(box__find(root, prefix, &c, &err) == 1 && strcmp(c.name, "alpha") == 0,
         "box: found by id prefix");
  box_info__free(&c);
  TAP_OK(box__find(root, b.name, &c, &err) == 1 && strcmp(c.id, b.id) == 0, "box: found by name");
  box_info__free(&c);
  TAP_OK(box__find(root, "nope", &c, &err) == 0, "box: unknown is not found");
  struct box_info *v;
  size_t n;
  TAP_OK(box__list(root, &v, &n, &err) == 0 && n == 2 && strcmp(v[0].id, a.id) == 0,
         "box: list, oldest first");
  box_info__list_free(v, n);
  TAP_OK(box__remove(root, &a, &err) == 0 && box__find(root, "alpha", &c, &err) == 0,
         "box: removed");
  box_info__free(&a);
  box_info__free(&b);
  json_decref(cfg);
  util__rm_rf(root, NULL);
}

int main(void)
{
  test_log();
  test_spec();
  test_boxes();
  return tap__done();
}
