/*
 * lpool.c - conc.pool and Futures (the core is lib/core/pool.c; see
 * docs/POOLS.md).
 *
 * Workers are ordinary conc threads or processes, started with conc.thread
 * or conc.process (daemon) and running worker_main, a C function, with the
 * pool as argument: a process worker is forked from the creating state, so
 * it sees that state's globals as they were at fork time.
 *
 * A task's function is encoded once per pool (a weak-keyed cache from the
 * Lua function to a shared box) and decoded once per worker (a cache by the
 * box's id): `map` over a million items sends the function once. Arguments
 * go through the codec each time.
 *
 * Only the state that created a pool (in its process) uses it: it keeps the
 * pool userdata's user value, a table {workers, callbacks, functions}, and
 * finds its pools by address in a weak registry table, which is how a
 * Future's methods know that they run in the owner and may run callbacks
 * and replace dead workers there (`service`).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lconc.h"
#include "pool.h"
#include "process.h"
#include "thread.h"

#define POOL_T (&cc_pool_type)
#define FUTURE_T (&cc_future_type)
#define FNBOX_T (&cc_fnbox_type)

#define WORKER_FN_CACHE 64 /* decoded functions a worker keeps */
#define MAP_CHUNK_MAX 4096  /* items in one map chunk */

/* Registry keys. */
static const char owned_key = 'o';   /* weak: light(pool) -> pool userdata */
static const char spawn_key = 's';   /* {conc.thread, conc.process} */
static const char fncache_key = 'f'; /* worker: box id -> function, [0] = count */

/* The pool userdata's user value. */
enum { UV_WORKERS = 1, UV_CALLBACKS, UV_FUNCTIONS };

/* ---- the worker side ------------------------------------------------------ */

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
  if (conc_decode(L, b->data, b->len) != 1 || !lua_isfunction(L, -1))
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

/* The job of every worker: worker_main(pool, slot). */
static int worker_main(lua_State *L) {
  cc_pool_t *p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  int slot = (int)luaL_checkinteger(L, 2);
  cc_future_t *f;
  luaL_argcheck(L, slot >= 0 && slot < p->nworkers, 2, "no such worker");
  while ((f = cc_pool_take(p, slot)) != NULL) {
    size_t len = 0;
    lua_settop(L, 2);
    lua_pushcfunction(L, conc_job_msghandler);
    lua_pushcfunction(L, task_body);
    lua_pushlightuserdata(L, f);
    if (lua_pcall(L, 1, 2, 3) == LUA_OK) {
      void *data = lua_touserdata(L, -2);
      len = (size_t)lua_tointeger(L, -1);
      cc_pool_task_done(p, slot, f, CC_F_OK, data, len);
    } else {
      size_t mlen;
      const char *m = lua_tolstring(L, -1, &mlen);
      void *text;
      if (!m) m = "?", mlen = 1;
      text = conc_store_text(m, mlen, &len);
      cc_pool_task_done(p, slot, f, CC_F_ERROR, text, len);
    }
  }
  return 0;
}

/* ---- the owner side -------------------------------------------------------- */

/* The pool of method self at 1, which this state must own. */
static cc_pool_t *checkpool(lua_State *L) {
  cc_pool_t *p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  if (p->owner_pid != cc_pid || lua_getiuservalue(L, 1, 1) != LUA_TTABLE)
    luaL_error(L, "pool '%s' can only be used by the thread that created it", p->h.name);
  lua_pop(L, 1);
  return p;
}

/* Pushes field k of the user value of the pool userdata at pidx. */
static void push_uv(lua_State *L, int pidx, int k) {
  lua_getiuservalue(L, pidx, 1);
  lua_rawgeti(L, -1, k);
  lua_remove(L, -2);
}

/* Starts the worker of slot i: 1, or 0 with the error pushed (the slot is
 * then dead again). */
