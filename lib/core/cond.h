/*
 * cond.h - condition variables over a lock or an rlock (conc.condition).
 *
 * Python semantics: wait() and notify() require the caller to hold the
 * condition's lock; wait() releases it (every rlock level), sleeps until
 * notified or the deadline, and re-acquires it through the lock's normal,
 * deadlock-checked path before returning. notify(n) wakes at most n waiters,
 * oldest first; notify_all() wakes every waiter. There are no spurious
 * wakeups: a 0 return means this waiter was notified.
 *
 * Each waiter parks on its own futex word (a small node in the arena, linked
 * into the condition's FIFO, which the condition's lock protects), so
 * notify(n) is exact. The condition holds a reference to its lock. A waiter
 * whose process died is skipped (and its node freed) by the next notify:
 * it neither counts as woken nor as waiting.
 */
#ifndef CC_COND_H
#define CC_COND_H

#include <stdint.h>

#include "arena.h"
#include "cc.h"

typedef struct cc_cond_waiter cc_cond_waiter_t;

typedef struct cc_cond {
  cc_obj_t h;
  cc_obj_t *lock;          /* lock or rlock; a reference */
  cc_cond_waiter_t *head;  /* FIFO of waiters, guarded by `lock` */
  cc_cond_waiter_t *tail;
} cc_cond_t;

extern const cc_type_t cc_cond_type; /* "condition" */

/* A new condition over `lock` (a lock or rlock from cc_lock_new; the
 * condition takes its own reference), or over a fresh rlock named `name`
 * when lock is NULL. NULL when out of shared memory. */
cc_obj_t *cc_cond_new(const char *name, cc_obj_t *lock);
/* The condition's lock (no new reference). */
cc_obj_t *cc_cond_lock(cc_obj_t *c);

/* Waits for a notification. Returns 0 (notified), CC_ETIMEOUT,
 * CC_ENOTOWNER (caller does not hold the lock: nothing happened),
 * CC_ENOMEM, CC_EINTR (interrupted; the lock is held again), or
 * CC_EDEADLOCK (re-acquiring the lock would never end: the lock is NOT
 * held on return). */
int cc_cond_wait(cc_obj_t *c, cc_deadline_t deadline);
/* The same wait in three steps, for callers that may be tasks (wait.h):
 * cc_cond_wait_w returns CC_ENOTOWNER or CC_ENOMEM (nothing happened), or
 * CC_WAIT_PARK with the node queued, the lock released and *w ready to run
 * (the wait for a notification). With that wait's result, cc_cond_relock_w
 * starts the lock's re-acquire on the same *w (forever, deadlock-checked):
 * its result, or CC_WAIT_PARK to run *w again. cc_cond_wait_end, with the
 * re-acquire's result, finishes: the results of cc_cond_wait, where
 * CC_ECANCELLED (the first wait was cancelled) comes back with the lock
 * held, like CC_EINTR. A re-acquire result of CC_EINTR or CC_ECANCELLED
 * means "held again, but interrupted (cancelled) meanwhile". */
struct cc_wait;
int cc_cond_wait_w(struct cc_wait *w, cc_obj_t *c, cc_deadline_t deadline);
int cc_cond_relock_w(struct cc_wait *w, int rc);
int cc_cond_wait_end(struct cc_wait *w, int rc);
/* Wakes up to n waiters (n < 0: all). 0 or CC_ENOTOWNER. Never blocks.
 * *woken (may be NULL) receives how many were woken. */
int cc_cond_notify(cc_obj_t *c, int n, int *woken);
/* How many waiters are parked and not yet notified. The caller must hold the
 * condition's lock (else the count is only a hint). */
int cc_cond_waiting(cc_obj_t *c);

#endif
