/* atomic.c - the conc.atomic object type (operations are inline in atomic.h). */
#include "atomic.h"

const cc_type_t cc_atomic_type = {.name = "atomic"};

cc_obj_t *cc_atomic_new(const char *name, int64_t value) {
  cc_atomic_t *a = cc_obj_new(&cc_atomic_type, sizeof *a, name);
  if (!a) return NULL;
  atomic_store(&a->value, value);
  return &a->h;
}