static int start_worker(lua_State *L, int pidx, cc_pool_t *p, int i) {
  char name[CC_NAME_MAX];
  int top = lua_gettop(L);
  snprintf(name, sizeof name, "%.40s worker %d", p->h.name, i + 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &spawn_key);
  lua_rawgeti(L, -1, p->processes ? 2 : 1);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "daemon");
  lua_pushcfunction(L, worker_main);
  lua_pushvalue(L, pidx);
  lua_pushinteger(L, i);
  cc_pool_slot_live(p, i);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
    cc_pool_slot_dead(p, i);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 0;
  }
  push_uv(L, pidx, UV_WORKERS);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, i + 1);
  lua_settop(L, top);
  return 1;
}

/* Starts the workers of the n slots listed, then the monitors of the
 * process workers among them: no monitor thread of ours is starting (and
 * allocating) while we fork, which GCC 12's AddressSanitizer runtime does
 * not survive (see docs/PROCESSES.md). On a failure, watches what did
 * start, gives the slots not reached back as dead, and raises. */
static void start_workers(lua_State *L, int pidx, cc_pool_t *p, const int *slots, int n) {
  int top = lua_gettop(L), started = 0, failed = 0;
  while (started < n && !failed) {
    if (start_worker(L, pidx, p, slots[started]))
      started++;
    else
      failed = 1;
  }
  for (int k = started + failed; k < n; k++)
    cc_pool_slot_dead(p, slots[k]);
  if (p->processes) {
    push_uv(L, pidx, UV_WORKERS);
    for (int k = 0; k < started; k++) {
      cc_obj_t *w;
      lua_rawgeti(L, -1, slots[k] + 1);
      w = conc_toobj(L, -1);
      if (cc_pool_watch(p, slots[k], w) != 0)
        fprintf(stderr, "conclua: warning: pool '%s': cannot watch worker process %d\n",
                p->h.name, (int)((cc_thread_t *)w)->pid);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top + failed);
  if (failed) lua_error(L);
}

/* Pushes the error of a failed or cancelled Future as a string. */
static void push_error(lua_State *L, cc_future_t *f) {
  const char *text = f->result ? (const char *)f->result : "?";
  if (cc_future_state(f) == CC_F_CANCELLED)
    lua_pushfstring(L, "future '%s' was cancelled", f->h.name);
  else if (f->died)
    lua_pushstring(L, text);
  else
    lua_pushfstring(L, "pool '%s': %s", f->pool->h.name, text);
}

/* Pushes the results of f, which finished with CC_F_OK: how many. */
static int decode_results(lua_State *L, cc_future_t *f) {
  return f->result ? conc_decode(L, f->result, f->result_len) : 0;
}

/* Pushes the outcome of final f as callbacks get it: true, results... or
 * false, error. Returns how many values. */
static int push_outcome(lua_State *L, cc_future_t *f) {
  if (cc_future_state(f) == CC_F_OK) {
    lua_pushboolean(L, 1);
    return 1 + decode_results(L, f);
  }
  lua_pushboolean(L, 0);
  push_error(L, f);
  return 2;
}

/* Runs, in order, the callbacks listed for the Future userdata at fidx
 * (the list is removed first). An error in a callback is printed. */
static void run_callbacks(lua_State *L, int cbs, int fidx, cc_pool_t *p) {
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
    lua_pushcfunction(L, conc_job_msghandler);
    lua_rawgeti(L, list, i);
    nargs = push_outcome(L, f);
    if (lua_pcall(L, nargs, 0, base + 1) != LUA_OK) {
      fprintf(stderr, "conclua: error in a callback of pool '%s': %s\n", p->h.name,
              lua_tostring(L, -1));
      fflush(stderr);
    }
    lua_settop(L, base);
  }
  lua_pop(L, 1);
}

/* Replaces the workers that died (service's rare path). */
static void replace_dead(lua_State *L, int pidx, cc_pool_t *p) {
  int slots[CC_POOL_MAX], n = 0, i;
  while ((i = cc_pool_claim_dead(p)) >= 0) {
    if (atomic_load(&p->terminated) ||
        (atomic_load(&p->closed) && cc_queue_size(p->tasks) == 0)) {
      atomic_store(&p->slot[i].state, CC_SLOT_EXITED); /* nothing left to do */
      continue;
    }
    slots[n++] = i;
  }
  start_workers(L, pidx, p, slots, n);
}

