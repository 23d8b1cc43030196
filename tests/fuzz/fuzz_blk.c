/* libFuzzer: virtio-blk request handling (backends/kvm/virtio/blk.c) on a
 * real copy-on-write disk (disk.c: 64 KiB base, overlay, map in a temp
 * dir).  The input is guest memory (64 KiB): a 16-entry legacy queue at 0
 * whose descriptors, avail ring and buffers all come from the input; its
 * first byte says how many requests the driver made available.  Any chain
 * must end in a status or a broken queue, never an access outside memory
 * or the disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../backends/kvm/disk.h"
#include "../../backends/kvm/virtio/blk.h"

#define MEM 65536
#define QN 16

static struct disk *disk, *ro_disk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc, (void)argv;
  static char dir[] = "/tmp/vmbox-fuzz-blk-XXXXXX";
  char base[64], ovl[64];
  if (!mkdtemp(dir))
    abort();
  snprintf(base, sizeof(base), "%s/base", dir);
  snprintf(ovl, sizeof(ovl), "%s/ovl", dir);
  FILE *f = fopen(base, "w");
  for (int i = 0; f && i < 65536; i++)
    fputc(i * 7, f);
  if (!f || fclose(f) != 0)
    abort();
  vmbox_error_t err = NULL;
  if (disk__open(&disk, base, ovl, NULL, false, &err) < 0 ||
      disk__open(&ro_disk, base, NULL, NULL, true, &err) < 0)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct virtq_chain c;
  if (size < 2)
    return 0;
  uint8_t *mem = calloc(1, MEM);
  memcpy(mem, data + 2, size - 2 < MEM ? size - 2 : MEM);
  struct guest_mem m = {.host = mem, .size = MEM};
  struct virtq vq;
  if (virtq__setup_legacy(&vq, &m, QN, QN, 0) < 0)
    abort();
  uint16_t avail = data[0] % (QN + 2); /* QN + 1: a driver lying about the count */
  mem[vq.avail_gpa + 2] = avail & 0xff;
  mem[vq.avail_gpa + 3] = avail >> 8;
  int served = virtio_blk__drain(data[1] & 1 ? ro_disk : disk, &vq, &m, &c);
  if (served > QN)
    abort();
  free(mem);
  return 0;
}
