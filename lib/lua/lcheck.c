/*
 * lcheck.c - the checks every binding shares: option tables that reject
 * unknown keys, the name argument every constructor takes the same way, and
 * "did you mean" suggestions for misspelled options and methods.
 *
 * Bindings use these instead of reading option tables by hand, so that a
 * misspelled key raises ("unknown option 'nmae' (did you mean 'name'?)")
 * rather than being ignored, and a name is never cut silently.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lconc.h"

/* Edit distance between a and b, or a number above `max` as soon as it is
 * certain to exceed it. Words longer than 63 bytes never match. */
static int distance(const char *a, const char *b, int max) {
  size_t la = strlen(a), lb = strlen(b);
  int row[64], best;
  if (la > 63 || lb > 63) return max + 1;
  if ((la > lb ? la - lb : lb - la) > (size_t)max) return max + 1;
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    best = row[0];
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j], v = diag + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < v) v = row[j] + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      /* a swap of two neighbours counts as one edit */
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && v > diag) v = diag;
      diag = up;
      row[j] = v;
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
  }
  return row[lb];
}

const char *conc_suggest(const char *word, const char *const cands[]) {
  const char *best = NULL;
  int bestd = 3, len = (int)strlen(word);
  int max = len <= 3 ? 1 : 2; /* short words: one edit, or everything matches */
  for (int i = 0; cands[i]; i++) {
    int d = distance(word, cands[i], max);
    if (d <= max && d < bestd) {
      best = cands[i];
      bestd = d;
    }
  }
  return best;
}

void conc_check_options(lua_State *L, int idx, const char *const keys[]) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1), *s;
      int i;
      for (i = 0; keys[i]; i++)
        if (strcmp(k, keys[i]) == 0) break;
      if (keys[i]) continue;
      s = conc_suggest(k, keys);
      if (s)
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s' (did you mean '%s'?)", k, s));
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
    }
    luaL_argerror(L, idx, lua_pushfstring(L, "option names are strings, got a %s key",
                                          luaL_typename(L, -1)));
  }
}

static const char *check_name(lua_State *L, int idx, int argn) {
  size_t len;
  const char *name = lua_tolstring(L, idx, &len);
  if (len >= CC_NAME_MAX)
    luaL_argerror(L, argn, lua_pushfstring(L, "name is %d bytes long (at most %d)", (int)len,
                                           CC_NAME_MAX - 1));
  if (strlen(name) != len) /* it would be cut there in every message */
    luaL_argerror(L, argn, "name contains a zero byte");
  return name;
}

const char *conc_name_arg(lua_State *L, int idx, const char *const keys[]) {
  static const char *const only_name[] = {"name", NULL};
  switch (lua_type(L, idx)) {
  case LUA_TNONE:
  case LUA_TNIL:
    return NULL;
  case LUA_TSTRING:
    return check_name(L, idx, idx);
  case LUA_TTABLE: {
    const char *name = NULL;
    conc_check_options(L, idx, keys ? keys : only_name);
    if (lua_getfield(L, idx, "name") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, idx, lua_pushfstring(L, "option 'name' must be a string, got %s",
                                              luaL_typename(L, -1)));
      name = check_name(L, -1, idx); /* anchored in the options table */
    }
    lua_pop(L, 1);
    return name;
  }
  default:
    return luaL_typeerror(L, idx, "name or options table"), NULL;
  }
}

/* __index of a methods table or of the module table: the key is not
 * there. Raises "conc.queue has no method or field 'gett' (did you mean
 * 'get'?)" or "conc has no field 'thred' (did you mean 'thread'?)"; the
 * suggestions are the table's own names, except internal ones ("_encode").
 * Upvalue 1 is the message's start. Another key type reads as nil. */
static int key_miss(lua_State *L) {
  const char *what = lua_tostring(L, lua_upvalueindex(1));
  const char *k, *cands[128], *s;
  int n = 0;
  if (lua_type(L, 2) != LUA_TSTRING) return 0; /* t[1] and the like: nil */
  k = lua_tostring(L, 2);
  lua_pushnil(L);
  while (n < 127 && lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_tostring(L, -1)[0] != '_')
      cands[n++] = lua_tostring(L, -1); /* anchored in the table */
  }
  cands[n] = NULL;
  s = conc_suggest(k, cands);
  if (s) return luaL_error(L, "%s '%s' (did you mean '%s'?)", what, k, s);
  return luaL_error(L, "%s '%s'", what, k);
}

static void set_strict(lua_State *L, int idx, const char *what) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, what);
  lua_pushcclosure(L, key_miss, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, idx);
}

void conc_methods_strict(lua_State *L, int idx, const char *tname) {
  char what[96];
  snprintf(what, sizeof what, "%s has no method or field", tname);
  set_strict(L, idx, what);
}

void conc_module_strict(lua_State *L, int idx) {
  set_strict(L, idx, "conc has no field");
}

