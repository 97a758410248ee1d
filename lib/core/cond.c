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
#include "interrupt.h"
#include "lock.h"
#include "mutex.h"
#include "pid.h"
#include "wait.h"

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

const cc_type_t cc_cond_type = {.name = "condition", .destroy = cond_destroy};

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
      cc_wake(&w->state, 1);
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

/* ---- wait: the wait's test (wait.h) --------------------------------------
 * A wait has three steps on one cc_wait_t: cc_cond_wait_w (queue the node,
 * release the lock, then wait for the node's word), cc_cond_relock_w (the
 * lock's own acquire, deadlock-checked) and cc_cond_wait_end. The lock's
 * acquire uses arg[0]; the condition keeps its state in arg[1..4]. */

#define A_NODE 1
#define A_COND 2
#define A_DEPTH 3
#define A_RC 4

static int notified_poll(cc_wait_t *w) {
  cc_cond_waiter_t *n = (cc_cond_waiter_t *)w->arg[A_NODE];
  if (atomic_load_explicit(&n->state, memory_order_acquire) != WAITING) return 0;
  w->addr = &n->state;
  w->val = WAITING;
  return CC_WAIT_PARK;
}

static const cc_wait_ops_t notified_ops = {CC_WAIT_COND, 0, notified_poll, NULL, NULL};

int cc_cond_wait_w(cc_wait_t *w, cc_obj_t *o, cc_deadline_t deadline) {
  cc_cond_t *c = C(o);
  cc_cond_waiter_t *n;
  uint32_t depth;
  if (!cc_lock_held_by_me(c->lock)) return CC_ENOTOWNER;
  if (!(n = cc_calloc(sizeof *n))) return CC_ENOMEM;
  n->pid = cc_pid;
  n->prev = c->tail;
  if (c->tail)
    c->tail->next = n;
  else
    c->head = n;
  c->tail = n;
  cc_lock_release_all(c->lock, &depth);
  cc_wait_init(w, &notified_ops, o, deadline);
  w->arg[A_NODE] = (uintptr_t)n;
  w->arg[A_COND] = (uintptr_t)o;
  w->arg[A_DEPTH] = depth;
  return CC_WAIT_PARK;
}

int cc_cond_relock_w(cc_wait_t *w, int rc) {
  cc_cond_t *c = C((cc_obj_t *)w->arg[A_COND]);
  w->arg[A_RC] = (uintptr_t)(intptr_t)rc;
  return cc_lock_acquire_w(w, c->lock, CC_FOREVER);
}

int cc_cond_wait_end(cc_wait_t *w, int rc2) {
  cc_cond_t *c = C((cc_obj_t *)w->arg[A_COND]);
  cc_cond_waiter_t *n = (cc_cond_waiter_t *)w->arg[A_NODE];
  int rc = (int)(intptr_t)w->arg[A_RC], notified;
  if (rc2 != 0 && rc2 != CC_EINTR && rc2 != CC_ECANCELLED) {
    uint32_t expect = WAITING;
    /* Without the lock the list is not ours: leave the node to a notify. */
    if (!atomic_compare_exchange_strong(&n->state, &expect, ABANDONED)) cc_free(n);
    return rc2;
  }
  atomic_store_explicit(&((cc_lock_t *)c->lock)->depth,
                        w->arg[A_DEPTH] ? (uint32_t)w->arg[A_DEPTH] : 1, memory_order_relaxed);
  notified = atomic_load_explicit(&n->state, memory_order_acquire) == NOTIFIED;
  if (!notified) unlink_waiter(c, n);
  cc_free(n);
  if (rc2 == CC_EINTR || rc2 == CC_ECANCELLED) rc = rc2;
  if (rc == CC_EINTR || rc == CC_ECANCELLED) {
    /* Do not swallow a notification meant for someone. */
    if (notified) notify_locked(c, 1);
    return rc;
  }
  return notified ? 0 : CC_ETIMEOUT;
}

int cc_cond_wait(cc_obj_t *o, cc_deadline_t deadline) {
  cc_wait_t w;
  int rc = cc_cond_wait_w(&w, o, deadline);
  if (rc != CC_WAIT_PARK) return rc;
  rc = cc_wait_run(&w);
  rc = cc_cond_relock_w(&w, rc);
  if (rc == CC_WAIT_PARK) rc = cc_wait_run(&w);
  if (rc == CC_EINTR) {
    /* The lock must come back even when interrupted (as in Python): wait
     * again, deaf to the interrupt, and report it afterwards. */
    int was = cc_thread_interruptible();
    cc_thread_set_interruptible(0);
    rc = cc_lock_acquire_w(&w, C(o)->lock, CC_FOREVER);
    if (rc == CC_WAIT_PARK) rc = cc_wait_run(&w);
    cc_thread_set_interruptible(was);
    if (rc == 0) rc = CC_EINTR;
  }
  return cc_cond_wait_end(&w, rc);
}
