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

struct conc_task {
  lua_State *co;
  conc_loop_t *loop;
  conc_task_t *next;                  /* ready queue */
  conc_task_t *prev_all, *next_all;   /* the loop's live tasks */
  conc_task_t *awaited;               /* the task this one awaits */
  conc_task_t *awaiters, *await_next; /* tasks awaiting this one */
  int state, why, nargs, nres;
  int ok;             /* done: returned (1) or raised (0) */
  int cancel_pending; /* delivered at the next suspension */
  int cancelled;      /* ended by a cancel */
  int retrieved;      /* someone saw its error */
  int is_main;
  int ref;            /* registry reference while live */
  int64_t id;
  uv_timer_t *timer;
  cc_wait_t wait;
  conc_wait_done_fn done;
  int wait_flags;     /* CONC_WAIT_* of the wait in progress */
  cc_waiter_t *waiter;
  cc_actor_t *actor;
};

struct conc_loop {
  uv_loop_t uv;
  uv_async_t async;
  uv_timer_t intr;           /* Ctrl-C check while the loop runs */
  cc_bell_t *bell;
  pthread_t helper;
  int helper_on, running, interrupted;
  conc_task_t *head, *tail;  /* ready */
  conc_task_t *all;          /* live */
  conc_task_t *lost;         /* ended with an error: see report_lost */
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
