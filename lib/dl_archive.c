/* libarchive, opened on first use (see dl.h): image layers, `vmbox cp`
 * tar streams, `import`, the kvm initramfs.  Every archive_* function vmbox
 * calls is defined here with the header's prototype (the compiler checks
 * each against it).  A new call elsewhere needs a line in ARCHIVE_FNS, or
 * the link fails (-larchive is gone on purpose). */
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>

#include "dl.h"

/* F: returns a value, V: returns void.  (ret, name, params, args) */
#define ARCHIVE_FNS(F, V)                                                                          \
  F(time_t, archive_entry_atime, (struct archive_entry * a0), (a0))                                \
  F(int, archive_entry_atime_is_set, (struct archive_entry * a0), (a0))                            \
  F(long, archive_entry_atime_nsec, (struct archive_entry * a0), (a0))                             \
  V(void, archive_entry_copy_stat, (struct archive_entry * a0, const struct stat *a1), (a0, a1))   \
  F(time_t, archive_entry_ctime, (struct archive_entry * a0), (a0))                                \
  F(int, archive_entry_ctime_is_set, (struct archive_entry * a0), (a0))                            \
  F(long, archive_entry_ctime_nsec, (struct archive_entry * a0), (a0))                             \
  F(mode_t, archive_entry_filetype, (struct archive_entry * a0), (a0))                             \
  V(void, archive_entry_free, (struct archive_entry * a0), (a0))                                   \
  F(la_int64_t, archive_entry_gid, (struct archive_entry * a0), (a0))                              \
  F(const char *, archive_entry_hardlink, (struct archive_entry * a0), (a0))                       \
  F(mode_t, archive_entry_mode, (struct archive_entry * a0), (a0))                                 \
  F(time_t, archive_entry_mtime, (struct archive_entry * a0), (a0))                                \
  F(long, archive_entry_mtime_nsec, (struct archive_entry * a0), (a0))                             \
  F(struct archive_entry *, archive_entry_new, (void), ())                                         \
  F(const char *, archive_entry_pathname, (struct archive_entry * a0), (a0))                       \
  F(dev_t, archive_entry_rdevmajor, (struct archive_entry * a0), (a0))                             \
  F(dev_t, archive_entry_rdevminor, (struct archive_entry * a0), (a0))                             \
  V(void, archive_entry_set_filetype, (struct archive_entry * a0, unsigned int a1), (a0, a1))      \
  V(void, archive_entry_set_hardlink, (struct archive_entry * a0, const char *a1), (a0, a1))       \
  V(void, archive_entry_set_pathname, (struct archive_entry * a0, const char *a1), (a0, a1))       \
  V(void, archive_entry_set_perm, (struct archive_entry * a0, mode_t a1), (a0, a1))                \
  V(void, archive_entry_set_rdev, (struct archive_entry * a0, dev_t a1), (a0, a1))                 \
  V(void, archive_entry_set_size, (struct archive_entry * a0, la_int64_t a1), (a0, a1))            \
  V(void, archive_entry_set_symlink, (struct archive_entry * a0, const char *a1), (a0, a1))        \
  F(la_int64_t, archive_entry_size, (struct archive_entry * a0), (a0))                             \
  F(int, archive_entry_size_is_set, (struct archive_entry * a0), (a0))                             \
  F(const struct stat *, archive_entry_stat, (struct archive_entry * a0), (a0))                    \
  F(const char *, archive_entry_symlink, (struct archive_entry * a0), (a0))                        \
  F(la_int64_t, archive_entry_uid, (struct archive_entry * a0), (a0))                              \
  F(int, archive_entry_xattr_count, (struct archive_entry * a0), (a0))                             \
  F(int, archive_entry_xattr_next,                                                                 \
    (struct archive_entry * a0, const char **a1, const void **a2, size_t *a3), (a0, a1, a2, a3))   \
  F(int, archive_entry_xattr_reset, (struct archive_entry * a0), (a0))                             \
  F(int, archive_errno, (struct archive * a0), (a0))                                               \
  F(const char *, archive_error_string, (struct archive * a0), (a0))                               \
  F(int, archive_format, (struct archive * a0), (a0))                                              \
  F(la_ssize_t, archive_read_data, (struct archive * a0, void *a1, size_t a2), (a0, a1, a2))       \
  F(int, archive_read_data_block,                                                                  \
    (struct archive * a0, const void **a1, size_t *a2, la_int64_t *a3), (a0, a1, a2, a3))          \
  F(int, archive_read_data_skip, (struct archive * a0), (a0))                                      \
  F(int, archive_read_free, (struct archive * a0), (a0))                                           \
  F(struct archive *, archive_read_new, (void), ())                                                \
  F(int, archive_read_next_header, (struct archive * a0, struct archive_entry * *a1), (a0, a1))    \
  F(int, archive_read_open_fd, (struct archive * a0, int a1, size_t a2), (a0, a1, a2))             \
  F(int, archive_read_open_filename, (struct archive * a0, const char *a1, size_t a2),             \
    (a0, a1, a2))                                                                                  \
  F(int, archive_read_open_memory, (struct archive * a0, const void *a1, size_t a2), (a0, a1, a2)) \
  F(int, archive_read_support_filter_all, (struct archive * a0), (a0))                             \
  F(int, archive_read_support_format_empty, (struct archive * a0), (a0))                           \
  F(int, archive_read_support_format_raw, (struct archive * a0), (a0))                             \
  F(int, archive_read_support_format_tar, (struct archive * a0), (a0))                             \
  F(int, archive_write_close, (struct archive * a0), (a0))                                         \
  F(la_ssize_t, archive_write_data, (struct archive * a0, const void *a1, size_t a2),              \
    (a0, a1, a2))                                                                                  \
  F(int, archive_write_free, (struct archive * a0), (a0))                                          \
  F(int, archive_write_header, (struct archive * a0, struct archive_entry * a1), (a0, a1))         \
  F(struct archive *, archive_write_new, (void), ())                                               \
  F(int, archive_write_open_fd, (struct archive * a0, int a1), (a0, a1))                           \
  F(int, archive_write_open_filename, (struct archive * a0, const char *a1), (a0, a1))             \
  F(int, archive_write_set_bytes_in_last_block, (struct archive * a0, int a1), (a0, a1))           \
  F(int, archive_write_set_format_cpio_newc, (struct archive * a0), (a0))                          \
  F(int, archive_write_set_format_pax_restricted, (struct archive * a0), (a0))

ARCHIVE_FNS(DL_PTR, DL_PTR)
DL_LIB(ARCHIVE_FNS(DL_SYM, DL_SYM), "libarchive.so.13",
       "to read and write image layers and tar streams", "libarchive13")
ARCHIVE_FNS(DL_DEF, DL_DEF_VOID)
