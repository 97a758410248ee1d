/*
 * atomic.h - conc.atomic: a shared 64-bit integer cell.
 *
 * Lock-free, sequentially consistent operations on one int64 in the arena;
 * additions wrap around like Lua integers. Safe from any thread or process.
 */
#ifndef CC_ATOMIC_H
#define CC_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"

typedef struct cc_atomic {
  cc_obj_t h;
  _Atomic int64_t value;
} cc_atomic_t;

extern const cc_type_t cc_atomic_type; /* "atomic" */

cc_obj_t *cc_atomic_new(const char *name, int64_t value);

static inline int64_t cc_atomic_get(cc_obj_t *o) {
  return atomic_load(&((cc_atomic_t *)o)->value);
}
static inline void cc_atomic_set(cc_obj_t *o, int64_t v) {
  atomic_store(&((cc_atomic_t *)o)->value, v);
}
/* Adds k and returns the new value. */
static inline int64_t cc_atomic_add(cc_obj_t *o, int64_t k) {
  return (int64_t)((uint64_t)atomic_fetch_add(&((cc_atomic_t *)o)->value, k) + (uint64_t)k);
}
/* Stores `desired` if the value is `expected`; returns non-zero if it did. */
static inline int cc_atomic_cas(cc_obj_t *o, int64_t expected, int64_t desired) {
  return atomic_compare_exchange_strong(&((cc_atomic_t *)o)->value, &expected, desired);
}
/* Stores v and returns the previous value. */
static inline int64_t cc_atomic_exchange(cc_obj_t *o, int64_t v) {
  return atomic_exchange(&((cc_atomic_t *)o)->value, v);
}

#endif
