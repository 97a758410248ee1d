/*
 * thread.h - Thread objects and the pool of idle OS threads that run them.
 *
 * Spawning a conc thread hands a job to an idle worker (a parked pthread that
 * already prepared a fresh context, i.e. a new lua_State, while it was idle)
 * and wakes it; only when no worker is idle is a new pthread created. After a
 * job the worker throws its context away and prepares a new one before it
 * parks again, so no job ever sees a previous job's leftovers and the cost of
 * a fresh context is off the spawner's path.
 *
 * The core knows nothing of Lua: the binding installs the three callbacks.
 */
#ifndef CC_THREAD_H
#define CC_THREAD_H

#include <stdatomic.h>
#include <stdint.h>

#include "actor.h"
#include "arena.h"
#include "interrupt.h" /* cc_thread_set_interruptible */

enum cc_thread_status { CC_T_RUNNING = 0, CC_T_OK = 1, CC_T_ERROR = 2 };

/* A conc thread or process as seen from Lua. Lives in the arena. */
typedef struct cc_thread {
  cc_obj_t h; /* h.name is the thread's name */
  int64_t tid;
  int32_t daemon;
  int32_t is_process;
  int32_t pid;     /* the process it runs in (or the child's pid) */
  _Atomic uint32_t done; /* futex word: 0 running, 1 finished */
  int32_t status;        /* cc_thread_status, valid once done */
  int32_t exitcode;      /* processes */
  _Atomic uint32_t watch; /* who reports an error: CC_WATCH_* below */
  void *job;             /* encoded function and arguments (arena): see cc_thread_drop_job */
  size_t job_len;
  void *result;          /* encoded results or error (arena), valid once done */
  size_t result_len;
  char spawn_site[160];
  cc_actor_t *actor;
  struct cc_thread *reg_prev, *reg_next; /* live registry, under registry_lock */
} cc_thread_t;

extern const cc_type_t cc_thread_type;

/* The "observed" rule: an error is reported exactly once, either raised by
 * the joins that were waiting when the thread ended, or (no join waiting)
 * printed by the finisher right then, before `done` is published. It is
 * decided at one point, with one atomic on `watch`: a join counts itself in
 * (CC_WATCH_JOINERS) before it looks at `done` and out when it leaves; the
 * finisher sets CC_WATCH_DECIDED once, before it publishes `done`, and the
 * count it sees then settles who reports. A join that leaves after the
 * decision (even on a timeout) waits for `done` and raises. A join that
 * starts after the thread ended re-raises the error too (join returns the
 * outcome), but nothing is printed again. Processes follow the same rule;
 * their finisher is the reaper (or the joiner that settles a lost child). */
#define CC_WATCH_JOINERS 0x3fffffffu /* joins waiting right now */
#define CC_WATCH_DECIDED 0x40000000u /* the finisher has decided */
#define CC_WATCH_PRINTED 0x80000000u /* ... and printed the error itself */

/* Callbacks the binding provides. `prepare` runs on the worker thread while
 * it is idle and returns a fresh context (NULL on failure); `run` runs a job
 * in that context; `discard` destroys a used context. `report_error` prints
 * the error of a Thread that ended with no join waiting (the observed rule
 * above); it runs on the finishing thread, before `done` is published. */
typedef struct cc_thread_hooks {
  void *(*prepare)(void);
  void (*run)(void *ctx, cc_thread_t *t);
  void (*discard)(void *ctx);
  void (*report_error)(cc_thread_t *t);
  /* Drops what encoded bytes hold (object references) before they are
   * freed: applied to the job and to successful results, of threads and
   * processes alike. May be NULL. */
  void (*release_payload)(const void *data, size_t len);
} cc_thread_hooks_t;
void cc_thread_set_hooks(const cc_thread_hooks_t *hooks);

/* A new Thread object (one reference, for the caller) with a fresh id and
 * default name "thread-<id>" when name is NULL or empty. */
cc_thread_t *cc_thread_new(const char *name, int daemon);

/* Starts t on a worker. Takes ownership of t->job. The worker holds its own
 * reference until the job ends. Returns 0, CC_EAGAIN (no thread could be
 * created) or CC_ENOMEM. */
int cc_thread_start(cc_thread_t *t);

/* Called by the run hook when the job is over: releases what the actor
 * still holds, stores the encoded outcome (an arena block the thread takes
 * over), reports an error nobody waits for (the observed rule), marks the
 * thread done, wakes joiners. */
