/*
 * lpool_future.c - Futures of conc.pool (see lpool.h, docs/POOLS.md):
 * their outcome (results or the error value the task raised), their
 * callbacks, and f:get / f:wait, which suspend only the task inside
 * conc.run and block the thread elsewhere.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lpool.h"
#include "ltask.h"

/* Pushes the error of a failed or cancelled Future: the value its task
 * raised (a string error as "pool 'p': msg\ntraceback"), the death of
 * its worker process, or that it was cancelled. */
static void push_error(lua_State *L, cc_future_t *f) {
  if (cc_future_state(f) == CC_F_CANCELLED)
    lua_pushfstring(L, "future '%s' was cancelled", f->h.name);
  else if (f->died) /* the core's text names the pool already */
    conc_error_push(L, f->result, f->result_len, NULL, NULL);
  else
    conc_error_push(L, f->result, f->result_len, "pool", f->pool->h.name);
}

int conc_pool_decode_results(lua_State *L, cc_future_t *f) {
  return f->result ? conc_decode(L, f->result, f->result_len) : 0;
}

int conc_pool_results(lua_State *L, cc_future_t *f) {
  if (cc_future_state(f) == CC_F_OK) return conc_pool_decode_results(L, f);
  push_error(L, f);
  if (lua_type(L, -1) == LUA_TSTRING) { /* where the caller got it */
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    conc_hint_global(L);
  }
  return lua_error(L);
}

/* Pushes the outcome of final f as callbacks get it: true, results... or
 * false, error value. Returns how many values. */
static int push_outcome(lua_State *L, cc_future_t *f) {
  if (cc_future_state(f) == CC_F_OK) {
    lua_pushboolean(L, 1);
    return 1 + conc_pool_decode_results(L, f);
  }
  lua_pushboolean(L, 0);
  push_error(L, f);
  return 2;
}

/* Pushes the outcome in protected mode (decoding may raise: "malformed
 * data", out of memory): upvalue-less, the Future at 1. */
static int outcome_protected(lua_State *L) {
  return push_outcome(L, (cc_future_t *)lua_touserdata(L, 1));
}

void conc_pool_run_callbacks(lua_State *L, int cbs, int fidx, cc_pool_t *p) {
  cc_future_t *f = (cc_future_t *)conc_toobj(L, fidx);
  int list, n;
  lua_pushvalue(L, fidx);
  if (lua_rawget(L, cbs) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  list = lua_gettop(L);
  lua_pushvalue(L, fidx);
  lua_pushnil(L);
  lua_rawset(L, cbs);
  n = (int)lua_rawlen(L, list);
  for (int i = 1; i <= n; i++) {
    int base = lua_gettop(L), nargs;
    lua_pushcfunction(L, conc_error_handler);
    lua_rawgeti(L, list, i);
    lua_pushcfunction(L, outcome_protected);
    lua_pushlightuserdata(L, f);
    if (lua_pcall(L, 1, LUA_MULTRET, base + 1) == LUA_OK) {
      nargs = lua_gettop(L) - base - 2;
      if (lua_pcall(L, nargs, 0, base + 1) == LUA_OK) {
        lua_settop(L, base);
        continue;
      }
    }
    fprintf(stderr, "conclua: error in a callback of pool '%s': %s\n", p->h.name,
            luaL_tolstring(L, -1, NULL));
    fflush(stderr);
    lua_settop(L, base);
  }
  lua_pop(L, 1);
}

/* ---- methods -------------------------------------------------------------- */

static cc_future_t *checkf(lua_State *L) {
  return (cc_future_t *)conc_check(L, 1, FUTURE_T);
}

/* Serves the pool of f (its userdata at 1) if this state owns it. */
static void touch(lua_State *L, cc_future_t *f) {
  int top = lua_gettop(L), pidx = conc_pool_owner_of(L, 1, f);
  if (pidx) conc_pool_service(L, pidx, f->pool);
  lua_settop(L, top);
}

static int got(lua_State *L, int rc, cc_wait_t *w) {
  cc_future_t *f = (cc_future_t *)conc_toobj(L, (int)w->arg[2]);
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc) return conc_raise(L, rc, "future:get");
  return conc_pool_results(L, f);
}

static int waited(lua_State *L, int rc, cc_wait_t *w) {
  (void)w;
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc && rc != CC_ETIMEOUT) return conc_raise(L, rc, "future:wait");
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* f:get / f:wait (self at 1, timeout at 2): the pool's owner serves it
 * while it waits (its userdata lands at 3). */
static int wait_for(lua_State *L, conc_wait_done_fn finish) {
  cc_future_t *f = checkf(L);
  cc_deadline_t d = conc_opt_deadline(L, 2);
  lua_settop(L, 2);
  return conc_pool_wait(L, 1, conc_pool_owner_of(L, 1, f), d, finish);
}

static int f_get(lua_State *L) {
  return wait_for(L, got);
}

static int f_wait(lua_State *L) {
  return wait_for(L, waited);
}

static int f_done(lua_State *L) {
  cc_future_t *f = checkf(L);
  touch(L, f);
  lua_pushboolean(L, cc_future_done(f));
  return 1;
}

static int f_cancel(lua_State *L) {
  cc_future_t *f = checkf(L);
  int ok = cc_future_cancel(f);
  touch(L, f);
  lua_pushboolean(L, ok);
  return 1;
}

static int f_on_done(lua_State *L) {
  cc_future_t *f = checkf(L);
  int pidx, cbs;
  conc_check_callable(L, 2);
  lua_settop(L, 2);
  if (!(pidx = conc_pool_owner_of(L, 1, f)))
    return luaL_error(L, "future:on_done: only the thread that created pool '%s' can "
                         "add callbacks", f->pool->h.name);
  conc_pool_service(L, pidx, f->pool);
  conc_pool_push_uv(L, pidx, UV_CALLBACKS);
  cbs = lua_gettop(L);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, cbs) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, cbs);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  /* Already final with no callback queued (never asked, or run already),
   * or final by the time we ask: run the callbacks here and now. */
  if ((cc_future_done(f) && atomic_load(&f->cb) != 1) || cc_future_want_callback(f)) {
    cc_future_wait(f, CC_FOREVER); /* FINISHING is a few instructions */
    conc_pool_run_callbacks(L, cbs, 1, f->pool);
  }
  return 0;
}

static int future_index(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  cc_future_t *f;
  if (!k || (strcmp(k, "name") != 0 && strcmp(k, "pid") != 0)) return 0;
  f = checkf(L);
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, f->h.name);
  else if (cc_future_state(f) != CC_F_PENDING && f->runner_pid != 0)
    lua_pushinteger(L, f->runner_pid);
  else /* not started (pending, or cancelled before it ran) */
    lua_pushnil(L);
  return 1;
}

static const luaL_Reg future_methods[] = {{"get", f_get},       {"wait", f_wait},
                                          {"done", f_done},     {"cancel", f_cancel},
                                          {"on_done", f_on_done}, {NULL, NULL}};

/* conc_newtype makes the methods table strict: f:gett() raises with a
 * suggestion. */
static void build_future(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, NULL, future_index);
}

void conc_open_future(lua_State *L) {
  (void)L; /* Futures are made by pools: nothing in the module table */
  conc_lazytype(&cc_future_type, build_future, future_methods);
}
