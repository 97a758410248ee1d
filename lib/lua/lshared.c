/*
 * lshared.c - conc.shared: a table shared by every thread and process (the
 * core is lib/core/shared.c).
 *
 * s.k / s[k] copy the value out, s.k = v copies it in (nil deletes), each
 * atomic on its own. s:with(fn, ...) and s:hold() give exclusive access for
 * compound updates. #s, pairs(s) (a snapshot of the keys; values read as the
 * loop reaches them), ipairs(s), table.insert/remove/concat work through the
 * metamethods. Reading s.with / s.hold gives the methods: store data under
 * other names (writes to those keys are kept but only reachable by pairs).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "actor.h"
#include "lconc.h"
#include "lsync.h"
#include "ltask.h"
#include "lvalue.h"
#include "shared.h"

#define SHARED_T (&cc_shared_type)

/* The shared table at index 1 of a metamethod or method (conc_self_of: the
 * sealed check; upvalue 1, the metatable, serves its error path). */
static cc_shared_t *self(lua_State *L) {
  return (cc_shared_t *)conc_self_of(L, SHARED_T);
}

/* Normalises the key at idx like Lua does (an integral float is an
 * integer); raises for nil, NaN and types that cannot be keys. */
static void check_key(lua_State *L, int idx, cc_skey_t *k) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    k->type = CC_SK_STR;
    k->u.s = lua_tolstring(L, idx, &k->len);
    return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      k->type = CC_SK_INT;
      k->u.i = lua_tointeger(L, idx);
    } else {
      lua_Number d = lua_tonumber(L, idx);
      if (d != d) luaL_error(L, "shared table index is NaN");
      if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && floor(d) == d) {
        k->type = CC_SK_INT;
        k->u.i = (int64_t)d;
      } else {
        k->type = CC_SK_FLOAT;
        k->u.f = d;
      }
    }
    return;
  case LUA_TBOOLEAN:
    k->type = CC_SK_BOOL;
    k->u.i = lua_toboolean(L, idx);
    return;
  case LUA_TNIL:
  case LUA_TNONE:
    luaL_error(L, "shared table index is nil");
    return;
  default:
    luaL_error(L, "shared table keys must be booleans, numbers or strings (got %s)",
               luaL_typename(L, idx));
  }
}

/* Deadlock messages stand alone (no position prefix), as for locks. */
static int fail_op(lua_State *L, int rc) {
  if (rc == CC_EDEADLOCK) {
    lua_pushstring(L, cc_deadlock_message());
    return lua_error(L);
  }
  return conc_raise(L, rc, "shared table");
}

/* ---- a task waits for another holder ----------------------------------------
 * A single operation in a task whose table another actor holds (another
 * task of this loop, say) suspends the task until the holder is done, then
 * runs again from the start (op: the metamethod itself, its stack intact).
 * In a thread, or when the table is free, the core waits as before. */
static int wait_free_done(lua_State *L, int rc, cc_wait_t *w) {
  rc = cc_shared_wait_free_end((cc_shared_t *)w->arg[4], rc);
  if (rc) return fail_op(L, rc);
  return ((lua_CFunction)w->arg[3])(L);
}

static int wait_free(lua_State *L, cc_shared_t *s, lua_CFunction op) {
  cc_wait_t *w = conc_wait_slot(L);
  int rc;
  if (!w) return -1;
  w->arg[3] = (uintptr_t)op;
  w->arg[4] = (uintptr_t)s;
  rc = cc_shared_wait_free_w(w, s);
  if (rc == CC_WAIT_PARK) return conc_wait(L, w, wait_free_done);
  if (rc) return fail_op(L, rc);
  return op(L);
}

/* In an operation: `if (BUSY(s)) { n = wait_free(...); if (n >= 0) return n; }` */
#define BUSY(s) (cc_unlikely(conc_running_task != NULL) && cc_shared_busy(s))

/* Pushes the value of key k (nil when absent). */
static void push_value(lua_State *L, cc_shared_t *s, const cc_skey_t *k) {
  cc_item_t it;
  int rc = cc_shared_get(s, k, &it);
  if (rc) fail_op(L, rc);
  conc_item_push_take(L, &it);
}

