/* Boxes on disk: ids, names, config.json/state.json, lookup and removal. */
#include "box.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../backends/backend.h"
#include "../lib/util.h"

void box_info__free(struct box_info *b)
{
  if (b == NULL)
    return;
  free(b->id);
  free(b->name);
  free(b->dir);
  json_decref(b->config);
  free(b->state.reason);
  memset(b, 0, sizeof(*b));
}

void box_info__list_free(struct box_info *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    box_info__free(&v[i]);
  free(v);
}

const char *box__status_name(enum box_status s)
{
  switch (s) {
  case BOX_STATUS_CREATED: return "created";
  case BOX_STATUS_RUNNING: return "running";
  default: return "exited";
  }
}

char *box__path(const struct box_info *b, const char *file)
{
  return util__fmt("%s/%s", b->dir, file);
}

static char *boxes_dir(const char *root)
{
  return util__fmt("%s/boxes", root);
}

/* ---- ids and names ---------------------------------------------------------- */

static void new_id(char out[BOX_ID_LEN + 1])
{
  unsigned char r[BOX_ID_LEN / 2];
  if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
    /* getrandom cannot fail for 32 bytes once the pool is up; be safe anyway. */
    for (size_t i = 0; i < sizeof(r); i++)
      r[i] = (unsigned char)(rand() ^ getpid() ^ (int)util__now_ns());
  }
  for (size_t i = 0; i < sizeof(r); i++)
    sprintf(out + 2 * i, "%02x", r[i]);
  /* Docker avoids all-digit short ids: they read like numbers. */
  if (strspn(out, "0123456789") >= 12)
    out[0] = 'a';
}

static char *auto_name(void)
{
  static const char *const adj[] = {"brave",  "calm",   "eager",    "fervent", "gifted",
                                    "happy",  "jolly",  "keen",     "lucid",   "modest",
                                    "nifty",  "quirky", "relaxed",  "serene",  "tender",
                                    "upbeat", "vivid",  "wizardly", "zealous", "bold"};
  static const char *const who[] = {"turing",   "hopper",  "lovelace", "ritchie",  "thompson",
                                    "torvalds", "knuth",   "dijkstra", "hamilton", "liskov",
                                    "lamport",  "shannon", "curie",    "noether",  "babbage",
                                    "euler",    "gauss",   "kepler",   "newton",   "pascal"};
  unsigned r[2];
  if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
    r[0] = (unsigned)util__now_ns(), r[1] = (unsigned)getpid();
  return util__fmt("%s_%s", adj[r[0] % ARRAY_SIZE(adj)], who[r[1] % ARRAY_SIZE(who)]);
}

static bool valid_name(const char *n)
{
  static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
  size_t len = strlen(n);
  return len >= 1 && len <= 128 && strchr(ok, n[0]) && n[0] != '_' && n[0] != '.' && n[0] != '-' &&
         strspn(n, ok) == len;
}

/* ---- reading ------------------------------------------------------------------ */

static int state_from_json(json_t *j, struct box_state *s)
{
  const char *st = json_string_value(json_object_get(j, "status"));
  s->status = st && strcmp(st, "running") == 0  ? BOX_STATUS_RUNNING
              : st && strcmp(st, "exited") == 0 ? BOX_STATUS_EXITED
                                                : BOX_STATUS_CREATED;
  s->monitor_pid = (pid_t)json_integer_value(json_object_get(j, "monitor_pid"));
  s->monitor_start = (uint64_t)json_integer_value(json_object_get(j, "monitor_start"));
  s->exit_code = (int)json_integer_value(json_object_get(j, "exit_code"));
  s->oom = json_is_true(json_object_get(j, "oom"));
  s->timed_out = json_is_true(json_object_get(j, "timed_out"));
  s->started = json_integer_value(json_object_get(j, "started"));
  s->finished = json_integer_value(json_object_get(j, "finished"));
  const char *r = json_string_value(json_object_get(j, "reason"));
  free(s->reason);
  s->reason = r ? xstrdup(r) : NULL;
  return 0;
}

static int read_json(const char *path, json_t **out, vmbox_error_t *err)
{
  json_error_t je;
  *out = json_load_file(path, 0, &je);
  if (*out == NULL)
    return vmbox_error_set(err, 0, "read %s: %s", path, je.text);
  return 0;
}

