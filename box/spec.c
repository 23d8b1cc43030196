/* Image config + run flags -> box_spec (see spec.h). */
#include "spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "netspec.h"
#include "passwd.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void box_spec__free(struct box_spec_owned *o)
{
  strv_free(o->argv);
  strv_free(o->env);
  strv_free(o->strings);
  free(o->cwd);
  free(o->user);
  free(o->mounts);
  free(o->tmpfs);
  memset(o, 0, sizeof(*o));
}

void box_spec__env_set(char ***env, const char *kv)
{
  size_t klen = strcspn(kv, "=");
  for (size_t i = 0; *env && (*env)[i]; i++)
    if (strncmp((*env)[i], kv, klen) == 0 && (*env)[i][klen] == '=') {
      free((*env)[i]);
      (*env)[i] = xstrdup(kv);
      return;
    }
  strv_push(env, kv);
}

static bool env_has(char **env, const char *key)
{
  size_t klen = strlen(key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], key, klen) == 0 && env[i][klen] == '=')
      return true;
  return false;
}

static int build_env(const struct image_config *ic, const struct box_flags *f, char ***out,
                     vmbox_error_t *err)
{
  for (size_t i = 0; ic->env && ic->env[i]; i++)
    box_spec__env_set(out, ic->env[i]);
  for (size_t i = 0; f->env && f->env[i]; i++) {
    const char *kv = f->env[i];
    if (kv[0] == '=' || kv[0] == '\0')
      return vmbox_error_set(err, 0, "invalid environment variable \"%s\" (want KEY=VALUE)", kv);
    if (strchr(kv, '=')) {
      box_spec__env_set(out, kv);
      continue;
    }
    /* -e KEY: passed through from our environment when it is set (Docker). */
    const char *v = getenv(kv);
    if (v) {
      cleanup_free char *s = util__fmt("%s=%s", kv, v);
      box_spec__env_set(out, s);
    }
  }
  if (!env_has(*out, "PATH"))
    box_spec__env_set(out, DEFAULT_PATH);
  return 0;
}

static int build_argv(const struct image_config *ic, const struct box_flags *f, char ***out,
                      vmbox_error_t *err)
{
  if (f->entrypoint) {
    if (*f->entrypoint)
      strv_push(out, f->entrypoint);
  } else {
    for (size_t i = 0; ic->entrypoint && ic->entrypoint[i]; i++)
      strv_push(out, ic->entrypoint[i]);
  }
  if (f->cmd && f->cmd[0]) {
    for (size_t i = 0; f->cmd[i]; i++)
      strv_push(out, f->cmd[i]);
  } else if (!f->entrypoint) { /* --entrypoint drops the image's Cmd, as in Docker */
    for (size_t i = 0; ic->cmd && ic->cmd[i]; i++)
      strv_push(out, ic->cmd[i]);
  }
  if (*out == NULL || (*out)[0] == NULL || (*out)[0][0] == '\0') {
    vmbox_error_set(err, 0, "no command specified: the image has no Entrypoint or Cmd");
    return vmbox_error_hint(err, "give one after the image: vmbox run IMAGE COMMAND [ARG...]");
  }
  return 0;
}

int box_spec__parse_user(const char *disk, const char *user, uid_t *uid, gid_t *gid,
                         vmbox_error_t *err)
{
  return passwd__resolve(disk, user, uid, gid, err);
}

static int add_volume(struct box_spec_owned *o, const char *v, vmbox_error_t *err)
{
  cleanup_free char *s = xstrdup(v);
  char *guest = strchr(s, ':');
  char *mode = guest ? strchr(guest + 1, ':') : NULL;
  if (guest)
    *guest++ = '\0';
  if (mode)
    *mode++ = '\0';
  if (!guest || s[0] != '/' || guest[0] != '/' ||
      (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)) {
    vmbox_error_set(err, 0, "invalid volume \"%s\"", v);
    return vmbox_error_hint(err, "use -v /host/path:/path/in/box[:ro] (absolute paths)");
  }
  if (util__mkdir_p(s, 0755, err) < 0) /* Docker creates a missing host dir */
    return vmbox_error_wrap(err, "volume %s", v);
  size_t n = o->spec.n_mounts;
  o->mounts = xrealloc(o->mounts, (n + 1) * sizeof(*o->mounts));
  strv_push(&o->strings, s);
  strv_push(&o->strings, guest);
  size_t k = strv_len(o->strings);
  o->mounts[n] =
      (struct box_mount){o->strings[k - 2], o->strings[k - 1], mode && strcmp(mode, "ro") == 0};
  o->spec.n_mounts = n + 1;
  return 0;
}

static int add_tmpfs(struct box_spec_owned *o, const char *v, vmbox_error_t *err)
{
  cleanup_free char *s = xstrdup(v);
  char *opts = strchr(s, ':');
  if (opts)
    *opts++ = '\0';
  if (s[0] != '/')
    return vmbox_error_set(err, 0, "invalid --tmpfs \"%s\": the path must be absolute", v);
  size_t n = o->spec.n_tmpfs;
  o->tmpfs = xrealloc(o->tmpfs, (n + 1) * sizeof(*o->tmpfs));
  strv_push(&o->strings, s);
  const char *target = o->strings[strv_len(o->strings) - 1];
  const char *options = NULL;
  if (opts) {
    strv_push(&o->strings, opts);
    options = o->strings[strv_len(o->strings) - 1];
  }
  o->tmpfs[n] = (struct box_tmpfs){target, options};
  o->spec.n_tmpfs = n + 1;
  return 0;
}

