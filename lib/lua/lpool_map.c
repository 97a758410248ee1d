/*
 * lpool_map.c - pool:map (see lpool.h and docs/POOLS.md). The creating
 * thread waits here as future:get does: a task suspends, a thread blocks.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "lpool.h"

#define MAP_CHUNK_MAX 4096 /* items in one map chunk */

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
  conc_pool_queue_task(L, p, CC_TASK_MAP, b, data, len);
  lua_rawseti(L, futs, c + 1);
  return len;
}

/* map(fn, list [, chunksize]): each chunk is encoded straight from the list
 * and its results are decoded straight into the output list, in order. The
 * next chunk's results are read as soon as they are there, else one more
 * chunk is queued, unless MAP_MAX_CHUNKS chunks or MAP_MAX_BYTES bytes of
 * items are queued or unread already: then it waits. So a map of any length
 * holds a bounded amount of shared memory, and the creating thread, the
 * busiest, waits only when the workers are behind. It waits as get does
 * (conc_pool_wait): a task suspends, a thread blocks, serving the pool. */
#define MAP_MAX_CHUNKS 64
#define MAP_MAX_BYTES ((size_t)2 << 20)

/* Where a map is: kept in a userdata on the stack across its waits. */
typedef struct map_state {
  lua_Integer n, cs, nchunks, queued, done;
  size_t inflight; /* bytes of the items of chunks queued or unread */
  cc_fnbox_t *b;   /* kept by the pool's function cache while fn lives */
} map_state_t;

/* The stack of map_step and map_waited. */
enum { M_POOL = 1, M_FN, M_LIST, M_FUTS, M_OUT, M_STATE, M_NARGS = M_STATE };

/* The wait for chunk st->done ended (its Future on top, index in w->arg[2]):
 * its results go to the output list, or map raises, cancelling the chunks
 * after it (and this one too when the waiting task was cancelled). */
static int map_waited(lua_State *L, int rc, cc_wait_t *w) {
  map_state_t *st = lua_touserdata(L, M_STATE);
  cc_future_t *f = (cc_future_t *)conc_toobj(L, (int)w->arg[2]);
  if (rc == 0 && cc_future_state(f) == CC_F_OK) {
    int m = conc_pool_decode_results(L, f); /* one value per item: nil keeps its place */
    for (lua_Integer k = (st->done - 1) * st->cs + m; m > 0; m--, k--)
      lua_rawseti(L, M_OUT, k);
    cc_future_drop_result(f); /* read: its shared memory can go now */
    lua_pushnil(L);
    lua_rawseti(L, M_FUTS, st->done);
    return 0;
  }
  cancel_chunks(L, M_FUTS, rc == CC_ECANCELLED ? st->done : st->done + 1, st->queued);
  if (rc == CC_ECANCELLED) return conc_task_raise_cancelled(L);
  if (rc) return conc_raise(L, rc, "pool:map");
  return conc_pool_results(L, f);
}

/* map_step(pool, fn, list, futs, out, state): queues chunks while the next
 * one to read is not finished and there is room, then waits for that one
 * and reads it (map_waited). Returns nothing. */
static int map_step(lua_State *L) {
  map_state_t *st = lua_touserdata(L, M_STATE);
  cc_pool_t *p = (cc_pool_t *)conc_toobj(L, M_POOL);
  cc_future_t *f;
  for (;;) {
    f = NULL;
    if (st->done < st->queued) {
      lua_rawgeti(L, M_FUTS, st->done + 1);
      f = (cc_future_t *)conc_toobj(L, -1);
      lua_pop(L, 1); /* still in futs */
    }
    if ((f && cc_future_done(f)) || st->queued >= st->nchunks ||
        st->queued - st->done >= MAP_MAX_CHUNKS || st->inflight >= MAP_MAX_BYTES)
      break;
    st->inflight += queue_chunk(L, p, st->b, M_FUTS, st->done + 1, st->queued, st->cs, st->n);
    st->queued++;
  }
  lua_rawgeti(L, M_FUTS, ++st->done);
  f = (cc_future_t *)conc_toobj(L, -1);
  st->inflight -= f->args_len;
  return conc_pool_wait(L, lua_gettop(L), M_POOL, CC_FOREVER, map_waited);
}

/* The loop of map: one map_step per chunk, called with a continuation so
 * that a step may suspend its task (and no C level piles up per chunk). */
static int map_loop(lua_State *L, int status, lua_KContext ctx) {
  map_state_t *st = lua_touserdata(L, 7);
  (void)status;
  (void)ctx;
  while (st->done < st->nchunks) {
    lua_pushcfunction(L, map_step);
    lua_pushvalue(L, 1); /* pool */
    lua_pushvalue(L, 2); /* fn */
    lua_pushvalue(L, 3); /* list */
    lua_pushvalue(L, 5); /* futs */
    lua_pushvalue(L, 6); /* out */
    lua_pushvalue(L, 7); /* state */
    lua_callk(L, M_NARGS, 0, 0, map_loop);
  }
  lua_settop(L, 6);
  return 1;
}

int conc_pool_map(lua_State *L) {
  cc_pool_t *p = conc_pool_check(L);
  lua_Integer n, cs, nchunks;
  map_state_t *st;
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
  conc_pool_service(L, 1, p);
  conc_pool_check_open(L, p, "map");
  nchunks = n / cs + (n % cs != 0);
  lua_createtable(L, (int)(nchunks < INT32_MAX ? nchunks : 0), 0); /* 5: futs */
  lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);             /* 6: out */
  st = lua_newuserdatauv(L, sizeof *st, 0);                        /* 7 */
  st->n = n;
  st->cs = cs;
  st->nchunks = nchunks;
  st->queued = st->done = 0;
  st->inflight = 0;
  st->b = conc_pool_function_box(L, 1, 2);
  return map_loop(L, LUA_OK, 0);
}