int box__reload(struct box_info *b, vmbox_error_t *err)
{
  cleanup_free char *p = box__path(b, "state.json");
  json_t *j;
  if (read_json(p, &j, err) < 0)
    return -1;
  state_from_json(j, &b->state);
  json_decref(j);
  return 0;
}

/* A box whose config.json or state.json a crash left empty or half
 * written (--rm boxes write them without fsync): dead, with the reason, so
 * that ps shows it and rm removes it. */
static void load_damaged(struct box_info *b, vmbox_error_t *why)
{
  if (b->config == NULL)
    b->config = json_object();
  free(b->state.reason);
  memset(&b->state, 0, sizeof(b->state));
  b->state.status = BOX_STATUS_EXITED;
  b->state.exit_code = 137;
  cleanup_free char *msg = vmbox_error_string(*why);
  b->state.reason = util__fmt("box files damaged: %s", msg);
  vmbox_error_free(why);
}

static int load(const char *root, const char *id, struct box_info *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  out->id = xstrdup(id);
  out->dir = util__fmt("%s/boxes/%s", root, id);
  cleanup_free char *cfg = box__path(out, "config.json");
  vmbox_error_t why = NULL;
  if (read_json(cfg, &out->config, &why) < 0 || box__reload(out, &why) < 0) {
    /* No config.json: not a box, or one being removed (that goes first). */
    if (access(cfg, F_OK) < 0) {
      vmbox_error_free(&why);
      box_info__free(out);
      return vmbox_error_set(err, ENOENT, "box %.12s was removed", id);
    }
    load_damaged(out, &why);
  }
  const char *n = json_string_value(json_object_get(out->config, "name"));
  out->name = xstrdup(n ? n : "");
  return 0;
}

static bool is_id(const char *s)
{
  return strlen(s) == BOX_ID_LEN && strspn(s, "0123456789abcdef") == BOX_ID_LEN;
}

/* Ids of every box with a config.json (a box half-created by a dying
 * vmbox run has none and is not a box). */
static int list_ids(const char *root, char ***out, vmbox_error_t *err)
{
  cleanup_free char *dir = boxes_dir(root);
  *out = NULL;
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? 0 : vmbox_error_sys(err, "open %s", dir);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_id(e->d_name))
      continue;
    cleanup_free char *cfg = util__fmt("%s/%s/config.json", dir, e->d_name);
    if (access(cfg, F_OK) == 0)
      strv_push(out, e->d_name);
  }
  closedir(d);
  return 0;
}

/* ---- state ---------------------------------------------------------------------- */

static json_t *state_to_json(const struct box_state *s)
{
  json_t *j = json_pack("{s:s, s:I, s:I, s:i, s:b, s:b, s:I, s:I}", "status",
                        box__status_name(s->status), "monitor_pid", (json_int_t)s->monitor_pid,
                        "monitor_start", (json_int_t)s->monitor_start, "exit_code", s->exit_code,
                        "oom", s->oom, "timed_out", s->timed_out, "started", (json_int_t)s->started,
                        "finished", (json_int_t)s->finished);
  json_object_set_new(j, "reason", s->reason ? json_string(s->reason) : json_null());
  return j;
}

static int write_json(const char *path, json_t *j, vmbox_error_t *err)
{
  cleanup_free char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  return util__write_file_atomic(path, s, strlen(s), 0600, err);
}

/* A --rm box does not outlive its run, so its files need not survive a host
 * crash: no fsyncs (4 at create, the largest cost of a short run on a busy
 * disk).  A crash may leave them empty; load() shows such a box as dead. */
static bool durable(const struct box_info *b)
{
  return !json_is_true(json_object_get(b->config, "auto_remove"));
}

static int write_box_json(const struct box_info *b, const char *path, json_t *j, vmbox_error_t *err)
{
  if (durable(b))
    return write_json(path, j, err);
  cleanup_free char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  return util__write_file_replace(path, s, strlen(s), 0600, err);
}

int box__state_write(const struct box_info *b, vmbox_error_t *err)
{
  cleanup_free char *lp = box__path(b, "lock");
  cleanup_close int lock = util__lock_file(lp, true, err);
  if (lock < 0)
    return -1;
  cleanup_free char *p = box__path(b, "state.json");
  json_t *j = state_to_json(&b->state);
  int r;
  if (b->state.monitor_pid == 0) {
    r = write_box_json(b, p, j, err); /* at create: durable before config.json */
  } else {
    /* A monitor's updates (3 per run) replace that file without fsyncs:
     * after a host crash the monitor is dead, and box__refresh marks the
     * box exited whatever the file says. */
    cleanup_free char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    r = util__write_file_replace(p, text, strlen(text), 0600, err);
  }
  json_decref(j);
  return r;
}