/* What the owner does at each call into a pool or one of its Futures and
 * while it waits in one: replace dead workers, run queued callbacks. */
static void service(lua_State *L, int pidx, cc_pool_t *p) {
  cc_future_t *f;
  int top = lua_gettop(L);
  if (cc_unlikely(atomic_load(&p->deaths) != 0)) replace_dead(L, pidx, p);
  if (!(f = cc_pool_take_callbacks(p))) return;
  push_uv(L, pidx, UV_CALLBACKS);
  while (f) {
    cc_future_t *next = f->cb_next;
    conc_push_owned(L, &f->h); /* adopts the list's reference */
    run_callbacks(L, top + 1, top + 2, p);
    lua_settop(L, top + 1);
    f = next;
  }
  lua_settop(L, top);
}

/* If this state owns the pool of f (the Future's userdata at fidx),
 * pushes the pool userdata and returns its index; else returns 0. A Future
 * that this state submitted keeps its pool's userdata as its user value:
 * no registry lookup then. */
static int owner_of(lua_State *L, int fidx, cc_future_t *f) {
  if (f->pool->owner_pid != cc_pid) return 0;
  if (lua_getiuservalue(L, fidx, 1) == LUA_TUSERDATA) return lua_gettop(L);
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &owned_key) != LUA_TTABLE ||
      lua_rawgetp(L, -1, f->pool) != LUA_TUSERDATA) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return lua_gettop(L);
}

/* The owner's wait for f (or, f NULL, for every task of p), serving the
 * pool meanwhile: 0, CC_ETIMEOUT or CC_EINTR. */
static int owner_wait(lua_State *L, int pidx, cc_pool_t *p, cc_future_t *f,
                      cc_deadline_t d) {
  for (;;) {
    uint32_t seen = atomic_load(&p->notify);
    int done = f ? cc_future_done(f) : atomic_load(&p->unfinished) == 0, rc;
    service(L, pidx, p); /* after the check: a finished f's callbacks run now */
    if (done) return 0;
    rc = cc_pool_wait_event(p, seen, f ? &f->h : &p->h, d);
    if (rc == CC_ETIMEOUT) {
      done = f ? cc_future_done(f) : atomic_load(&p->unfinished) == 0;
      service(L, pidx, p);
      return done ? 0 : rc;
    }
    if (rc) return rc;
  }
}

/* Waits for f (its userdata at 1), as the owner if this state owns its
 * pool. */
static int wait_future(lua_State *L, cc_future_t *f, cc_deadline_t d) {
  int top = lua_gettop(L), pidx = owner_of(L, 1, f), rc;
  rc = pidx ? owner_wait(L, pidx, f->pool, f, d) : cc_future_wait(f, d);
  lua_settop(L, top);
  return rc;
}

/* The results of final f, or raises its error. */
static int push_results(lua_State *L, cc_future_t *f) {
  if (cc_future_state(f) == CC_F_OK) return decode_results(L, f);
  luaL_where(L, 1);
  push_error(L, f);
  lua_concat(L, 2);
  return lua_error(L);
}

/* The shared box of the function at fidx, encoded on first use by the
 * pool at pidx (a weak-keyed cache in its user value). */
static cc_fnbox_t *function_box(lua_State *L, int pidx, int fidx) {
  cc_fnbox_t *b;
  conc_wbuf_t w;
  void *data;
  size_t len;
  push_uv(L, pidx, UV_FUNCTIONS);
  lua_pushvalue(L, fidx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    b = (cc_fnbox_t *)((conc_ud *)lua_touserdata(L, -1))->obj;
    lua_pop(L, 2);
    return b;
  }
  lua_pop(L, 1);
  conc_wbuf_init(&w, 1);
  conc_encode(L, fidx, 1, &w, "argument");
  data = conc_wbuf_take(&w, &len);
  if (!(b = cc_fnbox_new(data, len))) {
    conc_codec_release(data, len);
    cc_free(data);
    luaL_error(L, "pool: %s", cc_strerror(CC_ENOMEM));
  }
  conc_push_owned(L, &b->h);
  lua_pushvalue(L, fidx);
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  lua_pop(L, 2);
  return b;
}

