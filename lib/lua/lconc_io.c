/*
 * lconc_io.c - how a task suspends (ltask.h): conc.sleep, the wait of a
 * blocking binding (conc_wait_slot / conc_wait), and I/O steps (conc_io,
 * for ltcp.c). In a plain thread the same calls block the thread.
 */
#include <stdlib.h>

#include "interrupt.h"
#include "ltask_int.h"
#include "trace.h"

#define tl_loop conc_tl_loop

/* ---- conc.sleep ------------------------------------------------------------ */

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  (void)status;
  if (ctx) cc_wait_end(NULL, t->why); /* on the task's actor (resume made it self) */
  if (t->why == CC_ECANCELLED) {
    t->why = 0;
    return conc_task_raise_cancelled(L);
  }
  return 0;
}

int conc_l_sleep(lua_State *L) {
  int isnum;
  double s = lua_tonumberx(L, 1, &isnum);
  conc_task_t *t;
  if (cc_unlikely(!isnum)) s = luaL_checknumber(L, 1); /* raises */
  luaL_argcheck(L, s >= 0 && s == s, 1, "duration must be a non-negative number");
  t = conc_task_of(L);
  if (!t) {
    int rc = cc_wait_sleep(cc_deadline_in(s));
    if (rc) return conc_raise(L, rc, "conc.sleep");
    return 0;
  }
  if (t->cancel_pending) return conc_task_raise_cancelled(L);
  t->why = 0;
  if (s == 0) {
    /* Back to the ready queue. No continuation: a cancel while it is ready
     * stays pending for its next suspension, so there is nothing to check
     * when it goes on. */
    conc_ready(t);
    return lua_yield(L, 0);
  }
  {
    cc_deadline_t until = cc_deadline_in(s);
    /* Recorded as a thread's sleep is (cc_wait_sleep), on the task's own
     * actor, when it has one (it blocked before: conc.dump then shows it
     * sleeping, at its line) or a trace is on (a task that only sleeps has
     * a lane). Otherwise a sleep makes no actor: with its wait-site record
     * one costs about 1.2 KB, and an idle task 1.7 KB (task_idle_bytes). */
    int seen = t->actor != NULL || cc_trace_active();
    if (seen) conc_ensure_actor(L, t); /* may raise: before the timer is armed */
    if (conc_arm(t, until) != 0) return conc_raise(L, CC_ENOMEM, "conc.sleep");
    t->state = T_SLEEP;
    if (seen) cc_wait_begin(NULL, CC_WAIT_SLEEP, until);
    return lua_yieldk(L, 0, seen, sleep_k);
  }
}

/* ---- blocking calls in tasks (ltask.h) -------------------------------------- */

cc_wait_t *conc_wait_slot_slow(lua_State *L) {
  conc_task_t *t = conc_task_of(L);
  if (cc_likely(t == NULL)) return NULL;
  if (t->cancel_pending) conc_task_raise_cancelled(L);
  conc_ensure_actor(L, t);
  if (!t->w && !(t->w = calloc(1, sizeof *t->w)))
    luaL_error(L, "conc: no room for the task's wait record");
  return &t->w->wait;
}

static int park(lua_State *L, conc_task_t *t);

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  int rc, why = t->why;
  (void)status;
  (void)ctx;
  t->why = 0;
  rc = cc_wait_resume(&t->w->wait, why);
  if (rc == CC_EPARKED) return park(L, t);
  if (rc == CC_ECANCELLED && !(t->wait_flags & CONC_WAIT_SEE_CANCEL))
    return conc_task_raise_cancelled(L);
  t->wait_flags = 0;
  return t->w->done(L, rc, &t->w->wait);
}

/* The wait registered its record (CC_EPARKED): suspend until it is woken.
 * A cancel pending here came while the task was not parked (it was woken
 * but not yet resumed, or a done started another wait): it ends the wait
 * now, through wait_k, as one that came while parked does. A shielded wait
 * keeps it pending; a wake that won meanwhile is waited for. */
static int park(lua_State *L, conc_task_t *t) {
  conc_loop_t *lp = t->loop;
  cc_deadline_t until = t->w->wait.deadline;
  if (t->cancel_pending && !(t->wait_flags & CONC_WAIT_SHIELD) &&
      cc_waiter_cancel(t->w->waiter)) {
    t->why = CC_ECANCELLED;
    return wait_k(L, LUA_OK, 0);
  }
  conc_start_helper(lp);
  if (t->w->wait.tick_ns) {
    cc_deadline_t tick = cc_now_ns() + t->w->wait.tick_ns;
    if (tick < until) until = tick;
  }
  conc_arm(t, until);
  t->state = T_WAIT;
  lp->nwait++;
  return lua_yieldk(L, 0, 0, wait_k);
}

