/*
 * test_lua_nomem.c - injected failures of Lua's own allocations (issue 10).
 *
 * The host makes its state with an allocator that fails the n-th request
 * once armed, opens conc in it, and runs tests/host/lua_nomem.lua, which
 * arms it (fail_in(n): the n-th allocation and all later ones fail) before
 * each operation of a list for n = 1, 2, ...:
 * every operation must then succeed or raise a Lua error, every object
 * must stay usable, and the arena must get back every block (a value taken
 * out of a queue whose push failed is released, not leaked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "conclua.h"

/* Armed with n > 0: the n-th growing request from then on fails, and so
 * does every later one until disarmed (a single failure would be absorbed
 * by Lua's emergency collection and retry). */
static long countdown;
static int failing;
static long failures;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  /* Only growing requests fail: Lua assumes a shrink always works. */
  if ((failing || (countdown > 0 && --countdown == 0)) && (ptr == NULL || nsize > osize)) {
    failing = 1;
    failures++;
    return NULL;
  }
  return realloc(ptr, nsize);
}

static int l_fail_in(lua_State *L) {
  countdown = (long)luaL_checkinteger(L, 1);
  failing = 0;
  return 0;
}

/* try_failing(n, f) -> ok, err: calls f with failure n armed and disarms
 * before anything else allocates (in C: a Lua caller could itself fail to
 * get a call frame after the pcall). */
static int l_try_failing(lua_State *L) {
  long n = (long)luaL_checkinteger(L, 1);
  int st;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  countdown = n;
  failing = 0;
  st = lua_pcall(L, 0, 0, 0);
  countdown = 0;
  failing = 0;
  lua_pushboolean(L, st == LUA_OK);
  lua_insert(L, -2 + (st == LUA_OK));
  if (st == LUA_OK) lua_pushnil(L);
  return 2;
}

/* Lua reports a finalizer it could not run (an error in __gc, here: no
 * memory for the call) as a warning; such a finalizer is never retried. */
static long gc_errors;
static void warnf(void *ud, const char *msg, int tocont) {
  (void)ud;
  (void)tocont;
  if (strcmp(msg, "__gc") == 0) gc_errors++; /* "error in ", "__gc", " (", ... */
}

static int l_gc_errors(lua_State *L) {
  lua_pushinteger(L, gc_errors);
  return 1;
}

static int l_failures(lua_State *L) {
  lua_pushinteger(L, failures);
  return 1;
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : "tests/host/lua_nomem.lua";
  lua_State *L = lua_newstate(alloc, NULL);
  int st;
  if (!L) return 2;
  if (conclua_openlibs(L) != LUA_OK) return 2;
  lua_register(L, "fail_in", l_fail_in);
  lua_register(L, "try_failing", l_try_failing);
  lua_register(L, "failures", l_failures);
  lua_register(L, "gc_errors", l_gc_errors);
  lua_setwarnf(L, warnf, NULL);
  st = conclua_dofile(L, script);
  if (st != LUA_OK) {
    fprintf(stderr, "test_lua_nomem: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