uint64_t box__proc_start(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  cleanup_free char *buf = NULL;
  if (pid <= 0 || util__read_file(path, &buf, NULL, NULL) < 0)
    return 0;
  /* comm may hold spaces and parens: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return 0;
  p += 2;
  /* A zombie is dead for us: its box died with it (PDEATHSIG). */
  if (*p == 'Z' || *p == 'X')
    return 0;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p)
      p++;
  }
  return p ? strtoull(p, NULL, 10) : 0;
}

bool box__monitor_alive(const struct box_state *s)
{
  return s->monitor_pid > 0 && box__proc_start(s->monitor_pid) == s->monitor_start;
}

int box__refresh(struct box_info *b, vmbox_error_t *err)
{
  if (b->state.status == BOX_STATUS_EXITED || b->state.monitor_pid == 0 ||
      box__monitor_alive(&b->state))
    return 0;
  cleanup_free char *lp = box__path(b, "lock");
  cleanup_close int lock = util__lock_file(lp, true, err);
  if (lock < 0)
    return -1;
  /* The monitor may have written its last state just before it exited. */
  if (box__reload(b, err) < 0)
    return -1;
  if (b->state.status == BOX_STATUS_EXITED || box__monitor_alive(&b->state))
    return 0;
  const char *bn = json_string_value(json_object_get(b->config, "backend"));
  const struct backend_ops *ops;
  if (bn && backend__lookup(bn, &ops, NULL) == 0)
    ops->cleanup(b->id, b->dir, NULL); /* best effort: the box is gone either way */
  b->state.status = BOX_STATUS_EXITED;
  b->state.exit_code = 137;
  b->state.finished = time(NULL);
  free(b->state.reason);
  b->state.reason = xstrdup("monitor died");
  cleanup_free char *p = box__path(b, "state.json");
  json_t *j = state_to_json(&b->state);
  int r = write_json(p, j, err);
  json_decref(j);
  return r;
}

/* ---- create, find, list, remove ---------------------------------------------- */

static int name_taken(const char *root, const char *name, char **owner, vmbox_error_t *err)
{
  cleanup_strv char **ids = NULL;
  if (list_ids(root, &ids, err) < 0)
    return -1;
  for (size_t i = 0; ids && ids[i]; i++) {
    struct box_info b;
    if (load(root, ids[i], &b, NULL) < 0)
      continue;
    bool same = strcmp(b.name, name) == 0;
    if (same)
      *owner = xstrdup(b.id);
    box_info__free(&b);
    if (same)
      return 1;
  }
  return 0;
}

static int claim_name(const char *root, const char *name, char **out, vmbox_error_t *err)
{
  cleanup_free char *owner = NULL;
  if (name) {
    if (!valid_name(name))
      return vmbox_error_set(err, 0,
                             "invalid box name \"%s\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                             "allowed",
                             name);
    int r = name_taken(root, name, &owner, err);
    if (r < 0)
      return -1;
    if (r > 0) {
      vmbox_error_set(err, 0, "the name \"%s\" is already in use by box %.12s", name, owner);
      return vmbox_error_hint(err, "remove that box (vmbox rm %s) or pick another --name", name);
    }
    *out = xstrdup(name);
    return 0;
  }
  for (int tries = 0;; tries++) {
    char *n = auto_name();
    if (tries >= 20) { /* crowded: add a number as docker does */
      char *m = util__fmt("%s%d", n, tries);
      free(n);
      n = m;
    }
    int r = name_taken(root, n, &owner, err);
    if (r == 0) {
      *out = n;
      return 0;
    }
    free(n);
    free(steal_pointer(&owner));
    if (r < 0)
      return -1;
  }
}

