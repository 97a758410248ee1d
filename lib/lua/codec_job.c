/*
 * codec_job.c - what the codec adds for the job of a thread or process:
 * the creator's package paths carried with the function and arguments, and
 * the error of a job as a value (a table raised in a thread arrives as that
 * table in the joiner). Contracts in codec.h; the format in docs/CODEC.md,
 * "Jobs and their errors".
 */
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec_int.h"

/* ---- jobs ------------------------------------------------------------- */

void conc_encode_job(lua_State *L, int first, int n, conc_wbuf_t *b) {
  int i;
  first = lua_absindex(L, first);
  luaL_checkstack(L, n + 4, "too many values to copy");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "cpath");
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_remove(L, -3);
  lua_remove(L, -3);
  for (i = 0; i < 2; i++) /* a path that is not a string is not carried */
    if (lua_type(L, -1 - i) != LUA_TSTRING) {
      lua_pushnil(L);
      lua_replace(L, -2 - i);
    }
  for (i = 0; i < n; i++) lua_pushvalue(L, first + i);
  b->len = 0;
  b->has_objects = 0;
  conc__enc_general(L, lua_gettop(L) - n - 1, n + 2, b, "argument", 2, 1);
  lua_pop(L, n + 2);
}

/* ---- errors ----------------------------------------------------------- */

static const char tb_key = 0; /* registry: the traceback text of a non-string error */

/* The text that stands for a non-string error value: a number as such, a
 * __tostring result, or the value's type. Pushes it. */
static void push_error_text(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    luaL_tolstring(L, idx, NULL);
    return;
  }
  if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

int conc_error_handler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
  }
  lua_settop(L, 1);
  push_error_text(L, 1);
  luaL_traceback(L, L, lua_tostring(L, 2), 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_settop(L, 1);
  return 1;
}

/* lua_pcall'd: 1 the buffer, 2 the value, 3 nil or a reason to store the
 * value as text only (its copy failed). */
static int store_protected(lua_State *L) {
  conc_wbuf_t *b = lua_touserdata(L, 1);
  int text_only = !lua_isnil(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) {
    conc__enc_general(L, 2, 1, b, "error value", 0, 0);
    return 0;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &tb_key) != LUA_TSTRING) {
    lua_pop(L, 1);
    push_error_text(L, 2);
  }
  if (text_only) {
    lua_pushfstring(L, "%s\n(the error value itself could not be copied: %s)",
                    lua_tostring(L, -1), lua_tostring(L, 3));
    conc__enc_general(L, lua_gettop(L), 1, b, "error value", 0, 0);
    return 0;
  }
  lua_pushvalue(L, 2);
  conc__enc_general(L, lua_gettop(L) - 1, 2, b, "error value", 1, 0);
  return 0;
}

void *conc_error_store(lua_State *L, int idx, size_t *len) {
  conc_wbuf_t b;
  int attempt;
  idx = lua_absindex(L, idx);
  *len = 0;
  if (!lua_checkstack(L, 8)) return NULL;
  conc_wbuf_init(&b, 1);
  lua_pushnil(L); /* the reason of a failed first attempt */
  for (attempt = 0; attempt < 2; attempt++) {
    lua_pushcfunction(L, store_protected);
    lua_pushlightuserdata(L, &b);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -4);
    if (lua_pcall(L, 3, 0, 0) == LUA_OK) {
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key); /* cannot fail: the key exists */
      return conc_wbuf_take(&b, len);
    }
    conc_wbuf_free(&b); /* already empty: conc__enc_general frees on error */
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "?");
    }
    lua_replace(L, -2);
  }
  lua_pop(L, 1);
  return NULL;
}

void *conc_error_from_text(const char *s, size_t len, size_t *outlen) {
  unsigned char *block = cc_alloc(2 * (1 + UVARINT_MAX) + len), *p;
  *outlen = 0;
  if (!block) return NULL;
  p = block;
  *p++ = CONC_CODEC_VERSION;
  *p++ = 1; /* one value */
  if (len <= FIXSTR_MAX) {
    *p++ = (unsigned char)(T_FIXSTR + len);
  } else {
    *p++ = T_STR;
    p = put_uvarint(p, len);
  }
  memcpy(p, s, len);
  *outlen = (size_t)(p + len - block);
  return block;
}

/* The text of a block: the first value, a string. NULL if data is not a
 * block made here. */
static const char *block_text(const void *data, size_t len, size_t *tlen) {
  const unsigned char *p = data, *end = p + len;
  uint64_t n;
  unsigned tag;
  if (len < 3 || (p[0] & ~HDR_OBJECTS) != CONC_CODEC_VERSION) return NULL;
  p++;
  if (!get_uvarint(&p, end, &n) || n < 1 || n > 2 || p >= end) return NULL;
  tag = *p++;
  if (tag >= T_FIXSTR && tag <= T_FIXSTR + FIXSTR_MAX) {
    n = tag - T_FIXSTR;
  } else if (tag != T_STR || !get_uvarint(&p, end, &n)) {
    return NULL;
  }
  if (n > (uint64_t)(end - p)) return NULL;
  *tlen = (size_t)n;
  return (const char *)p;
}

const char *conc_error_text(const void *data, size_t len, size_t *tlen) {
  const char *s;
  if (!data || len == 0) {
    *tlen = 1;
    return "?";
  }
  if ((s = block_text(data, len, tlen)) != NULL) return s;
  if (*(const unsigned char *)data < 0x20) { /* a block, but not a readable one */
    *tlen = 1;
    return "?";
  }
  *tlen = len; /* a plain text */
  return data;
}

void conc_error_push(lua_State *L, const void *data, size_t len, const char *kind,
                     const char *name) {
  luaL_Buffer lb;
  size_t tlen;
  const char *text;
  if (data && len > 0 && *(const unsigned char *)data < 0x20) {
    int n = conc_decode(L, data, len); /* the runtime's own bytes */
    if (n == 2 && lua_type(L, -2) == LUA_TSTRING) {
      lua_remove(L, -2); /* the value itself */
      return;
    }
    if (n != 1 || lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, n);
      luaL_error(L, "malformed data: not an error");
    }
    text = lua_tolstring(L, -1, &tlen);
  } else {
    text = conc_error_text(data, len, &tlen);
    lua_pushnil(L); /* keeps the stack shape of the branch above */
  }
  if (!kind) {
    lua_pushlstring(L, text, tlen);
  } else {
    luaL_buffinit(L, &lb);
    luaL_addstring(&lb, kind);
    luaL_addstring(&lb, " '");
    luaL_addstring(&lb, name ? name : "?");
    luaL_addstring(&lb, "': ");
    luaL_addlstring(&lb, text, tlen);
    luaL_pushresult(&lb);
  }
  lua_remove(L, -2);
}
