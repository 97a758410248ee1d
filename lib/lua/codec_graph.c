/*
 * codec_graph.c - the general path of conc_encode (codec_enc.c): tables
 * with their metatables, Lua and C functions with their upvalues, conc
 * objects, and the identity that keeps cycles and shared sub-tables. It
 * runs under lua_pcall, so that every error (ours, or a Lua memory error)
 * frees the buffer before it propagates. Conc object references are taken
 * only once the bytes are complete, so a failed encoding never holds any.
 * The format and its rules are in docs/CODEC.md.
 *
 * Identity (cycles, shared sub-tables, a function met twice) needs a Lua
 * table, created only when a second table or function is met: the first
 * one is always a top-level value, so it sits in a fixed stack slot and is
 * compared directly. The decoder mirrors this with its list of objects.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec_int.h"
#include "lconc.h"

/* ---- encoder: values -------------------------------------------------- */

static _Noreturn void enc_nomem(enc_t *e) {
  e->nomem = 1;
  lua_pushstring(e->L, conc__nomem_message(e->b));
  lua_error(e->L);
  abort(); /* not reached */
}

static unsigned char *enc_room(enc_t *e, size_t n) {
  if (wbuf_reserve(e->b, n) != 0) enc_nomem(e);
  return (unsigned char *)e->b->data + e->b->len;
}

static void enc_end(enc_t *e, unsigned char *p) {
  e->b->len = (size_t)((char *)p - e->b->data);
}

static void enc_byte(enc_t *e, unsigned c) {
  *enc_room(e, 1) = (unsigned char)c;
  e->b->len++;
}

static frame_t *enc_frame(enc_t *e, int kind) {
  frame_t *f = &e->path[e->lvl++];
  f->kind = kind;
  return f;
}

/* Entering a table or function: room on the Lua stack for its work. The
 * depth needs no check: tables and Lua functions are deferred from
 * CONC_CODEC_INLINE levels on (enc_defer), and C closures check it
 * themselves. */
static void enc_enter(enc_t *e) {
  luaL_checkstack(e->L, 8, "not enough stack space to copy a value");
}

/* Queues the object at idx (just numbered, its tag written) for its
 * contents to be written once the current top-level value is done
 * (enc_drain): so the C stack never holds more than CONC_CODEC_INLINE
 * levels of tables and functions, whatever the value's depth. */
static void enc_defer(enc_t *e, int idx) {
  lua_State *L = e->L;
  if (!e->has_pend) {
    lua_createtable(L, 16, 0);
    lua_replace(L, e->pend);
    e->has_pend = 1;
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, e->pend, ++e->pend_tail);
}

int conc__fn_nups(lua_State *L, int f) {
  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

static void enc_need_seen(enc_t *e) {
  lua_State *L = e->L;
  if (e->has_seen) return;
  lua_createtable(L, 0, 8);
  if (e->first) {
    lua_pushvalue(L, e->first);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
  }
  lua_replace(L, e->seen);
  e->has_seen = 1;
  e->first = 0;
}

/* Numbers the object at idx (a table, a Lua function, or a C closure with
 * upvalues), in the order the decoder will meet it. */
static void enc_register(enc_t *e, int idx) {
  lua_State *L = e->L;
  e->nseen++;
  if (!e->has_seen) {
    if (e->nseen == 1 && e->lvl == 0) { /* a top-level value: a fixed slot */
      e->first = idx;
      return;
    }
    enc_need_seen(e);
  }
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->nseen);
  lua_rawset(L, e->seen);
}

/* Writes a back-reference and returns 1 if the object at idx was met
 * before. */
