/*
 * lock.c - lock and rlock over one futex word (see lock.h, docs/SYNC.md).
 *
 * Word states: 0 free; T (held by the actor with tag T = index + 1, nobody
 * parked); T | WAITERS (held, somebody may be parked). A waiter that takes
 * the lock after parking always sets WAITERS, since it cannot know whether
 * it was the last one parked: at worst one release makes a needless wake.
 * A waiter that leaves without the lock (timeout, interrupt) makes sure
 * that WAITERS is still set or passes the wake on, so nobody is stranded.
 */
#include "lock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mutex.h"
#include "pid.h"
#include "interrupt.h"
#include "wait.h"

#define MASK CC_LOCK_OWNER_MASK
#define WAITERS CC_LOCK_WAITERS
#define ORPHAN CC_LOCK_ORPHAN
#define L(o) ((cc_lock_t *)(o))

static cc_actor_t *owner_hook(cc_obj_t *o) {
  return cc_lock_owner(o);
}

/* The word just went from `w` to free: wake a waiter if one may be parked,
 * and free a lock whose references all went while it was held (nobody can
 * touch it after this). */
static void freed_word(cc_lock_t *l, uint32_t w) {
  if (w & WAITERS) cc_wake(&l->word, 1);
  if (w & ORPHAN) cc_obj_free(&l->h);
}

/* Called on the ending actor's own thread (thread.c abandon_holds), or by
 * the process reaper for the actor of a dead process (process.c). In the
 * second case a parked waiter may be taking the lock over at the same
 * moment (take_over): the word is released only by a CAS from a value that
 * names `a`, so exactly one of the two wins. The depth needs no reset:
 * every new owner sets it. */
static void abandon_hook(cc_obj_t *o, cc_actor_t *a) {
  cc_lock_t *l = L(o);
  uint32_t w = atomic_load(&l->word);
  if ((w & MASK) != a->index + 1) return;
  if (a == cc_self()) cc_unhold(o);
  do {
    if ((w & MASK) != a->index + 1) return;
  } while (!atomic_compare_exchange_weak_explicit(&l->word, &w, 0, memory_order_acq_rel,
                                                  memory_order_relaxed));
  freed_word(l, w);
}

/* The last reference went. A held lock lives on, marked, until its holder
 * releases it (or the holder's end abandons it): nobody else can reach it
 * any more, and the holder's hold list still points at it. */
static int linger_hook(cc_obj_t *o) {
  cc_lock_t *l = L(o);
  uint32_t w = atomic_load_explicit(&l->word, memory_order_acquire);
  do {
    if ((w & MASK) == 0) return 0;
  } while (!atomic_compare_exchange_weak_explicit(&l->word, &w, w | ORPHAN, memory_order_acq_rel,
                                                  memory_order_acquire));
  return 1;
}

const cc_type_t cc_lock_type = {
    .name = "lock", .owner = owner_hook, .abandon = abandon_hook, .linger = linger_hook};
const cc_type_t cc_rlock_type = {
    .name = "rlock", .owner = owner_hook, .abandon = abandon_hook, .linger = linger_hook};

cc_obj_t *cc_lock_new(const char *name, int recursive) {
  cc_lock_t *l = cc_obj_new(recursive ? &cc_rlock_type : &cc_lock_type, sizeof *l, name);
  if (!l) return NULL;
  l->recursive = recursive != 0;
  return &l->h;
}

cc_actor_t *cc_lock_owner(cc_obj_t *o) {
  uint32_t w = atomic_load_explicit(&L(o)->word, memory_order_acquire) & MASK;
  return w ? cc_actor_at(w - 1) : NULL;
}

int cc_lock_locked(cc_obj_t *o) {
  return (atomic_load_explicit(&L(o)->word, memory_order_relaxed) & MASK) != 0;
}

int cc_lock_held_by_me(cc_obj_t *o) {
  return (atomic_load_explicit(&L(o)->word, memory_order_relaxed) & MASK) == cc_self()->index + 1;
}

int cc_lock_is_recursive(const cc_obj_t *o) {
  return ((const cc_lock_t *)o)->recursive;
}

