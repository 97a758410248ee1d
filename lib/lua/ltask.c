/*
 * ltask.c - tasks: their life (resume, finish, cancel), the Task object
 * (await/cancel/done), conc.task, conc.run, conc.gather (ltask.h,
 * docs/TASKS.md; the loop is in ltask_loop.c, suspension in lconc_io.c).
 *
 * A task is a Lua coroutine plus a conc_task_t in its userdata. The loop
 * keeps a FIFO of ready tasks and resumes them in order; between rounds it
 * polls libuv (timers, sockets, the async handle that other threads ring).
 * A task that suspends says first why (state) and how it will be resumed:
 * a timer (sleep, wait deadline), a bell (a woken wait), a finished task
 * (await), an I/O callback. `why` tells the continuation what happened.
 */
#include "ltask_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "interrupt.h"

#define TASK_T "conc.task"

_Thread_local conc_task_t *conc_running_task; /* lp->current, for ltask.h */
static _Atomic int64_t next_task_id = 1; /* loops of several threads spawn */
#define tl_loop conc_tl_loop

/* ---- tasks ----------------------------------------------------------------- */

conc_task_t *conc_task_of(lua_State *L) {
  conc_loop_t *lp = tl_loop;
  conc_task_t *t;
  if (!lp || !(t = lp->current) || t->co != L || !lua_isyieldable(L)) return NULL;
  return t;
}

/* The cancel is delivered: a later cancel is a new one. Whether the task
 * ends cancelled is decided when it ends (finish: its error is "cancelled"),
 * since it may catch this one and go on, or return normally. */
int conc_task_raise_cancelled(lua_State *L) {
  conc_task_t *t = tl_loop ? tl_loop->current : NULL;
  if (t && t->co == L) t->cancel_pending = 0;
  lua_pushliteral(L, "cancelled");
  return lua_error(L);
}