static int build_fs(const struct box_flags *f, struct box_spec_owned *o, vmbox_error_t *err)
{
  for (size_t i = 0; f->volumes && f->volumes[i]; i++)
    if (add_volume(o, f->volumes[i], err) < 0)
      return -1;
  for (size_t i = 0; f->tmpfs && f->tmpfs[i]; i++)
    if (add_tmpfs(o, f->tmpfs[i], err) < 0)
      return -1;
  /* strings may have moved while growing: point into the final vector. */
  size_t k = 0;
  for (size_t i = 0; i < o->spec.n_mounts; i++, k += 2)
    o->mounts[i].source = o->strings[k], o->mounts[i].target = o->strings[k + 1];
  for (size_t i = 0; i < o->spec.n_tmpfs; i++) {
    o->tmpfs[i].target = o->strings[k++];
    if (o->tmpfs[i].options)
      o->tmpfs[i].options = o->strings[k++];
  }
  o->spec.mounts = o->mounts;
  o->spec.tmpfs = o->tmpfs;
  return 0;
}

static int build_proc(const struct image_config *ic, const struct box_flags *f,
                      struct box_spec_owned *o, vmbox_error_t *err)
{
  const char *wd = f->workdir ? f->workdir : ic->working_dir;
  if (wd && *wd && wd[0] != '/')
    return vmbox_error_set(err, 0, "the working directory \"%s\" is not an absolute path", wd);
  o->cwd = xstrdup(wd && *wd ? wd : "/");
  const char *user = f->user ? f->user : ic->user;
  o->user = xstrdup(user && *user ? user : "root");
  struct box_process *p = &o->spec.proc;
  /* No user asked for: root, 0:0 as in Docker; the image's /etc/passwd need
   * not be opened with libext2fs on every run. */
  bool default_user = !(user && *user);
  if ((!default_user && box_spec__parse_user(f->disk, o->user, &p->uid, &p->gid, err) < 0) ||
      build_env(ic, f, &o->env, err) < 0 || build_argv(ic, f, &o->argv, err) < 0)
    return -1;
  if (!env_has(o->env, "HOME"))
    box_spec__env_set(&o->env, p->uid == 0 ? "HOME=/root" : "HOME=/");
  p->argv = o->argv;
  p->env = o->env;
  p->cwd = o->cwd;
  p->stdio = (struct box_stdio){-1, -1, -1};
  return 0;
}

int box_spec__build(const struct image_config *ic, const struct box_flags *f,
                    struct box_spec_owned *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  if (build_proc(ic, f, out, err) < 0 || build_fs(f, out, err) < 0) {
    box_spec__free(out);
    return -1;
  }
  out->spec.hostname = f->hostname;
  out->spec.read_only = f->read_only;
  out->spec.limits = f->limits;
  out->spec.timeout_sec = f->timeout;
  if (f->net && netspec__parse(f->net, &out->spec.net, &out->strings, err) < 0) {
    box_spec__free(out);
    return -1;
  }
  return 0;
}

static json_t *strv_json(char *const *v)
{
  json_t *a = json_array();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

json_t *box_spec__to_json(const struct box_spec_owned *o)
{
  const struct box_spec *s = &o->spec;
  json_t *mounts = json_array(), *tmpfs = json_array();
  for (size_t i = 0; i < s->n_mounts; i++)
    json_array_append_new(mounts,
                          json_pack("{s:s, s:s, s:b}", "source", s->mounts[i].source, "target",
                                    s->mounts[i].target, "read_only", s->mounts[i].read_only));
  for (size_t i = 0; i < s->n_tmpfs; i++)
    json_array_append_new(tmpfs, json_pack("{s:s, s:s?}", "target", s->tmpfs[i].target, "options",
                                           s->tmpfs[i].options));
  json_t *j =
      json_pack("{s:o, s:o, s:s, s:s, s:I, s:I, s:s?, s:o, s:o, s:b, s:{s:I, s:I, s:I}, "
                "s:I, s:s}",
                "argv", strv_json(o->argv), "env", strv_json(o->env), "cwd", o->cwd, "user",
                o->user, "uid", (json_int_t)s->proc.uid, "gid", (json_int_t)s->proc.gid, "hostname",
                s->hostname, "mounts", mounts, "tmpfs", tmpfs, "read_only", s->read_only, "limits",
                "memory", (json_int_t)s->limits.memory, "cpu_millis",
                (json_int_t)s->limits.cpu_millis, "pids", (json_int_t)s->limits.pids, "timeout",
                (json_int_t)s->timeout_sec, "network", netspec__mode_name(s->net.mode));
  json_t *net = netspec__to_json(&s->net);
  if (net)
    json_object_set_new(j, "net", net);
  return j;
}

int box_spec__read_env_file(const char *path, char ***env, vmbox_error_t *err)
{
  cleanup_free char *buf = NULL;
  if (util__read_file(path, &buf, NULL, err) < 0)
    return vmbox_error_wrap(err, "--env-file");
  for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    line[strcspn(line, "\r")] = '\0';
    char *s = line + strspn(line, " \t");
    if (*s == '\0' || *s == '#')
      continue;
    strv_push(env, s);
  }
  return 0;
}
