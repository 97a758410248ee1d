/* event.c - flag + set counter in one futex word (see event.h). */
#include "event.h"

#include "actor.h"
#include "wait.h"

#define E(o) ((cc_event_t *)(o))

const cc_type_t cc_event_type = {.name = "event"};

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
  if (atomic_load(&e->waiters) > 0) cc_wake(&e->word, INT32_MAX);
}

void cc_event_clear(cc_obj_t *o) {
  atomic_fetch_and(&E(o)->word, ~(uint32_t)1);
}

int cc_event_is_set(cc_obj_t *o) {
  return atomic_load_explicit(&E(o)->word, memory_order_acquire) & 1;
}

/* ---- wait: the wait's test (wait.h); arg[0] is the word seen first ------- */

/* Bits above the flag change only on set(); clear() leaves them as they
 * are: a set that happened and was cleared again still counts. */
static int changed(cc_event_t *e, uint32_t w0) {
  uint32_t now = atomic_load(&e->word);
  return (now & 1) || (now >> 1) != (w0 >> 1);
}

static int ev_poll(cc_wait_t *w) {
  cc_event_t *e = E(w->obj);
  if (changed(e, (uint32_t)w->arg[0])) return 1;
  w->addr = &e->word;
  w->val = (uint32_t)w->arg[0];
  return CC_WAIT_PARK;
}

static void ev_enter(cc_wait_t *w) {
  atomic_fetch_add(&E(w->obj)->waiters, 1); /* pairs with set's load, see sem.c */
}

/* 1 set, 0 timed out, or CC_EINTR / CC_ECANCELLED unless it was set. */
static int ev_leave(cc_wait_t *w, int rc) {
  if (w->parked) atomic_fetch_sub(&E(w->obj)->waiters, 1);
  if (rc < 0 && changed(E(w->obj), (uint32_t)w->arg[0])) return 1;
  return rc == CC_ETIMEOUT ? 0 : rc;
}

static const cc_wait_ops_t wait_ops = {CC_WAIT_EVENT, 4, ev_poll, ev_enter, ev_leave};

int cc_event_wait_w(cc_wait_t *w, cc_obj_t *o, cc_deadline_t deadline) {
  uint32_t w0 = atomic_load_explicit(&E(o)->word, memory_order_acquire);
  if (w0 & 1) return 1;
  if (deadline == CC_NOW) return 0;
  cc_wait_init(w, &wait_ops, o, deadline);
  w->arg[0] = w0;
  return CC_WAIT_PARK;
}

int cc_event_wait(cc_obj_t *o, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = cc_event_wait_w(&w, o, deadline);
  return rc == CC_WAIT_PARK ? cc_wait_run(&w) : rc;
}