static int enc_backref(enc_t *e, int idx) {
  lua_State *L = e->L;
  lua_Integer ref = 0;
  unsigned char *p;
  if (e->has_seen) {
    int t;
    lua_pushvalue(L, idx);
    t = lua_rawget(L, e->seen);
    if (t == LUA_TBOOLEAN)
      conc__enc_fail(e, "cannot copy a C closure that holds itself through its upvalues");
    if (t == LUA_TNUMBER) ref = lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else if (e->first && lua_rawequal(L, idx, e->first)) {
    ref = 1;
  }
  if (!ref) return 0;
  p = enc_room(e, 1 + UVARINT_MAX);
  *p++ = T_REF;
  enc_end(e, put_uvarint(p, (uint64_t)ref));
  return 1;
}

static void enc_value(enc_t *e, int idx);

/* The contents of the table at t: tag, counts, pairs, metatable. One pass
 * of lua_next: while the keys run 1, 2, 3, ... the values go to the array
 * part; from the first other key on, every pair goes to the hash part (so a
 * sparse table costs what its entries cost, whatever its border). */
static void enc_table_body(enc_t *e, int t) {
  lua_State *L = e->L;
  lua_Integer narr = 0, nhash = 0;
  size_t pos;
  int mt = 0, inarr = 1;
  if (lua_getmetatable(L, t)) mt = lua_gettop(L);
  enc_byte(e, mt ? T_TABLE_MT : T_TABLE);
  pos = e->b->len;
  enc_room(e, 2);
  e->b->len += 2;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int top = lua_gettop(L);
    if (inarr && lua_isinteger(L, top - 1) && lua_tointeger(L, top - 1) == narr + 1) {
      narr++;
    } else {
      inarr = 0;
      nhash++;
      enc_frame(e, F_KEY);
      enc_value(e, top - 1);
      e->lvl--;
    }
    enc_frame(e, F_FIELD)->idx = top - 1;
    enc_value(e, top);
    e->lvl--;
    lua_pop(L, 1);
  }
  if (conc__wbuf_counts(e->b, pos, (uint64_t)narr, (uint64_t)nhash) != 0) enc_nomem(e);
  if (mt) {
    enc_frame(e, F_META);
    enc_value(e, mt);
    e->lvl--;
    lua_pop(L, 1);
  }
}

static void enc_table(enc_t *e, int t) {
  if (enc_backref(e, t)) return;
  enc_enter(e);
  enc_register(e, t);
  if (cc_unlikely(e->lvl >= CONC_CODEC_INLINE)) {
    enc_byte(e, T_DTABLE);
    enc_defer(e, t);
    return;
  }
  enc_table_body(e, t);
}

/* package.loaded inverted: value -> name, for tables, functions and
 * userdata. Built once per encoding, when the first upvalue needs it. The
 * map also records, per encoding, the modules whose loader or value was
 * already written (name -> true), and marks a module whose value is being
 * copied (value -> false: references to it from inside are references to
 * the copy). */
static void enc_need_mods(enc_t *e) {
  lua_State *L = e->L;
  int map;
  if (e->has_mods) return;
  lua_newtable(L);
  map = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      int t = lua_type(L, -1);
      if (lua_type(L, -2) == LUA_TSTRING &&
          (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA)) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -3);
        lua_rawset(L, map);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_replace(L, e->mods);
  e->has_mods = 1;
}

/* The libraries every state of the runtime opens (conclua_openlibs): a
 * destination always has them. */
static int is_library(const char *name) {
  static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, "conc",
                                     LUA_IOLIBNAME, LUA_OSLIBNAME, LUA_COLIBNAME,
                                     LUA_UTF8LIBNAME, LUA_DBLIBNAME, LUA_LOADLIBNAME, LUA_GNAME};
  size_t i;
  for (i = 0; i < sizeof libs / sizeof libs[0]; i++)
    if (name[0] == libs[i][0] && strcmp(name, libs[i]) == 0) return 1;
  return 0;
}

/* package.searchpath(name, package[field]) finds a file. */
static int on_path(lua_State *L, int pkg, int name, const char *field) {
  int found = 0;
  if (lua_getfield(L, pkg, field) == LUA_TSTRING &&
      lua_getfield(L, pkg, "searchpath") == LUA_TFUNCTION) {
    lua_pushvalue(L, name);
    lua_pushvalue(L, -3);
    lua_call(L, 2, 1);
    found = lua_type(L, -1) == LUA_TSTRING;
  }
  lua_settop(L, pkg);
  return found;
}

static const char modcache_key = 0;

/* Whether require(name) finds a file for the module (package.path, then
 * package.cpath, then the root name in package.cpath as the all-in-one
 * searcher does). Remembered per state while package.path and
 * package.cpath stay the same, so that encoding a function with a module
 * upvalue touches the file system once per module. */