static int m_index(lua_State *L) {
  cc_shared_t *s = self(L);
  cc_skey_t k;
  check_key(L, 2, &k);
  if (k.type == CC_SK_STR && k.len == 4 &&
      (memcmp(k.u.s, "with", 4) == 0 || memcmp(k.u.s, "hold", 4) == 0)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(2)); /* the methods */
    return 1;
  }
  if (BUSY(s)) {
    int n = wait_free(L, s, m_index);
    if (n >= 0) return n;
  }
  push_value(L, s, &k);
  return 1;
}

static void store(lua_State *L, cc_shared_t *s, int kidx, int vidx) {
  cc_skey_t k;
  cc_item_t it;
  int rc, vt;
  check_key(L, kidx, &k);
  vt = lua_type(L, vidx);
  if (vt >= LUA_TTABLE || vt == LUA_TLIGHTUSERDATA) {
    /* through the codec: its errors name the field (a C buffer: no Lua
     * allocation that could fail here) */
    char what[80];
    if (k.type == CC_SK_STR)
      snprintf(what, sizeof what, "field '%.*s'", k.len > 60 ? 60 : (int)k.len, k.u.s);
    else if (k.type == CC_SK_INT)
      snprintf(what, sizeof what, "field [%lld]", (long long)k.u.i);
    else if (k.type == CC_SK_FLOAT)
      snprintf(what, sizeof what, "field [%.14g]", k.u.f);
    else
      snprintf(what, sizeof what, "field [%s]", k.u.i ? "true" : "false");
    conc_item_from_lua(L, vidx, &it, what);
  } else {
    conc_item_from_lua(L, vidx, &it, "value");
  }
  rc = cc_shared_set(s, &k, &it);
  if (cc_unlikely(rc == CC_ENOMEM) && conc_reclaim(L)) rc = cc_shared_set(s, &k, &it);
  if (cc_unlikely(rc != 0)) {
    cc_item_clear(&it);
    fail_op(L, rc);
  }
}

static int m_newindex(lua_State *L) {
  cc_shared_t *s = self(L);
  if (BUSY(s)) {
    int n = wait_free(L, s, m_newindex);
    if (n >= 0) return n;
  }
  store(L, s, 2, 3);
  return 0;
}

static int m_len(lua_State *L) {
  cc_shared_t *s = self(L);
  int64_t n;
  int rc;
  if (BUSY(s)) {
    int r = wait_free(L, s, m_len);
    if (r >= 0) return r;
  }
  rc = cc_shared_len(s, &n);
  if (rc) return fail_op(L, rc);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ---- pairs: a snapshot of the keys ------------------------------------------ */

/* Iterator upvalues: 1 the snapshot (full userdata; its user value is the
 * shared table), 2 its length, 3 the read position. */
static int pairs_next(lua_State *L) {
  const unsigned char *buf = lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer len = lua_tointeger(L, lua_upvalueindex(2));
  lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));
  cc_shared_t *s;
  lua_getiuservalue(L, lua_upvalueindex(1), 1);
  s = (cc_shared_t *)conc_check(L, -1, SHARED_T);
  lua_pop(L, 1);
  if (BUSY(s)) {
    int n = wait_free(L, s, pairs_next);
    if (n >= 0) return n;
  }
  while (pos < len) {
    cc_skey_t k;
    uint32_t klen;
    int type = buf[pos];
    memcpy(&klen, buf + pos + 1, 4);
    k.type = type;
    k.len = klen;
    if (type == CC_SK_STR) {
      k.u.s = (const char *)buf + pos + 5;
      lua_pushlstring(L, k.u.s, klen);
    } else {
      memcpy(&k.u.i, buf + pos + 5, 8);
      if (type == CC_SK_FLOAT)
        lua_pushnumber(L, k.u.f);
      else if (type == CC_SK_BOOL)
        lua_pushboolean(L, (int)k.u.i);
      else
        lua_pushinteger(L, (lua_Integer)k.u.i);
    }
    pos += 5 + klen;
    push_value(L, s, &k);
    if (!lua_isnil(L, -1)) { /* a key deleted since the snapshot is skipped */
      lua_pushinteger(L, pos);
      lua_replace(L, lua_upvalueindex(3));
      return 2;
    }
    lua_pop(L, 2);
  }
  lua_pushinteger(L, pos);
  lua_replace(L, lua_upvalueindex(3));
  return 0;
}