/* Queues a task of `kind` with fn box b and encoded args (taken over);
 * pushes its Future (its user value keeps the pool alive). */
static cc_future_t *queue_task(lua_State *L, cc_pool_t *p, int kind, cc_fnbox_t *b,
                               void *args, size_t len) {
  int rc;
  cc_future_t *f = cc_future_new(p, kind, b, args, len);
  if (!f) {
    if (args) {
      conc_codec_release(args, len);
      cc_free(args);
    }
    luaL_error(L, "pool: %s", cc_strerror(CC_ENOMEM));
  }
  conc_push_owned(L, &f->h);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  if ((rc = cc_pool_submit(p, f)) != 0) {
    cc_future_cancel(f);
    luaL_error(L, "pool:submit: %s", rc == CC_ECLOSED ? "pool is closed" : cc_strerror(rc));
  }
  return f;
}

static void check_open(lua_State *L, cc_pool_t *p, const char *what) {
  if (atomic_load(&p->closed)) luaL_error(L, "pool:%s: pool is closed", what);
}

static int l_submit(lua_State *L) {
  cc_pool_t *p = checkpool(L);
  int n = lua_gettop(L);
  cc_fnbox_t *b;
  conc_wbuf_t w;
  void *args;
  size_t len;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  service(L, 1, p);
  check_open(L, p, "submit");
  b = function_box(L, 1, 2);
  /* Arguments are numbered as the caller sees them: the function is 1. */
  args = NULL;
  len = 0;
  if (n > 2) {
    lua_pushnil(L);
    lua_replace(L, 2);
    conc_wbuf_init(&w, 1);
    conc_encode(L, 2, n - 1, &w, "argument");
    args = conc_wbuf_take(&w, &len);
  }
  queue_task(L, p, CC_TASK_APPLY, b, args, len);
  return 1;
}

static int l_apply(lua_State *L) {
  cc_future_t *f;
  int rc, top;
  l_submit(L);
  top = lua_gettop(L);
  f = (cc_future_t *)conc_toobj(L, top);
  rc = owner_wait(L, 1, f->pool, f, CC_FOREVER);
  if (rc) return conc_raise(L, rc, "pool:apply");
  return push_results(L, f);
}

/* encode_chunk(list, first, count) -> light block, length: the items
 * list[first .. first + count - 1], each a value of its own, straight from
 * the list (run protected by map; count is at most MAP_CHUNK_MAX). */
static int encode_chunk(lua_State *L) {
  lua_Integer first = lua_tointeger(L, 2), count = lua_tointeger(L, 3);
  conc_wbuf_t w;
  void *data;
  size_t len;
  luaL_checkstack(L, (int)count, "map chunk");
  for (lua_Integer k = 0; k < count; k++)
    if (lua_rawgeti(L, 1, first + k) == LUA_TNIL)
      return luaL_error(L, "bad argument #2 to 'map' (list has a hole at index %I)",
                        first + k);
  conc_wbuf_init(&w, 1);
  conc_encode(L, 4, (int)count, &w, "argument");
  data = conc_wbuf_take(&w, &len);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, data);
  lua_pushinteger(L, (lua_Integer)len);
  return 2;
}

/* Cancels the Futures futs[from .. to] (a map that gives up). */
static void cancel_chunks(lua_State *L, int futs, lua_Integer from, lua_Integer to) {
  for (lua_Integer k = from; k <= to; k++) {
    lua_rawgeti(L, futs, k);
    cc_future_cancel((cc_future_t *)conc_toobj(L, -1));
    lua_pop(L, 1);
  }
}

/* The chunk size of a map of n items on p: the caller's, else Python's
 * choice (n / (4 x workers), rounded up); at most MAP_CHUNK_MAX either way,
 * as a chunk's items pass through the Lua stack (and stay in the caches). */
