/* Unit tests for the content store (image/store.c, image/index.c): blobs,
 * resumable writers, the image index, prune, crash sweeping, concurrency. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../image/lookup.h"
#include "../../image/store.h"
#include "../../lib/util.h"

static int n_test, n_fail;
static char root[256];

static void ok(bool cond, const char *name)
{
  n_test++;
  printf("%s %d - %s\n", cond ? "ok" : "not ok", n_test, name);
  if (!cond)
    n_fail++;
}

static bool err_has(vmbox_error_t *e, const char *s)
{
  bool r = *e && strstr((*e)->msg, s) != NULL;
  if (*e && !r)
    fprintf(stderr, "# error was: %s\n", (*e)->msg);
  vmbox_error_free(e);
  return r;
}

static struct store *open_store(void)
{
  struct store *s = NULL;
  vmbox_error_t e = NULL;
  if (store__open(root, &s, &e) < 0) {
    fprintf(stderr, "Bail out! store__open: %s\n", e->msg);
    exit(1);
  }
  return s;
}

static int count_dir(const char *sub)
{
  cleanup_free char *cmd = util__fmt("ls -A %s/%s | wc -l", root, sub);
  FILE *p = popen(cmd, "r");
  int n = -1;
  if (fscanf(p, "%d", &n) != 1)
    n = -1;
  pclose(p);
  return n;
}

static void test_blobs(struct store *s)
{
  vmbox_error_t e = NULL;
  cleanup_free char *d = NULL;
  ok(store__put_blob(s, "hello", 5, &d, &e) == 0 &&
         strcmp(d, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824") == 0,
     "put_blob returns the sha256 digest");
  ok(store__has_blob(s, d), "has_blob after put");
  cleanup_free char *buf = NULL;
  size_t len = 0;
  ok(store__read_blob(s, d, &buf, &len, &e) == 0 && len == 5 && memcmp(buf, "hello", 5) == 0,
     "read_blob returns the bytes");
  ok(store__put_blob(s, "hello", 5, NULL, &e) == 0, "put_blob of an existing blob succeeds");
  ok(store__read_blob(s, "sha256:zz", &buf, &len, &e) < 0 && err_has(&e, "invalid digest"),
     "read_blob rejects a malformed digest");
  ok(store__blob_path(s, "../../etc/passwd") == NULL, "blob_path refuses non-digests");
}

static void test_writer(struct store *s)
{
  vmbox_error_t e = NULL;
  const char *want = "sha256:936a185caaa266bb9cbe981e9e05cb78cd732b0b3280eb944412bb6f8f8f07af";
  struct blob_writer *w;
  ok(store__blob_begin(s, want, &w, &e) == 0 && blob_writer__offset(w) == 0, "writer begins at 0");
  blob_writer__write(w, "hello", 5, &e);
  blob_writer__abort(w, true);
  cleanup_free char *partial = util__fmt("%s/tmp/%s.partial", root, want + 7);
  ok(access(partial, F_OK) == 0, "abort(keep) leaves the partial");
  ok(store__blob_begin(s, want, &w, &e) == 0 && blob_writer__offset(w) == 5,
     "a new writer resumes at the partial's size");
  cleanup_free char *d = NULL;
  ok(blob_writer__write(w, "world", 5, &e) == 0 && blob_writer__commit(w, &d, &e) == 0 &&
         strcmp(d, want) == 0 && store__has_blob(s, want),
     "resumed writer commits the right digest");
  ok(access(partial, F_OK) != 0, "commit consumes the partial");

  const char *bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  store__blob_begin(s, bad, &w, &e);
  blob_writer__write(w, "junk", 4, &e);
  ok(blob_writer__commit(w, NULL, &e) < 0 && err_has(&e, "digest mismatch for sha256:0000"),
     "digest mismatch is a clear error");
  ok(!store__has_blob(s, bad) && count_dir("tmp") == 0, "mismatch leaves nothing behind");

  store__blob_begin(s, want, &w, &e);
  blob_writer__write(w, "garbage", 7, &e);
  ok(blob_writer__restart(w, &e) == 0 && blob_writer__offset(w) == 0, "restart rewinds");
  blob_writer__write(w, "helloworld", 10, &e);
  ok(blob_writer__commit(w, NULL, &e) == 0, "commit after restart verifies");

  store__blob_begin(s, NULL, &w, &e);
  blob_writer__write(w, "x", 1, &e);
  blob_writer__abort(w, true);
  ok(count_dir("tmp") == 0, "abort of an unnamed writer removes its temp file");
}

static struct image_record rec(const char *id, const char *name)
{
  static char *names[2];
  names[0] = (char *)name;
  names[1] = NULL;
  return (struct image_record){.id = (char *)id,
                               .names = names,
                               .platform = "linux/amd64",
                               .manifest_digest = (char *)id,
                               .size = 1};
}

#define ID_A "sha256:aaaa1" Z59
#define ID_B "sha256:aaaa2" Z59
#define ID_C "sha256:cccc3" Z59
#define Z59 "00000000000000000000000000000000000000000000000000000000000"

static void test_index(struct store *s)
{
  vmbox_error_t e = NULL;
  struct image_record a = rec(ID_A, "docker.io/library/a:latest");
  ok(store__image_put(s, &a, &e) == 0, "image_put");
  struct image_record b = rec(ID_B, "docker.io/library/b:latest");
  store__image_put(s, &b, &e);
  struct image_record r = {0};
  ok(store__image_get(s, "docker.io/library/a:latest", &r, &e) == 0 && strcmp(r.id, ID_A) == 0,
     "get by name");
  image_record__free(&r);
  ok(store__image_get(s, ID_B, &r, &e) == 0 &&
         strcmp(r.names[0], "docker.io/library/b:latest") == 0,
     "get by full id");
  image_record__free(&r);
  ok(store__image_get(s, "aaaa", &r, &e) < 0 && err_has(&e, "ambiguous"),
     "ambiguous prefix is an error");
  ok(store__image_get(s, ID_A "0", &r, &e) < 0 && err_has(&e, "No such image"),
     "prefix too long is not found");
  ok(store__image_get(s, "aaaa2", &r, &e) == 0 && strcmp(r.id, ID_B) == 0,
     "unique prefix without sha256:");
  image_record__free(&r);
  ok(store__image_get(s, "nope", &r, &e) < 0 && err_has(&e, "No such image: nope"), "not found");

  struct image_record c = rec(ID_C, "docker.io/library/a:latest");
  store__image_put(s, &c, &e);
  ok(store__image_get(s, "sha256:aaaa1", &r, &e) == 0 && r.names[0] == NULL,
     "re-tagging moves the name; old image is dangling");
  image_record__free(&r);
  struct image_record c2 = rec(ID_C, "docker.io/library/c:1");
  store__image_put(s, &c2, &e);
  ok(store__image_get(s, "cccc", &r, &e) == 0 && strv_len(r.names) == 2, "put adds names");
  image_record__free(&r);

  ok(store__image_remove(s, "cccc", false, &e) < 0 && err_has(&e, "must be forced"),
     "rmi by id with several names needs force");
  ok(store__image_remove(s, "docker.io/library/c:1", false, &e) == 0 &&
         store__image_get(s, "cccc", &r, &e) == 0 && strv_len(r.names) == 1,
     "rmi by name untags");
  image_record__free(&r);
  ok(store__image_remove(s, "docker.io/library/a:latest", false, &e) == 0 &&
         store__image_get(s, "cccc", &r, &e) < 0 && err_has(&e, "No such image"),
     "removing the last name deletes the image");
  ok(store__image_remove(s, ID_A, false, &e) == 0, "remove dangling by id");
  ok(store__image_remove(s, "zzz", false, &e) < 0 && err_has(&e, "No such image: zzz"),
     "remove unknown");
  struct image_record *v;
  size_t n;
  ok(store__image_list(s, &v, &n, &e) == 0 && n == 1 && strcmp(v[0].id, ID_B) == 0, "list");
  image_record__list_free(v, n);
  store__image_remove(s, ID_B, true, &e);
}

static void test_corrupt_index(struct store *s)
{
  vmbox_error_t e = NULL;
  cleanup_free char *p = util__fmt("%s/images.json", root);
  cleanup_free char *save = NULL;
  util__read_file(p, &save, NULL, &e);
  util__write_file_atomic(p, "{\"images\": [", 12, 0644, &e);
  struct image_record *v;
  size_t n;
  ok(store__image_list(s, &v, &n, &e) < 0 && e->hint && strstr(e->hint, "mv ") &&
         err_has(&e, "images.json is corrupt"),
     "corrupt index: clear error with a hint");
  util__write_file_atomic(p, save, strlen(save), 0644, &e);
}

static void test_prune(struct store *s)
{
  vmbox_error_t e = NULL;
  cleanup_free char *cfg = NULL, *layer = NULL, *man = NULL, *junk = NULL;
  store__put_blob(s, "{}", 2, &cfg, &e);
  store__put_blob(s, "layer", 5, &layer, &e);
  store__put_blob(s, "junk", 4, &junk, &e);
  cleanup_free char *m = util__fmt(
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
      "\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
      "\"digest\":\"%s\",\"size\":5}]}",
      cfg, layer);
  store__put_blob(s, m, strlen(m), &man, &e);
  cleanup_free char *ext4 = util__fmt("%s/ext4/%s.ext4", root, man + 7);
  cleanup_free char *ext4junk = util__fmt("%s/ext4/%s.ext4", root, junk + 7);
  util__write_file_atomic(ext4, "x", 1, 0644, &e);
  util__write_file_atomic(ext4junk, "x", 1, 0644, &e);
  char *names[] = {"docker.io/library/p:latest", NULL};
  struct image_record r = {.id = cfg, .manifest_digest = man, .names = names};
  store__image_put(s, &r, &e);
  uint64_t bytes = 0;
  size_t nb = 0;
  ok(store__prune(s, &bytes, &nb, &e) == 0, "prune runs");
  ok(nb >= 1 && !store__has_blob(s, junk) && store__has_blob(s, cfg) && store__has_blob(s, layer) &&
         store__has_blob(s, man),
     "prune keeps manifest/config/layers and deletes the rest");
  ok(access(ext4, F_OK) == 0 && access(ext4junk, F_OK) != 0, "prune deletes unused ext4 disks");
  store__image_remove(s, "docker.io/library/p:latest", false, &e);
  store__prune(s, &bytes, &nb, &e);
  ok(count_dir("blobs/sha256") == 0 && count_dir("ext4") == 0, "prune after rmi empties the store");
  ok(e == NULL, "no stray errors");
}

/* A blob written but not yet indexed by another process survives prune. */
static void test_prune_waits_for_writers(struct store *s)
{
  int pfd[2];
  if (pipe(pfd) < 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    struct store *cs = open_store();
    vmbox_error_t e = NULL;
    cleanup_free char *d = NULL;
    store__put_blob(cs, "{\"x\":1}", 7, &d, &e);
    (void)!write(pfd[1], "x", 1);
    usleep(300000);
    char *names[] = {"docker.io/library/w:latest", NULL};
    struct image_record r = {.id = d, .names = names};
    _exit(store__image_put(cs, &r, &e) == 0 ? 0 : 1);
  }
  char c;
  (void)!read(pfd[0], &c, 1);
  vmbox_error_t e = NULL;
  store__prune(s, NULL, NULL, &e);
  int st;
  waitpid(pid, &st, 0);
  ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && count_dir("blobs/sha256") == 1,
     "prune waits for a writer's blobs to be indexed");
  store__image_remove(s, "docker.io/library/w:latest", false, &e);
  store__prune(s, NULL, NULL, &e);
  close(pfd[0]);
  close(pfd[1]);
}

