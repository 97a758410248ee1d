/* sem.c - counting semaphore over a futex word (see sem.h). */
#include "sem.h"

#include "actor.h"
#include "wait.h"

#define S(o) ((cc_sem_t *)(o))

const cc_type_t cc_sem_type = {.name = "semaphore"};

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

/* ---- acquire: the wait's test (wait.h) ------------------------------------ */

static int acq_poll(cc_wait_t *w) {
  cc_sem_t *s = S(w->obj);
  if (try_take(s)) return 0;
  w->addr = &s->value;
  w->val = 0;
  return CC_WAIT_PARK;
}

/* waiters++ then re-reading the value (the next poll) pairs with release's
 * value += k then reading waiters (both sequentially consistent): one of
 * them sees the other, so a release never misses a parked acquirer. */
static void acq_enter(cc_wait_t *w) {
  atomic_fetch_add(&S(w->obj)->waiters, 1);
}

/* A waiter leaving without a unit may have spent a wake meant for another. */
static int acq_leave(cc_wait_t *w, int rc) {
  cc_sem_t *s = S(w->obj);
  if (!w->parked) return rc;
  atomic_fetch_sub(&s->waiters, 1);
  if ((rc == CC_EINTR || rc == CC_ECANCELLED) && atomic_load(&s->value) > 0 &&
      atomic_load(&s->waiters) > 0)
    cc_wake(&s->value, 1);
  return rc;
}

static const cc_wait_ops_t acquire_ops = {CC_WAIT_SEM, 1, acq_poll, acq_enter, acq_leave};

int cc_sem_acquire_w(cc_wait_t *w, cc_obj_t *o, cc_deadline_t deadline) {
  if (cc_likely(try_take(S(o)))) return 0;
  cc_wait_init(w, &acquire_ops, o, deadline);
  return CC_WAIT_PARK;
}

int cc_sem_acquire(cc_obj_t *o, cc_deadline_t deadline) {
  cc_wait_t w;
  if (cc_likely(try_take(S(o)))) return 0;
  cc_wait_init(&w, &acquire_ops, o, deadline);
  return cc_wait_run(&w);
}

int cc_sem_release(cc_obj_t *o, uint32_t k) {
  cc_sem_t *s = S(o);
  uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
  uint32_t max = s->bounded ? s->bound : CC_SEM_MAX;
  do {
    if (k > max || v > max - k) return CC_EOVERFLOW;
  } while (!atomic_compare_exchange_weak(&s->value, &v, v + k));
  if (atomic_load(&s->waiters) > 0) cc_wake(&s->value, k > INT32_MAX ? INT32_MAX : (int)k);
  return 0;
}