static lua_Integer chunk_size(lua_State *L, cc_pool_t *p, lua_Integer n) {
  lua_Integer cs;
  if (lua_isnoneornil(L, 4)) {
    lua_Integer per = (lua_Integer)p->nworkers * 4;
    cs = n / per + (n % per != 0);
  } else {
    cs = luaL_checkinteger(L, 4);
    luaL_argcheck(L, cs >= 1, 4, "chunksize must be at least 1");
  }
  return cs < 1 ? 1 : cs > MAP_CHUNK_MAX ? MAP_CHUNK_MAX : cs;
}

/* Encodes chunk c (from 0) of the list at 3 and queues it; pushes nothing
 * and returns the length of its encoded items.
 * On an encoding error, cancels the queued chunks futs[from .. c] and
 * raises (naming an uncopyable item as the caller numbers it). */
static size_t queue_chunk(lua_State *L, cc_pool_t *p, cc_fnbox_t *b, int futs,
                        lua_Integer from, lua_Integer c, lua_Integer cs, lua_Integer n) {
  lua_Integer first = c * cs + 1, count = n - c * cs < cs ? n - c * cs : cs;
  void *data;
  size_t len;
  lua_pushcfunction(L, encode_chunk);
  lua_pushvalue(L, 3);
  lua_pushinteger(L, first);
  lua_pushinteger(L, count);
  if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
    cancel_chunks(L, futs, from, c); /* give back what was queued */
    if (strstr(lua_tostring(L, -1), "cannot copy")) {
      /* Encode the whole list again as argument 2 (the function's place is
       * argument 1): the message then says "(argument 2, field '[k]')". */
      conc_wbuf_t w;
      lua_pushnil(L);
      lua_replace(L, 2);
      conc_wbuf_init(&w, 1);
      conc_encode(L, 2, 2, &w, "argument");
      conc_wbuf_free(&w);
    }
    lua_error(L);
  }
  data = lua_touserdata(L, -2);
  len = (size_t)lua_tointeger(L, -1);
  lua_pop(L, 2);
  queue_task(L, p, CC_TASK_MAP, b, data, len);
  lua_rawseti(L, futs, c + 1);
  return len;
}

/* map(fn, list [, chunksize]): each chunk is encoded straight from the list
 * and its results are decoded straight into the output list, in order. The
 * next chunk's results are read as soon as they are there, else one more
 * chunk is queued, unless MAP_MAX_CHUNKS chunks or MAP_MAX_BYTES bytes of
 * items are queued or unread already: then it waits. So a map of any length
 * holds a bounded amount of shared memory, and the creating thread, the
 * busiest, waits only when the workers are behind. */
#define MAP_MAX_CHUNKS 64
#define MAP_MAX_BYTES ((size_t)2 << 20)
static int l_map(lua_State *L) {
  cc_pool_t *p = checkpool(L);
  lua_Integer n, cs, nchunks, queued = 0, done = 0;
  size_t inflight = 0; /* bytes of the items of chunks queued or unread */
  cc_fnbox_t *b;
  int futs, out;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 3);
  if (n == 0) {
    lua_pushnil(L);
    if (lua_next(L, 3))
      return luaL_argerror(L, 3, "sequence expected, got a table with other keys");
  }
  cs = chunk_size(L, p, n);
  lua_settop(L, 4);
  service(L, 1, p);
  check_open(L, p, "map");
  b = function_box(L, 1, 2);
  nchunks = n / cs + (n % cs != 0);
  lua_createtable(L, (int)(nchunks < INT32_MAX ? nchunks : 0), 0);
  futs = lua_gettop(L); /* 5 */
  lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
  out = lua_gettop(L); /* 6 */
  while (done < nchunks) {
    cc_future_t *f = NULL;
    int rc;
    if (done < queued) {
      lua_rawgeti(L, futs, done + 1);
      f = (cc_future_t *)conc_toobj(L, -1);
      lua_pop(L, 1); /* still in futs */
    }
    if ((!f || !cc_future_done(f)) && queued < nchunks && queued - done < MAP_MAX_CHUNKS &&
        inflight < MAP_MAX_BYTES) {
      inflight += queue_chunk(L, p, b, futs, done + 1, queued, cs, n);
      queued++;
      continue;
    }
    lua_rawgeti(L, futs, ++done);
    f = (cc_future_t *)conc_toobj(L, -1);
    inflight -= f->args_len;
    rc = owner_wait(L, 1, p, f, CC_FOREVER);
    if (rc == 0 && cc_future_state(f) == CC_F_OK) {
      int m = decode_results(L, f); /* one value per item: nil keeps its place */
      for (lua_Integer k = (done - 1) * cs + m; m > 0; m--, k--)
        lua_rawseti(L, out, k);
      cc_future_drop_result(f); /* read: its shared memory can go now */
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawseti(L, futs, done);
      continue;
    }
    cancel_chunks(L, futs, done + 1, queued);
    if (rc) return conc_raise(L, rc, "pool:map");
    return push_results(L, f);
  }
  return 1;
}