static void test_sweep(void)
{
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  waitpid(pid, NULL, 0);
  const char *files[] = {"tmp/abc.1.tmp.%d", "images.json.tmp.%d", "ext4/x.ext4.tmp.%d"};
  for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
    cleanup_free char *f = util__fmt(files[i], (int)pid);
    cleanup_free char *p = util__fmt("%s/%s", root, f);
    close(open(p, O_CREAT | O_WRONLY, 0644));
  }
  cleanup_free char *live = util__fmt("%s/tmp/live.tmp.%d", root, (int)getpid());
  cleanup_free char *part = util__fmt("%s/tmp/%064d.partial", root, 7);
  close(open(live, O_CREAT | O_WRONLY, 0644));
  close(open(part, O_CREAT | O_WRONLY, 0644));
  struct store *s = open_store();
  ok(count_dir("tmp") == 2 && access(live, F_OK) == 0 && access(part, F_OK) == 0,
     "open sweeps temp files of dead processes, keeps live ones and partials");
  cleanup_free char *ij = util__fmt("ls %s | grep -q json.tmp", root);
  ok(system(ij) != 0 && count_dir("ext4") == 0, "index and ext4 temps swept");
  unlink(live);
  unlink(part);
  store__close(s);
}

static void test_concurrent_puts(void)
{
  enum { N = 50 };
  for (int i = 0; i < N; i++)
    if (fork() == 0) {
      struct store *s = open_store();
      vmbox_error_t e = NULL;
      cleanup_free char *body = util__fmt("{\"n\":%d}", i);
      cleanup_free char *d = NULL;
      cleanup_free char *name = util__fmt("docker.io/library/c%d:latest", i);
      char *names[] = {name, NULL};
      int r = store__put_blob(s, body, strlen(body), &d, &e);
      struct image_record rec = {.id = d, .names = names};
      r = r ?: store__image_put(s, &rec, &e);
      store__close(s);
      _exit(r == 0 ? 0 : 1);
    }
  int fails = 0, st;
  while (wait(&st) > 0)
    fails += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct store *s = open_store();
  vmbox_error_t e = NULL;
  struct image_record *v;
  size_t n = 0;
  ok(fails == 0 && store__image_list(s, &v, &n, &e) == 0 && n == N,
     "50 concurrent processes: every image is in the index");
  image_record__list_free(v, n);
  store__close(s);
}

