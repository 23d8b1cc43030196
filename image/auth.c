/* Registry authentication: answering WWW-Authenticate challenges (Bearer
 * tokens per the distribution token spec, Basic), the credential files
 * (vmbox's own auth.json, then Docker's config.json), and login/logout. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "registry_int.h"

#define HUB "docker.io"

/* ---- challenges and tokens ---------------------------------------------- */

/* Value of key in `Bearer realm="...",service="...",scope="..."`, or NULL. */
static char *challenge_param(const char *c, const char *key)
{
  const char *p = c + strcspn(c, " "); /* skip the scheme */
  size_t klen = strlen(key);
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *eq = strchr(p, '=');
    if (!eq)
      return NULL;
    bool match = (size_t)(eq - p) == klen && !strncasecmp(p, key, klen);
    p = eq + 1;
    char *val = xmalloc(strlen(p) + 1);
    size_t n = 0;
    if (*p == '"') {
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
          p++;
        val[n++] = *p;
      }
      if (*p == '"')
        p++;
    } else {
      while (*p && *p != ',')
        val[n++] = *p++;
    }
    val[n] = '\0';
    if (match)
      return val;
    free(val);
  }
  return NULL;
}

int auth__required_error(struct reg_session *s, vmbox_error_t *err)
{
  s->denied = true;
  if (s->basic)
    vmbox_error_set(err, 0,
                    "authentication failed for %s: the saved credentials were "
                    "refused or lack access to %s",
                    s->registry, s->repository ? s->repository : "the registry");
  else
    vmbox_error_set(err, 0, "authentication required for %s: run `vmbox login %s`", s->registry,
                    s->registry);
  cleanup_free char *path = auth__file_path();
  return vmbox_error_hint(err,
                          "`vmbox login` saves credentials in %s; Docker's "
                          "config.json is read too",
                          path);
}

static char *token_url(const char *challenge, const struct reg_session *s)
{
  cleanup_free char *realm = challenge_param(challenge, "realm");
  cleanup_free char *service = challenge_param(challenge, "service");
  cleanup_free char *scope = challenge_param(challenge, "scope");
  if (!realm || !(util__has_prefix(realm, "https://") || util__has_prefix(realm, "http://")))
    return NULL;
  /* /v2/ challenges carry no scope; ask for what the pull needs. */
  cleanup_free char *want = scope           ? xstrdup(scope)
                            : s->repository ? util__fmt("repository:%s:pull", s->repository)
                                            : NULL;
  CURL *h = curl_easy_init();
  char *sv = service ? curl_easy_escape(h, service, 0) : NULL;
  char *sc = want ? curl_easy_escape(h, want, 0) : NULL;
  char sep = strchr(realm, '?') ? '&' : '?';
  char *url = util__fmt("%s%c%s%s%s%s%s", realm, sep, sv ? "service=" : "", sv ? sv : "",
                        sv && sc ? "&" : "", sc ? "scope=" : "", sc ? sc : "");
  curl_free(sv);
  curl_free(sc);
  curl_easy_cleanup(h);
  return url;
}

static int fetch_token(struct reg_session *s, const char *challenge, vmbox_error_t *err)
{
  cleanup_free char *url = token_url(challenge, s);
  if (!url)
    return vmbox_error_set(err, 0,
                           "registry %s sent a Bearer challenge without a usable "
                           "realm: %s",
                           s->registry, challenge);
  struct curl_slist *hdrs = NULL;
  if (s->basic) {
    cleanup_free char *h = util__fmt("Authorization: Basic %s", s->basic);
    hdrs = curl_slist_append(hdrs, h);
  }
  struct http_resp r = {0};
  int rc = http__get_plain(url, hdrs, REG_MAX_SMALL, s->registry, &r, err);
  curl_slist_free_all(hdrs);
  if (rc < 0) {
    http_resp__free(&r);
    return vmbox_error_wrap(err, "get token");
  }
  if (r.status == 401 || r.status == 403) {
    http_resp__free(&r);
    return auth__required_error(s, err);
  }
  json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
  const char *tok = json_string_value(json_object_get(j, "token"));
  if (!tok || !*tok)
    tok = json_string_value(json_object_get(j, "access_token"));
  bool ok = tok && *tok;
  if (ok) {
    free(s->bearer);
    s->bearer = xstrdup(tok);
  } else {
    vmbox_error_set(err, 0, "token server for %s answered %ld without a token", s->registry,
                    r.status);
  }
  json_decref(j);
  http_resp__free(&r);
  return ok ? 0 : -1;
}