static int l_close(lua_State *L) {
  cc_pool_t *p = checkpool(L);
  cc_pool_close(p);
  service(L, 1, p);
  return 0;
}

/* Waits for every task; once the pool is closed, also for its workers. */
static int l_join(lua_State *L) {
  cc_pool_t *p = checkpool(L);
  int rc = owner_wait(L, 1, p, NULL, CC_FOREVER), n;
  if (rc) return conc_raise(L, rc, "pool:join");
  if (!atomic_load(&p->closed)) return 0;
  push_uv(L, 1, UV_WORKERS);
  n = (int)lua_rawlen(L, -1);
  for (int i = 1; i <= n; i++) {
    cc_obj_t *w;
    if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    w = conc_toobj(L, -1);
    rc = w->type == &cc_process_type ? cc_process_join((cc_process_t *)w, CC_FOREVER)
                                      : cc_thread_join((cc_thread_t *)w, CC_FOREVER);
    if (rc) return conc_raise(L, rc, "pool:join");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  rc = cc_pool_wait_monitors(p, CC_FOREVER);
  if (rc) return conc_raise(L, rc, "pool:join");
  service(L, 1, p);
  return 0;
}

static int l_close_join(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  if (!u || !u->obj) return 0;
  l_close(L);
  lua_settop(L, 1);
  return l_join(L);
}

/* __gc: the owner's last reference stops the workers (queued tasks are
 * cancelled, running ones finish; never waits). */
static int pool_gc(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  if (u && u->obj) {
    cc_pool_t *p = (cc_pool_t *)u->obj;
    u->obj = NULL;
    if (u->pid != cc_pid) return 0; /* the parent process's reference */
    if (p->owner_pid == cc_pid && lua_getiuservalue(L, 1, 1) == LUA_TTABLE)
      cc_pool_terminate(p);
    cc_obj_unref(&p->h);
  }
  return 0;
}

/* Fields (the key is looked at first: a method lookup, pool:submit, pays
 * no type check here). */
static int pool_index(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  cc_pool_t *p;
  if (!k || (strcmp(k, "name") != 0 && strcmp(k, "size") != 0 &&
             strcmp(k, "processes") != 0))
    return 0;
  p = (cc_pool_t *)conc_check(L, 1, POOL_T);
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, p->h.name);
  else if (strcmp(k, "size") == 0)
    lua_pushinteger(L, p->nworkers);
  else if (strcmp(k, "processes") == 0)
    lua_pushboolean(L, p->processes);
  else
    return 0;
  return 1;
}

static int l_pool(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  int processes = 0, pidx;
  char where[CC_NAME_MAX];
  const char *name = NULL;
  cc_pool_t *p;
  luaL_argcheck(L, n >= 1 && n <= CC_POOL_MAX, 1, "pool size must be from 1 to 1024");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (k && strcmp(k, "processes") == 0)
        processes = lua_toboolean(L, -1);
      else if (k && strcmp(k, "name") == 0)
        name = luaL_checkstring(L, -1); /* anchored in the options table */
      else
        return luaL_error(L, "bad argument #2 to 'pool' (unknown option '%s')",
                          k ? k : luaL_typename(L, -2));
      lua_pop(L, 1);
    }
  }
  if (!name) {
    conc_where(L, where, sizeof where);
    name = where;
  }
  p = cc_pool_new((int)n, processes, name);
  if (!p) return luaL_error(L, "conc.pool: %s", cc_strerror(CC_ENOMEM));
  lua_settop(L, 2);
  conc_push_owned(L, &p->h);
  pidx = lua_gettop(L);
  lua_createtable(L, 3, 0);
  lua_createtable(L, (int)n, 0);
  lua_rawseti(L, -2, UV_WORKERS);
  lua_newtable(L);
  lua_rawseti(L, -2, UV_CALLBACKS);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, UV_FUNCTIONS);
  lua_setiuservalue(L, pidx, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &owned_key);
  lua_pushvalue(L, pidx);
  lua_rawsetp(L, -2, p);
  lua_pop(L, 1);
  {
    int slots[CC_POOL_MAX];
    for (int i = 0; i < (int)n; i++)
      slots[i] = i;
    start_workers(L, pidx, p, slots, (int)n);
  }
  return 1;
}