static inline int try_take(cc_lock_t *l, uint32_t expect, uint32_t val) {
  return atomic_compare_exchange_strong_explicit(&l->word, &expect, val, memory_order_acquire,
                                                 memory_order_relaxed);
}

/* The holder keeps no reference (that would be two more atomic operations
 * per acquire+release): a lock dropped by every Lua state while held lingers
 * (linger_hook) until it is released, since the actor's hold list and the
 * abandon hook still point at it. Parked waiters have references of their
 * own. */
static int got_it(cc_lock_t *l) {
  atomic_store_explicit(&l->depth, 1, memory_order_relaxed);
  cc_hold(&l->h);
  return 0;
}

/* ---- dead owner processes ---------------------------------------------- */

/* The word `w` names an owner whose process died: take the lock over with
 * one CAS (so only one waiter wins) and say so. */
static int take_over(cc_lock_t *l, uint32_t w, uint32_t me) {
  cc_actor_t *dead = cc_actor_at((w & MASK) - 1);
  cc_actor_snap_t snap; /* its slot may be reused as we look */
  int32_t pid = 0;
  if (dead) {
    cc_actor_snapshot(dead, &snap);
    pid = snap.pid;
  }
  char who[96];
  if (!dead || !cc_pid_dead(pid)) return 0;
  if (!try_take(l, w, me | WAITERS)) return 0; /* never ORPHAN: we hold a reference */
  atomic_fetch_add(&l->takeovers, 1);
  cc_actor_describe(cc_self(), who, sizeof who);
  fprintf(stderr,
          "conclua: warning: %s '%s' was held by process %d, which died; %s took it over\n",
          l->h.type->name, l->h.name, (int)pid, who);
  fflush(stderr);
  return 1;
}

/* ---- acquire: the wait's test (wait.h); arg[0] is our tag ---------------- */

/* Before parking: only a free lock is taken (without the waiters bit). */
static int spin_poll(cc_lock_t *l, uint32_t me, cc_wait_t *wt) {
  uint32_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
  if (w == 0 && try_take(l, 0, me)) return 0;
  wt->addr = &l->word;
  wt->val = w;
  return CC_WAIT_PARK;
}

/* Parked: a waiter that takes the lock sets the waiters bit, since it
 * cannot know whether it was the last one parked; one that parks makes sure
 * the bit is set. After a tick, an owner process that died is taken over. */
static int acq_poll(cc_wait_t *wt) {
  cc_lock_t *l = L(wt->obj);
  uint32_t me = (uint32_t)wt->arg[0];
  if (!wt->parked) return spin_poll(l, me, wt);
  for (;;) {
    uint32_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
    if ((w & MASK) == 0) {
      if (try_take(l, w, me | WAITERS)) return 0;
      continue;
    }
    if (!(w & WAITERS)) {
      if (!try_take(l, w, w | WAITERS)) continue;
      w |= WAITERS;
    }
    if (wt->ticked && (w & MASK) != me && take_over(l, w, me)) return 0;
    wt->addr = &l->word;
    wt->val = w;
    return CC_WAIT_PARK;
  }
}

/* Leaving a parked wait without the lock (timeout, interrupt, cancel). A
 * wake meant for the next waiter may have been spent on us: a free lock is
 * taken (timeout) or its wake passed on; a held one keeps WAITERS set so its
 * release wakes whoever is still parked. */
static int give_up(cc_lock_t *l, uint32_t me, int rc) {
  for (;;) {
    uint32_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
    if ((w & MASK) == 0) {
      if (rc == CC_ETIMEOUT) {
        if (try_take(l, w, me | WAITERS)) return 0;
        continue;
      }
      cc_wake(&l->word, 1);
      return rc;
    }
    if ((w & WAITERS) || try_take(l, w, w | WAITERS)) return rc;
  }
}

static int acq_leave(cc_wait_t *wt, int rc) {
  cc_lock_t *l = L(wt->obj);
  if (rc != 0 && wt->parked &&
      (rc == CC_ETIMEOUT || rc == CC_EINTR || rc == CC_ECANCELLED))
    rc = give_up(l, (uint32_t)wt->arg[0], rc);
  return rc == 0 ? got_it(l) : rc;
}

