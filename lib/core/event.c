/* event.c - flag + set counter in one futex word (see event.h). */
#include "event.h"

#include "actor.h"
#include "futex.h"

#define E(o) ((cc_event_t *)(o))

const cc_type_t cc_event_type = {"event", NULL, NULL, NULL};

cc_obj_t *cc_event_new(const char *name) {
  cc_event_t *e = cc_obj_new(&cc_event_type, sizeof *e, name);
  return e ? &e->h : NULL;
}

void cc_event_set(cc_obj_t *o) {
  cc_event_t *e = E(o);
  uint32_t w = atomic_load(&e->word);
  do {
    if (w & 1) return;
  } while (!atomic_compare_exchange_weak(&e->word, &w, (w + 2) | 1));
  if (atomic_load(&e->waiters) > 0) cc_futex_wake(&e->word, INT32_MAX);
}

void cc_event_clear(cc_obj_t *o) {
  atomic_fetch_and(&E(o)->word, ~(uint32_t)1);
}

int cc_event_is_set(cc_obj_t *o) {
  return atomic_load_explicit(&E(o)->word, memory_order_acquire) & 1;
}

int cc_event_wait(cc_obj_t *o, cc_deadline_t deadline) {
  cc_event_t *e = E(o);
  uint32_t w = atomic_load_explicit(&e->word, memory_order_acquire), now;
  int rc = 0, set = 0;
  if (w & 1) return 1;
  if (deadline == CC_NOW) return 0;
  for (int i = 0; i < cc_spin_count / 4; i++) {
    cc_cpu_relax();
    if (atomic_load_explicit(&e->word, memory_order_acquire) != w) return 1;
  }
  cc_wait_begin(o, CC_WAIT_EVENT, deadline);
  atomic_fetch_add(&e->waiters, 1); /* pairs with set's load, see sem.c */
  for (;;) {
    /* Bits above the flag change only on set(); clear() leaves w as is. */
    now = atomic_load(&e->word);
    if ((now & 1) || (now >> 1) != (w >> 1)) {
      set = 1;
      break;
    }
    rc = cc_futex_wait(&e->word, w, deadline);
    if (rc == CC_ETIMEOUT || rc == CC_EINTR) break;
    rc = 0;
  }
  atomic_fetch_sub(&e->waiters, 1);
  if (!set) {
    now = atomic_load(&e->word);
    set = (now & 1) || (now >> 1) != (w >> 1);
  }
  cc_wait_end(o, set ? 0 : rc);
  if (set) return 1;
  return rc == CC_EINTR ? CC_EINTR : 0;
}
