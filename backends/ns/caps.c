/* Capabilities: Docker's default set for root in the box, none for other
 * users; bounding set reduced so nothing can win the rest back through a
 * setuid or file-capability binary; inheritable and ambient empty (the
 * CVE-2022-24769 lesson). */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

static int capset_all(uint64_t eff, uint64_t prm, uint64_t inh)
{
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2] = {
      {.effective = (uint32_t)eff, .permitted = (uint32_t)prm, .inheritable = (uint32_t)inh},
      {.effective = (uint32_t)(eff >> 32),
       .permitted = (uint32_t)(prm >> 32),
       .inheritable = (uint32_t)(inh >> 32)},
  };
  return (int)syscall(SYS_capset, &h, d);
}

/* Keeps only `keep` in the bounding set; caps the kernel does not know end
 * the loop with EINVAL. */
static int bounding_limit(uint64_t keep, vmbox_error_t *err)
{
  /* Dropping needs CAP_SETPCAP, so it goes last. */
  for (int i = 0; i <= 64; i++) {
    int cap = i == 64 ? CAP_SETPCAP : i;
    if ((keep & (1ULL << cap)) || (cap == CAP_SETPCAP && i != 64))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return vmbox_error_sys(err, "drop capability %d from the bounding set", cap);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return vmbox_error_sys(err, "clear ambient capabilities");
  return 0;
}

/* EINVAL: the id has no mapping in the box's user namespace (rootless). */
static int unmapped(vmbox_error_t *err, const char *what, unsigned id)
{
  int e = errno;
  vmbox_error_set(err, e, "set%sid %u", what[0] == 'u' ? "u" : "g", id);
  if (e != EINVAL)
    return -1;
  return vmbox_error_hint(err, "a rootless box maps only %s 0 (you); run as root for other ids",
                          what);
}

int caps__drop_and_switch(const struct box_process *p, vmbox_error_t *err)
{
  if (bounding_limit(CAPS_DOCKER_DEFAULT, err) < 0)
    return -1;
  /* EPERM: a rootless box, where setgroups(2) is off for good (userns.c);
   * the host user's groups then stay, as with podman's single-uid map. */
  if (setgroups(p->n_groups, p->groups) < 0 && !(errno == EPERM && p->n_groups == 0))
    return vmbox_error_sys(err, "setgroups");
  if (setresgid(p->gid, p->gid, p->gid) < 0)
    return unmapped(err, "group", p->gid);
  /* Without KEEPCAPS, moving every uid off 0 clears permitted+effective. */
  if (setresuid(p->uid, p->uid, p->uid) < 0)
    return unmapped(err, "user", p->uid);
  uint64_t set = p->uid == 0 ? CAPS_DOCKER_DEFAULT : 0;
  if (capset_all(set, set, 0) < 0)
    return vmbox_error_sys(err, "capset");
  return 0;
}

int caps__limit(uint64_t keep, vmbox_error_t *err)
{
  if (bounding_limit(keep, err) < 0)
    return -1;
  if (capset_all(keep, keep, 0) < 0)
    return vmbox_error_sys(err, "capset");
  return 0;
}
