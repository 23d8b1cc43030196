/* -u / the image's User by name: looked up in the image's own /etc/passwd
 * and /etc/group, read from the flattened ext4 with libext2fs (no mount). */
#ifndef VMBOX_BOX_PASSWD_H
#define VMBOX_BOX_PASSWD_H

#include <sys/types.h>

#include "../lib/err.h"

/* USER[:GROUP], each a name or a number.  A user name gives the primary gid
 * of its passwd line unless GROUP is given.  disk may be NULL: numbers and
 * "root" only. */
int passwd__resolve(const char *disk, const char *user, uid_t *uid, gid_t *gid, vmbox_error_t *err);

#endif
