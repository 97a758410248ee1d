/*
 * ltask.c - conc.run, conc.task, await/cancel/done, conc.gather, conc.sleep,
 * and the suspension of a task in any blocking call (ltask.h,
 * docs/TASKS.md).
 *
 * A task is a Lua coroutine plus a conc_task_t in its userdata. The loop
 * keeps a FIFO of ready tasks and resumes them in order; between rounds it
 * polls libuv (timers, sockets, the async handle that other threads ring).
 * A task that suspends says first why (state) and how it will be resumed:
 * a timer (sleep, wait deadline), a bell (a woken wait), a finished task
 * (await), an I/O callback. `why` tells the continuation what happened.
 */
#include "ltask.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "interrupt.h"

#define TASK_T "conc.task"

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

static _Thread_local conc_loop_t *tl_loop;
_Thread_local conc_task_t *conc_running_task; /* lp->current, for ltask.h */
static int64_t next_task_id = 1;

/* ---- the loop ------------------------------------------------------------ */

static void on_async(uv_async_t *a) {
  (void)a; /* the loop drains its bell every round */
}

static void notify(void *arg) {
  uv_async_send(arg);
}

static void *helper_main(void *arg) {
  cc_bell_watch(arg);
  return NULL;
}

/* Closing the loop of a thread that ends (the key's destructor). */
static pthread_key_t loop_key;
static pthread_once_t loop_key_once = PTHREAD_ONCE_INIT;

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void loop_destroy(void *arg) {
  conc_loop_t *lp = arg;
  if (!lp) return;
  if (lp->helper_on) {
    cc_bell_stop(lp->bell);
    pthread_join(lp->helper, NULL);
  }
  uv_walk(&lp->uv, close_walk, NULL);
  uv_run(&lp->uv, UV_RUN_DEFAULT);
  uv_loop_close(&lp->uv);
  cc_bell_free(lp->bell);
  if (tl_loop == lp) tl_loop = NULL;
  free(lp);
}

/* A forked child must not use its parent's loop (its epoll set and
 * handles are the parent's): it starts its own on first use. */
static void forget_loop_after_fork(void) {
  tl_loop = NULL;
  conc_running_task = NULL;
}

static void make_key(void) {
  pthread_key_create(&loop_key, loop_destroy);
  pthread_atfork(NULL, NULL, forget_loop_after_fork);
}

conc_loop_t *conc_loop_get(lua_State *L) {
  conc_loop_t *lp = tl_loop;
  if (cc_likely(lp != NULL)) return lp;
  pthread_once(&loop_key_once, make_key);
  lp = calloc(1, sizeof *lp);
  if (!lp || uv_loop_init(&lp->uv) != 0) {
    free(lp);
    luaL_error(L, "conc: cannot start an event loop");
    return NULL;
  }
  uv_async_init(&lp->uv, &lp->async, on_async);
  uv_unref((uv_handle_t *)&lp->async);
  uv_timer_init(&lp->uv, &lp->intr);
  uv_unref((uv_handle_t *)&lp->intr);
  lp->bell = cc_bell_new(notify, &lp->async);
  if (!lp->bell) {
    uv_close((uv_handle_t *)&lp->async, NULL);
    uv_close((uv_handle_t *)&lp->intr, NULL);
    uv_run(&lp->uv, UV_RUN_DEFAULT);
    uv_loop_close(&lp->uv);
    free(lp);
    luaL_error(L, "conc: %s", cc_strerror(CC_ENOMEM));
    return NULL;
  }
  tl_loop = lp;
  pthread_setspecific(loop_key, lp);
  return lp;
}

uv_loop_t *conc_loop_uv(conc_loop_t *lp) {
  return &lp->uv;
}

static void ready(conc_task_t *t) {
  conc_loop_t *lp = t->loop;
  if (t->state == T_WAIT) lp->nwait--;
  t->state = T_READY;
  t->next = NULL;
  if (lp->tail)
    lp->tail->next = t;
  else
    lp->head = t;
  lp->tail = t;
}

static void stop_timer(conc_task_t *t) {
  if (t->timer) uv_timer_stop(t->timer);
}