static int create_locked(const char *root, const char *name, json_t *config, struct box_info *out,
                         vmbox_error_t *err)
{
  cleanup_free char *nm = NULL;
  if (claim_name(root, name, &nm, err) < 0)
    return -1;
  char id[BOX_ID_LEN + 1];
  new_id(id);
  memset(out, 0, sizeof(*out));
  out->id = xstrdup(id);
  out->name = xstrdup(nm);
  out->dir = util__fmt("%s/boxes/%s", root, id);
  json_object_set_new(config, "id", json_string(id));
  json_object_set_new(config, "name", json_string(nm));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  json_object_set_new(config, "created", json_integer((json_int_t)ts.tv_sec));
  /* ps orders by this: boxes made in the same second still sort by age. */
  json_object_set_new(config, "created_ns",
                      json_integer((json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec));
  out->config = json_incref(config);
  cleanup_free char *cfg = box__path(out, "config.json");
  /* state.json first: a config.json is what makes the dir a box. */
  if (util__mkdir_p(out->dir, 0700, err) < 0 || box__state_write(out, err) < 0 ||
      write_box_json(out, cfg, config, err) < 0) {
    util__rm_rf(out->dir, NULL);
    box_info__free(out);
    return -1;
  }
  return 0;
}

int box__create(const char *root, const char *name, json_t *config, struct box_info *out,
                vmbox_error_t *err)
{
  cleanup_free char *dir = boxes_dir(root);
  cleanup_free char *lp = util__fmt("%s/boxes.lock", root);
  if (util__mkdir_p(dir, 0700, err) < 0)
    return -1;
  cleanup_close int lock = util__lock_file(lp, true, err);
  if (lock < 0)
    return -1;
  return create_locked(root, name, config, out, err);
}

static int match(const char *root, const char *key, char **id, vmbox_error_t *err)
{
  cleanup_strv char **ids = NULL;
  if (list_ids(root, &ids, err) < 0)
    return -1;
  size_t klen = strlen(key), hits = 0;
  for (size_t i = 0; ids && ids[i]; i++) /* exact id, then name, then prefix */
    if (strcmp(ids[i], key) == 0) {
      *id = xstrdup(key);
      return 1;
    }
  for (size_t i = 0; ids && ids[i]; i++) {
    struct box_info b;
    if (load(root, ids[i], &b, NULL) < 0)
      continue;
    bool same = strcmp(b.name, key) == 0;
    box_info__free(&b);
    if (same) {
      *id = xstrdup(ids[i]);
      return 1;
    }
  }
  for (size_t i = 0; klen && ids && ids[i]; i++)
    if (strncmp(ids[i], key, klen) == 0 && hits++ == 0)
      *id = xstrdup(ids[i]);
  if (hits > 1) {
    free(steal_pointer(id));
    return vmbox_error_set(err, 0, "multiple boxes match id prefix %s; give more characters", key);
  }
  return hits == 1;
}

int box__find(const char *root, const char *key, struct box_info *out, vmbox_error_t *err)
{
  cleanup_free char *id = NULL;
  int r = match(root, key, &id, err);
  if (r <= 0)
    return r;
  if (load(root, id, out, err) < 0)
    return -1;
  if (box__refresh(out, err) < 0) {
    box_info__free(out);
    return -1;
  }
  return 1;
}

int box__get(const char *root, const char *key, struct box_info *out, vmbox_error_t *err)
{
  int r = box__find(root, key, out, err);
  if (r == 0) {
    vmbox_error_set(err, 0, "No such box: %s", key);
    return vmbox_error_hint(err, "see the boxes with: vmbox ps -a");
  }
  return r < 0 ? -1 : 0;
}

static int by_created(const void *a, const void *b)
{
  const struct box_info *x = a, *y = b;
  json_int_t cx = json_integer_value(json_object_get(x->config, "created_ns"));
  json_int_t cy = json_integer_value(json_object_get(y->config, "created_ns"));
  return cx != cy ? (cx < cy ? -1 : 1) : strcmp(x->id, y->id);
}

int box__list(const char *root, struct box_info **out, size_t *n, vmbox_error_t *err)
{
  cleanup_strv char **ids = NULL;
  *out = NULL;
  *n = 0;
  if (list_ids(root, &ids, err) < 0)
    return -1;
  size_t cap = strv_len(ids);
  struct box_info *v = xcalloc(cap ? cap : 1, sizeof(*v));
  size_t k = 0;
  for (size_t i = 0; i < cap; i++) {
    /* A box removed while we list is not an error. */
    if (load(root, ids[i], &v[k], NULL) < 0)
      continue;
    if (box__refresh(&v[k], err) < 0) {
      box_info__list_free(v, k + 1);
      return -1;
    }
    k++;
  }
  qsort(v, k, sizeof(*v), by_created);
  *out = v;
  *n = k;
  return 0;
}

int box__remove(const char *root, const struct box_info *b, vmbox_error_t *err)
{
  cleanup_free char *lp = util__fmt("%s/boxes.lock", root);
  cleanup_close int lock = util__lock_file(lp, true, err);
  if (lock < 0)
    return -1;
  /* config.json first: from then on no lookup sees a half-removed box. */
  cleanup_free char *cfg = box__path(b, "config.json");
  if (unlink(cfg) < 0 && errno != ENOENT)
    return vmbox_error_sys(err, "remove box %.12s: %s", b->id, cfg);
  return util__rm_rf(b->dir, err);
}

/* Trash older than this was left by a monitor that died while emptying it. */
enum { TRASH_STALE_SEC = 600 };

static void trash_sweep(const char *trash_dir)
{
  DIR *d = opendir(trash_dir);
  struct dirent *e;
  time_t now = time(NULL);
  while (d && (e = readdir(d)) != NULL) {
    struct stat st;
    if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        now - st.st_mtime < TRASH_STALE_SEC)
      continue;
    cleanup_free char *p = util__fmt("%s/%s", trash_dir, e->d_name);
    util__rm_rf(p, NULL);
  }
  if (d)
    closedir(d);
}

