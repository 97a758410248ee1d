/*
 * ltask.h - coroutine tasks on a libuv loop, and how a blocking binding
 * suspends a task instead of its thread (docs/TASKS.md).
 *
 * Every thread has at most one loop (conc_loop_t), created on first use:
 * conc.run runs it until its main task ends; a TCP call in a plain thread
 * runs it until that call completes. Callbacks of libuv never call Lua:
 * they only mark tasks ready, and the loop resumes ready tasks in order.
 *
 * A blocking binding does:
 *
 *   cc_wait_t local, *w = conc_wait_slot(L);   (the task's slot, or NULL)
 *   if (!w) w = &local;
 *   rc = cc_sem_acquire_w(w, o, deadline);     (fast path, or CC_WAIT_PARK)
 *   if (rc == CC_WAIT_PARK) return conc_wait(L, w, done);
 *   return done(L, rc, w);
 *
 * In a plain thread conc_wait blocks the thread (cc_wait_run); in a task it
 * suspends the task and calls done when the wait ends, from a continuation.
 * Inside a task the calling actor (cc_self) is the task's own, so a lock
 * acquired in a task is owned by that task.
 */
#ifndef LTASK_H
#define LTASK_H

#include <uv.h>

#include "lconc.h"
#include "wait.h"

typedef struct conc_task conc_task_t;
typedef struct conc_loop conc_loop_t;

/* Pushes a wait's results (or raises); rc is the wait's result. */
typedef int (*conc_wait_done_fn)(lua_State *L, int rc, cc_wait_t *w);

/* The wait slot of the task running L when L can suspend (a task's own
 * coroutine, yieldable), else NULL: the caller then waits as a thread.
 * Raises "cancelled" when the task has a cancel pending. Outside conc.run
 * it costs one thread-local load. */
extern _Thread_local conc_task_t *conc_running_task;
cc_wait_t *conc_wait_slot_slow(lua_State *L);
static inline cc_wait_t *conc_wait_slot(lua_State *L) {
  return cc_likely(conc_running_task == NULL) ? NULL : conc_wait_slot_slow(L);
}
/* Runs the prepared wait *w (see above) and returns done(L, rc, w). */
int conc_wait(lua_State *L, cc_wait_t *w, conc_wait_done_fn done);
/* The same with flags for waits that must end in done even when the task
 * is cancelled (a condition re-acquires its lock first):
 * CONC_WAIT_SEE_CANCEL: a cancel ends the wait with rc CC_ECANCELLED in
 * done (which must raise it: conc_task_raise_cancelled) instead of raising;
 * CONC_WAIT_SHIELD: a cancel does not end this wait; it stays pending
 * (conc_cancel_pending) for done or the next suspension. A thread ignores
 * both. done may start another wait on w (conc_wait again). */
enum { CONC_WAIT_SEE_CANCEL = 1, CONC_WAIT_SHIELD = 2 };
int conc_wait_ex(lua_State *L, cc_wait_t *w, conc_wait_done_fn done, int flags);
/* Non-zero when L is a task with a cancel not yet delivered. */
int conc_cancel_pending(lua_State *L);

/* ---- for I/O bindings (ltcp.c) ------------------------------------------ */

/* The calling thread's loop, created on first use (NULL, with a Lua error
 * raised, never: raises when libuv cannot make one). */
conc_loop_t *conc_loop_get(lua_State *L);
uv_loop_t *conc_loop_uv(conc_loop_t *lp);
/* The task running L if L can suspend, else NULL. */
conc_task_t *conc_task_of(lua_State *L);

/* One step of an I/O call: returns the number of results pushed, or -1
 * for "not yet" (the libuv operation it started will call conc_io_wake). */
typedef int (*conc_io_step_fn)(lua_State *L);
/* Runs step until it completes: a task suspends between steps (woken by
 * conc_io_wake, or by the deadline: then timeout(L) gives the results);
 * a plain thread runs its loop once between steps. `abandon` forgets the
 * started operation (its callback must no longer wake anybody) before the
 * "cancelled" error of a cancelled task or an interrupt is raised. */
int conc_io(lua_State *L, conc_io_step_fn step, conc_io_step_fn timeout,
            conc_io_step_fn abandon, cc_deadline_t deadline);
/* The handle of the task (or thread) waiting in conc_io, for the callback. */
void *conc_io_waiter(lua_State *L);
/* From a libuv callback: the waiter given by conc_io_waiter goes on. */
void conc_io_wake(void *waiter);

/* Raises the "cancelled" error. */
int conc_task_raise_cancelled(lua_State *L);

/* ---- for conc.dump (ldump.c) ------------------------------------------------ */

/* A live task of this thread's loop, as conc.dump shows it. */
typedef struct conc_task_view {
  lua_State *co;     /* suspended: its stack may be read, on this thread only */
  int64_t id;
  int is_main;       /* conc.run's task */
  int actor;         /* the index of its actor, or -1 */
  const char *state; /* "ready", "sleeping", "awaiting", "in I/O", "waiting" */
  int64_t since;     /* cc_now_ns when it went to sleep or began to await, or 0 */
  int64_t left_ms;   /* sleeping: milliseconds left, else -1 */
  int64_t awaited;   /* awaiting: the id of the task it awaits, else 0 */
} conc_task_view_t;
/* On the loop's own thread: sets *thread_actor (the index of the loop's
 * thread actor), calls each for every live task of its loop (the running
 * one too if with_running: from a hook inside it, whose stack this thread
 * may read), and returns how many tasks are live; -1 (and nothing else)
 * when no loop runs here. Reads nothing of another thread. */
int conc_loop_view(void (*each)(void *ud, const conc_task_view_t *v), void *ud,
                   int *thread_actor, int with_running);
/* The dump asks idle loops through their async handle: while a dump asks
 * (conc_dump_asking non-zero), a loop that wakes answers on its own thread
 * (conc_dump_answer). A loop hands its handle to the dump when made and
 * takes it back when closed. */
extern _Atomic int conc_dump_asking;
void conc_dump_answer(void);
void conc_dump_wake_attach(uv_async_t *a);
void conc_dump_wake_detach(uv_async_t *a);
/* This OS thread's loop's handle, or NULL: the loop outlives a state that
 * a worker closes, so the next state registered here takes it. */
uv_async_t *conc_loop_wake_here(void);

#endif