int conc_wait_ex(lua_State *L, cc_wait_t *w, conc_wait_done_fn done, int flags) {
  conc_task_t *t = conc_task_of(L);
  int rc;
  if (!t || !t->w || w != &t->w->wait) return done(L, cc_wait_run(w), w);
  if (!t->w->waiter && !(t->w->waiter = cc_waiter_new(t->loop->bell, t)))
    return done(L, cc_wait_run(w), w); /* no room: wait as the thread */
  w->task = t->w->waiter;
  t->w->done = done;
  rc = cc_wait_run(w);
  if (rc != CC_EPARKED) return done(L, rc, w);
  t->wait_flags = flags;
  return park(L, t);
}

int conc_wait(lua_State *L, cc_wait_t *w, conc_wait_done_fn done) {
  return conc_wait_ex(L, w, done, 0);
}

int conc_cancel_pending(lua_State *L) {
  conc_task_t *t = conc_task_of(L);
  return t && t->cancel_pending;
}

/* ---- I/O (ltcp.c) ------------------------------------------------------------ */

typedef struct io_ctx {
  conc_io_step_fn step, timeout, abandon;
  cc_deadline_t deadline;
} io_ctx_t;

void *conc_io_waiter(lua_State *L) {
  conc_task_t *t = conc_task_of(L);
  return t ? (void *)t : (void *)conc_loop_get(L);
}

void conc_io_wake(void *waiter) {
  conc_loop_t *lp = tl_loop;
  if (waiter == lp) {
    lp->io_done = 1;
    return;
  }
  {
    conc_task_t *t = waiter;
    if (t->state == T_IO) {
      conc_stop_timer(t);
      t->why = 0;
      conc_ready(t);
    }
  }
}

static int io_k(lua_State *L, int status, lua_KContext ctx);

/* A task's step said "not yet": suspend until conc_io_wake or the deadline,
 * unless a cancel is pending (from before the call, or one that came while
 * the task was woken but not yet resumed, and the step that ran since did
 * not complete): then the operation is abandoned and the cancel raised. */
static int io_suspend(lua_State *L, conc_task_t *t, io_ctx_t *io) {
  if (t->cancel_pending) {
    io->abandon(L);
    free(io);
    return conc_task_raise_cancelled(L);
  }
  t->why = 0;
  conc_arm(t, io->deadline);
  t->state = T_IO;
  return lua_yieldk(L, 0, (lua_KContext)io, io_k);
}

static int io_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  io_ctx_t *io = (io_ctx_t *)ctx;
  int why = t->why, n;
  (void)status;
  t->why = 0;
  if (why == CC_ECANCELLED) return io_suspend(L, t, io); /* cancel_pending is set */
  if (why == CC_ETIMEOUT) {
    n = io->timeout(L);
    free(io);
    return n;
  }
  n = io->step(L);
  if (n >= 0) {
    free(io);
    return n;
  }
  return io_suspend(L, t, io);
}

static void on_io_timer(uv_timer_t *tm) {
  int *expired = tm->data;
  *expired = 1;
}

int conc_io(lua_State *L, conc_io_step_fn step, conc_io_step_fn timeout,
            conc_io_step_fn abandon, cc_deadline_t deadline) {
  conc_task_t *t = conc_task_of(L);
  int n = step(L);
  if (n >= 0) return n;
  if (t) {
    io_ctx_t *io = malloc(sizeof *io);
    if (!io) return conc_raise(L, CC_ENOMEM, "conc.tcp");
    io->step = step;
    io->timeout = timeout;
    io->abandon = abandon;
    io->deadline = deadline;
    return io_suspend(L, t, io);
  } else {
    conc_loop_t *lp = conc_loop_get(L);
    uv_timer_t tm;
    int expired = 0;
    if (lp->running)
      return luaL_error(L, "conc.tcp: cannot block here (inside a C call that cannot yield)");
    uv_timer_init(&lp->uv, &tm);
    tm.data = &expired;
    if (deadline != CC_FOREVER) {
      int64_t ns = deadline - cc_now_ns();
      uv_update_time(&lp->uv);
      uv_timer_start(&tm, on_io_timer, ns <= 0 ? 0 : (uint64_t)((ns + 999999) / 1000000), 0);
    }
    for (;;) {
      lp->io_done = 0;
      uv_run(&lp->uv, UV_RUN_ONCE);
      if (lp->io_done && (n = step(L)) >= 0) break;
      if (expired) {
        n = timeout(L);
        break;
      }
      if (cc_thread_interruptible() && cc_interrupt) {
        n = -2;
        break;
      }
    }
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(&lp->uv, UV_RUN_NOWAIT);
    if (n == -2) {
      abandon(L);
      return conc_raise(L, CC_EINTR, "conc.tcp");
    }
    return n;
  }
}

