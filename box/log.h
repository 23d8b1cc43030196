/* ctr.log: the box's stdout and stderr in one file, in the order they came,
 * so `vmbox logs` can split them again.  One record per line (a partial line
 * when the box wrote no newline yet):
 *
 *   STREAM LEN\nDATA      STREAM is 'o' (stdout) or 'e' (stderr), LEN decimal
 *
 * Text headers keep the file greppable; LEN makes any byte in DATA safe. */
#ifndef VMBOX_BOX_LOG_H
#define VMBOX_BOX_LOG_H

#include <stddef.h>
#include <sys/types.h>

#include "../lib/err.h"

/* Appends buf as one record per line.  Returns -1 on a write error (errno). */
int log__append(int fd, char stream, const char *buf, size_t len);

struct log_record {
  char stream; /* 'o' or 'e' */
  const char *data;
  size_t len;
};

/* Splits buf into records; *used says how far whole records went (a record
 * still being written is left for the next read).  Returns the number of
 * records put in *out (caller frees *out; the records point into buf). */
size_t log__parse(const char *buf, size_t len, struct log_record **out, size_t *used);

#endif