/* Wakes whatever the bell collected: tasks whose wait was woken. */
static void drain_bell(conc_loop_t *lp) {
  cc_waiter_t *w = cc_bell_take(lp->bell), *next;
  for (; w; w = next) {
    next = w->wnext; /* before cc_waiter_take: a waker may push it again */
    if (cc_waiter_take(w)) {
      conc_task_t *t = w->task;
      stop_timer(t);
      t->why = 0;
      ready(t);
    }
  }
}

static void on_timer(uv_timer_t *tm) {
  conc_task_t *t = tm->data;
  if (t->state == T_SLEEP) {
    t->why = 0;
    ready(t);
  } else if (t->state == T_WAIT) {
    if (cc_waiter_cancel(t->waiter)) {
      t->why = (t->wait.deadline != CC_FOREVER && cc_now_ns() >= t->wait.deadline)
                   ? CC_ETIMEOUT
                   : CC_EAGAIN;
      ready(t);
    }
  } else if (t->state == T_IO) {
    t->why = CC_ETIMEOUT;
    ready(t);
  }
}

static void free_timer(uv_handle_t *h) {
  free(h);
}

/* Arms the task's timer for `deadline` (nothing for CC_FOREVER). */
static int arm(conc_task_t *t, cc_deadline_t deadline) {
  int64_t ns;
  if (deadline == CC_FOREVER) return 0;
  if (!t->timer) {
    t->timer = malloc(sizeof *t->timer);
    if (!t->timer) return CC_ENOMEM;
    uv_timer_init(&t->loop->uv, t->timer);
    t->timer->data = t;
  }
  uv_update_time(&t->loop->uv);
  ns = deadline - cc_now_ns();
  uv_timer_start(t->timer, on_timer, ns <= 0 ? 0 : (uint64_t)((ns + 999999) / 1000000), 0);
  return 0;
}

/* ---- tasks ----------------------------------------------------------------- */

conc_task_t *conc_task_of(lua_State *L) {
  conc_loop_t *lp = tl_loop;
  conc_task_t *t;
  if (!lp || !(t = lp->current) || t->co != L || !lua_isyieldable(L)) return NULL;
  return t;
}

int conc_task_raise_cancelled(lua_State *L) {
  conc_task_t *t = tl_loop ? tl_loop->current : NULL;
  if (t && t->co == L) {
    t->cancel_pending = 0;
    t->cancelled = 1;
  }
  lua_pushliteral(L, "cancelled");
  return lua_error(L);
}

/* A task's own actor, so that what it holds and waits for is its own. */
static void ensure_actor(lua_State *L, conc_task_t *t) {
  char name[32];
  if (t->actor) return;
  snprintf(name, sizeof name, "task-%lld", (long long)t->id);
  t->actor = cc_actor_new(name, t->id, CC_ACTOR_THREAD);
  if (!t->actor) luaL_error(L, "conc: no room for the task's actor record");
  cc_set_self(t->actor);
}

/* Releases what an ending task still holds, as an ending thread does. */
static void release_holds(conc_task_t *t) {
  cc_actor_t *a = t->actor;
  if (!a) return;
  cc_set_self(a);
  while (atomic_load(&a->nheld) > 0) {
    int32_t n = atomic_load(&a->nheld);
    cc_obj_t *o = atomic_load(&a->held[(n < CC_MAX_HELD ? n : CC_MAX_HELD) - 1]);
    fprintf(stderr, "conclua: warning: task '%s' ended holding %s '%s'; released\n", a->name,
            o->type->name, o->name);
    if (o->type->abandon)
      o->type->abandon(o, a);
    else
      cc_unhold(o);
    if (atomic_load(&a->nheld) == n) cc_unhold(o);
  }
  cc_set_self(t->loop->thread_actor);
  cc_actor_free(a);
  t->actor = NULL;
}

static void unlink_live(conc_task_t *t) {
  conc_loop_t *lp = t->loop;
  if (t->prev_all)
    t->prev_all->next_all = t->next_all;
  else
    lp->all = t->next_all;
  if (t->next_all) t->next_all->prev_all = t->prev_all;
  lp->live--;
}

/* The task ended with status st: keep results (or the error) on its stack,
 * close its to-be-closed variables, wake its awaiters. */
