/* sem.c - counting semaphore over a futex word (see sem.h). */
#include "sem.h"

#include "actor.h"
#include "futex.h"

#define S(o) ((cc_sem_t *)(o))

const cc_type_t cc_sem_type = {"semaphore", NULL, NULL, NULL};

cc_obj_t *cc_sem_new(const char *name, uint32_t value, int bounded) {
  cc_sem_t *s;
  if (value > CC_SEM_MAX) return NULL;
  s = cc_obj_new(&cc_sem_type, sizeof *s, name);
  if (!s) return NULL;
  atomic_store(&s->value, value);
  s->bounded = bounded != 0;
  s->bound = value;
  return &s->h;
}

uint32_t cc_sem_value(cc_obj_t *o) {
  return atomic_load(&S(o)->value);
}

static int try_take(cc_sem_t *s) {
  uint32_t v = atomic_load(&s->value);
  while (v > 0)
    if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1, memory_order_acquire,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

int cc_sem_acquire(cc_obj_t *o, cc_deadline_t deadline) {
  cc_sem_t *s = S(o);
  int rc = 0;
  if (cc_likely(try_take(s))) return 0;
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  for (int i = 0; i < cc_spin_count; i++) {
    cc_cpu_relax();
    if (atomic_load_explicit(&s->value, memory_order_relaxed) > 0 && try_take(s)) return 0;
  }
  cc_wait_begin(o, CC_WAIT_SEM, deadline);
  /* waiters++ then re-reading the value pairs with release's value += k then
   * reading waiters (both sequentially consistent): one of them sees the
   * other, so a release never misses a parked acquirer. */
  atomic_fetch_add(&s->waiters, 1);
  for (;;) {
    if (try_take(s)) {
      rc = 0;
      break;
    }
    rc = cc_futex_wait(&s->value, 0, deadline);
    if (rc == CC_ETIMEOUT && try_take(s)) {
      rc = 0; /* the last attempt got a unit: done (looping would take two) */
      break;
    }
    if (rc == CC_ETIMEOUT || rc == CC_EINTR) break;
  }
  atomic_fetch_sub(&s->waiters, 1);
  /* An interrupted waiter may have spent a wake meant for another one. */
  if (rc == CC_EINTR && atomic_load(&s->value) > 0 && atomic_load(&s->waiters) > 0)
    cc_futex_wake(&s->value, 1);
  cc_wait_end(o, rc);
  return rc;
}

int cc_sem_release(cc_obj_t *o, uint32_t k) {
  cc_sem_t *s = S(o);
  uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
  uint32_t max = s->bounded ? s->bound : CC_SEM_MAX;
  do {
    if (k > max || v > max - k) return CC_EOVERFLOW;
  } while (!atomic_compare_exchange_weak(&s->value, &v, v + k));
  if (atomic_load(&s->waiters) > 0) cc_futex_wake(&s->value, k > INT32_MAX ? INT32_MAX : (int)k);
  return 0;
}
