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
#include "lconc.h"

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

/* The level of the job's starter (conc_run_job) on L's stack, or 0. Frames
 * from there on are not the job's: a process's job runs on the main
 * coroutine, above the parent's frames that called conc.process. */
static int job_base_level(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_CFunction f;
    lua_getinfo(L, "f", &ar);
    f = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    if (f == conc_run_job) return level;
  }
  return 0;
}

static void add_frame(luaL_Buffer *b, lua_State *L, lua_Debug *ar) {
  lua_getinfo(L, "Slnt", ar);
  if (ar->currentline > 0)
    lua_pushfstring(L, "\n\t%s:%d: in ", ar->short_src, ar->currentline);
  else
    lua_pushfstring(L, "\n\t%s: in ", ar->short_src);
  luaL_addvalue(b);
  if (*ar->namewhat != '\0')
    lua_pushfstring(L, "%s '%s'", strcmp(ar->namewhat, "global") == 0 ? "function" : ar->namewhat,
                    ar->name);
  else if (*ar->what == 'm')
    lua_pushliteral(L, "main chunk");
  else if (*ar->what != 'C')
    lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
  else
    lua_pushliteral(L, "?");
  luaL_addvalue(b);
  if (ar->istailcall) luaL_addstring(b, "\n\t(...tail calls...)");
}

/* msg and the traceback of the job's own frames (luaL_traceback's format,
 * stopping at the job's starter), pushed. */
static void job_traceback(lua_State *L, const char *msg) {
  enum { FIRST = 10, LAST = 11 };
  luaL_Buffer b;
  lua_Debug ar;
  int base = job_base_level(L), n = 0;
  if (base == 0) {
    luaL_traceback(L, L, msg, 1);
    return;
  }
  n = base - 1; /* levels 1 .. base-1 are the job's */
  luaL_buffinit(L, &b);
  luaL_addstring(&b, msg);
  luaL_addstring(&b, "\nstack traceback:");
  for (int level = 1; level < base; level++) {
    if (n > FIRST + LAST && level == FIRST + 1) {
      lua_pushfstring(L, "\n\t...\t(skipping %d levels)", n - FIRST - LAST);
      luaL_addvalue(&b);
      level = n - LAST;
      continue;
    }
    if (lua_getstack(L, level, &ar)) add_frame(&b, L, &ar);
  }
  luaL_pushresult(&b);
}

int conc_error_handler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    job_traceback(L, lua_tostring(L, 1));
    return 1;
  }
  lua_settop(L, 1);
  push_error_text(L, 1);
  job_traceback(L, lua_tostring(L, 2));
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
  if (!data || len == 0) { /* no memory was left for its error */
    static const char lost[] = "(an error, lost: no memory was left to keep it)";
    *tlen = sizeof lost - 1;
    return lost;
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