/* ---- Futures ---------------------------------------------------------------- */

static cc_future_t *checkf(lua_State *L) {
  return (cc_future_t *)conc_check(L, 1, FUTURE_T);
}

/* Serves the pool of f (its userdata at 1) if this state owns it. */
static void touch(lua_State *L, cc_future_t *f) {
  int top = lua_gettop(L), pidx = owner_of(L, 1, f);
  if (pidx) service(L, pidx, f->pool);
  lua_settop(L, top);
}

static int f_get(lua_State *L) {
  cc_future_t *f = checkf(L);
  int rc = wait_future(L, f, conc_opt_deadline(L, 2));
  if (rc) return conc_raise(L, rc, "future:get");
  return push_results(L, f);
}

static int f_wait(lua_State *L) {
  cc_future_t *f = checkf(L);
  int rc = wait_future(L, f, conc_opt_deadline(L, 2));
  if (rc && rc != CC_ETIMEOUT) return conc_raise(L, rc, "future:wait");
  lua_pushboolean(L, rc == 0);
  return 1;
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
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (!(pidx = owner_of(L, 1, f)))
    return luaL_error(L, "future:on_done: only the thread that created pool '%s' can "
                         "add callbacks", f->pool->h.name);
  service(L, pidx, f->pool);
  push_uv(L, pidx, UV_CALLBACKS);
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
    run_callbacks(L, cbs, 1, f->pool);
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
  else if (strcmp(k, "pid") == 0 && cc_future_state(f) != CC_F_PENDING)
    lua_pushinteger(L, f->runner_pid);
  else
    return 0;
  return 1;
}

/* ---- registration ------------------------------------------------------------- */

static const luaL_Reg pool_methods[] = {{"submit", l_submit}, {"apply", l_apply},
                                        {"map", l_map},       {"close", l_close},
                                        {"join", l_join},     {NULL, NULL}};
static const luaL_Reg pool_meta[] = {{"__gc", pool_gc}, {"__close", l_close_join},
                                     {NULL, NULL}};
static const luaL_Reg future_methods[] = {{"get", f_get},       {"wait", f_wait},
                                          {"done", f_done},     {"cancel", f_cancel},
                                          {"on_done", f_on_done}, {NULL, NULL}};

static void build_pool(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, pool_meta, pool_index);
}

static void build_future(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, NULL, future_index);
}

static void build_fnbox(lua_State *L, const cc_type_t *type, const luaL_Reg *methods) {
  conc_newtype(L, type, methods, NULL, NULL);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init(void) {
  cc_pool_set_release(conc_codec_release);
}

void conc_open_pool(lua_State *L) {
  pthread_once(&init_once, init);
  conc_lazytype(POOL_T, build_pool, pool_methods);
  conc_lazytype(FUTURE_T, build_future, future_methods);
  conc_lazytype(FNBOX_T, build_fnbox, NULL);
  /* The spawners, taken from the module table being built. */
  lua_createtable(L, 2, 0);
  lua_getfield(L, -2, "thread");
  lua_rawseti(L, -2, 1);
  lua_getfield(L, -2, "process");
  lua_rawseti(L, -2, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &spawn_key);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &owned_key);
  lua_pushcfunction(L, l_pool);
  lua_setfield(L, -2, "pool");
}
