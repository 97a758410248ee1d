/*
 * lpool_worker.c - the worker side of conc.pool (see lpool.h).
 *
 * Workers are ordinary conc threads or processes, started with conc.thread
 * or conc.process (daemon) and running conc_pool_worker_main, a C function,
 * with the pool as argument: a process worker is forked from the creating
 * state, so it sees that state's globals as they were at fork time.
 *
 * A task's function is encoded once per pool as a job (conc_encode_job: it
 * carries the creator's package.path and package.cpath, which the worker
 * takes when it first decodes the function) and decoded once per worker (a
 * cache by the box's id): `map` over a million items sends the function
 * once. Arguments go through the codec each time.
 *
 * A task's error keeps its type: the body runs under conc_error_handler
 * and the error value is stored with conc_error_store, so `error({code =
 * 42})` arrives as that table in f:get and in on_done callbacks.
 */
#include <stdatomic.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lpool.h"

#define WORKER_FN_CACHE 64 /* decoded functions a worker keeps */

static const char fncache_key = 'f'; /* box id -> function, [0] = count */

/* Pushes the function of box b, decoded once per worker. */
static void push_function(lua_State *L, cc_fnbox_t *b) {
  int cache;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &fncache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fncache_key);
  }
  cache = lua_gettop(L);
  if (lua_rawgeti(L, cache, b->h.id) == LUA_TFUNCTION) {
    lua_remove(L, cache);
    return;
  }
  lua_pop(L, 1);
  lua_rawgeti(L, cache, 0);
  if (lua_tointeger(L, -1) >= WORKER_FN_CACHE) { /* start afresh */
    lua_newtable(L);
    lua_replace(L, cache);
    lua_pushvalue(L, cache);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fncache_key);
    lua_pushinteger(L, 0);
    lua_replace(L, -2);
  }
  lua_pushinteger(L, lua_tointeger(L, -1) + 1);
  lua_rawseti(L, cache, 0);
  lua_pop(L, 1);
  /* the creator's package paths first, then the function */
  if (conc_decode_job(L, b->data, b->len) != 1 || !lua_isfunction(L, -1))
    luaL_error(L, "pool: malformed task function");
  lua_pushvalue(L, -1);
  lua_rawseti(L, cache, b->h.id);
  lua_remove(L, cache);
}

/* Runs task f (a light userdata at 1): its function, its arguments (for a
 * map chunk, the chunk's items, each a value of its own), then returns its
 * encoded results as a light userdata and a length. A task without
 * arguments has no block (NULL); a task without results returns none. */
static int task_body(lua_State *L) {
  cc_future_t *f = lua_touserdata(L, 1);
  void *args = f->args;
  size_t alen = f->args_len;
  conc_wbuf_t b;
  void *data = NULL;
  size_t len = 0;
  int n = 0;
  lua_settop(L, 1);
  push_function(L, f->fn); /* 2 */
  if (args) {
    n = conc_decode(L, args, alen); /* 3 .. n + 2 */
    f->args = NULL; /* cleared first: see cc_process_drop_job */
    atomic_signal_fence(memory_order_seq_cst);
    conc_codec_release(args, alen);
    cc_free(args);
  }
  if (f->kind == CC_TASK_APPLY) {
    if (n > 0) { /* the function's place among the arguments */
      lua_remove(L, 3);
      n--;
    }
    lua_call(L, n, LUA_MULTRET); /* results from 2 on */
    n = lua_gettop(L) - 1;
  } else { /* each item's first result in its place */
    for (int i = 3; i < n + 3; i++) {
      lua_pushvalue(L, 2);
      lua_pushvalue(L, i);
      lua_call(L, 1, 1);
      lua_replace(L, i);
    }
    lua_remove(L, 2);
  }
  if (n > 0) {
    conc_wbuf_init(&b, 1);
    conc_encode(L, 2, n, &b, "result");
    data = conc_wbuf_take(&b, &len);
  }
  lua_settop(L, 0);
  lua_pushlightuserdata(L, data);
  lua_pushinteger(L, (lua_Integer)len);
  return 2;
}

int conc_pool_worker_main(lua_State *L) {
  cc_pool_t *p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  int slot = (int)luaL_checkinteger(L, 2);
  cc_future_t *f;
  luaL_argcheck(L, slot >= 0 && slot < p->nworkers, 2, "no such worker");
  while ((f = cc_pool_take(p, slot)) != NULL) {
    size_t len = 0;
    lua_settop(L, 2);
    lua_pushcfunction(L, conc_error_handler);
    lua_pushcfunction(L, task_body);
    lua_pushlightuserdata(L, f);
    if (lua_pcall(L, 1, 2, 3) == LUA_OK) {
      void *data = lua_touserdata(L, -2);
      len = (size_t)lua_tointeger(L, -1);
      cc_pool_task_done(p, slot, f, CC_F_OK, data, len);
    } else {
      void *err = conc_error_store(L, -1, &len); /* the value, whatever its type */
      lua_settop(L, 2);
      cc_pool_task_done(p, slot, f, CC_F_ERROR, err, len);
    }
  }
  return 0;
}
