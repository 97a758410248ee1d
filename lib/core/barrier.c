/* barrier.c - one-word generation barrier (see barrier.h). */
#include "barrier.h"

#include "actor.h"
#include "wait.h"

#define B(o) ((cc_barrier_t *)(o))
#define COUNT 0xffffu
#define ROUND 0x7fff0000u
#define ROUND_ONE 0x10000u
#define BROKEN 0x80000000u

const cc_type_t cc_barrier_type = {.name = "barrier"};

cc_obj_t *cc_barrier_new(const char *name, uint32_t parties) {
  cc_barrier_t *b;
  if (parties < 1 || parties > CC_BARRIER_MAX) return NULL;
  b = cc_obj_new(&cc_barrier_type, sizeof *b, name);
  if (!b) return NULL;
  b->parties = parties;
  return &b->h;
}

/* inside-- then reading resetters pairs with reset's resetters++ then
 * reading inside (both sequentially consistent): a reset never sleeps past
 * the last party's exit, and a round costs no wake when nobody resets. */
static void leave(cc_barrier_t *b) {
  if (atomic_fetch_sub(&b->inside, 1) == 1 && atomic_load(&b->resetters) > 0)
    cc_wake(&b->inside, INT32_MAX);
}

/* Sets the broken bit unless round `round` is over. Returns 1 if the round
 * completed meanwhile (the caller then succeeded after all). */
static int break_round(cc_barrier_t *b, uint32_t round) {
  uint32_t w = atomic_load(&b->word);
  do {
    if ((w & ROUND) != round) return 1;
    if (w & BROKEN) return 0;
  } while (!atomic_compare_exchange_weak(&b->word, &w, w | BROKEN));
  cc_wake(&b->word, INT32_MAX);
  return 0;
}

/* ---- the wait's test (wait.h); arg[0] is this party's round ------------- */

static int bw_poll(cc_wait_t *w) {
  cc_barrier_t *b = B(w->obj);
  uint32_t v = atomic_load(&b->word);
  if ((v & ROUND) != (uint32_t)w->arg[0]) return 0;
  if (v & BROKEN) return CC_ECLOSED;
  w->addr = &b->word;
  w->val = v;
  return CC_WAIT_PARK;
}

/* Timed out, interrupted or cancelled: this party breaks the barrier,
 * unless the round completed meanwhile. Then it leaves. */
static int bw_leave(cc_wait_t *w, int rc) {
  cc_barrier_t *b = B(w->obj);
  if ((rc == CC_ETIMEOUT || rc == CC_EINTR || rc == CC_ECANCELLED) &&
      break_round(b, (uint32_t)w->arg[0]))
    rc = 0;
  leave(b);
  return rc;
}

static const cc_wait_ops_t wait_ops = {CC_WAIT_BARRIER, 4, bw_poll, NULL, bw_leave};

int cc_barrier_wait_w(cc_wait_t *wt, cc_obj_t *o, cc_deadline_t deadline, uint32_t *index) {
  cc_barrier_t *b = B(o);
  uint32_t w;
  atomic_fetch_add(&b->inside, 1);
  w = atomic_load(&b->word);
  for (;;) {
    uint32_t n = w & COUNT;
    if (w & BROKEN) {
      leave(b);
      return CC_ECLOSED;
    }
    if (n + 1 == b->parties) {
      /* Last one in: next round, count 0. */
      if (atomic_compare_exchange_weak(&b->word, &w, ((w & ROUND) + ROUND_ONE) & ROUND)) {
        cc_wake(&b->word, INT32_MAX);
        *index = n;
        leave(b);
        return 0;
      }
    } else if (atomic_compare_exchange_weak(&b->word, &w, w + 1)) {
      *index = n;
      break;
    }
  }
  cc_wait_init(wt, &wait_ops, o, deadline);
  wt->arg[0] = w & ROUND;
  return CC_WAIT_PARK;
}

int cc_barrier_wait(cc_obj_t *o, cc_deadline_t deadline, uint32_t *index) {
  cc_wait_t w;
  int rc = cc_barrier_wait_w(&w, o, deadline, index);
  return rc == CC_WAIT_PARK ? cc_wait_run(&w) : rc;
}

void cc_barrier_abort(cc_obj_t *o) {
  cc_barrier_t *b = B(o);
  uint32_t w = atomic_fetch_or(&b->word, BROKEN);
  if (!(w & BROKEN)) cc_wake(&b->word, INT32_MAX);
}

/* reset() waits for the parties inside to leave. */
static int drain_poll(cc_wait_t *w) {
  cc_barrier_t *b = B(w->obj);
  uint32_t n = atomic_load(&b->inside);
  if (n == 0) return 0;
  w->addr = &b->inside;
  w->val = n;
  return CC_WAIT_PARK;
}

static const cc_wait_ops_t drain_ops = {CC_WAIT_BARRIER, 0, drain_poll, NULL, NULL};

void cc_barrier_reset(cc_obj_t *o) {
  cc_barrier_t *b = B(o);
  cc_wait_t wt;
  uint32_t w;
  cc_barrier_abort(o);
  atomic_fetch_add(&b->resetters, 1);
  cc_wait_init(&wt, &drain_ops, o, CC_FOREVER);
  while (cc_wait_run(&wt) != 0) {
  }
  atomic_fetch_sub(&b->resetters, 1);
  w = atomic_load(&b->word);
  atomic_store(&b->word, ((w & ROUND) + ROUND_ONE) & ROUND);
}

int cc_barrier_broken(cc_obj_t *o) {
  return (atomic_load(&B(o)->word) & BROKEN) != 0;
}

uint32_t cc_barrier_waiting(cc_obj_t *o) {
  uint32_t w = atomic_load(&B(o)->word);
  return w & BROKEN ? 0 : w & COUNT;
}
