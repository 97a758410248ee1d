/*
 * lpool_map.c - pool:map (see lpool.h and docs/POOLS.md). The creating
 * thread waits here as a thread, also inside a task.
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
 * busiest, waits only when the workers are behind. */
#define MAP_MAX_CHUNKS 64
#define MAP_MAX_BYTES ((size_t)2 << 20)
int conc_pool_map(lua_State *L) {
  cc_pool_t *p = conc_pool_check(L);
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
  conc_pool_service(L, 1, p);
  conc_pool_check_open(L, p, "map");
  b = conc_pool_function_box(L, 1, 2);
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
    rc = conc_pool_owner_wait(L, 1, p, f, CC_FOREVER);
    if (rc == 0 && cc_future_state(f) == CC_F_OK) {
      int m = conc_pool_decode_results(L, f); /* one value per item: nil keeps its place */
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
    return conc_pool_results(L, f);
  }
  return 1;
}
