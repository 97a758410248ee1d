/* placeholder: replaced by the interpreter */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include "conclua.h"
int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  int st;
  conclua_openlibs(L);
  st = conclua_dofile(L, argc > 1 ? argv[1] : NULL);
  if (st != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  conclua_wait_threads();
  lua_close(L);
  return st != LUA_OK;
}