static int m_pairs(lua_State *L) {
  cc_shared_t *s = self(L);
  size_t cap = 0;
  void *buf = NULL;
  int64_t need;
  if (BUSY(s)) {
    int n = wait_free(L, s, m_pairs);
    if (n >= 0) return n;
  }
  for (;;) {
    need = cc_shared_snapshot(s, buf, cap);
    if (need < 0) return fail_op(L, (int)need);
    if ((size_t)need <= cap) break;
    if (buf) lua_pop(L, 1);
    cap = (size_t)need + (size_t)need / 4 + 64; /* room for a few more keys */
    buf = lua_newuserdatauv(L, cap, 1);
  }
  if (!buf) buf = lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushinteger(L, need);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, pairs_next, 3);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* ---- with / hold: the one guard of lsync.h ------------------------------------- */

static int shared_hold_w(cc_wait_t *w, cc_obj_t *o, cc_deadline_t d) {
  return cc_shared_hold_w(w, (cc_shared_t *)o, d);
}

static int shared_unhold(cc_obj_t *o) {
  return cc_shared_unhold((cc_shared_t *)o);
}

static int shared_hold_end(cc_wait_t *w, cc_obj_t *o, int rc) {
  return cc_shared_hold_end(w, (cc_shared_t *)o, rc);
}

static const conc_sync_ops_t shared_ops = {shared_hold_w, shared_unhold, shared_hold_end,
                                           "shared table"};

/* s:with(fn, ...) -> fn's results; the hold ends on return or error. */
static int m_with(lua_State *L) {
  return conc_sync_with(L, &self(L)->h, &shared_ops);
}

/* s:hold([timeout]) -> guard, or nil, "timeout" */
static int m_hold(lua_State *L) {
  return conc_sync_hold(L, &self(L)->h, &shared_ops);
}

static void build_shared_type(lua_State *L, const cc_type_t *type,
                              const luaL_Reg *unused) {
  static const luaL_Reg meta[] = {{"__index", m_index},
                                  {"__newindex", m_newindex},
                                  {"__len", m_len},
                                  {"__pairs", m_pairs},
                                  {NULL, NULL}};
  (void)unused;
  conc_newtype(L, type, NULL, NULL, NULL);
  luaL_getmetatable(L, "conc.shared"); /* mt */
  lua_newtable(L);                     /* mt, methods */
  lua_pushvalue(L, -2);
  conc_guard_metatable(L); /* mt, methods, mt, gmt */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, m_with, 2);
  lua_setfield(L, -4, "with");
  lua_pushcclosure(L, m_hold, 2);
  lua_setfield(L, -2, "hold");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__methods"); /* for argument errors (conc_argerror) */
  /* metamethods: upvalues metatable, methods (for __index) */
  for (const luaL_Reg *r = meta; r->name; r++) {
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, r->func, 2);
    lua_setfield(L, -3, r->name);
  }
  lua_pop(L, 2);
}

/* ---- conc.shared ------------------------------------------------------------------ */

/* conc.shared([name,] [init]): the name is a string only (a table first is
 * the initial contents). */
static int l_shared(lua_State *L) {
  char name[CC_NAME_MAX];
  cc_shared_t *s;
  if (conc_ctor_name(L, 0, NULL, name) == 2) lua_remove(L, 1);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  s = cc_shared_new(name);
  if (!s && conc_reclaim(L)) s = cc_shared_new(name);
  if (!s) return luaL_error(L, "conc.shared: %s", cc_strerror(CC_ENOMEM));
  conc_push_owned(L, &s->h); /* index 2 */
  if (lua_istable(L, 1)) {
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      store(L, s, -2, -1);
      lua_pop(L, 1);
    }
  }
  return 1;
}

void conc_open_shared(lua_State *L) {
  conc_item_init();
  conc_lazytype(SHARED_T, build_shared_type, NULL);
  lua_pushcfunction(L, l_shared);
  lua_setfield(L, -2, "shared");
}