static void finish(conc_task_t *t, int st, int nres) {
  conc_loop_t *lp = t->loop;
  lua_State *L = lp->L;
  t->state = T_DONE;
  t->ok = st == LUA_OK;
  t->nres = nres;
  if (t->ok && lua_gettop(t->co) > nres) {
    int extra = lua_gettop(t->co) - nres;
    lua_rotate(t->co, 1, -extra);
    lua_settop(t->co, nres);
  }
  if (!t->ok) {
    if (st != -1) {
      lua_checkstack(L, 2);
      lua_xmove(t->co, L, 1);
      /* Its to-be-closed variables close now, as the task itself. */
      if (t->actor) cc_set_self(t->actor);
      st = lua_resetthread(t->co);
      cc_set_self(lp->thread_actor);
      if (st != LUA_OK) {
        lua_pop(L, 1);
        lua_xmove(t->co, L, 1);
      }
      lua_settop(t->co, 0);
      lua_xmove(L, t->co, 1);
    }
    if (lua_type(t->co, 1) == LUA_TSTRING && strcmp(lua_tostring(t->co, 1), "cancelled") == 0)
      t->cancelled = 1;
  }
  stop_timer(t);
  if (t->timer) {
    uv_close((uv_handle_t *)t->timer, free_timer);
    t->timer = NULL;
  }
  cc_waiter_free(t->waiter);
  t->waiter = NULL;
  release_holds(t);
  while (t->awaiters) {
    conc_task_t *a = t->awaiters;
    t->awaiters = a->await_next;
    a->await_next = NULL;
    a->awaited = NULL;
    a->why = 0;
    ready(a);
  }
  unlink_live(t);
  /* Unretrieved errors are reported when the loop ends (report_lost). */
  if (t->ok || t->cancelled || t->is_main) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
  } else {
    t->next_all = lp->lost;
    lp->lost = t;
  }
}

static void resume(conc_loop_t *lp, conc_task_t *t) {
  int nres = 0, st, nargs = 0;
  if (t->nargs >= 0) { /* first run */
    if (t->cancel_pending) {
      t->cancelled = 1;
      lua_settop(t->co, 0);
      lua_pushliteral(t->co, "cancelled");
      finish(t, -1, 0);
      return;
    }
    nargs = t->nargs;
    t->nargs = -1;
  }
  t->state = T_RUNNING;
  lp->current = t;
  conc_running_task = t;
  if (t->actor) cc_set_self(t->actor);
  st = lua_resume(t->co, lp->L, nargs, &nres);
  cc_set_self(lp->thread_actor);
  lp->current = NULL;
  conc_running_task = NULL;
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->state == T_RUNNING) ready(t); /* a bare coroutine.yield */
    return;
  }
  finish(t, st, nres);
}

/* Resumes the tasks that are ready now; those made ready meanwhile wait
 * for the next round, after libuv has been polled. */
static void run_ready(conc_loop_t *lp) {
  conc_task_t *end = lp->tail;
  while (lp->head) {
    conc_task_t *t = lp->head;
    lp->head = t->next;
    if (!lp->head) lp->tail = NULL;
    t->next = NULL;
    resume(lp, t);
    if (t == end) break;
  }
}

static void on_intr(uv_timer_t *tm) {
  conc_loop_t *lp = tm->data;
  if (cc_interrupt) lp->interrupted = 1;
}

/* One round: ready tasks, then libuv (blocking when nothing is ready). */
static void round_once(conc_loop_t *lp) {
  int block, intr = cc_thread_interruptible();
  drain_bell(lp);
  run_ready(lp);
  drain_bell(lp);
  if (lp->live == 0 || (lp->main && lp->main->state == T_DONE && !lp->main_done_seen)) {
    if (lp->main) lp->main_done_seen = 1;
    return; /* conc.run decides what comes next */
  }
  block = lp->head == NULL;
  /* Before blocking: the one spin policy (wait.h), when a task waits on a
   * primitive that another thread may release in a moment. */
  if (block && !cc_bell_sleep(lp->bell, lp->nwait ? cc_wait_spin : 0)) {
    drain_bell(lp);
    block = 0;
  }
  if (block) uv_ref((uv_handle_t *)&lp->async);
  if (block && intr) cc_interrupt_in_wait = 1;
  uv_run(&lp->uv, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  if (block && intr) cc_interrupt_in_wait = 0;
  if (block) {
    cc_bell_awake(lp->bell);
    uv_unref((uv_handle_t *)&lp->async);
  }
}

static void cancel_task(conc_task_t *t);

static void cancel_all(conc_loop_t *lp) {
  for (conc_task_t *t = lp->all; t; t = t->next_all) cancel_task(t);
}

/* ---- the Task object --------------------------------------------------------- */

static conc_task_t *check_task(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, TASK_T);
}

