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
 * safe to call afterwards). With `trusted`, it decodes as the runtime does.
 */
#include <lauxlib.h>
#include <lua.h>

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

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int trusted = lua_toboolean(L, 2);
  lua_settop(L, 1); /* keeps s alive while its values are pushed */
  return trusted ? conc_decode(L, s, len) : conc_decode_untrusted(L, s, len);
}

static const luaL_Reg funcs[] = {{"_encode", l_encode}, {"_decode", l_decode}, {NULL, NULL}};

void conc_open_codec(lua_State *L) {
  if (luaL_newmetatable(L, WBUF_MT)) {
    lua_pushcfunction(L, wbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
