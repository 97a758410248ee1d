/*
 * lock.h - user-visible locks (lock and rlock), process-shared.
 *
 * CONTRACT (other modules rely on exactly these four calls):
 *   cc_lock_new(name, recursive)  -> a lock object with one reference, or NULL
 *   cc_lock_acquire(l, deadline)  -> 0, CC_ETIMEOUT, CC_EDEADLOCK, CC_EINTR
 *   cc_lock_release(l)            -> 0 or CC_ENOTOWNER
 *   cc_lock_held_by_me(l)         -> non-zero when the calling actor owns it
 * Every blocking wait goes through cc_wait_begin/cc_wait_end (actor.h) and
 * every hold is reported with cc_hold/cc_unhold.
 *
 * Design (docs/SYNC.md). A lock is one 32-bit futex word in the shared arena:
 * 0 when free, else the owner actor's index + 1, with CC_LOCK_WAITERS set when
 * someone may be parked on it. Uncontended acquire is one CAS, release one
 * exchange (plus a futex wake only when the waiters bit was set). A contended
 * acquire spins briefly, then parks, through the one wait primitive (wait.h).
 *
 * Before parking without a deadline, the acquirer asks cc_wait_begin
 * (CC_WAIT_LOCK) whether the wait closes a cycle of lock waits; if so (a
 * non-reentrant lock the caller already holds included) it fails at once with
 * CC_EDEADLOCK and cc_deadlock_message() names the cycle. Timed waits are not
 * edges of the wait-for graph: they end by themselves.
 *
 * Ownership is by actor (thread or process). An owner thread that ends while
 * holding a lock has it released through the type's abandon hook (thread.c
 * prints the warning). An owner process that dies is noticed by a parked
 * waiter (it polls every CC_LOCK_POLL_NS), which takes the lock over and
 * prints a warning naming the lock and the dead pid.
 *
 * All functions are safe from any thread of any process of the family.
 */
#ifndef CC_LOCK_H
#define CC_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "actor.h"
#include "arena.h"
#include "cc.h"

#define CC_LOCK_WAITERS 0x80000000u
/* Every reference went while the lock was held: its release frees it (the
 * holder keeps no reference of its own, which would cost two atomic
 * operations on every acquire+release). */
#define CC_LOCK_ORPHAN 0x40000000u
#define CC_LOCK_OWNER_MASK 0x3fffffffu
/* How often a parked waiter checks whether the owner process still exists. */
#define CC_LOCK_POLL_NS 100000000

typedef struct cc_lock {
  cc_obj_t h;
  _Atomic uint32_t word;     /* 0 free; owner index + 1 | CC_LOCK_WAITERS | CC_LOCK_ORPHAN */
  _Atomic uint32_t depth;    /* recursion depth: written by the owner only */
  int32_t recursive;
  _Atomic int32_t takeovers; /* times taken over from a dead process */
} cc_lock_t;

extern const cc_type_t cc_lock_type;  /* "lock" */
extern const cc_type_t cc_rlock_type; /* "rlock" */

/* A new lock (recursive: an rlock) with one reference, or NULL when out of
 * shared memory. `name` may be NULL. */
cc_obj_t *cc_lock_new(const char *name, int recursive);

/* Acquires l (a lock or an rlock), blocking until `deadline`. Returns 0;
 * CC_ETIMEOUT (deadline passed; CC_NOW never blocks); CC_EDEADLOCK (untimed
 * wait that could never end: cc_deadlock_message() says why); CC_EINTR
 * (interrupted main thread); CC_EOVERFLOW (rlock depth beyond 2^31). */
int cc_lock_acquire(cc_obj_t *l, cc_deadline_t deadline);
/* For callers that may be tasks (wait.h): the result at once (the fast
 * path), or CC_WAIT_PARK with *w set up for cc_wait_run. */
struct cc_wait;
int cc_lock_acquire_w(struct cc_wait *w, cc_obj_t *l, cc_deadline_t deadline);
/* Releases one level. 0, or CC_ENOTOWNER when the caller does not hold l.
 * Never blocks. */
int cc_lock_release(cc_obj_t *l);
/* Non-zero when the calling actor holds l. */
int cc_lock_held_by_me(cc_obj_t *l);

/* Non-zero when anybody holds l. */
int cc_lock_locked(cc_obj_t *l);
/* The owning actor, or NULL (for dumps and the deadlock walk). */
cc_actor_t *cc_lock_owner(cc_obj_t *l);
/* True for an rlock. */
int cc_lock_is_recursive(const cc_obj_t *l);

/* For conditions: releases every level the caller holds and stores the depth
 * in *depth (CC_ENOTOWNER if not held). cc_lock_restore re-acquires through
 * the normal, deadlock-checked path (waiting forever; CC_EINTR is retried and
 * reported only after the lock is back) and restores the depth. Returns 0,
 * CC_EDEADLOCK (lock not re-acquired) or CC_EINTR (lock re-acquired). */
int cc_lock_release_all(cc_obj_t *l, uint32_t *depth);
int cc_lock_restore(cc_obj_t *l, uint32_t depth);

#endif
