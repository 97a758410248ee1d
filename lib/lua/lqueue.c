/*
 * lqueue.c - conc.queue and conc.select (the core is lib/core/queue.c).
 *
 * Misuse raises (a nil item, a put on a closed queue, task_done too often);
 * expected outcomes return fail values: put -> false on timeout, get ->
 * nil, "timeout" / nil, "closed" (plus the code name).
 */
#include <lauxlib.h>
#include <lua.h>

#include "lconc.h"
#include "lvalue.h"
#include "queue.h"

#define QUEUE_T (&cc_queue_type)
#define SELECT_STACK 16 /* selects over more queues use a temporary userdata */

static cc_queue_t *checkq(lua_State *L, int idx) {
  return (cc_queue_t *)conc_check(L, idx, QUEUE_T);
}

/* `self` of a method: the methods carry the queue metatable as upvalue 1,
 * so the check is one rawequal (conc_check gives the error message). */
static cc_queue_t *self(lua_State *L) {
  conc_ud *u = lua_touserdata(L, 1);
  if (cc_likely(u != NULL && lua_getmetatable(L, 1))) {
    int ok = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (cc_likely(ok && u->obj != NULL)) return (cc_queue_t *)u->obj;
  }
  return checkq(L, 1);
}

static int l_queue(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 1, 0);
  char name[CC_NAME_MAX];
  cc_queue_t *q;
  luaL_argcheck(L, max >= 0 && max <= INT32_MAX, 1, "maxsize out of range");
  conc_where(L, name, sizeof name);
  q = cc_queue_new((uint32_t)max, name);
  if (!q && conc_reclaim(L)) q = cc_queue_new((uint32_t)max, name);
  if (!q) return luaL_error(L, "conc.queue: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, &q->h);
  return 1;
}

/* put with a deadline: true, false (timeout), or raises. */
static int do_put(lua_State *L, cc_queue_t *q, cc_deadline_t d) {
  cc_item_t it;
  int rc;
  luaL_argexpected(L, !lua_isnoneornil(L, 2), 2, "non-nil value");
  conc_item_from_lua(L, 2, &it, "item");
  rc = cc_queue_put(q, &it, d);
  if (cc_unlikely(rc == CC_ENOMEM) && conc_reclaim(L)) rc = cc_queue_put(q, &it, d);
  if (cc_likely(rc == 0)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  cc_item_clear(&it);
  if (rc == CC_ETIMEOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return conc_raise(L, rc, "queue:put");
}

static int l_put(lua_State *L) {
  cc_queue_t *q = self(L);
  return do_put(L, q, conc_opt_deadline(L, 3));
}

static int l_try_put(lua_State *L) {
  return do_put(L, self(L), CC_NOW);
}

/* Pushes the item and frees it (also when the push raises). */
static int push_item(lua_State *L, cc_item_t *it) {
  conc_item_push_take(L, it);
  return 1;
}

static int do_get(lua_State *L, cc_queue_t *q, cc_deadline_t d) {
  cc_item_t it;
  int rc = cc_queue_get(q, &it, d);
  if (cc_likely(rc == 0)) return push_item(L, &it);
  return conc_fail(L, rc);
}

static int l_get(lua_State *L) {
  cc_queue_t *q = self(L);
  return do_get(L, q, conc_opt_deadline(L, 2));
}

static int l_try_get(lua_State *L) {
  return do_get(L, self(L), CC_NOW);
}

static int l_peek(lua_State *L) {
  cc_item_t it;
  if (cc_queue_peek(self(L), &it) != 0) {
    lua_pushnil(L);
    return 1;
  }
  return push_item(L, &it);
}

static int l_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cc_queue_size(self(L)));
  return 1;
}

static int l_empty(lua_State *L) {
  lua_pushboolean(L, cc_queue_size(self(L)) == 0);
  return 1;
}

static int l_full(lua_State *L) {
  cc_queue_t *q = self(L);
  lua_pushboolean(L, q->maxsize != 0 && cc_queue_size(q) >= q->maxsize);
  return 1;
}

static int l_close(lua_State *L) {
  cc_queue_close(self(L));
  return 0;
}

