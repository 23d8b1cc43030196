/* virtio-net: NOT BUILT YET (issue 5).  Placeholder so vm.c links; the
 * device lands here. */
#include "../vmm.h"

int virtio_net__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err)
{
  (void)vm, (void)cfg;
  return vmbox_error_set(err, 0, "virtio-net is not built yet");
}

int virtio_net__start(struct vmm *vm, vmbox_error_t *err)
{
  (void)vm, (void)err;
  return 0;
}

void virtio_net__exit(struct vmm *vm)
{
  (void)vm;
}