void conc_hint_global(lua_State *L) {
  const char *msg, *p, *q, *nl;
  char name[CC_NAME_MAX];
  size_t n;
  int found;
  if (lua_type(L, -1) != LUA_TSTRING) return; /* (lua_tostring would turn a number into one) */
  msg = lua_tostring(L, -1);
  if (!(p = strstr(msg, "a nil value (global '"))) return;
  p += strlen("a nil value (global '");
  if (!(q = strchr(p, '\'')) || (n = (size_t)(q - p)) == 0 || n >= sizeof name) return;
  nl = strchr(msg, '\n');
  if (nl && nl < q) return; /* the pattern is in the traceback, not the message */
  memcpy(name, p, n);
  name[n] = '\0';
  found = lua_getglobal(L, name) != LUA_TNIL;
  lua_pop(L, 1);
  if (!found) return;
  if (!nl) nl = msg + strlen(msg);
  lua_pushlstring(L, msg, (size_t)(nl - msg));
  lua_pushfstring(L, " ('%s' is a global here, but globals are not shared with threads and "
                     "processes: pass it as an argument or use conc.shared)%s", name, nl);
  lua_concat(L, 2);
  lua_remove(L, -2);
}

/* Pushes the methods table of the metatable at mt: its __methods (a type
 * whose __index is a function), else its __index when that is a table.
 * Returns 0 (nothing pushed) if there is none. */
static int push_methods(lua_State *L, int mt) {
  if (lua_getfield(L, mt, "__methods") == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (lua_getfield(L, mt, "__index") == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  return 0;
}

/* The key of the running C function (ar) in the table at the top, which it
 * replaces; else pops the table and returns 0. */
static int name_in(lua_State *L, lua_Debug *ar) {
  int t = lua_gettop(L);
  if (!lua_getinfo(L, "f", ar)) { /* pushes the function */
    lua_settop(L, t - 1);
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) { /* methods, fn, key, value */
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, t + 1)) {
      lua_pop(L, 1);
      lua_replace(L, t);
      lua_settop(L, t);
      return 1; /* the name */
    }
    lua_pop(L, 1);
  }
  lua_settop(L, t - 1);
  return 0;
}

/* The name of the running C function among the methods of the object at
 * index 1, pushed; 0 (nothing pushed) if it is not there. */
static int push_method_name(lua_State *L, lua_Debug *ar) {
  if (!lua_getmetatable(L, 1)) return 0;
  if (push_methods(L, lua_gettop(L)) && name_in(L, ar)) {
    lua_remove(L, -2); /* the metatable */
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

int conc_argerror(lua_State *L, int arg, const char *msg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name == NULL &&
      push_method_name(L, &ar))
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, lua_tostring(L, -1), msg);
  return luaL_argerror(L, arg, msg);
}

/* The usual receiver of each type, as in docs/API.md's receivers table. */
static const char *receiver(const char *type) {
  static const char *const names[][2] = {
      {"thread", "t"},     {"lock", "l"},       {"rlock", "l"},     {"guard", "g"},
      {"condition", "cond"}, {"semaphore", "sem"}, {"event", "ev"},  {"barrier", "b"},
      {"atomic", "a"},     {"queue", "q"},      {"shared", "s"},    {"process", "p"},
      {"pipe", "e"},       {"pool", "pool"},    {"future", "f"},    {"task", "task"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(type, names[i][0]) == 0) return names[i][1];
  return "obj";
}

int conc_self_error(lua_State *L, int idx, const cc_type_t *type, const char *msg) {
  lua_Debug ar;
  int top = lua_gettop(L);
  /* q.put(1): argument 1 is no conc object and the function is a method of
   * the type, not called with a colon (that is luaL_argerror's "calling
   * 'put' on bad self") nor as a metamethod */
  if (idx == 1 && type && !conc_toobj(L, 1) && lua_getstack(L, 0, &ar) &&
      lua_getinfo(L, "n", &ar) && strcmp(ar.namewhat, "method") != 0 &&
      strcmp(ar.namewhat, "metamethod") != 0 && strcmp(ar.namewhat, "for iterator") != 0 &&
      lua_rawgetp(L, LUA_REGISTRYINDEX, type) == LUA_TTABLE &&
      push_methods(L, lua_gettop(L)) && name_in(L, &ar)) {
    const char *m = lua_tostring(L, -1);
    return luaL_error(L, "bad argument #1 to '%s' (%s (call it as %s:%s(...), with a colon))", m,
                      msg, receiver(type->name), m);
  }
  lua_settop(L, top);
  return conc_argerror(L, idx, msg);
}

void conc_check_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  conc_argerror(L, idx, lua_pushfstring(L, "function expected, got %s", luaL_typename(L, idx)));
}

int conc_ctor_name(lua_State *L, int tables, const char *const keys[], char *buf) {
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING || (tables && t == LUA_TTABLE)) {
    const char *name = conc_name_arg(L, 1, keys);
    if (name) {
      strcpy(buf, name); /* conc_name_arg checked its length */
      return 2;
    }
    conc_where(L, buf, CC_NAME_MAX);
    return 2;
  }
  conc_where(L, buf, CC_NAME_MAX);
  return 1;
}
