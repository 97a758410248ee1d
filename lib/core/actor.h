/*
 * actor.h - the one instrumentation point: who waits on what, who holds what.
 *
 * An actor is anything that runs Lua code and can block: the main thread, a
 * conc thread, a forked process's main thread. Actors live in a table in the
 * shared arena, so a process can see what the others wait for. Every blocking
 * wait in the core brackets itself with cc_wait_begin/cc_wait_end and every
 * hold of a lock-like object is reported with cc_hold/cc_unhold. Deadlock
 * detection (below), conc.dump() and the trace timeline all read this.
 *
 * Cost when nothing reads it: a thread-local load and two plain stores per
 * wait, one store per hold; the trace hook is one predictable branch.
 */
#ifndef CC_ACTOR_H
#define CC_ACTOR_H

#include <stdatomic.h>
#include <stdint.h>

#include "arena.h"
#include "cc.h"

#define CC_MAX_HELD 32

/* A task (a coroutine of an event loop) counts as a thread of its process
 * everywhere but in messages. CC_ACTOR_RUNTIME is a thread the runtime
 * starts for itself (the process reaper): it runs no script, so the trace
 * records neither its start nor its end and gives it no running span;
 * everywhere else it counts as a thread. Its name says nothing: a script
 * may name a thread anything. Only for a thread that never waits through
 * cc_wait_begin: the end of such a wait would begin a running span that,
 * with no end recorded, lasts until the trace closes. */
enum cc_actor_kind {
  CC_ACTOR_THREAD = 0,
  CC_ACTOR_PROCESS = 1,
  CC_ACTOR_TASK = 2,
  CC_ACTOR_RUNTIME = 3
};
enum cc_actor_state { CC_ACTOR_FREE = 0, CC_ACTOR_RUNNING, CC_ACTOR_WAITING, CC_ACTOR_DONE };

/* What a wait is for: deadlock detection only follows CC_WAIT_LOCK edges. */
enum cc_wait_kind {
  CC_WAIT_LOCK = 1, /* lock, rlock, a condition's lock: joins the wait-for graph */
  CC_WAIT_COND,     /* condition wait (lock released meanwhile) */
  CC_WAIT_SEM,
  CC_WAIT_EVENT,
  CC_WAIT_BARRIER,
  CC_WAIT_QUEUE,
  CC_WAIT_JOIN,
  CC_WAIT_SLEEP,
  CC_WAIT_PIPE,
  CC_WAIT_OTHER
};

typedef struct cc_actor {
  _Atomic uint32_t state;
  uint32_t index;
  int64_t id;      /* thread id as Lua sees it */
  int32_t pid;     /* process it runs in */
  int32_t kind;
  char name[CC_NAME_MAX];
  /* Written by the actor itself; read by others under the graph lock or for
   * reports. */
  _Atomic(cc_obj_t *) waiting_on;
  _Atomic int32_t wait_kind;
  _Atomic int32_t wait_timed;
  _Atomic int64_t wait_since;
  _Atomic int32_t nheld;
  _Atomic(cc_obj_t *) held[CC_MAX_HELD];
  /* Owned by the thread module: the Thread/Process object this actor runs. */
  cc_obj_t *thread;
  struct cc_actor *next_free;
} cc_actor_t;

/* The actor table grows by chunks of CC_ACTORS_PER_CHUNK slots allocated
 * from the arena (a chunk fills one 32 KiB block), up to CC_ACTOR_CHUNKS
 * chunks (arena.h): over 300,000 actors, far beyond what the OS allows in
 * threads. Chunks are never moved or freed, so actor pointers and indexes
 * (which lock words hold) stay valid in every process of the family. */
#define CC_ACTORS_PER_CHUNK ((32768u - 64u) / (uint32_t)sizeof(cc_actor_t))
#define CC_ACTORS_LIMIT (CC_ACTORS_PER_CHUNK * (uint32_t)CC_ACTOR_CHUNKS)

/* Claims a free actor slot, growing the table when none is free. NULL when
 * the arena has no room for another chunk (CC_ENOMEM) or the table is at
 * CC_ACTORS_LIMIT (CC_EAGAIN): cc_actor_error() tells which. */
cc_actor_t *cc_actor_new(const char *name, int64_t id, int kind);
/* Reports CC_EV_START for `a` to the observer. cc_actor_new does it for
 * every kind but CC_ACTOR_PROCESS, whose pid is known only in the child:
 * the child's setup calls this once it has set it. */
void cc_actor_started(cc_actor_t *a);
/* Why the calling thread's last cc_actor_new returned NULL. */
int cc_actor_error(void);
/* Another actor's identity, copied whole: its slot may be freed and reused
 * (cc_actor_new fills it under actors_lock, as this reads it) while one
 * looks. For readers outside the actor's own thread that hold no other
 * lock (conc.dump, a lock's take-over of a dead owner). */
typedef struct cc_actor_snap {
  uint32_t state;
  int32_t pid, kind;
  char name[CC_NAME_MAX];
} cc_actor_snap_t;
void cc_actor_snapshot(const cc_actor_t *a, cc_actor_snap_t *s);
/* As cc_actor_describe, from a snapshot. */
void cc_actor_snap_describe(const cc_actor_snap_t *s, char *buf, size_t n);
/* Returns the slot. The actor must hold nothing (see cc_actor_release_all). */
void cc_actor_free(cc_actor_t *a);
/* Slots in the table now: cc_actor_at(i) is valid for every i below it.
 * Only grows. Callers that scan the table loop up to this. */
