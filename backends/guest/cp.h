/* vmbox-init's parts shared between its files. */
#ifndef VMBOX_GUEST_CP_H
#define VMBOX_GUEST_CP_H

#include <stddef.h>
#include <stdint.h>

void write_all(int fd, const void *buf, size_t n);
void rec_send(int fd, size_t chunk, uint8_t type, const void *buf, size_t n);

/* A cp session (CHAN_H_CP_OUT / CHAN_H_CP_IN, req is its payload) on the
 * connection fd; ends with a DONE record.  Returns the exit status of the
 * session process. */
int cp__session(int fd, uint8_t type, const uint8_t *req, size_t len);

#endif