/* A task's own actor, so that what it holds and waits for is its own. */
void conc_ensure_actor(lua_State *L, conc_task_t *t) {
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

/* conc.run, conc.task and conc.gather share two upvalues: the state's
 * table of live tasks and (once built) the Task metatable. */
#define UV_LIVE lua_upvalueindex(1)
#define UV_MT lua_upvalueindex(2)

/* A live task's userdata is kept in the table of live tasks at a slot of
 * its own: slots are reused from the loop's free list, so the table stays
 * an array as big as the most tasks alive at once (a luaL_ref in the
 * registry and its luaL_unref cost a task about 500 instructions). L runs
 * conc.task or conc.run: spawn, and finish and report_lost, which run in
 * conc.run's own frame (lp->L). */
static void live_keep(lua_State *L, conc_loop_t *lp, conc_task_t *t) {
  int slot = lp->nfree ? lp->free_slots[--lp->nfree] : ++lp->nslots;
  lua_pushvalue(L, -1);
  lua_rawseti(L, UV_LIVE, slot);
  t->ref = slot;
}

static void live_drop(lua_State *L, conc_loop_t *lp, conc_task_t *t) {
  conc_dump_forget(t->co); /* it may be collected from now on */
  if (t->ref <= 0) return;
  lua_pushnil(L);
  lua_rawseti(L, UV_LIVE, t->ref);
  lp->free_slots[lp->nfree++] = t->ref; /* room: see conc_ready_reserve */
  t->ref = 0;
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
  conc_stop_timer(t);
  if (t->timer) {
    uv_close((uv_handle_t *)t->timer, conc_free_timer);
    t->timer = NULL;
  }
  if (t->w) {
    cc_waiter_free(t->w->waiter);
    free(t->w);
    t->w = NULL;
  }
  release_holds(t);
  while (t->awaiters) {
    conc_task_t *a = t->awaiters;
    t->awaiters = a->await_next;
    a->await_next = NULL;
    a->awaited = NULL;
    a->why = 0;
    conc_ready(a);
  }
  unlink_live(t);
  /* Unretrieved errors are reported when the loop ends (report_lost). */
  if (t->ok || t->cancelled || t->is_main) {
    live_drop(L, lp, t);
  } else {
    t->prev_all = NULL;
    t->next_all = lp->lost;
    if (lp->lost) lp->lost->prev_all = t;
    lp->lost = t;
  }
  /* Lost tasks whose error was retrieved since (results): nothing is left
   * to report, and a loop that runs for long must not keep them all. */
  while (lp->retrieved) {
    conc_task_t *r = lp->retrieved;
    lp->retrieved = r->next_all;
    live_drop(L, lp, r);
  }
}

void conc_task_resume(conc_loop_t *lp, conc_task_t *t) {
  int nres = 0, st, nargs = 0;
  if (cc_unlikely(!t->started)) { /* first run */
    if (t->cancel_pending) {
      t->cancelled = 1;
      lua_settop(t->co, 0);
      lua_pushliteral(t->co, "cancelled");
      finish(t, -1, 0);
      return;
    }
    nargs = t->nargs;
    t->started = 1;
  }
  t->state = T_RUNNING;
  lp->current = t;
  conc_running_task = t;
  if (t->actor) cc_set_self(t->actor);
  conc_dump_running(t->co); /* a wait site recorded now is the task's own line */
  st = lua_resume(t->co, lp->L, nargs, &nres);
  conc_dump_running(NULL);
  if (t->actor) cc_set_self(lp->thread_actor); /* it may have got one meanwhile */
  lp->current = NULL;
  conc_running_task = NULL;
  if (st == LUA_YIELD) {
    lua_Debug ar;
    if (nres) lua_pop(t->co, nres);
    /* Where its frames are now, for run_ready to prefetch: lua_Debug's
     * i_ci (the coroutine's current CallInfo, alive and just used), and
     * the stack slot its first field points to (Lua 5.4's CallInfo starts
     * with its function's slot; were that ever different, run_ready would
     * prefetch a useless address). Both may go stale (a stack that grows
     * moves): they are only prefetched, never read through. */
    if (lua_getstack(t->co, 0, &ar)) {
      t->ci_hint = ar.i_ci;
      t->stack_hint = *(const void *const *)ar.i_ci;
    }
    if (t->state == T_RUNNING) conc_ready(t); /* a bare coroutine.yield */
    return;
  }
  finish(t, st, nres);
}

static void cancel_task(conc_task_t *t);

static void cancel_all(conc_loop_t *lp) {
  for (conc_task_t *t = lp->all; t; t = t->next_all) cancel_task(t);
}

/* ---- the Task object --------------------------------------------------------- */

/* The Task at idx. The methods have the metatable as upvalue 1: one
 * comparison instead of luaL_checkudata's lookup by name (an await paid
 * a third of its cost for it). */
static conc_task_t *check_task(lua_State *L, int idx) {
  conc_task_t *t = lua_touserdata(L, idx);
  if (cc_likely(t != NULL) && lua_getmetatable(L, idx)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (cc_likely(same)) return t;
  }
  return luaL_checkudata(L, idx, TASK_T); /* raises */
}

static void push_task_mt(lua_State *L);

/* conc.task(fn, ...) as a C call: the new task's userdata on top. */
static conc_task_t *spawn(lua_State *L, conc_loop_t *lp, int fn, int nargs) {
  conc_task_t *t;
  /* The ring holds every live task; free_slots (as big) every slot, and
   * slots outlive live tasks (a lost task keeps its own). */
  if (((uint32_t)lp->live >= lp->rcap || (!lp->nfree && (uint32_t)lp->nslots >= lp->rcap)) &&
      conc_ready_reserve(lp, (uint32_t)(lp->live > lp->nslots ? lp->live : lp->nslots) + 1) != 0)
    luaL_error(L, "conc.task: no room for another task");
  if (cc_unlikely(nargs > LUA_MINSTACK - 6)) luaL_checkstack(L, nargs + 6, "too many arguments");
  t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  push_task_mt(L);
  lua_setmetatable(L, -2);
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  t->fn_hint = lua_topointer(L, fn);
  lua_pushvalue(L, fn);
  for (int i = 0; i < nargs; i++) lua_pushvalue(L, fn + 1 + i);
  if (cc_unlikely(nargs >= LUA_MINSTACK) && !lua_checkstack(t->co, nargs + 1))
    luaL_error(L, "conc.task: too many arguments");
  lua_xmove(L, t->co, nargs + 1);
  t->loop = lp;
  t->nargs = nargs;
  t->id = atomic_fetch_add_explicit(&next_task_id, 1, memory_order_relaxed);
  live_keep(L, lp, t);
  t->next_all = lp->all;
  if (lp->all) lp->all->prev_all = t;
  lp->all = t;
  lp->live++;
  conc_ready(t);
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
    conc_loop_t *lp = t->loop;
    if (!t->retrieved && t->state == T_DONE && !t->cancelled && !t->is_main && t->ref > 0) {
      /* from the lost list to the retrieved one, which the next finish
       * drops (it runs where the table of live tasks is at hand) */
      if (t->prev_all)
        t->prev_all->next_all = t->next_all;
      else
        lp->lost = t->next_all;
      if (t->next_all) t->next_all->prev_all = t->prev_all;
      t->next_all = lp->retrieved;
      lp->retrieved = t;
    }
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
  if (me->why == CC_ECANCELLED || (t->state != T_DONE && me->cancel_pending)) {
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
  me->since = cc_now_ns(); /* for conc.dump */
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

/* A task that caught an earlier cancel can be cancelled again: only its
 * end makes a cancel moot. */
static void cancel_task(conc_task_t *t) {
  if (t->state == T_DONE) return;
  t->cancel_pending = 1;
  switch (t->state) {
  case T_SLEEP:
  case T_IO:
    conc_stop_timer(t);
    t->why = CC_ECANCELLED;
    conc_ready(t);
    break;
  case T_WAIT:
    if (t->wait_flags & CONC_WAIT_SHIELD) break; /* when the wait ends */
    /* When a wake won, the wait goes on with it, and if it must wait
     * again, park (lconc_io.c) sees the cancel pending. */
    if (cc_waiter_cancel(t->w->waiter)) {
      conc_stop_timer(t);
      t->why = CC_ECANCELLED;
      conc_ready(t);
    }
    break;
  case T_AWAIT:
    unlink_awaiter(t);
    t->why = CC_ECANCELLED;
    conc_ready(t);
    break;
  default: /* new, ready or running: at its next suspension, or when the
            * wait or I/O it was woken from must wait again */
    break;
  }
}

static int t_cancel(lua_State *L) {
  conc_task_t *t = check_task(L, 1);
  int was = t->state != T_DONE;
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

/* ---- conc.dump (ltask.h) ------------------------------------------------------ */

int conc_loop_view(void (*each)(void *ud, const conc_task_view_t *v), void *ud,
                   int *thread_actor, int with_running) {
  conc_loop_t *lp = tl_loop;
  if (!lp || !lp->running) return -1;
  if (thread_actor) *thread_actor = lp->thread_actor ? (int)lp->thread_actor->index : -1;
  for (conc_task_t *t = lp->all; t; t = t->next_all) {
    conc_task_view_t v;
    if (t == lp->current && !with_running) continue; /* the caller reads its own stack */
    v.co = t->co;
    v.id = t->id;
    v.is_main = t->is_main;
    v.actor = t->actor ? (int)t->actor->index : -1;
    v.since = 0;
    v.left_ms = -1;
    v.awaited = 0;
    switch (t->state) {
    case T_SLEEP:
      v.state = "sleeping";
      v.since = t->since;
      if (t->timer) v.left_ms = (int64_t)uv_timer_get_due_in(t->timer);
      break;
    case T_AWAIT:
      v.state = "awaiting";
      v.since = t->since;
      v.awaited = t->awaited ? t->awaited->id : 0;
      break;
    case T_IO:
      v.state = "in I/O";
      break;
    case T_WAIT:
      v.state = "waiting";
      break;
    case T_RUNNING:
      v.state = "running";
      break;
    default:
      v.state = t->started ? "ready" : "ready (not started yet)";
      break;
    }
    each(ud, &v);
  }
  return lp->live;
}

/* ---- conc.run --------------------------------------------------------------- */

/* Prints the errors of tasks that ended with one nobody awaited, and lets
 * the collector have every finished task. */
static void report_lost(lua_State *L, conc_loop_t *lp) {
  while (lp->retrieved) {
    conc_task_t *t = lp->retrieved;
    lp->retrieved = t->next_all;
    live_drop(L, lp, t);
  }
  while (lp->lost) {
    conc_task_t *t = lp->lost;
    lp->lost = t->next_all;
    if (!t->retrieved) {
      const char *msg = lua_tostring(t->co, 1);
      fprintf(stderr, "conclua: task %lld: error never retrieved: %s\n", (long long)t->id,
              msg ? msg : "(error object is not a string)");
      fflush(stderr);
    }
    live_drop(L, lp, t);
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
  lp->nslots = lp->nfree = 0; /* every slot is nil: the last run ended with no task */
  cc_bell_set_current(lp->bell);
  intr = cc_thread_interruptible();
  if (intr) {
    lp->intr.data = lp;
    uv_timer_start(&lp->intr, conc_on_intr, 100, 100);
  }
  main = spawn(L, lp, 1, lua_gettop(L) - 1);
  main->is_main = 1;
  lp->main = main;
  lp->main_done_seen = 0;
  while (main->state != T_DONE && !lp->interrupted) conc_round(lp);
  cancel_all(lp);
  while (lp->live > 0) {
    conc_round(lp);
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
    ":format(i, type(ts[i])), 3)\n"
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

static const char gather_key = 'g';

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

/* conc.gather: the Lua function above, compiled on the first call in this
 * state (compiling it in every new state was a third of the cost of
 * starting a thread). Called with a continuation: gather awaits, so it
 * yields through here. Level 3 of its error() is the caller's line. */
static int l_gather(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &gather_key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, gather_src, sizeof gather_src - 1, "=conc.gather") != LUA_OK)
      return lua_error(L);
    lua_pushvalue(L, UV_LIVE);
    lua_pushvalue(L, UV_MT);
    lua_pushcclosure(L, l_task, 2);
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &gather_key);
  }
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, gather_k);
  return gather_k(L, LUA_OK, 0);
}

static const luaL_Reg funcs[] = {{"run", l_run},
                                 {"task", l_task},
                                 {"sleep", conc_l_sleep},
                                 {"gather", l_gather},
                                 {NULL, NULL}};

/* The Task metatable of this state, built on first use: a state that
 * never makes a task (most threads' states) does not pay for it. Its
 * methods and __tostring have it as upvalue 1 (check_task); conc.task and
 * conc.run keep it in UV_MT. */
static const char task_mt_key = 'm';

static void push_task_mt(lua_State *L) {
  if (cc_likely(lua_type(L, UV_MT) == LUA_TTABLE)) {
    lua_pushvalue(L, UV_MT);
    return;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &task_mt_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_newmetatable(L, TASK_T); /* also by name, for luaL_checkudata's message */
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, task_methods, 1);
    conc_methods_strict(L, -1, TASK_T); /* t:awiat() raises, with a suggestion */
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, t_tostring, 1);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &task_mt_key);
  }
  lua_pushvalue(L, -1);
  lua_replace(L, UV_MT);
}

void conc_open_task(lua_State *L) {
  lua_newtable(L); /* UV_LIVE */
  lua_pushnil(L);  /* UV_MT, on first use */
  luaL_setfuncs(L, funcs, 2);
}
