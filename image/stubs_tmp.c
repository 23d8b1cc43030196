/* TEMPORARY: placeholders until each module's owner lands its file. */
#include "flatten.h"
#include "import.h"
#include "manifest.h"
#include "ref.h"
#include "registry.h"
#include "store.h"

int store__open(const char *root, struct store **out, vmbox_error_t *err)
{
  (void)root;
  (void)out;
  return vmbox_error_set(err, 0, "store not implemented yet");
}
void store__close(struct store *s) { (void)s; }