int auth__answer_challenge(struct reg_session *s, const char *challenge, vmbox_error_t *err)
{
  log__debug("challenge from %s: %s", s->registry, challenge);
  if (!strncasecmp(challenge, "bearer", 6))
    return fetch_token(s, challenge, err);
  if (!strncasecmp(challenge, "basic", 5)) {
    if (!s->basic)
      return auth__required_error(s, err);
    free(s->bearer);
    s->bearer = NULL;
    s->use_basic = true;
    return 0;
  }
  return vmbox_error_set(err, 0,
                         "registry %s asks for an unsupported authentication scheme: "
                         "%s",
                         s->registry, challenge);
}

/* ---- credential files --------------------------------------------------- */

char *auth__base64(const char *s)
{
  size_t n = strlen(s);
  char *out = xmalloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

char *auth__file_path(void)
{
  const char *xdg = getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg)
    return util__fmt("%s/vmbox/auth.json", xdg);
  const char *home = getenv("HOME");
  return util__fmt("%s/.config/vmbox/auth.json", home && *home ? home : "/root");
}

static char *docker_config_path(void)
{
  const char *dir = getenv("DOCKER_CONFIG");
  if (dir && *dir)
    return util__fmt("%s/config.json", dir);
  const char *home = getenv("HOME");
  return util__fmt("%s/.docker/config.json", home && *home ? home : "/root");
}

/* Keys in "auths" may be "host", "host:port", "https://host/v1/"...; reduce
 * them to the registry name vmbox uses. */
static char *key_registry(const char *key)
{
  const char *h = key;
  if (util__has_prefix(h, "https://"))
    h += 8;
  else if (util__has_prefix(h, "http://"))
    h += 7;
  char *r = xstrndup(h, strcspn(h, "/"));
  if (!strcmp(r, "index.docker.io") || !strcmp(r, "registry-1.docker.io")) {
    free(r);
    r = xstrdup(HUB);
  }
  return r;
}

static char *lookup_in(const char *path, const char *registry)
{
  json_error_t jerr;
  json_t *j = json_load_file(path, 0, &jerr);
  if (!j)
    return NULL;
  char *found = NULL;
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(j, "auths"), key, v)
  {
    cleanup_free char *reg = key_registry(key);
    const char *a = json_string_value(json_object_get(v, "auth"));
    if (strcmp(reg, registry) != 0)
      continue;
    if (a && *a) {
      found = xstrdup(a);
      break;
    }
    /* Some tools write username/password instead of auth. */
    const char *u = json_string_value(json_object_get(v, "username"));
    const char *p = json_string_value(json_object_get(v, "password"));
    if (u && p) {
      cleanup_free char *up = util__fmt("%s:%s", u, p);
      found = auth__base64(up);
      break;
    }
  }
  json_decref(j);
  if (found)
    log__debug("credentials for %s from %s", registry, path);
  return found;
}

char *auth__lookup(const char *registry)
{
  cleanup_free char *mine = auth__file_path();
  char *a = lookup_in(mine, registry);
  if (a)
    return a;
  cleanup_free char *docker = docker_config_path();
  return lookup_in(docker, registry);
}

/* Sets (b64) or deletes (NULL) the registry's entry in vmbox's auth file,
 * under a lock, writing the file atomically with mode 0600. */