static int findable(lua_State *L, int name) {
  int pkg, cache, found;
  const char *s;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_remove(L, -2);
  pkg = lua_gettop(L);
  if (!lua_istable(L, pkg)) {
    lua_pop(L, 1);
    return 0;
  }
  /* the cache: {path, cpath, [name] = found} */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &modcache_key) != LUA_TTABLE ||
      (lua_getfield(L, pkg, "path"), lua_rawgeti(L, -2, 1), !lua_rawequal(L, -1, -2)) ||
      (lua_getfield(L, pkg, "cpath"), lua_rawgeti(L, -4, 2), !lua_rawequal(L, -1, -2))) {
    lua_settop(L, pkg);
    lua_createtable(L, 2, 4);
    lua_getfield(L, pkg, "path");
    lua_rawseti(L, -2, 1);
    lua_getfield(L, pkg, "cpath");
    lua_rawseti(L, -2, 2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &modcache_key);
  }
  lua_settop(L, pkg + 1);
  cache = pkg + 1;
  lua_pushvalue(L, name);
  if (lua_rawget(L, cache) == LUA_TBOOLEAN) {
    found = lua_toboolean(L, -1);
    lua_settop(L, pkg - 1);
    return found;
  }
  lua_settop(L, cache);
  lua_pushvalue(L, pkg);
  found = on_path(L, cache + 1, name, "path") || on_path(L, cache + 1, name, "cpath");
  s = lua_tostring(L, name);
  if (!found && strchr(s, '.')) { /* the all-in-one loader: the root name in cpath */
    lua_pushlstring(L, s, (size_t)(strchr(s, '.') - s));
    lua_pushvalue(L, cache + 1);
    found = on_path(L, cache + 3, cache + 2, "cpath");
  }
  lua_settop(L, cache);
  lua_pushvalue(L, name);
  lua_pushboolean(L, found);
  lua_rawset(L, cache);
  lua_settop(L, pkg - 1);
  return found;
}

/* How a destination that has not loaded module `name` (at stack index
 * name) gets it: a library or a file on the paths is required there
 * (M_REQUIRE); a loader in package.preload is copied (M_PRELOAD, the loader
 * pushed); anything else (set in package.loaded by hand) is copied by value
 * (M_VALUE). */
static int module_how(lua_State *L, int name) {
  if (is_library(lua_tostring(L, name))) return M_REQUIRE; /* the usual case, checked first */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE) == LUA_TTABLE) {
    lua_pushvalue(L, name);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
      lua_remove(L, -2);
      return M_PRELOAD;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (findable(L, name)) return M_REQUIRE;
  return M_VALUE;
}

/* Module upvalue: the value at v is package.loaded[name], name at nm. The
 * name, then how a destination without it gets it; the loader or value is
 * written once per message. */
static void enc_module(enc_t *e, int v, int nm) {
  lua_State *L = e->L;
  size_t n;
  const char *name = lua_tolstring(L, nm, &n);
  const char *outer = e->modname;
  unsigned char *p = enc_room(e, 2 + UVARINT_MAX + n);
  int how;
  *p++ = T_MODULE;
  p = put_uvarint(p, n);
  memcpy(p, name, n);
  enc_end(e, p + n);
  lua_pushvalue(L, nm);
  if (lua_rawget(L, e->mods) == LUA_TBOOLEAN) { /* written before in this message */
    lua_pop(L, 1);
    enc_byte(e, M_REQUIRE);
    return;
  }
  lua_pop(L, 1);
  how = module_how(L, nm);
  enc_byte(e, (unsigned)how);
  if (how == M_REQUIRE) return;
  lua_pushvalue(L, nm);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->mods);
  lua_pushvalue(L, v);
  lua_pushboolean(L, 0);
  lua_rawset(L, e->mods);
  e->modname = name;
  enc_value(e, how == M_PRELOAD ? lua_gettop(L) : v);
  e->modname = outer;
  if (how == M_PRELOAD) lua_pop(L, 1);
  lua_pushvalue(L, v);
  lua_pushvalue(L, nm);
  lua_rawset(L, e->mods);
}

/* Upvalue i (value at v) of the function at f. For a Lua function (fref,
 * its object number, non-zero) an upvalue already met in another copied
 * function is joined to it. The source globals become T_GLOBALS, a value of
 * package.loaded becomes T_MODULE, anything else is copied. */
