/* virtio-vsock: NOT BUILT YET (issue 5).  Placeholder so vm.c links; the
 * device lands here. */
#include "../vmm.h"

int virtio_vsock__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err)
{
  (void)vm, (void)cfg;
  return vmbox_error_set(err, 0, "virtio-vsock is not built yet");
}

int virtio_vsock__start(struct vmm *vm, vmbox_error_t *err)
{
  (void)vm, (void)err;
  return 0;
}

void virtio_vsock__exit(struct vmm *vm)
{
  (void)vm;
}