static const cc_wait_ops_t acquire_ops = {CC_WAIT_LOCK, 1, acq_poll, NULL, acq_leave};

int cc_lock_acquire_w(cc_wait_t *wt, cc_obj_t *o, cc_deadline_t deadline) {
  cc_lock_t *l = L(o);
  cc_actor_t *self = cc_self();
  uint32_t me = self->index + 1, w = 0;
  /* Its hold list is full: a lock it could not list would stay held after
   * it ended (only listed holds are released then). Taking one it holds
   * again (recursive) adds no hold. */
  if (cc_unlikely(atomic_load_explicit(&self->nheld, memory_order_relaxed) >= CC_MAX_HELD) &&
      !((atomic_load_explicit(&l->word, memory_order_relaxed) & MASK) == me && l->recursive))
    return CC_ETOOMANY;
  cc_hold_intent(self, o); /* a kill between the CAS and got_it stays findable */
  if (cc_likely(atomic_compare_exchange_strong_explicit(&l->word, &w, me, memory_order_acquire,
                                                        memory_order_relaxed)))
    return got_it(l);
  if ((w & MASK) == me && l->recursive) {
    uint32_t n = atomic_load_explicit(&l->depth, memory_order_relaxed);
    if (n >= INT32_MAX) return CC_EOVERFLOW;
    atomic_store_explicit(&l->depth, n + 1, memory_order_relaxed);
    return 0;
  }
  if (deadline == CC_NOW) return CC_ETIMEOUT;
  cc_wait_init(wt, &acquire_ops, o, deadline);
  wt->tick_ns = CC_LOCK_POLL_NS;
  wt->arg[0] = me;
  return CC_WAIT_PARK;
}

int cc_lock_acquire(cc_obj_t *o, cc_deadline_t deadline) {
  cc_wait_t wt;
  int rc = cc_lock_acquire_w(&wt, o, deadline);
  return cc_likely(rc != CC_WAIT_PARK) ? rc : cc_wait_run(&wt);
}

/* ---- release ------------------------------------------------------------ */

static void unlock_word(cc_lock_t *l) {
  atomic_store_explicit(&l->depth, 0, memory_order_relaxed);
  cc_unhold(&l->h);
  /* acq_rel: a lingering lock is freed here, after whatever the last
   * reference's owner did to it */
  freed_word(l, atomic_exchange_explicit(&l->word, 0, memory_order_acq_rel));
}

int cc_lock_release(cc_obj_t *o) {
  cc_lock_t *l = L(o);
  uint32_t me = cc_self()->index + 1, n;
  if ((atomic_load_explicit(&l->word, memory_order_relaxed) & MASK) != me) return CC_ENOTOWNER;
  n = atomic_load_explicit(&l->depth, memory_order_relaxed);
  if (n > 1) {
    atomic_store_explicit(&l->depth, n - 1, memory_order_relaxed);
    return 0;
  }
  unlock_word(l);
  return 0;
}

int cc_lock_release_all(cc_obj_t *o, uint32_t *depth) {
  cc_lock_t *l = L(o);
  uint32_t me = cc_self()->index + 1;
  if ((atomic_load_explicit(&l->word, memory_order_relaxed) & MASK) != me) return CC_ENOTOWNER;
  *depth = atomic_load_explicit(&l->depth, memory_order_relaxed);
  unlock_word(l);
  return 0;
}

int cc_lock_restore(cc_obj_t *o, uint32_t depth) {
  int rc = cc_lock_acquire(o, CC_FOREVER), intr = 0;
  if (rc == CC_EINTR) {
    /* The lock must come back even when interrupted (as in Python): wait
     * again, deaf to the interrupt, and report it afterwards. */
    int was = cc_thread_interruptible();
    cc_thread_set_interruptible(0);
    rc = cc_lock_acquire(o, CC_FOREVER);
    cc_thread_set_interruptible(was);
    intr = 1;
  }
  if (rc != 0) return rc;
  atomic_store_explicit(&L(o)->depth, depth ? depth : 1, memory_order_relaxed);
  return intr ? CC_EINTR : 0;
}