/* conc.task(fn, ...) as a C call: the new task's userdata on top. */
static conc_task_t *spawn(lua_State *L, conc_loop_t *lp, int fn, int nargs) {
  conc_task_t *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->ref = LUA_NOREF;
  luaL_setmetatable(L, TASK_T);
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, fn);
  for (int i = 0; i < nargs; i++) lua_pushvalue(L, fn + 1 + i);
  lua_xmove(L, t->co, nargs + 1);
  t->loop = lp;
  t->nargs = nargs;
  t->id = next_task_id++;
  lua_pushvalue(L, -1);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->next_all = lp->all;
  if (lp->all) lp->all->prev_all = t;
  lp->all = t;
  lp->live++;
  ready(t);
  t->state = T_NEW;
  return t;
}

static conc_loop_t *running_loop(lua_State *L, const char *what) {
  conc_loop_t *lp = tl_loop;
  if (!lp || !lp->running) luaL_error(L, "%s: no event loop runs here (call it inside conc.run)", what);
  return lp;
}

static int l_task(lua_State *L) {
  conc_loop_t *lp = running_loop(L, "conc.task");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  spawn(L, lp, 1, lua_gettop(L) - 1);
  return 1;
}

/* Pushes the results of a finished task, or raises its error. */
static int results(lua_State *L, conc_task_t *t) {
  if (!t->ok) {
    t->retrieved = 1;
    lua_pushvalue(t->co, 1);
    lua_xmove(t->co, L, 1);
    return lua_error(L);
  }
  luaL_checkstack(L, t->nres, "too many results");
  for (int i = 1; i <= t->nres; i++) lua_pushvalue(t->co, i);
  lua_xmove(t->co, L, t->nres);
  return t->nres;
}

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *me = tl_loop->current, *t = (conc_task_t *)ctx;
  (void)status;
  if (me->why == CC_ECANCELLED) {
    me->why = 0;
    return conc_task_raise_cancelled(L);
  }
  if (t->state != T_DONE) { /* spurious: wait on */
    me->awaited = t;
    me->await_next = t->awaiters;
    t->awaiters = me;
    me->state = T_AWAIT;
    return lua_yieldk(L, 0, ctx, await_k);
  }
  return results(L, t);
}

static int t_await(lua_State *L) {
  conc_task_t *t = check_task(L, 1), *me;
  if (t->state == T_DONE) return results(L, t);
  me = conc_task_of(L);
  if (!me) {
    if (tl_loop && tl_loop->current && tl_loop->current->co == L)
      return luaL_error(L, "task:await: cannot suspend here (inside a C call that cannot yield)");
    return luaL_error(L, "task:await: not inside a task of this task's loop");
  }
  if (me == t) return luaL_error(L, "task:await: a task cannot await itself");
  if (t->loop != me->loop) return luaL_error(L, "task:await: the task belongs to another loop");
  if (me->cancel_pending) return conc_task_raise_cancelled(L);
  me->awaited = t;
  me->await_next = t->awaiters;
  t->awaiters = me;
  me->state = T_AWAIT;
  return lua_yieldk(L, 0, (lua_KContext)t, await_k);
}

static void unlink_awaiter(conc_task_t *me) {
  conc_task_t **p;
  if (!me->awaited) return;
  for (p = &me->awaited->awaiters; *p; p = &(*p)->await_next)
    if (*p == me) {
      *p = me->await_next;
      break;
    }
  me->awaited = NULL;
  me->await_next = NULL;
}

