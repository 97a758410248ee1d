/*
 * ltask_int.h - the inside of the task machinery, shared by its files:
 * ltask_loop.c (a thread's loop: creation, ready queue, timers, bell,
 * rounds), ltask.c (tasks, the Task object, conc.run, conc.gather) and
 * lconc_io.c (conc.sleep, a blocking call's wait, I/O steps). Nothing
 * outside them includes it; bindings use ltask.h.
 */
#ifndef LTASK_INT_H
#define LTASK_INT_H

#include <pthread.h>

#include "actor.h"
#include "ltask.h"

enum { T_NEW, T_READY, T_RUNNING, T_SLEEP, T_WAIT, T_AWAIT, T_IO, T_DONE };

/* What a task needs to block on a primitive (most tasks never do: a
 * sleep or I/O needs none of it), kept out of the task so an idle task
 * stays small (task_idle_bytes). */
typedef struct conc_task_wait {
  cc_wait_t wait;
  conc_wait_done_fn done;
  cc_waiter_t *waiter;
} conc_task_wait_t;

/* A switch (resume, conc.sleep(0), back to the ready queue) touches only
 * the first fields (56 bytes: one cache line, or two): with 100k tasks a
 * round walks far more memory than the caches hold, and a switch costs its
 * cache misses more than its instructions (docs/TASKS.md, "Switch cost").
 * run_ready prefetches them, and through the hints what Lua will touch. */
struct conc_task {
  lua_State *co;
  conc_loop_t *loop;
  cc_actor_t *actor;  /* its own actor, made when it first needs one */
  const void *ci_hint;    /* its CallInfo at its last yield (prefetch only) */
  const void *stack_hint; /* where that CallInfo's frame is (prefetch only) */
  const void *fn_hint;    /* its function (prefetch only) */
  int32_t why;        /* how the suspension ended: 0 or CC_E* */
  uint8_t state;      /* T_* */
  uint8_t started;    /* resumed at least once (before: nargs on its stack) */
  uint8_t cancel_pending; /* delivered at the next suspension */
  uint8_t cancelled;  /* ended by a cancel */
  /* ---- the rest: creation, waits, the end ---- */
  int nargs, nres;
  uint8_t ok;         /* done: returned (1) or raised (0) */
  uint8_t retrieved;  /* someone saw its error */
  uint8_t is_main;
  uint8_t wait_flags; /* CONC_WAIT_* of the wait in progress */
  int ref;            /* registry reference while live */
  int64_t id;
  conc_task_t *prev_all, *next_all;   /* the loop's live tasks */
  conc_task_t *awaited;               /* the task this one awaits */
  conc_task_t *awaiters, *await_next; /* tasks awaiting this one */
  int64_t since;       /* cc_now_ns at its sleep or await (for conc.dump) */
  uv_timer_t *timer;
  conc_task_wait_t *w; /* made by its first blocking call (conc_wait_slot) */
};

struct conc_loop {
  uv_loop_t uv;
  uv_async_t async;
  uv_timer_t intr;           /* Ctrl-C check while the loop runs */
  cc_bell_t *bell;
  pthread_t helper;
  int helper_on, running, interrupted;
  /* Ready tasks: a ring of rcap (a power of two, at least `live`: a task
   * is in it at most once, so conc_ready never needs to grow it). */
  conc_task_t **ready;
  uint32_t rcap, rhead, rcount;
  /* Free slots of the table of live tasks (ltask.c, live_keep): room for
   * rcap, which spawn keeps at least nslots (a slot is freed only by a task
   * that had one; a lost task keeps its slot after it leaves `live`). */
  int *free_slots;
  int nslots, nfree;
  conc_task_t *all;          /* live */
  conc_task_t *lost;         /* ended with an error: see report_lost */
  conc_task_t *retrieved;    /* lost ones whose error was retrieved since */
  int live;
  int nwait;                 /* tasks in T_WAIT: worth spinning for */
  cc_actor_t *thread_actor;
  lua_State *L;
  conc_task_t *current;
  conc_task_t *main;         /* conc.run's task */
  int main_done_seen;
  int io_done;               /* a plain thread's I/O step may go on */
};

/* The calling thread's loop (NULL before its first use). */
extern _Thread_local conc_loop_t *conc_tl_loop;

/* ltask_loop.c */
void conc_ready(conc_task_t *t);       /* to the back of the ready queue */
int conc_ready_reserve(conc_loop_t *lp, uint32_t n); /* room for n tasks; 0 or CC_ENOMEM */
void conc_stop_timer(conc_task_t *t);
int conc_arm(conc_task_t *t, cc_deadline_t deadline); /* the task's timer */
void conc_free_timer(uv_handle_t *h);
void conc_round(conc_loop_t *lp);      /* one round: ready tasks, then libuv */
void conc_start_helper(conc_loop_t *lp); /* the bell's helper thread, once */
void conc_on_intr(uv_timer_t *tm);     /* conc.run's Ctrl-C check */

/* lconc_io.c */
int conc_l_sleep(lua_State *L);        /* conc.sleep */

/* ltask.c */
void conc_task_resume(conc_loop_t *lp, conc_task_t *t);
void conc_ensure_actor(lua_State *L, conc_task_t *t);

#endif
