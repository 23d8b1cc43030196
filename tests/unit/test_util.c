#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/err.h"
#include "../../lib/util.h"
#include "tap.h"

static void test_sizes(void)
{
  uint64_t v = 0;
  vmbox_error_t err = NULL;
  TAP_OK(util__parse_size("512m", &v, &err) == 0 && v == 512ULL << 20, "512m");
  TAP_OK(util__parse_size("2G", &v, &err) == 0 && v == 2ULL << 30, "2G");
  TAP_OK(util__parse_size("1gb", &v, &err) == 0 && v == 1ULL << 30, "1gb");
  TAP_OK(util__parse_size("4096", &v, &err) == 0 && v == 4096, "plain bytes");
  TAP_OK(util__parse_size("12q", &v, &err) < 0 && err && strstr(err->msg, "invalid size 12q"),
         "bad unit is an error");
  vmbox_error_free(&err);
  TAP_OK(util__parse_size("-1m", &v, &err) < 0, "negative is an error");
  vmbox_error_free(&err);
  char buf[32];
  util__human_size(1234567, buf, sizeof(buf));
  TAP_OK(strcmp(buf, "1.23MB") == 0, "human size 1.23MB (%s)", buf);
}

static void test_digest(void)
{
  char *d = util__sha256_digest("", 0);
  TAP_OK(strcmp(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
         "sha256 of empty input");
  TAP_OK(util__digest_hex(d) == d + 7, "valid digest gives its hex");
  free(d);
  TAP_OK(util__digest_hex("sha256:ABC") == NULL, "short/uppercase digest refused");
  TAP_OK(util__digest_hex("sha256:../../../../etc/passwd000000000000000000000000000000000000000") ==
             NULL,
         "path-like digest refused");
  TAP_OK(util__digest_hex("md5:00") == NULL, "other algorithms refused");
}

static void test_errors(void)
{
  vmbox_error_t err = NULL;
  errno = ENOENT;
  TAP_OK(vmbox_error_sys(&err, "open %s", "/x") == -1, "error set returns -1");
  vmbox_error_set(&err, 0, "second");
  vmbox_error_wrap(&err, "pull %s", "alpine");
  vmbox_error_hint(&err, "do this");
  char *s = vmbox_error_string(err);
  TAP_OK(strcmp(s, "pull alpine: open /x: No such file or directory") == 0,
         "innermost error kept, context prefixed (%s)", s);
  TAP_OK(err->exit_code == EXIT_VMBOX_FAILED && strcmp(err->hint, "do this") == 0,
         "default exit code 125 and hint");
  free(s);
  vmbox_error_free(&err);
  TAP_OK(err == NULL, "free clears");
}

static void test_files(void)
{
  char dir[] = "/tmp/vmbox-unit-XXXXXX";
  TAP_OK(mkdtemp(dir) != NULL, "tempdir");
  char *p = util__fmt("%s/a/b/c", dir);
  vmbox_error_t err = NULL;
  TAP_OK(util__mkdir_p(p, 0755, &err) == 0 && access(p, F_OK) == 0, "mkdir -p");
  char *f = util__fmt("%s/file", p);
  TAP_OK(util__write_file_atomic(f, "hello", 5, 0644, &err) == 0, "atomic write");
  char *buf = NULL;
  size_t n = 0;
  TAP_OK(util__read_file(f, &buf, &n, &err) == 0 && n == 5 && strcmp(buf, "hello") == 0,
         "read back");
  free(buf);
  TAP_OK(util__rm_rf(dir, &err) == 0 && access(dir, F_OK) < 0, "rm -rf");
  TAP_OK(util__read_file(f, &buf, &n, &err) < 0 && err->errno_ == ENOENT, "missing file errors");
  vmbox_error_free(&err);
  free(p);
  free(f);
}

int main(void)
{
  test_sizes();
  test_digest();
  test_errors();
  test_files();
  return tap__done();
}
