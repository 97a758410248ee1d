/*
 * cond.c - condition variables: a FIFO of per-waiter futex words.
 *
 * A waiter node's state goes 0 (waiting) -> 1 (notified: a notifier took
 * it off the list) or 0 -> 2 (abandoned: its waiter left without the lock
 * and could not unlink it; the next notify frees it). Both transitions are
 * CAS, so exactly one side owns the node afterwards. The list itself is only
 * touched by whoever holds the condition's lock.
 *
 * A node records its waiter's process. A waiter whose process died (SIGKILL
 * while parked) can neither take a notification nor unlink its node: a
 * notify skips it, unlinks and frees the node, and does not count it, so
 * notify(1) still reaches a live waiter (docs/PROCESSES.md). A waiter that
 * dies after it was notified but before it woke up takes that notification
 * with it, as a thread that ends right after being notified would.
 */
#include "cond.h"

#include "actor.h"
#include "futex.h"
#include "lock.h"
#include "mutex.h"
#include "pid.h"

enum { WAITING = 0, NOTIFIED = 1, ABANDONED = 2 };

struct cc_cond_waiter {
  _Atomic uint32_t state;
  int32_t pid; /* the waiter's process */
  struct cc_cond_waiter *prev, *next;
};

#define C(o) ((cc_cond_t *)(o))

static void cond_destroy(cc_obj_t *o) {
  cc_cond_t *c = C(o);
  /* Only abandoned nodes can be left: live waiters hold references. */
  while (c->head) {
    cc_cond_waiter_t *w = c->head;
    c->head = w->next;
    cc_free(w);
  }
  cc_obj_unref(c->lock);
}

const cc_type_t cc_cond_type = {"condition", cond_destroy, NULL, NULL};

cc_obj_t *cc_cond_new(const char *name, cc_obj_t *lock) {
  cc_cond_t *c;
  if (lock)
    cc_obj_ref(lock);
  else if (!(lock = cc_lock_new(name, 1)))
    return NULL;
  c = cc_obj_new(&cc_cond_type, sizeof *c, name);
  if (!c) {
    cc_obj_unref(lock);
    return NULL;
  }
  c->lock = lock;
  return &c->h;
}

cc_obj_t *cc_cond_lock(cc_obj_t *c) {
  return C(c)->lock;
}

static void unlink_waiter(cc_cond_t *c, cc_cond_waiter_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    c->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    c->tail = w->prev;
  w->prev = w->next = NULL;
}

/* True when the waiter's process died: nobody but a notifier will ever
 * touch the node again. Only another process's waiter can be dead (a
 * thread cannot end while it waits here), so ours cost nothing. */
static int waiter_dead(const cc_cond_waiter_t *w) {
  return w->pid != cc_pid && cc_pid_dead(w->pid);
}

/* With the lock held. */
static int notify_locked(cc_cond_t *c, int n) {
  int woken = 0;
  while (c->head && (n < 0 || woken < n)) {
    cc_cond_waiter_t *w = c->head;
    uint32_t expect = WAITING;
    unlink_waiter(c, w);
    if (waiter_dead(w)) {
      cc_free(w);
    } else if (atomic_compare_exchange_strong(&w->state, &expect, NOTIFIED)) {
      cc_futex_wake(&w->state, 1);
      woken++;
    } else {
      cc_free(w); /* abandoned */
    }
  }
  return woken;
}

int cc_cond_notify(cc_obj_t *o, int n, int *woken) {
  cc_cond_t *c = C(o);
  int k;
  if (!cc_lock_held_by_me(c->lock)) return CC_ENOTOWNER;
  k = notify_locked(c, n);
  if (woken) *woken = k;
  return 0;
}

int cc_cond_waiting(cc_obj_t *o) {
  int n = 0;
  for (cc_cond_waiter_t *w = C(o)->head; w; w = w->next)
    n += atomic_load(&w->state) == WAITING && !waiter_dead(w);
  return n;
}

static void sleep_on(cc_obj_t *o, cc_cond_waiter_t *w, cc_deadline_t deadline, int *rc) {
  *rc = CC_ETIMEOUT;
  if (deadline == CC_NOW) return;
  cc_wait_begin(o, CC_WAIT_COND, deadline);
  *rc = 0;
  while (atomic_load_explicit(&w->state, memory_order_acquire) == WAITING) {
    *rc = cc_futex_wait(&w->state, WAITING, deadline);
    if (*rc == CC_ETIMEOUT || *rc == CC_EINTR) break;
    *rc = 0;
  }
  cc_wait_end(o, *rc);
}

int cc_cond_wait(cc_obj_t *o, cc_deadline_t deadline) {
  cc_cond_t *c = C(o);
  cc_cond_waiter_t *w;
  uint32_t depth;
  int rc, rc2, notified;
  if (!cc_lock_held_by_me(c->lock)) return CC_ENOTOWNER;
  if (!(w = cc_calloc(sizeof *w))) return CC_ENOMEM;
  w->pid = cc_pid;
  w->prev = c->tail;
  if (c->tail)
    c->tail->next = w;
  else
    c->head = w;
  c->tail = w;
  cc_lock_release_all(c->lock, &depth);
  sleep_on(o, w, deadline, &rc);
  rc2 = cc_lock_restore(c->lock, depth);
  if (rc2 == CC_EDEADLOCK) {
    uint32_t expect = WAITING;
    /* Without the lock the list is not ours: leave the node to a notify. */
    if (!atomic_compare_exchange_strong(&w->state, &expect, ABANDONED)) cc_free(w);
    return rc2;
  }
  notified = atomic_load_explicit(&w->state, memory_order_acquire) == NOTIFIED;
  if (!notified) unlink_waiter(c, w);
  cc_free(w);
  if (rc2 == CC_EINTR) rc = CC_EINTR;
  if (rc == CC_EINTR) {
    /* Do not swallow a notification meant for someone. */
    if (notified) notify_locked(c, 1);
    return CC_EINTR;
  }
  return notified ? 0 : CC_ETIMEOUT;
}