uint32_t cc_actor_count(void);
/* After the OS refused a new thread or process (pthread_create or fork
 * failed with EAGAIN or ENOMEM): writes into buf, and returns it, a phrase
 * naming the limit most likely hit, for the error message: "RLIMIT_NPROC
 * (ulimit -u) is 40 threads+processes for this user", "RLIMIT_AS (ulimit -v)
 * is 300 MiB, 290 MiB in use", the cgroup's pids.max, kernel.threads-max,
 * kernel.pid_max, vm.max_map_count, or "the system is out of memory".
 * Reads /proc and getrlimit: for error paths only. */
const char *cc_os_limit_hint(char *buf, size_t n);

/* The calling thread's actor (a task's while the task runs); created lazily
 * (named "main" for the first thread of the process family, "thread-<id>"
 * otherwise). Inline: every lock acquire and release asks, so the common
 * case is one thread-local load. */
extern _Thread_local cc_actor_t *cc_self_tls;
cc_actor_t *cc_self_slow(void);
static inline cc_actor_t *cc_self(void) {
  cc_actor_t *a = cc_self_tls;
  return cc_likely(a != NULL) ? a : cc_self_slow();
}
void cc_set_self(cc_actor_t *a);
/* The actor with this index, or NULL beyond cc_actor_count(). */
cc_actor_t *cc_actor_at(uint32_t index);

/* Records that the caller is about to block on `o`. For CC_WAIT_LOCK waits
 * without a deadline, it first checks the wait-for graph: if the wait would
 * close a cycle (including waiting on a lock the caller itself holds) it
 * records nothing and returns CC_EDEADLOCK; cc_deadlock_message() then
 * describes the cycle. Returns 0 otherwise. */
int cc_wait_begin(cc_obj_t *o, int kind, cc_deadline_t deadline);
/* Ends the wait begun by cc_wait_begin. result: 0, CC_ETIMEOUT, ... */
void cc_wait_end(cc_obj_t *o, int result);
/* The caller now holds / no longer holds `o` (recursive holds count once).
 * Inline below (after cc_observer): a lock pair makes both calls. */
static inline void cc_hold(cc_obj_t *o);
static inline void cc_unhold(cc_obj_t *o);
void cc_unhold_slow(cc_actor_t *a, cc_obj_t *o);
/* Message for the last CC_EDEADLOCK returned to this thread. */
const char *cc_deadlock_message(void);

/* Optional observer (trace timeline, lock-order checker). Called after each
 * event with the actor, object, event, and the wait result. NULL when unused.
 * Lifecycle events: CC_EV_START at the end of cc_actor_new (for a process:
 * in the child, cc_actor_started) and CC_EV_END at the start of
 * cc_actor_free (o NULL; on the thread that creates or frees the actor, not
 * necessarily its own), CC_EV_DEADLOCK when cc_wait_begin
 * refuses a wait that would close a cycle (result CC_EDEADLOCK;
 * cc_deadlock_message() on that thread describes it). */
enum cc_event { CC_EV_WAIT_BEGIN, CC_EV_WAIT_END, CC_EV_HOLD, CC_EV_UNHOLD,
                CC_EV_START, CC_EV_END, CC_EV_DEADLOCK };
#define CC_EV_LIFECYCLE 1 /* trace.c handles START/END/DEADLOCK when defined */
typedef void (*cc_observer_fn)(cc_actor_t *a, cc_obj_t *o, int event, int result);
extern cc_observer_fn cc_observer;

/* Only the actor's own thread writes its hold list; readers (deadlock
 * detection, dumps) load nheld with acquire, then the entries. */
static inline void cc_hold(cc_obj_t *o) {
  cc_actor_t *a = cc_self();
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  if (cc_likely(n < CC_MAX_HELD)) atomic_store_explicit(&a->held[n], o, memory_order_relaxed);
  atomic_store_explicit(&a->nheld, n + 1, memory_order_release);
  if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_HOLD, 0);
}

/* Before trying to take a lock-like object: names it in the slot its hold
 * will use (one past nheld). A process killed between winning the object's
 * word and cc_hold, or between cc_unhold and letting the word go (the slot
 * then still names the object), leaves it there for the reaper, which looks
 * one slot past nheld (cc_actor_release_holds) and releases what the dead
 * actor still owns. */
static inline void cc_hold_intent(cc_actor_t *a, cc_obj_t *o) {
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  if (cc_likely(n < CC_MAX_HELD)) atomic_store_explicit(&a->held[n], o, memory_order_relaxed);
}

/* The last hold ending first is the common case; else the slow path
 * finds it and keeps the others' order. Either way the slot one past the
 * new nheld names `o` afterwards (see cc_hold_intent). */
static inline void cc_unhold(cc_obj_t *o) {
  cc_actor_t *a = cc_self();
  int32_t n = atomic_load_explicit(&a->nheld, memory_order_relaxed);
  if (cc_likely(n > 0 && n <= CC_MAX_HELD &&
                atomic_load_explicit(&a->held[n - 1], memory_order_relaxed) == o)) {
    atomic_store_explicit(&a->nheld, n - 1, memory_order_release);
    if (cc_unlikely(cc_observer != NULL)) cc_observer(a, o, CC_EV_UNHOLD, 0);
    return;
  }
  cc_unhold_slow(a, o);
}

/* Optional park hook (conc.dump's wait sites): called by cc_wait_begin only,
 * on the actor's own thread, after the wait is recorded, so it costs nothing
 * on the lock fast path (cc_hold/cc_unhold) and cc_observer can stay NULL
 * while nothing traces. Set once, before threads. NULL when unused. */
typedef void (*cc_park_fn)(cc_actor_t *a, cc_obj_t *o);
extern cc_park_fn cc_park_hook;
#define CC_PARK_HOOK 1 /* trace.c installs its site recorder here */

/* Human-readable one-line description "thread 'name'" into buf. */
void cc_actor_describe(const cc_actor_t *a, char *buf, size_t n);

#endif