static int l_closed(lua_State *L) {
  lua_pushboolean(L, atomic_load(&self(L)->closed) != 0);
  return 1;
}

static int iter_next(lua_State *L) {
  cc_queue_t *q = checkq(L, lua_upvalueindex(1));
  cc_item_t it;
  int rc = cc_queue_get(q, &it, CC_FOREVER);
  if (rc == 0) return push_item(L, &it);
  if (rc == CC_ECLOSED) return 0;
  return conc_raise(L, rc, "queue:iter");
}

static int l_iter(lua_State *L) {
  self(L);
  lua_settop(L, 1);
  lua_pushcclosure(L, iter_next, 1);
  return 1;
}

static int l_task_done(lua_State *L) {
  if (cc_queue_task_done(self(L)) != 0)
    return luaL_error(L, "queue:task_done: called more times than items were put");
  return 0;
}

static int l_join(lua_State *L) {
  cc_queue_t *q = self(L);
  int rc = cc_queue_join(q, conc_opt_deadline(L, 2));
  if (rc != 0 && rc != CC_ETIMEOUT) return conc_raise(L, rc, "queue:join");
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* ---- select ---------------------------------------------------------------- */

/* A per-thread xorshift: the starting queue of each select is random, so no
 * queue starves whatever the pattern of calls (a plain counter can be
 * defeated by a thread alternating between two selects). */
static _Thread_local uint32_t rot_state;

static uint32_t next_start(void) {
  uint32_t x = rot_state;
  if (x == 0) x = (uint32_t)(uintptr_t)&rot_state | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rot_state = x;
  return x;
}

static int l_select(lua_State *L) {
  int n = lua_gettop(L), which = 0, rc;
  cc_deadline_t d = CC_FOREVER;
  cc_queue_t *stackqs[SELECT_STACK], **qs = stackqs;
  cc_item_t it;
  if (n >= 2 && lua_type(L, n) == LUA_TNUMBER) {
    d = conc_opt_deadline(L, n);
    n--;
  } else if (n >= 2 && lua_isnil(L, n)) {
    n--;
  }
  luaL_argexpected(L, n >= 1, 1, "conc.queue");
  if (n > SELECT_STACK) qs = lua_newuserdatauv(L, (size_t)n * sizeof *qs, 0);
  for (int i = 0; i < n; i++)
    qs[i] = checkq(L, i + 1);
  rc = cc_queue_select(qs, n, next_start(), &it, &which, d);
  if (rc == CC_ENOMEM && conc_reclaim(L)) rc = cc_queue_select(qs, n, next_start(), &it, &which, d);
  if (rc == CC_ENOMEM) return conc_raise(L, rc, "conc.select");
  if (rc != 0) return conc_fail(L, rc);
  lua_pushvalue(L, which + 1);
  push_item(L, &it);
  return 2;
}

static const luaL_Reg methods[] = {{"put", l_put},
                                   {"get", l_get},
                                   {"try_put", l_try_put},
                                   {"try_get", l_try_get},
                                   {"peek", l_peek},
                                   {"empty", l_empty},
                                   {"full", l_full},
                                   {"close", l_close},
                                   {"closed", l_closed},
                                   {"iter", l_iter},
                                   {"task_done", l_task_done},
                                   {"join", l_join},
                                   {"size", l_len},
                                   {NULL, NULL}};

static int l_mlen(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cc_queue_size(checkq(L, 1)));
  return 1;
}

static const luaL_Reg metamethods[] = {{"__len", l_mlen}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"queue", l_queue}, {"select", l_select}, {NULL, NULL}};

static void build_queue_type(lua_State *L, const cc_type_t *type, const luaL_Reg *meths) {
  conc_newtype(L, type, NULL, metamethods, NULL);
  /* Method lookups go straight to a table (no C __index call per q:put);
   * each method carries the metatable for its `self` check. */
  luaL_getmetatable(L, "conc.queue");
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, meths, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void conc_open_queue(lua_State *L) {
  conc_item_init();
  conc_lazytype(QUEUE_T, build_queue_type, methods);
  luaL_setfuncs(L, funcs, 0);
}