int box__remove_begin(const char *root, const struct box_info *b, char **trash, vmbox_error_t *err)
{
  *trash = NULL;
  cleanup_free char *lp = util__fmt("%s/boxes.lock", root);
  cleanup_close int lock = util__lock_file(lp, true, err);
  if (lock < 0)
    return -1;
  cleanup_free char *cfg = box__path(b, "config.json");
  if (unlink(cfg) < 0 && errno != ENOENT)
    return vmbox_error_sys(err, "remove box %.12s: %s", b->id, cfg);
  cleanup_free char *dir = util__fmt("%s/trash", root);
  cleanup_free char *to = util__fmt("%s/%s", dir, b->id);
  if (util__mkdir_p(dir, 0700, NULL) == 0 && rename(b->dir, to) == 0) {
    trash_sweep(dir);
    *trash = steal_pointer(&to);
    return 0;
  }
  return util__rm_rf(b->dir, err); /* no trash (another file system?): the slow way */
}

/* ---- JSON -------------------------------------------------------------------- */

const char *box__rfc3339(int64_t t)
{
  static __thread char buf[32];
  time_t tt = (time_t)t;
  struct tm tm;
  if (t == 0 || gmtime_r(&tt, &tm) == NULL)
    return "";
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

char *box__command(const struct box_info *b)
{
  json_t *argv = json_object_get(json_object_get(b->config, "spec"), "argv");
  char *out = xstrdup("");
  size_t i;
  json_t *v;
  json_array_foreach(argv, i, v)
  {
    char *n = util__fmt("%s%s%s", out, i ? " " : "", json_string_value(v));
    free(out);
    out = n;
  }
  return out;
}

json_t *box__to_json(const struct box_info *b)
{
  const struct box_state *s = &b->state;
  json_t *c = b->config;
  json_t *state =
      json_pack("{s:s, s:b, s:I, s:i, s:b, s:b, s:s, s:s}", "status", box__status_name(s->status),
                "running", s->status == BOX_STATUS_RUNNING, "monitor_pid",
                (json_int_t)(s->status == BOX_STATUS_RUNNING ? s->monitor_pid : 0), "exit_code",
                s->exit_code, "oom_killed", s->oom, "timed_out", s->timed_out, "started_at",
                box__rfc3339(s->started), "finished_at", box__rfc3339(s->finished));
  json_object_set_new(state, "reason", s->reason ? json_string(s->reason) : json_null());
  cleanup_free char *cmd = box__command(b);
  return json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:s, s:s, s:O?, s:o, s:O?}", "id", b->id, "name",
                   b->name, "image", json_object_get(c, "image"), "image_id",
                   json_object_get(c, "image_id"), "backend", json_object_get(c, "backend"),
                   "created", box__rfc3339(json_integer_value(json_object_get(c, "created"))),
                   "command", cmd, "auto_remove", json_object_get(c, "auto_remove"), "state", state,
                   "config", json_object_get(c, "spec"));
}