static void cancel_task(conc_task_t *t) {
  if (t->state == T_DONE || t->cancelled) return;
  t->cancel_pending = 1;
  switch (t->state) {
  case T_SLEEP:
  case T_IO:
    stop_timer(t);
    t->why = CC_ECANCELLED;
    ready(t);
    break;
  case T_WAIT:
    if (t->wait_flags & CONC_WAIT_SHIELD) break; /* when the wait ends */
    if (cc_waiter_cancel(t->waiter)) {
      stop_timer(t);
      t->why = CC_ECANCELLED;
      ready(t);
    }
    break;
  case T_AWAIT:
    unlink_awaiter(t);
    t->why = CC_ECANCELLED;
    ready(t);
    break;
  default: /* new, ready or running: at its next suspension */
    break;
  }
}

static int t_cancel(lua_State *L) {
  conc_task_t *t = check_task(L, 1);
  int was = t->state != T_DONE && !t->cancelled;
  cancel_task(t);
  lua_pushboolean(L, was);
  return 1;
}

static int t_done(lua_State *L) {
  lua_pushboolean(L, check_task(L, 1)->state == T_DONE);
  return 1;
}

static int t_cancelled(lua_State *L) {
  conc_task_t *t = check_task(L, 1);
  lua_pushboolean(L, t->state == T_DONE && t->cancelled);
  return 1;
}

static int t_tostring(lua_State *L) {
  conc_task_t *t = check_task(L, 1);
  static const char *const states[] = {"new", "ready", "running", "sleeping", "waiting",
                                       "awaiting", "in I/O", "done"};
  lua_pushfstring(L, "conc.task %d (%s)", (int)t->id, states[t->state]);
  return 1;
}

/* ---- conc.sleep ------------------------------------------------------------ */

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  (void)status;
  (void)ctx;
  if (t->why == CC_ECANCELLED) {
    t->why = 0;
    return conc_task_raise_cancelled(L);
  }
  return 0;
}

static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  conc_task_t *t;
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
    ready(t);
  } else {
    if (arm(t, cc_deadline_in(s)) != 0) return conc_raise(L, CC_ENOMEM, "conc.sleep");
    t->state = T_SLEEP;
  }
  return lua_yieldk(L, 0, 0, sleep_k);
}

/* ---- blocking calls in tasks (ltask.h) -------------------------------------- */

cc_wait_t *conc_wait_slot_slow(lua_State *L) {
  conc_task_t *t = conc_task_of(L);
  if (cc_likely(t == NULL)) return NULL;
  if (t->cancel_pending) conc_task_raise_cancelled(L);
  ensure_actor(L, t);
  return &t->wait;
}

static int park(lua_State *L, conc_task_t *t);

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  int rc, why = t->why;
  (void)status;
  (void)ctx;
  t->why = 0;
  rc = cc_wait_resume(&t->wait, why);
  if (rc == CC_EPARKED) return park(L, t);
  if (rc == CC_ECANCELLED && !(t->wait_flags & CONC_WAIT_SEE_CANCEL))
    return conc_task_raise_cancelled(L);
  t->wait_flags = 0;
  return t->done(L, rc, &t->wait);
}

static int park(lua_State *L, conc_task_t *t) {
  conc_loop_t *lp = t->loop;
  cc_deadline_t until = t->wait.deadline;
  if (!lp->helper_on && pthread_create(&lp->helper, NULL, helper_main, lp->bell) == 0)
    lp->helper_on = 1;
  if (t->wait.tick_ns) {
    cc_deadline_t tick = cc_now_ns() + t->wait.tick_ns;
    if (tick < until) until = tick;
  }
  arm(t, until);
  t->state = T_WAIT;
  lp->nwait++;
  return lua_yieldk(L, 0, 0, wait_k);
}

int conc_wait_ex(lua_State *L, cc_wait_t *w, conc_wait_done_fn done, int flags) {
  conc_task_t *t = conc_task_of(L);
  int rc;
  if (!t || w != &t->wait) return done(L, cc_wait_run(w), w);
  if (!t->waiter && !(t->waiter = cc_waiter_new(t->loop->bell, t)))
    return done(L, cc_wait_run(w), w); /* no room: wait as the thread */
  w->task = t->waiter;
  t->done = done;
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
      stop_timer(t);
      t->why = 0;
      ready(t);
    }
  }
}