void cc_thread_finish(cc_thread_t *t, int status, void *result, size_t len);

/* Waits until t is done or the deadline passes: 0 or CC_ETIMEOUT (or
 * CC_EINTR when interrupted). Goes through the instrumentation point and
 * counts itself as a waiting join for the observed rule: 0 means the
 * outcome is there, and an error in it is the caller's to raise. */
int cc_thread_join(cc_thread_t *t, cc_deadline_t deadline);
/* The same wait, woken every `slice_ns` (0: never) to call `poll(t)`, which
 * may finish t itself (a Process whose forker died). */
int cc_thread_join_poll(cc_thread_t *t, cc_deadline_t deadline, int64_t slice_ns,
                        void (*poll)(cc_thread_t *t));
/* For callers that may be tasks (wait.h): 0 or CC_ETIMEOUT at once, or
 * CC_WAIT_PARK with *w ready to run (cc_thread_join_poll is this plus
 * cc_wait_run). */
struct cc_wait;
int cc_thread_join_w(struct cc_wait *w, cc_thread_t *t, cc_deadline_t deadline, int64_t slice_ns,
                     void (*poll)(cc_thread_t *t));
int cc_thread_alive(const cc_thread_t *t);

/* The finisher's side of the observed rule, for the core modules that end
 * a Thread or Process themselves: call with the outcome stored and before
 * `done` is published. Returns 1 when the outcome is an error, `printable`
 * (a Lua error, whose traceback would otherwise be lost) and no join was
 * waiting: the caller must print it (CC_WATCH_PRINTED is set). Only the
 * first call decides; later ones return 0. */
int cc_thread_decide_report(cc_thread_t *t, int printable);
/* Stores `text` (copied into the arena) as t's error outcome. */
void cc_thread_set_error_text(cc_thread_t *t, const char *text);
/* Publishes `done` and wakes every join. */
void cc_thread_publish_done(cc_thread_t *t);

/* Takes t->job away and frees it, dropping the object references it holds.
 * Clears the pointer first, then releases: a process killed anywhere in
 * here leaks the references at worst, never releases or frees twice (the
 * reaper calls it again for a child that died). Every owner of a job (the
 * run hook once it has decoded it, the destroy hooks, the reaper) uses it. */
void cc_thread_drop_job(cc_thread_t *t);
/* What Thread and Process destruction share: drops the job and the outcome. */
void cc_thread_release_fields(cc_thread_t *t);

/* Registry of live threads and processes (for conc.threads and dumps).
 * The callback runs with the registry lock held: it must not block. Stops
 * when it returns non-zero. */
void cc_thread_foreach(int (*fn)(cc_thread_t *t, void *ud), void *ud);
void cc_thread_register(cc_thread_t *t);
void cc_thread_unregister(cc_thread_t *t);

/* Waits for every running non-daemon thread started by this process (and
 * every non-daemon child process it forked: see process.h). */
void cc_thread_wait_nondaemon(void);
/* The same wait, ending early: 0 when they are all done, CC_ETIMEOUT at the
 * deadline, CC_EINTR on an interrupt (when the caller is the interruptible
 * thread). */
int cc_thread_wait_nondaemon_until(cc_deadline_t deadline);
/* Starts a detached pthread running fn(arg) with `stack` bytes of stack and
 * every asynchronous signal blocked (SIGINT and SIGQUIT belong to the main
 * thread; faults stay deliverable): the one way the runtime starts its own
 * threads (workers, the reaper, pool monitors). 0 or CC_EAGAIN. */
int cc_thread_spawn_detached(void *(*fn)(void *), void *arg, size_t stack);

/* Stops this process's worker pthreads in order: wakes the idle ones, which
 * discard their prepared contexts and end, and waits until every worker not
 * running a daemon job has ended. Call after cc_thread_wait_nondaemon, when
 * the state that opened the runtime closes. Later starts work as before. */
void cc_thread_stop_workers(void);
/* Resets this process's pool and counters in a forked child (fork.c calls
 * it, in the order docs/LOCKING.md gives). */
void cc_thread_after_fork(void);
/* Counts delta (+1 / -1) more non-daemon activities that
 * cc_thread_wait_nondaemon waits for; the process module counts its
 * non-daemon children with it. */
void cc_thread_count_nondaemon(int delta);


#endif
