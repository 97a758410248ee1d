/* lvalue.c - Lua values as cc_item_t: scalar fast path, codec for the rest. */
#include "lvalue.h"

#include <pthread.h>
#include <string.h>

#include <lauxlib.h>

#include "arena.h"
#include "codec.h"
#include "lconc.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void install(void) {
  cc_item_release = conc_codec_release;
}

void conc_item_init(void) {
  pthread_once(&init_once, install);
}

static void from_codec(lua_State *L, int idx, cc_item_t *it, const char *what) {
  conc_wbuf_t b;
  void *data;
  size_t len;
  int objs, rc;
  conc_wbuf_init(&b, 1);
  conc_encode(L, idx, 1, &b, what); /* raises with b left empty */
  objs = b.has_objects;
  data = conc_wbuf_take(&b, &len);
  rc = cc_item_make(it, data, len, CONC_K_CODEC,
                    CC_ITEM_ADOPT | (objs ? CC_ITEM_OBJS : 0));
  if (rc == CC_ENOMEM && conc_reclaim(L))
    rc = cc_item_make(it, data, len, CONC_K_CODEC,
                      CC_ITEM_ADOPT | (objs ? CC_ITEM_OBJS : 0));
  if (rc) {
    if (objs) conc_codec_release(data, len);
    cc_free(data);
    luaL_error(L, "cannot store %s: %s", what, cc_strerror(rc));
  }
}

void conc_item_from_lua(lua_State *L, int idx, cc_item_t *it, const char *what) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
  case LUA_TNONE:
    it->len = 0;
    it->flags = 0;
    it->kind = CONC_K_NONE;
    return;
  case LUA_TBOOLEAN:
    it->len = 0;
    it->flags = 0;
    it->kind = lua_toboolean(L, idx) ? CONC_K_TRUE : CONC_K_FALSE;
    return;
  case LUA_TNUMBER: {
    it->len = 8;
    it->flags = 0;
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      it->kind = CONC_K_INT;
      memcpy(it->u.bytes, &i, 8);
    } else {
      lua_Number n = lua_tonumber(L, idx);
      it->kind = CONC_K_FLOAT;
      memcpy(it->u.bytes, &n, 8);
    }
    return;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    void *p = cc_item_alloc(it, len, CONC_K_STR);
    if (!p && conc_reclaim(L)) p = cc_item_alloc(it, len, CONC_K_STR);
    if (!p) luaL_error(L, "cannot store %s: %s", what, cc_strerror(CC_ENOMEM));
    memcpy(p, s, len);
    break;
  }
  default:
    from_codec(L, idx, it, what);
  }
  conc_gc_account(L); /* the item's box, if it has one */
}

static int push_protected(lua_State *L) {
  conc_item_push(L, lua_touserdata(L, 1));
  return 1;
}

void conc_item_push_take(lua_State *L, cc_item_t *it) {
  int st;
  /* A value received: objects dropped here may have been made elsewhere. */
  conc_gc_account(L);
  /* An inline item holds nothing in the arena: nothing to leak if the push
   * raises, so no protected call on the fast path. */
  if (cc_likely(!(it->flags & CC_ITEM_EXT))) {
    conc_item_push(L, it);
    return;
  }
  lua_pushcfunction(L, push_protected);
  lua_pushlightuserdata(L, it);
  st = lua_pcall(L, 1, 1, 0);
  cc_item_clear(it);
  if (st != LUA_OK) lua_error(L);
}

void conc_item_push(lua_State *L, const cc_item_t *it) {
  switch (it->kind) {
  case CONC_K_TRUE:
    lua_pushboolean(L, 1);
    break;
  case CONC_K_FALSE:
    lua_pushboolean(L, 0);
    break;
  case CONC_K_INT: {
    lua_Integer i;
    memcpy(&i, it->u.bytes, 8);
    lua_pushinteger(L, i);
    break;
  }
  case CONC_K_FLOAT: {
    lua_Number n;
    memcpy(&n, it->u.bytes, 8);
    lua_pushnumber(L, n);
    break;
  }
  case CONC_K_STR:
    lua_pushlstring(L, cc_item_data(it), it->len);
    break;
  case CONC_K_CODEC: {
    int n = conc_decode(L, cc_item_data(it), it->len);
    if (n != 1) {
      lua_pop(L, n);
      luaL_error(L, "malformed data: expected one value, got %d", n);
    }
    break;
  }
  default:
    lua_pushnil(L);
  }
}