static int io_k(lua_State *L, int status, lua_KContext ctx) {
  conc_task_t *t = tl_loop->current;
  io_ctx_t *io = (io_ctx_t *)ctx;
  int why = t->why, n;
  (void)status;
  t->why = 0;
  if (why == CC_ECANCELLED) {
    io->abandon(L);
    free(io);
    return conc_task_raise_cancelled(L);
  }
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
  arm(t, io->deadline);
  t->state = T_IO;
  return lua_yieldk(L, 0, ctx, io_k);
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
    if (t->cancel_pending) {
      free(io);
      abandon(L);
      return conc_task_raise_cancelled(L);
    }
    io->step = step;
    io->timeout = timeout;
    io->abandon = abandon;
    io->deadline = deadline;
    t->why = 0;
    arm(t, deadline);
    t->state = T_IO;
    return lua_yieldk(L, 0, (lua_KContext)io, io_k);
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

/* ---- conc.run --------------------------------------------------------------- */

/* Prints the errors of tasks that ended with one nobody awaited, and lets
 * the collector have every finished task. */
static void report_lost(lua_State *L, conc_loop_t *lp) {
  while (lp->lost) {
    conc_task_t *t = lp->lost;
    lp->lost = t->next_all;
    if (!t->retrieved) {
      const char *msg = lua_tostring(t->co, 1);
      fprintf(stderr, "conclua: task %lld: error never retrieved: %s\n", (long long)t->id,
              msg ? msg : "(error object is not a string)");
      fflush(stderr);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
  }
}

static int l_run(lua_State *L) {
  conc_loop_t *lp;
  conc_task_t *main;
  int n, intr;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lp = conc_loop_get(L);
  if (lp->running) return luaL_error(L, "conc.run: a loop already runs in this thread");
  lp->running = 1;
  lp->interrupted = 0;
  lp->L = L;
  lp->thread_actor = cc_self();
  cc_bell_set_current(lp->bell);
  intr = cc_thread_interruptible();
  if (intr) {
    lp->intr.data = lp;
    uv_timer_start(&lp->intr, on_intr, 100, 100);
  }
  main = spawn(L, lp, 1, lua_gettop(L) - 1);
  main->is_main = 1;
  lp->main = main;
  lp->main_done_seen = 0;
  while (main->state != T_DONE && !lp->interrupted) round_once(lp);
  cancel_all(lp);
  while (lp->live > 0) {
    round_once(lp);
    if (lp->interrupted) cancel_all(lp);
  }
  if (intr) uv_timer_stop(&lp->intr);
  cc_bell_set_current(NULL);
  report_lost(L, lp);
  lp->running = 0;
  lp->L = NULL;
  lp->main = NULL;
  if (lp->interrupted && main->state == T_DONE && main->cancelled) {
    cc_interrupt_take();
    return conc_raise(L, CC_EINTR, "conc.run");
  }
  n = results(L, main);
  return n;
}

/* conc.gather(a, b, ...): each a Task or a function (made a task); the
 * list of their first results, in order. Written in Lua: it only awaits. */
static const char gather_src[] =
    "local task = ...\n"
    "return function(...)\n"
    "  local ts, n = {}, select('#', ...)\n"
    "  for i = 1, n do\n"
    "    local a = select(i, ...)\n"
    "    if type(a) == 'function' then a = task(a) end\n"
    "    ts[i] = a\n"
    "  end\n"
    "  local r = {}\n"
    "  for i = 1, n do\n"
    "    if type(ts[i]) ~= 'userdata' then\n"
    "      error(('bad argument #%d to \\'gather\\' (conc.task or function expected, got %s)')"
    ":format(i, type(ts[i])), 2)\n"
    "    end\n"
    "    r[i] = (ts[i]:await())\n"
    "  end\n"
    "  return r\n"
    "end\n";

static const luaL_Reg task_methods[] = {{"await", t_await},
                                        {"cancel", t_cancel},
                                        {"done", t_done},
                                        {"cancelled", t_cancelled},
                                        {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"run", l_run}, {"task", l_task}, {"sleep", l_sleep}, {NULL, NULL}};

void conc_open_task(lua_State *L) {
  if (luaL_newmetatable(L, TASK_T)) {
    lua_newtable(L);
    luaL_setfuncs(L, task_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, t_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  if (luaL_loadbuffer(L, gather_src, sizeof gather_src - 1, "=conc.gather") != LUA_OK)
    lua_error(L);
  lua_pushcfunction(L, l_task);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "gather");
}
