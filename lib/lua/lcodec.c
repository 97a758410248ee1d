/*
 * lcodec.c - conc._encode and conc._decode: the value codec reached from
 * Lua, for tests and fuzzing. Debug entries, not part of the API contract.
 *
 * conc._encode(...) returns the bytes of the arguments (numbered
 * "argument 1", ...). The references that conc objects in them would hold
 * are dropped at once, so a string never owns anything: it stays decodable
 * only while the objects it names are alive (decoding a dead one is
 * "malformed data: invalid conc object", or, if its memory was reused,
 * whatever object lives there now).
 *
 * conc._decode(s [, trusted]) returns the values. Without `trusted`, any
 * string is safe to decode: nothing runs because of it (no __gc metatable,
 * no require; see conc_decode_untrusted and docs/CODEC.md for what is not
 * safe to call afterwards). With `trusted`, it decodes as the runtime does;
 * with "job", as a new thread decodes its job (conc_decode_job: the
 * sender's package paths are set first).
 *
 * conc._encode_job(f, ...) returns the bytes of a job (conc_encode_job).
 *
 * conc._error(kind, name, f, ...) runs f(...) as a thread runs its job
 * (conc_error_handler), stores a failure as a thread does
 * (conc_error_store) and reads it back as join does (conc_error_push):
 * returns true and f's results, or false, the error join would raise, and
 * the text an unjoined report would print (conc_error_text).
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "arena.h"
#include "codec.h"
#include "lconc.h"

#define WBUF_MT "conc.codec_wbuf"

/* The encoding buffer lives in a userdata so that a memory error while the
 * result string is made cannot leak it. */
static int wbuf_gc(lua_State *L) {
  conc_wbuf_free(luaL_checkudata(L, 1, WBUF_MT));
  return 0;
}

static int l_encode(lua_State *L) {
  int n = lua_gettop(L);
  conc_wbuf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  conc_wbuf_init(b, 0);
  luaL_setmetatable(L, WBUF_MT);
  conc_encode(L, 1, n, b, "argument");
  conc_codec_release(b->data, b->len);
  lua_pushlstring(L, b->data, b->len);
  conc_wbuf_free(b);
  return 1;
}

static int l_encode_job(lua_State *L) {
  int n = lua_gettop(L);
  conc_wbuf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  conc_wbuf_init(b, 0);
  luaL_setmetatable(L, WBUF_MT);
  conc_encode_job(L, 1, n, b);
  conc_codec_release(b->data, b->len);
  lua_pushlstring(L, b->data, b->len);
  conc_wbuf_free(b);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int job = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "job") == 0;
  int trusted = lua_toboolean(L, 2);
  lua_settop(L, 1); /* keeps s alive while its values are pushed */
  if (job) return conc_decode_job(L, s, len);
  return trusted ? conc_decode(L, s, len) : conc_decode_untrusted(L, s, len);
}

/* The error block lives in a userdata while it is read back, so that an
 * error there (a memory error) cannot leak it. */
#define EBLOCK_MT "conc.codec_eblock"
typedef struct eblock {
  void *data;
  size_t len;
} eblock_t;

static int eblock_gc(lua_State *L) {
  eblock_t *e = luaL_checkudata(L, 1, EBLOCK_MT);
  if (e->data) {
    conc_codec_release(e->data, e->len);
    cc_free(e->data);
    e->data = NULL;
  }
  return 0;
}

static int l_error(lua_State *L) {
  const char *kind = luaL_optstring(L, 1, NULL), *name = luaL_optstring(L, 2, NULL), *text;
  int n = lua_gettop(L), base;
  eblock_t *e;
  size_t tlen;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_pushcfunction(L, conc_error_handler);
  lua_insert(L, 3);
  base = 3;
  if (lua_pcall(L, n - 3, LUA_MULTRET, base) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_replace(L, base);
    return lua_gettop(L) - base + 1;
  }
  e = lua_newuserdatauv(L, sizeof *e, 0);
  e->data = NULL;
  luaL_setmetatable(L, EBLOCK_MT);
  e->data = conc_error_store(L, -2, &e->len);
  if (!e->data) return luaL_error(L, "conc._error: %s", cc_strerror(CC_ENOMEM));
  lua_pushboolean(L, 0);
  conc_error_push(L, e->data, e->len, kind, name);
  text = conc_error_text(e->data, e->len, &tlen);
  lua_pushlstring(L, text, tlen);
  return 3;
}

static const luaL_Reg funcs[] = {{"_encode", l_encode},
                                 {"_decode", l_decode},
                                 {"_encode_job", l_encode_job},
                                 {"_error", l_error},
                                 {NULL, NULL}};

void conc_open_codec(lua_State *L) {
  if (luaL_newmetatable(L, WBUF_MT)) {
    lua_pushcfunction(L, wbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, EBLOCK_MT)) {
    lua_pushcfunction(L, eblock_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
