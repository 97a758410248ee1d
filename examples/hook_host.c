/*
 * hook_host.c - a host that exposes its own C function to every thread.
 *
 * It registers `host_scale(x)` in every lua_State the runtime creates
 * (through the state hook), opens the libraries in its own state, and runs
 * a script (argv[1], or a built-in chunk) in which threads call the host's
 * function. Exit code 0 when the script succeeds.
 *
 * Build: cc hook_host.c $(pkg-config --cflags --libs conclua), or with
 * CMake: find_package(conclua) and link conclua::conclua (CMakeLists.txt
 * in this directory).
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "conclua.h"

static int host_scale(lua_State *L) {
  lua_Integer factor = *(lua_Integer *)lua_touserdata(L, lua_upvalueindex(1));
  lua_pushinteger(L, luaL_checkinteger(L, 1) * factor);
  return 1;
}

static lua_Integer factor = 10;

/* Runs on every runtime-created state, in whichever thread creates it. */
static void prepare(lua_State *L, void *ud) {
  lua_pushlightuserdata(L, ud);
  lua_pushcclosure(L, host_scale, 1);
  lua_setglobal(L, "host_scale");
}

static const char *builtin =
    "local ts = {}\n"
    "for i = 1, 4 do ts[i] = conc.thread(function(n) return host_scale(n) end, i) end\n"
    "local sum = 0\n"
    "for i = 1, 4 do local ok, v = ts[i]:join(); assert(ok); sum = sum + v end\n"
    "print('sum of scaled values: ' .. sum)\n"
    "assert(sum == 100)\n";

int main(int argc, char **argv) {
  lua_State *L;
  int st;
  conclua_set_state_hook(prepare, &factor); /* before the first thread */
  L = luaL_newstate();
  if (!L) return 2;
  conclua_openlibs(L);
  prepare(L, &factor); /* the host's own state gets the binding too */
  if (argc > 1) {
    st = conclua_dofile(L, argv[1]);
  } else {
    st = luaL_loadstring(L, builtin);
    if (st == LUA_OK) st = lua_pcall(L, 0, 0, 0);
  }
  if (st != LUA_OK) fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  conclua_wait_threads();
  lua_close(L);
  return st == LUA_OK ? 0 : 1;
}