static int update_file(const char *registry, const char *b64, bool *changed, vmbox_error_t *err)
{
  cleanup_free char *path = auth__file_path();
  cleanup_free char *dir = xstrndup(path, strrchr(path, '/') - path);
  if (util__mkdir_p(dir, 0700, err) < 0)
    return vmbox_error_wrap(err, "create %s", dir);
  /* Concurrent logins serialize on the directory, so no lock file lingers. */
  cleanup_close int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock < 0 || flock(lock, LOCK_EX) < 0)
    return vmbox_error_sys(err, "lock %s", dir);
  json_error_t jerr;
  json_t *j = NULL;
  *changed = false;
  if (!b64 && access(path, F_OK) < 0)
    return 0; /* nothing to log out of */
  if (access(path, F_OK) == 0 && !(j = json_load_file(path, 0, &jerr)))
    return vmbox_error_set(err, 0, "auth file %s is not valid JSON (line %d: %s)", path, jerr.line,
                           jerr.text);
  if (!j)
    j = json_object();
  json_t *auths = json_object_get(j, "auths");
  if (!json_is_object(auths)) {
    auths = json_object();
    json_object_set_new(j, "auths", auths);
  }
  *changed = json_object_get(auths, registry) != NULL || b64;
  if (b64)
    json_object_set_new(auths, registry, json_pack("{s:s}", "auth", b64));
  else
    json_object_del(auths, registry);
  char *dump = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(j);
  char *text = util__fmt("%s\n", dump);
  free(dump);
  int rc = util__write_file_atomic(path, text, strlen(text), 0600, err);
  free(text);
  if (rc == 0 && chmod(path, 0600) < 0)
    return vmbox_error_sys(err, "chmod %s", path);
  return rc;
}

int auth__save(const char *registry, const char *b64, vmbox_error_t *err)
{
  bool changed;
  return update_file(registry, b64, &changed, err);
}

int auth__remove(const char *registry, bool *removed, vmbox_error_t *err)
{
  return update_file(registry, NULL, removed, err);
}

/* ---- login / logout ----------------------------------------------------- */

/* "https://Host:5000/v2/" -> "host:5000"; Docker Hub's aliases -> docker.io. */
static char *login_key(const char *arg)
{
  char *k = key_registry(arg);
  for (char *p = k; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return k;
}

int registry__login(const char *registry, const char *user, const char *password,
                    char **insecure_registries, vmbox_error_t *err)
{
  cleanup_free char *key = login_key(registry && *registry ? registry : HUB);
  if (!*key || strchr(key, ' '))
    return vmbox_error_set(err, 0, "invalid registry name \"%s\"", registry);
  struct reg_session s;
  reg_session__init(&s, key, NULL, insecure_registries, err);
  cleanup_free char *up = util__fmt("%s:%s", user, password);
  free(s.basic);
  s.basic = auth__base64(up);
  explicit_bzero(up, strlen(up));
  cleanup_free char *url = util__fmt("%s/v2/", s.base);
  struct http_resp r = {0};
  int rc = http__get(&s, url, NULL, REG_MAX_SMALL, &r, err);
  if (rc == 0 && r.status != 200)
    rc = vmbox_error_set(err, 0, "registry %s answered HTTP %ld to GET /v2/", key, r.status);
  if (rc < 0 && s.denied) {
    vmbox_error_free(err);
    vmbox_error_set(err, 0, "login to %s failed: incorrect username or password", key);
    vmbox_error_hint(err, "check the user name and password; nothing was saved");
  } else if (rc < 0) {
    vmbox_error_wrap(err, "login");
  } else {
    rc = auth__save(key, s.basic, err);
  }
  http_resp__free(&r);
  reg_session__free(&s);
  return rc;
}

int registry__logout(const char *registry, vmbox_error_t *err)
{
  cleanup_free char *key = login_key(registry && *registry ? registry : HUB);
  bool removed = false;
  if (auth__remove(key, &removed, err) < 0)
    return vmbox_error_wrap(err, "logout %s", key);
  return removed ? 0 : 1;
}
