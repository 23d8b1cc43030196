/* From an image config and `vmbox run` flags to a backend box_spec, with
 * Docker's rules: -e overrides the image's Env, --entrypoint replaces the
 * image's Entrypoint and drops its Cmd, arguments after IMAGE replace Cmd,
 * -w/-u override WorkingDir/User. */
#ifndef VMBOX_BOX_SPEC_H
#define VMBOX_BOX_SPEC_H

#include <jansson.h>
#include <stdbool.h>

#include "../backends/backend.h"
#include "../image/manifest.h"
#include "../lib/err.h"

struct box_flags {
  char **env;             /* -e K=V / -e K (from our environment), --env-file lines */
  const char *workdir;    /* -w */
  const char *user;       /* -u USER[:GROUP] */
  const char *entrypoint; /* --entrypoint; "" clears the image's */
  const char *hostname;
  char **volumes; /* -v HOST:GUEST[:ro|rw] */
  char **tmpfs;   /* --tmpfs GUEST[:OPTIONS] */
  bool read_only;
  struct box_limits limits;
  unsigned timeout;
  char *const *cmd; /* after IMAGE; NULL/empty: the image's Cmd */
  const char *disk; /* the image's ext4: user and group names */
  const char *net;  /* --net as given (box/netspec.h); NULL = none */
};

/* A box_spec with the storage its pointers use. */
struct box_spec_owned {
  struct box_spec spec;
  char **argv, **env;
  char *cwd, *user;
  struct box_mount *mounts;
  struct box_tmpfs *tmpfs;
  char **strings; /* mount sources/targets, tmpfs parts */
};

/* id, image (ext4 path) and state_dir are set by the caller afterwards. */
int box_spec__build(const struct image_config *ic, const struct box_flags *f,
                    struct box_spec_owned *out, vmbox_error_t *err);
void box_spec__free(struct box_spec_owned *o);
/* The spec as config.json records it. */
json_t *box_spec__to_json(const struct box_spec_owned *o);

/* USER[:GROUP], names looked up in the image disk's /etc/passwd and
 * /etc/group (box/passwd.h). */
int box_spec__parse_user(const char *disk, const char *user, uid_t *uid, gid_t *gid,
                         vmbox_error_t *err);
/* Sets K=V in *env, replacing an earlier K. */
void box_spec__env_set(char ***env, const char *kv);

/* --env-file: K=V lines; blank lines and # comments skipped. */
int box_spec__read_env_file(const char *path, char ***env, vmbox_error_t *err);

#endif