/* Reading the index must not hold off prune (a long `vmbox run` reads it). */
static void test_readers_do_not_block_prune(void)
{
  struct store *s = open_store();
  vmbox_error_t e = NULL;
  struct image_record *v;
  size_t n;
  store__image_list(s, &v, &n, &e);
  image_record__list_free(v, n);
  struct image_record r = {0};
  store__image_find(s, "x", &r, &e);
  pid_t pid = fork();
  if (pid == 0) {
    struct store *cs = open_store();
    int rc = store__prune_nowait(cs, NULL, NULL, &e);
    store__close(cs);
    _exit(rc == 0 ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "readers do not hold off prune");
  store__close(s);
}

/* The busybox linked into vmbox is imported on first use of its name. */
static void test_builtin(void)
{
  struct store *s = open_store();
  vmbox_error_t e = NULL;
  struct image_record r = {0};
  ok(image__resolve(s, "alpine", &r, &e) == 0 && e == NULL, "resolve: unknown image is not found");
  int got = image__resolve(s, "busybox", &r, &e);
  if (e)
    fprintf(stderr, "# %s\n", e->msg);
  ok(got == 1 && r.names && r.names[0] &&
         strcmp(r.names[0], "docker.io/library/busybox:latest") == 0,
     "resolve: busybox comes from the built-in archive");
  cleanup_free char *disk = image__disk_path(s, &r);
  ok(disk != NULL, "the built-in image is flattened at import");
  struct image_record r2 = {0};
  cleanup_free char *prefix = xstrndup(r.id + 7, 12);
  ok(image__find(s, prefix, &r2, NULL, &e) == 1 && strcmp(r2.id, r.id) == 0,
     "find by 12-hex id prefix");
  image_record__free(&r2);
  cleanup_free char *bydigest = util__fmt("busybox@%s", r.manifest_digest);
  ok(image__find(s, bydigest, &r2, NULL, &e) == 1 && strcmp(r2.id, r.id) == 0,
     "find by repo@manifest-digest");
  image_record__free(&r2);
  ok(image__resolve(s, "docker.io/library/busybox:latest", &r2, &e) == 1 &&
         strcmp(r2.id, r.id) == 0,
     "resolve again finds the stored image");
  image_record__free(&r2);
  image_record__free(&r);
  vmbox_error_free(&e);
  store__close(s);
}

int main(void)
{
  snprintf(root, sizeof(root), "/tmp/vmbox-test-store.%d", (int)getpid());
  struct store *s = open_store();
  struct stat st;
  cleanup_free char *b = util__fmt("%s/blobs/sha256", root);
  cleanup_free char *l = util__fmt("%s/lock", root);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("1..49\n");
  ok(stat(b, &st) == 0 && stat(l, &st) == 0, "open creates the layout");
  test_blobs(s);
  test_writer(s);
  test_index(s);
  test_corrupt_index(s);
  test_prune(s);
  test_prune_waits_for_writers(s);
  store__close(s);
  test_sweep();
  test_concurrent_puts();
  test_readers_do_not_block_prune();
  test_builtin();
  vmbox_error_t e = NULL;
  util__rm_rf(root, &e);
  return n_fail ? 1 : 0;
}