static void enc_upvalue(enc_t *e, int v, int f, lua_Integer fref, int i) {
  lua_State *L = e->L;
  int t = lua_type(L, v);
  unsigned char *p;
  if (fref) {
    void *id = lua_upvalueid(L, f, i);
    enc_need_seen(e);
    if (lua_rawgetp(L, e->seen, id) == LUA_TNUMBER) {
      lua_Integer packed = lua_tointeger(L, -1);
      lua_pop(L, 1);
      p = enc_room(e, 2 + UVARINT_MAX);
      *p++ = T_UPJOIN;
      p = put_uvarint(p, (uint64_t)(packed >> 8));
      *p++ = (unsigned char)(packed & 0xff);
      enc_end(e, p);
      return;
    }
    lua_pop(L, 1);
    lua_pushinteger(L, fref * 256 + i);
    lua_rawsetp(L, e->seen, id);
  }
  if (t == LUA_TTABLE) {
    int g;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    g = lua_rawequal(L, v, -1);
    lua_pop(L, 1);
    if (g) {
      enc_byte(e, T_GLOBALS);
      return;
    }
  }
  if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA) {
    enc_need_mods(e);
    lua_pushvalue(L, v);
    if (lua_rawget(L, e->mods) == LUA_TSTRING) {
      enc_module(e, v, lua_gettop(L));
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  enc_value(e, v);
}

static int enc_writer(lua_State *L, const void *p, size_t n, void *ud) {
  conc_wbuf_t *b = ud;
  (void)L;
  if (wbuf_reserve(b, n) != 0) return 1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* The nup upvalue entries of the Lua function at f, object number fref. */
static void enc_lupvalues(enc_t *e, int f, lua_Integer fref, int nup) {
  lua_State *L = e->L;
  int i;
  for (i = 1; i <= nup; i++) {
    const char *name = lua_getupvalue(L, f, i);
    frame_t *fr = enc_frame(e, F_UPVAL);
    fr->name = name;
    fr->idx = i;
    enc_upvalue(e, lua_gettop(L), f, fref, i);
    e->lvl--;
    lua_pop(L, 1);
  }
}

static void enc_lfunction(enc_t *e, int f) {
  lua_State *L = e->L;
  lua_Integer fref;
  size_t pos, size;
  int nup, st, later;
  if (enc_backref(e, f)) return;
  enc_enter(e);
  enc_register(e, f);
  fref = e->nseen;
  later = e->lvl >= CONC_CODEC_INLINE;
  enc_byte(e, later ? T_DLFUNC : T_LFUNC);
  pos = e->b->len;
  enc_room(e, 4);
  e->b->len += 4;
  lua_pushvalue(L, f);
  st = lua_dump(L, enc_writer, e->b, 0); /* 0: keep the debug information */
  lua_pop(L, 1);
  if (st != 0) enc_nomem(e);
  size = e->b->len - pos - 4;
  if (size > UINT32_MAX)
    conc__enc_fail(e, "cannot copy a function of %zu bytes of bytecode", size);
  put_u32((unsigned char *)e->b->data + pos, (uint32_t)size);
  nup = conc__fn_nups(L, f);
  enc_byte(e, (unsigned)nup);
  if (later)
    enc_defer(e, f);
  else
    enc_lupvalues(e, f, fref, nup);
}

/* A C function goes by address. A C closure with upvalues is numbered after
 * its upvalues (the decoder can only create it then), so it cannot be
 * reached from them: it is marked `false` meanwhile to catch that. For the
 * same reason it cannot be deferred: a chain of C closures is bounded. */
static void enc_cfunction(enc_t *e, int f) {
  lua_State *L = e->L;
  lua_CFunction fn = lua_tocfunction(L, f);
  int i, nup = conc__fn_nups(L, f);
  unsigned char *p;
  if (nup > 0) {
    if (enc_backref(e, f)) return;
    if (e->lvl >= CONC_CODEC_MAXDEPTH)
      conc__enc_fail(e, "cannot copy C closures nested in each other more than %d levels deep",
                     CONC_CODEC_MAXDEPTH);
    enc_enter(e);
    enc_need_seen(e);
    lua_pushvalue(L, f);
    lua_pushboolean(L, 0);
    lua_rawset(L, e->seen);
  }
  p = enc_room(e, 2 + sizeof fn);
  *p++ = T_CFUNC;
  memcpy(p, &fn, sizeof fn);
  p += sizeof fn;
  *p++ = (unsigned char)nup;
  enc_end(e, p);
  for (i = 1; i <= nup; i++) {
    frame_t *fr;
    lua_getupvalue(L, f, i);
    fr = enc_frame(e, F_UPVAL);
    fr->name = "";
    fr->idx = i;
    enc_upvalue(e, lua_gettop(L), f, 0, i);
    e->lvl--;
    lua_pop(L, 1);
  }
  if (nup > 0) enc_register(e, f);
}

static void enc_userdata(enc_t *e, int idx) {
  lua_State *L = e->L;
  cc_obj_t *o = conc_toobj(L, idx);
  unsigned char *p;
  if (o) {
    p = enc_room(e, 1 + sizeof o);
    *p++ = T_OBJ;
    memcpy(p, &o, sizeof o);
    enc_end(e, p + sizeof o);
    e->b->data[0] |= HDR_OBJECTS;
    e->b->has_objects = 1;
    return;
  }
  if (luaL_getmetafield(L, idx, "__conctype") != LUA_TNIL)
    conc__enc_fail(e, "cannot copy a closed conc object");
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    conc__enc_fail(e, "cannot copy a userdata of type '%s'", lua_tostring(L, -1));
  conc__enc_fail(e, "cannot copy a userdata");
}

static void enc_value(enc_t *e, int idx) {
  lua_State *L = e->L;
  int t = lua_type(L, idx);
  switch (t) {
  case LUA_TTABLE:
    enc_table(e, idx);
    return;
  case LUA_TFUNCTION:
    if (lua_iscfunction(L, idx))
      enc_cfunction(e, idx);
    else
      enc_lfunction(e, idx);
    return;
  case LUA_TUSERDATA:
    enc_userdata(e, idx);
    return;
  case LUA_TLIGHTUSERDATA:
    conc__enc_fail(e, "cannot copy a light userdata");
  case LUA_TTHREAD:
    conc__enc_fail(e, "cannot copy a coroutine");
  default:
    if (conc__wbuf_scalar(e->b, L, idx, t) != 0) enc_nomem(e);
  }
}

/* Writes the contents of the deferred objects, in the order they were
 * met (the decoder fills them in the same order), each starting again at
 * level 0; deeper objects met meanwhile join the queue. */
static void enc_drain(enc_t *e) {
  lua_State *L = e->L;
  while (e->pend_head < e->pend_tail) {
    int v;
    lua_rawgeti(L, e->pend, ++e->pend_head);
    lua_pushnil(L);
    lua_rawseti(L, e->pend, e->pend_head);
    v = lua_gettop(L);
    e->lvl = 0;
    e->deferred = 1;
    if (lua_istable(L, v)) {
      enc_table_body(e, v);
    } else {
      lua_Integer fref;
      lua_pushvalue(L, v);
      lua_rawget(L, e->seen); /* deferred objects are never the first: seen exists */
      fref = lua_tointeger(L, -1);
      lua_pop(L, 1);
      enc_lupvalues(e, v, fref, conc__fn_nups(L, v));
    }
    lua_settop(L, v - 1);
  }
  e->pend_head = e->pend_tail = 0;
  e->deferred = 0;
}

/* lua_pcall'd: arguments are the enc_t and the values. */
static int enc_protected(lua_State *L) {
  enc_t *e = lua_touserdata(L, 1);
  int i, n = lua_gettop(L) - 1;
  unsigned char *p;
  e->L = L;
  lua_pushnil(L);
  e->seen = lua_gettop(L);
  lua_pushnil(L);
  e->mods = lua_gettop(L);
  lua_pushnil(L);
  e->pend = lua_gettop(L);
  p = enc_room(e, 1 + UVARINT_MAX);
  *p++ = CONC_CODEC_VERSION;
  enc_end(e, put_uvarint(p, (uint64_t)n));
  for (i = 0; i < n; i++) {
    e->argn = i + 1 - e->hidden;
    e->lvl = 0;
    enc_value(e, i + 2);
    if (e->has_pend) enc_drain(e);
  }
  return 0;
}

/* The general path of conc_encode: see codec_int.h. */
void conc__enc_general(lua_State *L, int first, int n, conc_wbuf_t *b, const char *what,
                       int hidden, int numbered) {
  enc_t e;
  int i, tries = 0;
  luaL_checkstack(L, n + 8, "too many values to copy");
again:
  e.b = b;
  e.what = what;
  e.argn = e.lvl = 0;
  e.hidden = hidden;
  e.numbered = numbered;
  e.seen = e.has_seen = e.first = 0;
  e.mods = e.has_mods = 0;
  e.pend = e.has_pend = 0;
  e.pend_head = e.pend_tail = 0;
  e.deferred = 0;
  e.modname = NULL;
  e.nseen = 0;
  e.nomem = 0;
  lua_pushcfunction(L, enc_protected);
  lua_pushlightuserdata(L, &e);
  for (i = 0; i < n; i++) lua_pushvalue(L, first + i);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {
    /* A full arena: collect (dropped objects give their memory back) and
     * encode once more from the start; no reference is held yet. */
    if (e.nomem && b->in_arena && tries++ == 0 && conc_reclaim(L)) {
      lua_pop(L, 1);
      b->len = 0;
      b->has_objects = 0;
      goto again;
    }
    conc_wbuf_free(b);
    lua_error(L);
  }
  if (b->has_objects) conc__walk_objects(b->data, b->len, cc_obj_ref);
}
